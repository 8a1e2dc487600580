//go:build wasip1

// Command tcpecho echoes every TCP connection back to its sender, as Node's net echo server:
//
//	PORT=7000 wasmloop run ./samples/tcpecho    # then: nc 127.0.0.1 7000
//
// It listens on HOST (127.0.0.1 by default) and PORT (7000 by default) and logs each connection's open and
// close. What a client sends comes back as it comes; when the client ends its side, the echo
// ends after the last byte. A client that does not read has its echo queued up to the
// socket's mark, then its own data is paused until the echo drains.
package main

import (
	"cmp"
	"os"
	"strconv"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port := 7000
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	host := cmp.Or(os.Getenv("HOST"), "127.0.0.1") // HOST=0.0.0.0: every interface (in a container)
	srv, err := wasmloop.ListenTCP(host+":"+strconv.Itoa(port), echo)
	if err != nil {
		wasmloop.Log("tcpecho: " + err.Error())
		os.Exit(1)
	}
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at tcp://" + srv.Addr() + "/")
	}
}

func echo(so *wasmloop.Socket) {
	quiet := os.Getenv("TCPECHO_QUIET") != "" // for load tests: a line per connection costs
	if !quiet {
		wasmloop.Log("open " + so.RemoteAddr())
	}
	so.OnDataView(func(data []byte) { // data is a view: Write copies it
		if !so.Write(data) {
			so.Pause()
			so.OnDrain(so.Resume)
		}
	})
	so.OnClose(func(err error) {
		if quiet {
			return
		}
		if err != nil {
			wasmloop.Log("close " + so.RemoteAddr() + ": " + err.Error())
			return
		}
		wasmloop.Log("close " + so.RemoteAddr())
	})
}
