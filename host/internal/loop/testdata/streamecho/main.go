// Command streamecho is a test guest: a streaming server that echoes every request body back
// as it arrives, pausing the body while the response is above the high-water mark.
package main

import (
	"os"
	"strconv"

	wl "github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	srv := wl.CreateServer(func(req wl.Request, res wl.Response) {
		res.WriteHead(200, "Content-Type", "application/octet-stream")
		req.OnData(func(chunk []byte) {
			res.Write(chunk)
			if res.Full() {
				req.Pause()
				res.OnDrain(req.Resume)
			}
		})
		req.OnEnd(func() { res.End("") })
	})
	srv.StreamBodies()
	srv.Listen(port, "127.0.0.1")
	wl.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
}
