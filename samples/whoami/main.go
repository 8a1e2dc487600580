//go:build wasip1

// Command whoami answers every request with the worker that served it, so a client can see
// connections spread over the workers. GET /panic panics, to show that a crashed instance is
// replaced while the others keep serving; GET /later answers from a timer after ?ms=N.
package main

import (
	"cmp"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	host := cmp.Or(os.Getenv("HOST"), "127.0.0.1") // HOST=0.0.0.0: every interface (in a container)
	served := 0
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		served++
		path, query, _ := strings.Cut(req.URL(), "?")
		switch path {
		case "/panic":
			panic("asked to panic by " + req.URL())
		case "/later":
			ms, _ := strconv.Atoi(strings.TrimPrefix(query, "ms="))
			wasmloop.SetTimeout(func() {
				res.WriteHead(200, "Content-Type", "text/plain")
				res.End("worker " + strconv.Itoa(wasmloop.WorkerID()) + " later\n")
			}, time.Duration(ms)*time.Millisecond)
			return
		case "/echo":
			res.WriteHead(200, "Content-Type", "application/octet-stream")
			res.End(string(req.Body()))
			return
		case "/stream":
			res.WriteHead(200, "Content-Type", "text/plain")
			for i := 0; i < 3; i++ {
				res.WriteString("part " + strconv.Itoa(i) + "\n")
			}
			res.End("")
			return
		}
		res.WriteHead(200, "Content-Type", "text/plain", "X-Worker", strconv.Itoa(wasmloop.WorkerID()))
		res.End("worker " + strconv.Itoa(wasmloop.WorkerID()) + " of " + strconv.Itoa(wasmloop.WorkerCount()) +
			", request " + strconv.Itoa(served) + " on this instance\n")
	}).Listen(port, host)
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://" + host + ":" + strconv.Itoa(port) + "/")
	}
}
