//go:build wasip1

// Command chat is a chat room that spans every worker. It serves one page at / (embedded in
// the guest) and WebSocket at /ws?name=NAME. Every text message a client sends is delivered,
// as a JSON line {"name","text","worker","seq"}, to every client connected to any worker: the
// worker that received it sends it to its own clients and posts it to the others, which send
// it to theirs. Messages of one sender keep their order everywhere, because a sender's
// messages reach one worker in order and posts between two workers keep their order.
// Joins and leaves are announced the same way, with "system": true.
package main

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

//go:embed index.html
var page string

// maxText is the longest message accepted: a relayed line must fit one post.
const maxText = 2000

// line is what every client receives.
type line struct {
	Name   string `json:"name"`
	Text   string `json:"text"`
	Worker int    `json:"worker"`
	Seq    int    `json:"seq"` // per sender connection: 1, 2, 3, ...
	System bool   `json:"system,omitempty"`
}

// clients are this worker's connected sockets.
var clients = map[*wasmloop.WebSocket]bool{}

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	host := cmp.Or(os.Getenv("HOST"), "127.0.0.1") // HOST=0.0.0.0: every interface (in a container)
	wasmloop.OnMessage(func(from int, data []byte) { deliver(data) })
	wasmloop.CreateServer(serve).Listen(port, host)
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://" + host + ":" + strconv.Itoa(port) + "/")
	}
}

func serve(req wasmloop.Request, res wasmloop.Response) {
	path, query, _ := strings.Cut(req.URL(), "?")
	switch {
	case path == "/ws" && req.IsWebSocket():
		join(req, res, query)
	case path == "/ws":
		res.WriteHead(426, "Content-Type", "text/plain", "Upgrade", "websocket", "Connection", "Upgrade")
		res.End("connect with a WebSocket client\n")
	case path == "/" && (req.Method() == "GET" || req.Method() == "HEAD"):
		res.WriteHead(200, "Content-Type", "text/html; charset=utf-8", "Cache-Control", "no-cache")
		res.End(page)
	default:
		res.WriteHead(404, "Content-Type", "text/plain")
		res.End("not found\n")
	}
}

func join(req wasmloop.Request, res wasmloop.Response, query string) {
	q, _ := url.ParseQuery(query)
	name := strings.TrimSpace(q.Get("name"))
	if name == "" || len(name) > 64 || !utf8.ValidString(name) {
		name = "anonymous"
	}
	res.SetHeader("X-Worker", strconv.Itoa(wasmloop.WorkerID()))
	ws, err := res.Upgrade(wasmloop.UpgradeOptions{Compress: true})
	if err != nil {
		res.WriteHead(503, "Content-Type", "text/plain")
		res.End(err.Error() + "\n")
		return
	}
	seq := 0
	say := func(text string, system bool) {
		seq++
		b, _ := json.Marshal(line{Name: name, Text: text, Worker: wasmloop.WorkerID(), Seq: seq, System: system})
		deliver(b)
		if err := wasmloop.Broadcast(b); err != nil {
			wasmloop.Error("chat: broadcast: " + err.Error())
		}
	}
	ws.OnOpen(func() {
		clients[ws] = true
		say(name+" joined", true)
	})
	ws.OnMessage(func(data []byte, binary bool) {
		if binary || len(data) > maxText {
			ws.Close(1003, "text messages of at most 2000 bytes")
			return
		}
		say(string(data), false)
	})
	ws.OnClose(func(code int, reason string) {
		if clients[ws] {
			delete(clients, ws)
			say(name+" left", true)
		}
	})
}

// deliver sends one line to every client of this worker. A client that does not keep up
// (more than the host's high-water mark unread) misses lines rather than growing memory.
func deliver(b []byte) {
	for c := range clients {
		if !c.Full() {
			c.Send(b, false)
		}
	}
}
