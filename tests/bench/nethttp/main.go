// Command nethttp is the Go net/http baseline for the wasmloop benchmark
// (tests/bench/run.sh): the Node.js hello world, written with the standard
// library.
//
// It answers every request with 200, Content-Type text/plain and
// "Hello World\n", on 127.0.0.1:$PORT (default 1337). GOMAXPROCS is left at
// its default (all usable cores), which is how net/http is normally run.
// Like Node's http.createServer callback, the handler serves every path; no
// ServeMux is in the way.
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
)

func hello(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "Hello World\n")
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "1337"
	}
	addr := net.JoinHostPort("127.0.0.1", port)

	// Listen first, so the line below is only printed once connections
	// are accepted (as with Node's listen).
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Server running at http://%s/\n", addr)

	log.Fatal(http.Serve(ln, http.HandlerFunc(hello)))
}
