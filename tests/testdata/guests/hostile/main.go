//go:build wasip1

// Command hostile is a guest that misbehaves on request, for the sandbox tests: it loops
// forever, allocates without end or recurses without end in a request, a timer, its
// package initialisation (_initialize) or its main (wasmloop_on_start). Every other path
// answers "ok from worker N". HOSTILE=init or HOSTILE=start picks a start-up that loops.
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
	if os.Getenv("HOSTILE") == "start" {
		spin("main")
	}
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		path, _, _ := strings.Cut(req.URL(), "?")
		switch path {
		case "/loop":
			spin(path)
		case "/alloc":
			for {
				hoard = append(hoard, make([]byte, 1<<20))
				hoard[len(hoard)-1][0] = 1
			}
		case "/recurse":
			res.End(strconv.Itoa(recurse(0)))
		case "/timer-loop":
			wasmloop.SetTimeout(func() { spin("a timer") }, time.Millisecond)
		}
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End("ok from worker " + strconv.Itoa(wasmloop.WorkerID()) + "\n")
	}).Listen(port, "127.0.0.1")
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}
