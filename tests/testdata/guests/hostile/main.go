//go:build wasip1

// Command hostile is a guest that misbehaves on request, for the sandbox tests: it loops
// forever, allocates without end or recurses without end in a request, a timer, its
// package initialisation (_initialize) or its main (wasmloop_on_start). /compute does a
// bounded amount of work, for measuring the cost of the checks that let a call be stopped.
// The /…-loop paths spin in each kind of callback: a request, a body piece, a close, a drain,
// a timer, a message, a WebSocket's open, message and close. /abuse calls every host
// function with bad arguments (abuse.go). Every other path answers
// "ok from worker N". HOSTILE=init or HOSTILE=start picks a
// start-up that loops; HOSTILE=crashloop, an instance that dies a millisecond after it starts.
package main

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

var hoard [][]byte // what /alloc keeps, so that nothing is collected

// spin loops until the host stops it. It writes to stdout first, so a test knows the guest is
// inside the loop (an event, not a guess).
func spin(where string) {
	wasmloop.Log("spinning in " + where)
	n := 0
	for {
		n++
	}
}

// sum is a tight loop; fib is call-heavy.
func sum(n int) int {
	s := 0
	for i := range n {
		s += i ^ (s >> 3)
	}
	return s
}

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func recurse(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	return recurse(n+1) + int(pad[0])
}

func init() {
	if os.Getenv("HOSTILE") == "init" {
		spin("init")
	}
}

func main() {
	switch os.Getenv("HOSTILE") {
	case "start":
		spin("main")
	case "crashloop": // every instance dies as soon as it starts
		wasmloop.SetTimeout(func() { panic("crash loop") }, time.Millisecond)
	}
	wasmloop.OnMessage(func(_ int, data []byte) {
		if string(data) == "spin" {
			spin("a message")
		}
	})
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	srv := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		path, _, _ := strings.Cut(req.URL(), "?")
		switch path {
		case "/loop":
			spin(path)
		case "/alloc":
			for {
				b := make([]byte, 1<<20)
				for i := 0; i < len(b); i += 4096 { // touch every page: resident, not only reserved
					b[i] = 1
				}
				hoard = append(hoard, b)
			}
		case "/recurse":
			res.End(strconv.Itoa(recurse(0)))
		case "/timers": // far more timers than the host allows: the rest are refused
			for range 100_000 {
				wasmloop.SetInterval(func() {}, time.Hour)
			}
		case "/log": // a megabyte of output: a reader that does not read must not stop us
			line := strings.Repeat("x", 1023)
			for range 1024 {
				wasmloop.Log(line)
			}
		case "/abuse": // every host function with arguments no well-behaved guest passes
			res.End(abuse())
			return
		case "/compute": // bounded work, for measuring what the budget checks cost
			res.End(strconv.Itoa(sum(20_000_000)+fib(27)) + "\n")
			return
		case "/body-loop": // its body's first piece spins (wasmloop_on_body)
			req.OnData(func([]byte) { spin("a body") })
			wasmloop.Log("holding " + path)
			return
		case "/close-loop": // no answer; when the client leaves, on_close spins
			res.OnClose(func() { spin("a close") })
			wasmloop.Log("holding " + path)
			return
		case "/drain-loop": // writes past the high-water mark, then spins when it drains
			res.WriteHead(200, "Content-Type", "application/octet-stream")
			chunk := make([]byte, 64<<10)
			for !res.Full() {
				res.Write(chunk)
			}
			res.OnDrain(func() { spin("a drain") })
			return
		case "/ws-open-loop", "/ws-message-loop", "/ws-close-loop":
			ws, err := res.Upgrade(wasmloop.UpgradeOptions{})
			if err != nil {
				return
			}
			switch path {
			case "/ws-open-loop":
				ws.OnOpen(func() { spin("a WebSocket open") })
			case "/ws-message-loop":
				ws.OnMessage(func([]byte, bool) { spin("a WebSocket message") })
			default:
				ws.OnClose(func(int, string) { spin("a WebSocket close") })
			}
			return
		case "/message-loop": // a message to itself, whose handler spins
			if err := wasmloop.PostMessage(wasmloop.WorkerID(), []byte("spin")); err != nil {
				res.WriteHead(500)
				res.End(err.Error())
				return
			}
		case "/timer-loop":
			wasmloop.SetTimeout(func() { spin("a timer") }, time.Millisecond)
		}
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End("ok from worker " + strconv.Itoa(wasmloop.WorkerID()) + "\n")
	})
	srv.StreamBodies() // for /body-loop
	srv.Listen(port, "127.0.0.1")
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}
