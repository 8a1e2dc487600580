//go:build wasip1

// Command nethello is samples/hello written as Go's net/http code (an http.HandlerFunc served
// by wasmhttp.ListenAndServe), for the dispatch benchmark's comparison with the SDK's own
// handler.
package main

import (
	"io"
	"net/http"
	"os"

	"github.com/wasmloop/wasmloop/guest-sdk/go/wasmhttp"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "1337"
	}
	wasmhttp.ListenAndServe("127.0.0.1:"+port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello World\n")
	}))
}
