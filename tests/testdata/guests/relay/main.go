//go:build wasip1

// Command relay is a test guest for messages between workers. Every response carries
// X-Worker. POST /say?n=N broadcasts N numbered messages to the other workers; GET /log
// lists the messages this worker received, one per line; POST /flood posts to the next worker
// without pause until the host refuses, and answers the count and the error.
//
// Long messages (ABI 1.7): POST /long?n=N&to=W posts a patterned message of N bytes to worker
// W (to=all broadcasts it); POST /longflood?n=N&to=W posts such messages without pause until
// the host refuses (to=all: broadcasts), and answers the count, the error, whether it is
// ELIMIT and, for a broadcast, the workers it names; GET /longlog lists the long messages
// this worker received (over 64 bytes), one per line: "from len sha256 pattern-ok".
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/wasmloop/wasmloop/abi"
	wl "github.com/wasmloop/wasmloop/guest-sdk/go"
)

// pattern is message n's content: every byte depends on its offset's three low bytes and on
// the sender, so a piece lost, repeated or out of place changes the digest.
func pattern(n, sender int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ byte(i>>8)*3 ^ byte(i>>16)*5 ^ byte(sender)
	}
	return b
}

// param is the value of key in url's query.
func param(url, key string) string {
	_, q, _ := strings.Cut(url, "?")
	for _, kv := range strings.Split(q, "&") {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	me := strconv.Itoa(wl.WorkerID())
	var log, longLog []string
	wl.OnMessage(func(from int, data []byte) {
		if len(data) <= 64 {
			log = append(log, strconv.Itoa(from)+":"+string(data))
			return
		}
		sum := sha256.Sum256(data)
		ok := string(data) == string(pattern(len(data), from))
		longLog = append(longLog, fmt.Sprintf("%d %d %s %v", from, len(data), hex.EncodeToString(sum[:]), ok))
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
		case "/max":
			res.End(strconv.Itoa(wl.MaxMessage))
		case "/long", "/longflood":
			n, _ := strconv.Atoi(param(req.URL(), "n"))
			to := param(req.URL(), "to")
			w, _ := strconv.Atoi(to)
			msg := pattern(n, wl.WorkerID())
			send := func() error {
				if to == "all" {
					return wl.Broadcast(msg)
				}
				return wl.PostMessage(w, msg)
			}
			if path == "/long" {
				res.End(errString(send()))
				return
			}
			count := 0
			var err error
			for count < 100_000 {
				if err = send(); err != nil {
					break
				}
				count++
			}
			out := fmt.Sprintf("%d %s elimit=%v", count, errString(err), errors.Is(err, abi.ELIMIT))
			var be *wl.BroadcastError
			if errors.As(err, &be) {
				out += fmt.Sprintf(" workers=%v codes=%v", be.Workers, be.Codes)
			}
			res.End(out)
		case "/longlog":
			res.End(strings.Join(longLog, "\n"))
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
