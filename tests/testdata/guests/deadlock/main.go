//go:build wasip1

// Command deadlock is written as an ordinary Go server would be, which cannot work in a
// guest: main blocks (MODE=listen: net/http's ListenAndServe; MODE=select: select {}), or
// (MODE=handler) a handler waits on its own goroutine for what nothing will send.
package main

import (
	"net/http"
	"os"
	"strconv"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	switch os.Getenv("MODE") {
	case "handler":
		port, _ := strconv.Atoi(os.Getenv("PORT"))
		wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
			<-make(chan struct{})
		}).Listen(port, "127.0.0.1")
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
		return
	case "listen":
		http.ListenAndServe("127.0.0.1:8080", http.NotFoundHandler())
	}
	select {}
}
