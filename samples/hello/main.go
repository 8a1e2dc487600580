//go:build wasip1

// Command hello is Node's hello world, as a wasmloop guest.
package main

import (
	"cmp"
	"os"
	"strconv"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	host := cmp.Or(os.Getenv("HOST"), "127.0.0.1") // HOST=0.0.0.0: every interface (in a container)
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End("Hello World\n")
	}).Listen(port, host)

	if wasmloop.WorkerID() == 0 { // every worker runs this; say it once
		wasmloop.Log("Server running at http://" + host + ":" + strconv.Itoa(port) + "/")
	}
}
