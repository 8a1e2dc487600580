//go:build wasip1

// Command attack is the guest of package host's adversarial embedding tests
// (embed_attack_test.go): a server that counts what it is asked, so that a test can tell a
// request the program saw twice from one it saw once.
//
//	/count    counts the request and answers the count of /count requests so far
//	/abort    counts the request and closes its connection without an answer
//	/stats    "count=N abort=M": how many of each this instance saw
//	/headers  the request's header fields, one "name: value" a line
//	/hold     never answers
//
// Calls: echo answers its payload; hold never answers. A message from the service comes back
// to it prefixed with "echo:".
package main

import (
	"os"
	"strconv"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	counted, aborted := 0, 0
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		switch req.URL() {
		case "/count":
			counted++
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End(strconv.Itoa(counted))
		case "/abort":
			aborted++
			res.Abort()
		case "/stats":
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End("count=" + strconv.Itoa(counted) + " abort=" + strconv.Itoa(aborted))
		case "/headers":
			out := ""
			for _, h := range req.Headers() {
				out += h.Name + ": " + h.Value + "\n"
			}
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End(out)
		case "/hold":
		default:
			res.WriteHead(404)
			res.End("")
		}
	}).Listen(port, "127.0.0.1")
	wasmloop.HandleCall("echo", func(c *wasmloop.CallRequest) { c.Return(c.Payload()) })
	wasmloop.HandleCall("hold", func(c *wasmloop.CallRequest) {})
	wasmloop.OnMessage(func(from int, data []byte) {
		if from == wasmloop.FromHost {
			wasmloop.PostHost(append([]byte("echo:"), data...))
		}
	})
}
