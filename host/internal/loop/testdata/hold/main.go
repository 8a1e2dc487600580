// Command hold is a test guest: GET /hold keeps its response open until a GET /release on any
// connection ends it; every other request answers "path=<target>".
package main

import wl "github.com/wasmloop/wasmloop/guest-sdk/go"

func main() {
	var held []wl.Response
	wl.CreateServer(func(req wl.Request, res wl.Response) {
		switch req.URL() {
		case "/hold":
			held = append(held, res)
			return
		case "/release":
			for _, h := range held {
				h.End("released\n")
			}
			held = held[:0]
		}
		res.End("path=" + req.URL() + "\n")
	}).Listen(0, "127.0.0.1")
}
