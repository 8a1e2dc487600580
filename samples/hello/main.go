//go:build wasip1

// Command hello is Node's hello world, as a wasmloop guest.
package main

import (
	"os"
	"strconv"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End("Hello World\n")
	}).Listen(port, "127.0.0.1")

	if wasmloop.WorkerID() == 0 { // every worker runs this; say it once
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}
