//go:build wasip1

// Command stream shows wasmloop's streaming, end to end with back-pressure: request bodies
// arrive piece by piece (Server.StreamBodies, Request.OnData/OnEnd) and can be paused, and a
// response written faster than the client reads waits for the connection to drain
// (Response.Full/OnDrain), so neither side is ever buffered whole.
//
//	GET  /  or /lines      "line 1\n" … "line 10\n", one every 100 ms, from a timer
//	POST /echo             the body, echoed as it arrives
//	GET  /download?size=N  N bytes (byte i is i % 251), with a Content-Length
//	POST /upload           "<byte count> <hex sha256>\n" of the body, hashed as it arrives
//	POST /count            "<byte count>\n" of the body, counted as it arrives (nothing else
//	                       is done with the bytes: it measures the body streaming alone)
//
// /echo, /upload and /count also take PUT, which is what `curl -T file` sends.
package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

// piece is the most a download hands the host per Write.
const piece = 64 << 10

// pattern holds the download content at every offset: byte i of a download is i % 251, so
// the piece at offset off is pattern[off%251:][:n], with no copying or allocation per write.
var pattern = func() []byte {
	b := make([]byte, piece+251)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	host := cmp.Or(os.Getenv("HOST"), "127.0.0.1") // HOST=0.0.0.0: every interface (in a container)
	srv := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		path, query, _ := strings.Cut(req.URL(), "?")
		method := req.Method()
		upload := method == "POST" || method == "PUT"
		switch {
		case path == "/" || path == "/lines":
			lines(res)
		case path == "/echo" && upload:
			echo(req, res)
		case path == "/download":
			download(res, query)
		case path == "/upload" && upload:
			hash(req, res)
		case path == "/count" && upload:
			count(req, res)
		default:
			res.WriteHead(404, "Content-Type", "text/plain")
			res.End("not found\n")
		}
	})
	srv.StreamBodies()
	srv.Listen(port, host)

	if wasmloop.WorkerID() == 0 { // every worker runs this; say it once
		wasmloop.Log("Server running at http://" + host + ":" + strconv.Itoa(port) + "/")
	}
}

// lines writes a line every 100 ms from an interval timer, ten in all, then ends.
func lines(res wasmloop.Response) {
	res.WriteHead(200, "Content-Type", "text/plain")
	n := 0
	var t *wasmloop.Timer
	t = wasmloop.SetInterval(func() {
		n++
		if _, err := res.WriteString("line " + strconv.Itoa(n) + "\n"); err != nil {
			wasmloop.ClearInterval(t) // the client went away
			return
		}
		if n == 10 {
			wasmloop.ClearInterval(t)
			res.End("")
		}
	}, 100*time.Millisecond)
	res.OnClose(func() { wasmloop.ClearInterval(t) })
}

// echo writes every piece of the body back as it arrives. When the client does not read
// the echo as fast as it sends, the connection's output fills: the body is paused, so the
// host stops reading the socket and TCP slows the sender, until the output drains.
func echo(req wasmloop.Request, res wasmloop.Response) {
	res.WriteHead(200, "Content-Type", "application/octet-stream")
	req.OnData(func(chunk []byte) {
		if _, err := res.Write(chunk); err != nil {
			return // the connection is gone
		}
		if res.Full() {
			req.Pause()
			res.OnDrain(req.Resume)
		}
	})
	req.OnEnd(func() { res.End("") })
}

// download streams size bytes, a piece at a time, and waits for the connection to drain
// whenever its output is above the mark.
func download(res wasmloop.Response, query string) {
	q, _ := url.ParseQuery(query)
	size, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil || size < 0 {
		res.WriteHead(400, "Content-Type", "text/plain")
		res.End("want /download?size=N with N >= 0\n")
		return
	}
	res.WriteHead(200, "Content-Type", "application/octet-stream", "Content-Length", strconv.FormatInt(size, 10))
	var off int64
	var pump func()
	pump = func() {
		for off < size {
			n := min(size-off, piece)
			start := off % 251
			if _, err := res.Write(pattern[start : start+n]); err != nil {
				return // the client went away: stop
			}
			off += n
			if off < size && res.Full() {
				res.OnDrain(pump)
				return
			}
		}
		res.End("")
	}
	pump()
}

// hash consumes the body piece by piece and answers its length and sha256.
func hash(req wasmloop.Request, res wasmloop.Response) {
	h := sha256.New()
	var n int64
	req.OnData(func(chunk []byte) {
		h.Write(chunk)
		n += int64(len(chunk))
	})
	req.OnEnd(func() {
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End(strconv.FormatInt(n, 10) + " " + hex.EncodeToString(h.Sum(nil)) + "\n")
	})
}

// count consumes the body piece by piece and answers its length only. Unlike hash, it does
// no work per byte, so its throughput is that of the host's body streaming (the guest's
// sha256, compiled to wasm, hashes only about 30 MiB/s).
func count(req wasmloop.Request, res wasmloop.Response) {
	var n int64
	req.OnData(func(chunk []byte) {
		n += int64(len(chunk))
	})
	req.OnEnd(func() {
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End(strconv.FormatInt(n, 10) + "\n")
	})
}
