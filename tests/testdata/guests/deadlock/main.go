//go:build wasip1

// Command deadlock is written as an ordinary Go server would be, which cannot work in a
// guest: main blocks (MODE=listen: net/http's ListenAndServe; MODE=select: select {}).
package main

import (
	"net/http"
	"os"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	wasmloop.Log("starting")
	if os.Getenv("MODE") == "listen" {
		http.ListenAndServe("127.0.0.1:8080", http.NotFoundHandler())
	}
	select {}
}
