//go:build wasip1

// Command wskit is a test guest for the WebSocket API. Paths: /reject answers 403; /late
// accepts from a timer 50 ms after the request; /proto accepts the subprotocol "kit.v2" if
// offered; anything else accepts at once. On a socket, a text command is answered:
//
//	panic           panics (the instance is replaced; every socket gets 1011)
//	close C R       closes with code C and reason R
//	terminate       closes without a handshake
//	flood N         sends N binary messages of 64 KiB, waiting for drain when Full, then
//	                "flooded full=F" (F: how often Full was seen); the first time it has to
//	                wait it logs "flood: waiting for drain" on stdout
//	badtext         tries to send invalid UTF-8 as text and answers the error
//	events          answers the open and close events this worker saw ("open 3 close 1006,1000")
//	proto           answers the socket's subprotocol
//	unlisten        closes the server (open sockets stay, as in Node) and answers "unlistened"
//
// Other messages are echoed.
package main

import (
	"os"
	"strconv"
	"strings"
	"time"

	wl "github.com/wasmloop/wasmloop/guest-sdk/go"
)

var (
	opens  int
	closes []string
	srv    *wl.Server
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	srv = wl.CreateServer(func(req wl.Request, res wl.Response) {
		if !req.IsWebSocket() {
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End("plain\n")
			return
		}
		res.SetHeader("X-Worker", strconv.Itoa(wl.WorkerID()))
		switch req.URL() {
		case "/reject":
			res.WriteHead(403, "Content-Type", "text/plain")
			res.End("no\n")
		case "/late":
			wl.SetTimeout(func() { accept(res, wl.UpgradeOptions{}) }, 50*time.Millisecond)
		case "/proto":
			opts := wl.UpgradeOptions{}
			for _, p := range req.WebSocketProtocols() {
				if p == "kit.v2" {
					opts.Protocol = p
				}
			}
			accept(res, opts)
		default:
			accept(res, wl.UpgradeOptions{Compress: true})
		}
	})
	srv.Listen(port, "127.0.0.1")
	if wl.WorkerID() == 0 {
		wl.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

func accept(res wl.Response, opts wl.UpgradeOptions) {
	ws, err := res.Upgrade(opts)
	if err != nil {
		res.WriteHead(500, "Content-Type", "text/plain")
		res.End(err.Error())
		return
	}
	ws.OnOpen(func() { opens++ })
	ws.OnClose(func(code int, reason string) { closes = append(closes, strconv.Itoa(code)) })
	ws.OnMessage(func(data []byte, binary bool) {
		if binary {
			ws.Send(data, true)
			return
		}
		cmd, arg, _ := strings.Cut(string(data), " ")
		switch cmd {
		case "panic":
			panic("asked to")
		case "close":
			c, reason, _ := strings.Cut(arg, " ")
			code, _ := strconv.Atoi(c)
			if err := ws.Close(code, reason); err != nil {
				ws.SendText("close: " + err.Error())
			}
		case "terminate":
			ws.Terminate()
		case "flood":
			n, _ := strconv.Atoi(arg)
			flood(ws, n, 0)
		case "badtext":
			ws.SendText("bad: " + errString(ws.Send([]byte{0xff, 0xfe}, false)))
		case "events":
			ws.SendText("open " + strconv.Itoa(opens) + " close " + strings.Join(closes, ","))
		case "unlisten":
			srv.Close()
			ws.SendText("unlistened")
		case "proto":
			ws.SendText("proto " + ws.Protocol())
		default:
			ws.Send(data, false)
		}
	})
}

var piece = make([]byte, 64<<10)

func flood(ws *wl.WebSocket, left, full int) {
	for ; left > 0; left-- {
		if ws.Full() {
			if full == 0 {
				wl.Log("flood: waiting for drain") // the test reads only once it sees this
			}
			ws.OnDrain(func() { flood(ws, left, full+1) })
			return
		}
		piece[0] = byte(left)
		if err := ws.Send(piece, true); err != nil {
			return
		}
	}
	ws.SendText("flooded full=" + strconv.Itoa(full))
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
