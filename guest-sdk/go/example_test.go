//go:build wasip1

package wasmloop_test

import (
	"strconv"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

// Node's hello world. Every worker runs main, so every worker listens on the port; the
// kernel spreads connections over them.
func ExampleCreateServer() {
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End("Hello World\n")
	}).Listen(1337, "127.0.0.1")
}

// A response kept and ended later, from a timer: the handler returns at once and the worker
// serves other requests meanwhile.
func ExampleSetTimeout() {
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		wasmloop.SetTimeout(func() {
			res.End("one second later\n")
		}, time.Second)
	}).Listen(1337, "127.0.0.1")
}

// A request body streamed as it arrives: the host pauses the connection while the program
// pauses the request.
func ExampleServer_StreamBodies() {
	s := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		n := 0
		req.OnData(func(chunk []byte) { n += len(chunk) })
		req.OnEnd(func() { res.End(strconv.Itoa(n) + " bytes\n") })
	})
	s.StreamBodies()
	s.Listen(1337, "127.0.0.1")
}

// A goroutine the handler starts may answer after the handler returned, and may block: the
// SDK lets it run before each callback returns, and wakes the program for Go's own timers.
func ExampleAwait() {
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		go func() {
			data, err := wasmloop.Await(func(done func([]byte)) error {
				return wasmloop.ReadFile("/www/index.html", func(data []byte, err error) { done(data) })
			})
			if err != nil || data == nil {
				res.WriteHead(404)
				res.End("not found\n")
				return
			}
			res.End(string(data))
		}()
	}).Listen(1337, "127.0.0.1")
}

// Messages between workers: each worker is an instance with its own memory, so state that
// all of them need is sent, not shared.
func ExamplePostMessage() {
	hits := 0
	wasmloop.OnMessage(func(from int, data []byte) {
		hits++ // worker 0 counts every worker's requests
	})
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		if wasmloop.WorkerID() == 0 {
			hits++
		} else {
			wasmloop.PostMessage(0, []byte("hit"))
		}
		res.End("ok\n")
	}).Listen(1337, "127.0.0.1")
}
