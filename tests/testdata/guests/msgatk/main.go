//go:build wasip1

// Command msgatk is the guest of msg_attack_test.go (tests/) and host/msg_attack_test.go: it
// attacks messages between workers and the host.
//
// Every message it receives is logged on stdout, one line:
//
//	msgatk: got w=W from=F seq=S len=N ok=BOOL tok=TOKEN
//
// where a message is "m|SEQ|" followed by a pattern (ok says the pattern is intact). A
// message "die|W|" makes worker W panic (trap) inside wasmloop_on_message; "spin|MS|" makes
// the receiver spin MS ms; "flood|TO|N|SIZE|" makes it post N messages of SIZE bytes to
// worker TO and log "msgatk: flood accepted=K err=E". From the host (App.Post): "ping"
// answers PostHost("pong TOKEN"); any other message is logged as above and, when from the
// host, echoed to the host as "got SEQ TOKEN OK LEN".
//
// HTTP (when PORT is set): POST /bcast?n=N&sizes=a,b,c&start=S broadcasts N messages
// (seq S…) whose sizes cycle through the list and answers, per worker, the seqs that
// worker's code said it got: "w0=…;w1=1,2,…"; /spinflood?ms=MS&n=N&size=SIZE asks worker
// 0 (by message) to flood this worker with N messages of SIZE while this worker spins MS ms;
// /die panics; /ws accepts a WebSocket whose every message is broadcast (and echoed).
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	wl "github.com/wasmloop/wasmloop/guest-sdk/go"
)

var token string

// patterns caches a buffer per size: the sender reuses it (the host copies a message at
// once), rewriting only the header, since filling a MiB in metered code is slow.
var patterns = map[int][]byte{}

func pattern(seq, n int) []byte {
	b, ok := patterns[n]
	if !ok {
		b = make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		patterns[n] = b
	}
	for i := 0; i < min(n, 24); i++ {
		b[i] = byte(i * 7)
	}
	copy(b, "m|"+strconv.Itoa(seq)+"|")
	return b
}

func intact(seq int, data []byte) bool {
	h := "m|" + strconv.Itoa(seq) + "|"
	if len(data) < len(h) || string(data[:len(h)]) != h {
		return false
	}
	for i := len(h); i < len(data); i++ {
		if data[i] != byte(i*7) {
			return false
		}
	}
	return true
}

func param(url, key string) string {
	_, q, _ := strings.Cut(url, "?")
	for _, kv := range strings.Split(q, "&") {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func spin(ms int) {
	end := time.Now().Add(time.Duration(ms) * time.Millisecond)
	for time.Now().Before(end) {
	}
}

func main() {
	var b [6]byte
	rand.Read(b[:])
	token = hex.EncodeToString(b[:])
	me := wl.WorkerID()
	wl.OnMessage(func(from int, data []byte) {
		f := strings.SplitN(string(data[:min(len(data), 64)]), "|", 5)
		switch f[0] {
		case "ping":
			wl.PostHost([]byte("pong " + token))
			return
		case "die":
			if w, _ := strconv.Atoi(f[1]); w == me || f[1] == "all" {
				panic("msgatk: told to die")
			}
			return
		case "spin":
			ms, _ := strconv.Atoi(f[1])
			spin(ms)
			return
		case "flood":
			to, _ := strconv.Atoi(f[1])
			n, _ := strconv.Atoi(f[2])
			size, _ := strconv.Atoi(f[3])
			k := 0
			var err error
			for k < n {
				if err = wl.PostMessage(to, pattern(k+1, size)); err != nil {
					break
				}
				k++
			}
			wl.Log("msgatk: flood accepted=" + strconv.Itoa(k) + " err=" + errString(err))
			return
		case "m":
			seq, _ := strconv.Atoi(f[1])
			ok := strconv.FormatBool(intact(seq, data))
			wl.Log("msgatk: got w=" + strconv.Itoa(me) + " from=" + strconv.Itoa(from) + " seq=" + f[1] +
				" len=" + strconv.Itoa(len(data)) + " ok=" + ok + " tok=" + token)
			if from == wl.FromHost {
				wl.PostHost([]byte("got " + f[1] + " " + token + " " + ok + " " + strconv.Itoa(len(data))))
			}
		}
	})
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	if port == 0 {
		return // embedded (host.App with KeepAlive): messages only
	}
	wl.CreateServer(func(req wl.Request, res wl.Response) {
		res.SetHeader("X-Worker", strconv.Itoa(me))
		path, _, _ := strings.Cut(req.URL(), "?")
		switch path {
		case "/bcast":
			n, _ := strconv.Atoi(param(req.URL(), "n"))
			start, _ := strconv.Atoi(param(req.URL(), "start"))
			var sizes []int
			for _, s := range strings.Split(param(req.URL(), "sizes"), ",") {
				v, _ := strconv.Atoi(s)
				sizes = append(sizes, v)
			}
			got := make([][]string, wl.WorkerCount())
			for i := 0; i < n; i++ {
				seq := start + i
				err := wl.Broadcast(pattern(seq, sizes[i%len(sizes)]))
				refused := map[int]bool{}
				var be *wl.BroadcastError
				if errors.As(err, &be) {
					for _, w := range be.Workers {
						refused[w] = true
					}
				} else if err != nil {
					res.End("error " + err.Error())
					return
				}
				for w := range got {
					if w != me && !refused[w] {
						got[w] = append(got[w], strconv.Itoa(seq))
					}
				}
			}
			var out []string
			for w, g := range got {
				out = append(out, "w"+strconv.Itoa(w)+"="+strings.Join(g, ","))
			}
			res.End(strings.Join(out, ";"))
		case "/spinflood":
			ms, _ := strconv.Atoi(param(req.URL(), "ms"))
			err := wl.PostMessage(0, []byte("flood|"+strconv.Itoa(me)+"|"+param(req.URL(), "n")+"|"+param(req.URL(), "size")+"|"))
			spin(ms)
			res.End("spun " + errString(err))
		case "/die":
			panic("msgatk: /die")
		case "/tok":
			res.End(token)
		case "/ws":
			ws, err := res.Upgrade(wl.UpgradeOptions{})
			if err != nil {
				res.WriteHead(500)
				res.End(err.Error())
				return
			}
			ws.OnMessage(func(data []byte, binary bool) {
				err := wl.Broadcast(data)
				ws.Send([]byte("b "+errString(err)), false)
			})
		default:
			res.End("worker " + strconv.Itoa(me))
		}
	}).Listen(port, "127.0.0.1")
	if me == 0 {
		wl.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}
