//go:build wasip1

// Command review40 is the guest of the review40 tests (host/review40_test.go,
// tests/review40_test.go). It is msgatk's message protocol cut down, with a name of its own so
// that a swap to it can be told from the program it replaced: from the host, "ping" answers
// PostHost("pong review40 TOKEN") and "die" panics (a trap in wasmloop_on_message). With PORT
// set it also serves HTTP: /lateread?url=U&ms=N fetches U and, once the head is in, waits N ms
// (a timer: no read pending meanwhile, as a program whose own client is slow) before it reads
// the body, answering "STATUS\nBODY" or "ERR message"; every other path answers
// "review40 TOKEN".
package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"time"

	wl "github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	var b [6]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	wl.OnMessage(func(from int, data []byte) {
		switch string(data) {
		case "ping":
			wl.PostHost([]byte("pong review40 " + token))
		case "die":
			panic("review40: told to die")
		}
	})
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	if port == 0 {
		return
	}
	wl.CreateServer(func(req wl.Request, res wl.Response) {
		u, _ := url.Parse(req.URL())
		if u.Path != "/lateread" {
			res.End("review40 " + token)
			return
		}
		ms, _ := strconv.Atoi(u.Query().Get("ms"))
		_, err := wl.StartFetch(wl.FetchRequest{URL: u.Query().Get("url")}, func(r *wl.FetchResponse, err error) {
			if err != nil {
				res.End("ERR " + err.Error())
				return
			}
			wl.SetTimeout(func() {
				r.ReadAll(0, func(body []byte, err error) {
					if err != nil {
						res.End("ERR " + err.Error())
						return
					}
					res.End(strconv.Itoa(r.Status) + "\n" + string(body))
				})
			}, time.Duration(ms)*time.Millisecond)
		})
		if err != nil {
			res.End("ERR " + err.Error())
		}
	}).Listen(port, "127.0.0.1")
	wl.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
}
