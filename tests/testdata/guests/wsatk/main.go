//go:build wasip1

// Command wsatk is a test guest for ws_attack2_test.go: it accepts every WebSocket (with
// permessage-deflate when offered) and logs, on stdout, what each socket hears:
// "wsatk: open TOKEN", "wsatk: close CODE TOKEN". TOKEN is random per instance, so a test can
// tell the instance that heard an event. Text commands:
//
//	id            answers "id TOKEN"
//	pauseecho     pauses, answers "paused", and 100 ms later answers "resumed" and resumes
//	pause         pauses the socket and answers "paused"
//	pauseclose C  pauses the socket, then starts the closing handshake with code C
//	drainclose    closes with 1000 and, in OnClose, calls OnDrain and logs
//	              "wsatk: drain-after-close ran=BOOL"
//	sendclose     closes with 1000, then Sends, and answers nothing (logs the error)
//
// At /terminate-on-open the socket is terminated inside OnOpen; at /big-on-open OnOpen sends
// 2 MiB (run with --max-output 1m to have the host close the connection inside OnOpen). Other messages are echoed.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"time"

	wl "github.com/wasmloop/wasmloop/guest-sdk/go"
)

var token string

func main() {
	var b [6]byte
	rand.Read(b[:])
	token = hex.EncodeToString(b[:])
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	srv := wl.CreateServer(func(req wl.Request, res wl.Response) {
		if !req.IsWebSocket() {
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End("plain " + token + "\n")
			return
		}
		url := req.URL() // the request is stale once upgraded
		ws, err := res.Upgrade(wl.UpgradeOptions{Compress: true})
		if err != nil {
			res.WriteHead(500, "Content-Type", "text/plain")
			res.End(err.Error())
			return
		}
		drainProbe := false
		ws.OnOpen(func() {
			wl.Log("wsatk: open " + token)
			switch url {
			case "/terminate-on-open":
				ws.Terminate()
			case "/big-on-open": // past a small --max-output: the host closes the connection
				wl.Log("wsatk: big send " + errString(ws.Send(make([]byte, 2<<20), true)))
			}
		})
		ws.OnClose(func(code int, reason string) {
			wl.Log("wsatk: close " + strconv.Itoa(code) + " " + token)
			if drainProbe {
				ran := false
				ws.OnDrain(func() { ran = true })
				wl.Log("wsatk: drain-after-close ran=" + strconv.FormatBool(ran))
			}
		})
		ws.OnMessage(func(data []byte, binary bool) {
			if binary {
				ws.Send(data, true)
				return
			}
			cmd, arg, _ := strings.Cut(string(data), " ")
			switch cmd {
			case "id":
				ws.SendText("id " + token)
			case "pauseecho":
				ws.Pause()
				ws.SendText("paused")
				wl.SetTimeout(func() {
					ws.SendText("resumed")
					ws.Resume()
				}, 100*time.Millisecond)
			case "pause":
				ws.Pause()
				ws.SendText("paused")
			case "pauseclose":
				code, _ := strconv.Atoi(arg)
				ws.Pause()
				if err := ws.Close(code, "bye"); err != nil {
					wl.Log("wsatk: close error " + err.Error())
				}
			case "drainclose":
				drainProbe = true
				ws.Close(1000, "")
			case "sendclose":
				ws.Close(1000, "")
				err := ws.SendText("after close")
				s := "nil"
				if err != nil {
					s = err.Error()
				}
				wl.Log("wsatk: send-after-close " + s)
			default:
				ws.Send(data, false)
			}
		})
	})
	srv.Listen(port, "127.0.0.1")
	if wl.WorkerID() == 0 {
		wl.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
