//go:build wasip1

// Command greet is the guest of package host's examples and lifecycle tests. Its top-level
// code sets a timer that greets NAME; once the timer has fired nothing is left to wait for,
// so the program ends. With PORT set it also serves HTTP on 127.0.0.1:PORT (0: a port the
// kernel chooses): each request is logged as it arrives ("request /path"), and answered with
// the greeting, after ?ms=N milliseconds if asked; a request whose connection closes before
// its answer is logged too ("closed /path").
package main

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	name := os.Getenv("NAME")
	wasmloop.SetTimeout(func() { wasmloop.Log("hello,", name) }, 10*time.Millisecond)
	port, err := strconv.Atoi(os.Getenv("PORT"))
	if err != nil {
		return
	}
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		path, query, _ := strings.Cut(req.URL(), "?")
		wasmloop.Log("request", path)
		res.OnClose(func() { wasmloop.Log("closed", path) })
		ms, _ := strconv.Atoi(strings.TrimPrefix(query, "ms="))
		wasmloop.SetTimeout(func() {
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End("hello, " + name + "\n")
		}, time.Duration(ms)*time.Millisecond)
	}).Listen(port, "127.0.0.1")
}
