//go:build wasip1

// Command attack3 is the guest of package host's third round of attacks on the Handler
// (embed_attack3_test.go). Its server streams request bodies (Server.StreamBodies), so a
// request reaches it at its head, before its body.
//
//	/abort   closes the request's connection at once, without an answer, its body unread
//	/count   "<byte count>\n" of the body, counted as it arrives
//	/seq     how many /seq requests this instance has seen, this one included
package main

import (
	"os"
	"strconv"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	seq := 0
	srv := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		switch req.URL() {
		case "/abort":
			res.Abort()
		case "/count":
			var n int
			req.OnData(func(chunk []byte) { n += len(chunk) })
			req.OnEnd(func() {
				res.WriteHead(200, "Content-Type", "text/plain")
				res.End(strconv.Itoa(n) + "\n")
			})
		case "/seq":
			seq++
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End(strconv.Itoa(seq))
		default:
			res.WriteHead(404)
			res.End("")
		}
	})
	srv.StreamBodies()
	srv.Listen(port, "127.0.0.1")
}
