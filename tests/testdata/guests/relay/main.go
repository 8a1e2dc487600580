//go:build wasip1

// Command relay is a test guest for messages between workers. Every response carries
// X-Worker. POST /say?n=N broadcasts N numbered messages to the other workers; GET /log
// lists the messages this worker received, one per line; POST /flood posts to the next worker
// without pause until the host refuses, and answers the count and the error.
package main

import (
	"os"
	"strconv"
	"strings"

	wl "github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	me := strconv.Itoa(wl.WorkerID())
	var log []string
	wl.OnMessage(func(from int, data []byte) {
		log = append(log, strconv.Itoa(from)+":"+string(data))
	})
	wl.CreateServer(func(req wl.Request, res wl.Response) {
		res.SetHeader("X-Worker", me)
		path, query, _ := strings.Cut(req.URL(), "?")
		switch path {
		case "/say":
			n, _ := strconv.Atoi(strings.TrimPrefix(query, "n="))
			for i := 1; i <= n; i++ {
				if err := wl.Broadcast([]byte("m" + strconv.Itoa(i))); err != nil {
					res.End("error " + err.Error())
					return
				}
			}
			res.End("sent " + strconv.Itoa(n))
		case "/log":
			res.End(strings.Join(log, "\n"))
		case "/flood":
			to := (wl.WorkerID() + 1) % wl.WorkerCount()
			n := 0
			var err error
			for n < 1_000_000 {
				if err = wl.PostMessage(to, []byte("flood")); err != nil {
					break
				}
				n++
			}
			res.End(strconv.Itoa(n) + " " + errString(err))
		case "/big":
			res.End(errString(wl.PostMessage(0, make([]byte, wl.MaxMessage+1))) + " " + errString(wl.PostMessage(99, nil)))
		default:
			res.End("worker " + me)
		}
	}).Listen(port, "127.0.0.1")
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
