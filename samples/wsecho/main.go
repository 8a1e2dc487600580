//go:build wasip1

// Command wsecho is a WebSocket echo server: on any path it accepts the upgrade (with
// permessage-deflate when the client offers it, and the first subprotocol the client offers)
// and sends every message back as it came, text as text, binary as binary. A client that does
// not read its echoes is paused until it does. The 101 response carries X-Worker, the worker
// holding the connection. Plain HTTP requests get a line of text.
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
	worker := strconv.Itoa(wasmloop.WorkerID())
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		if !req.IsWebSocket() {
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End("wsecho: connect a WebSocket client to any path\n")
			return
		}
		opts := wasmloop.UpgradeOptions{Compress: true}
		if protos := req.WebSocketProtocols(); len(protos) > 0 {
			opts.Protocol = protos[0]
		}
		res.SetHeader("X-Worker", worker)
		ws, err := res.Upgrade(opts)
		if err != nil {
			res.WriteHead(503, "Content-Type", "text/plain")
			res.End(err.Error() + "\n")
			return
		}
		ws.OnMessage(func(data []byte, binary bool) {
			ws.Send(data, binary)
			if ws.Full() { // the client is not reading its echoes: stop reading its messages
				ws.Pause()
				ws.OnDrain(ws.Resume)
			}
		})
	}).Listen(port, host)

	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://" + host + ":" + strconv.Itoa(port) + "/")
	}
}
