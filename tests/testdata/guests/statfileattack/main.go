//go:build wasip1

// Command statfileattack is a test guest that drives wasmloop:fs.statForBody (ABI 1.8,
// Response.StatFile) the ways a buggy or hostile program can (tests/statfile_attack_test.go).
// Every route takes the file's guest path in p (and a second one in q):
//
//	GET /ws?p=P       StatFile(P), then accepts the WebSocket handshake (Upgrade); the socket
//	                  echoes text. Logs "ws upgraded" or "ws refused: ERR".
//	GET /twice?p=P&q=Q
//	                  StatFile(P), StatFile(Q), then sends Q whole (SendFile)
//	GET /nosend?p=P   StatFile(P), then ends the response without sending the file
//	GET /hang?p=P     StatFile(P) and never answers; logs "hung P" and, when the client goes,
//	                  "hang closed"
//	GET /stream?p=P   StatFile(P) (none for an empty P), then starts a streamed response
//	                  ("streaming\n") and never ends it; logs "streaming P" and, when the
//	                  client goes, "stream closed P"
//	GET /panic?p=P    StatFile(P), then panics (the instance is replaced)
//	GET /raw?p=P&h=H  calls wasmloop:fs.statForBody itself (CallSync) with request handle H
//	                  (decimal; "self" for this request's, "last" for the last ended request's)
//	                  and answers "ok SIZE" or "err MESSAGE"
//	GET /parts?p=P    StatFile(P), starts a response with its size as Content-Length, sends
//	                  the first half with body_file, logs "parts half" and waits: GET /rest sends
//	                  the rest with body_file from where it stopped and ends the response
//	GET /rest         see /parts; answers "rest N" (what body_file returned) or "rest err E"
package main

import (
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unsafe"

	"encoding/binary"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

// The ABI's body_file, called directly: the SDK's SendFile always ends the response, and a
// response whose body comes from one file in several calls (parts of it, as a multipart
// range answer sends them) needs the raw call.
//
//go:wasmimport wasmloop_v1 body_file
func bodyFile(req int64, path unsafe.Pointer, pathLen uint32, offset, length int64) int64

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	wasmloop.CreateServer(serve).Listen(port, "127.0.0.1")
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

// handleOf is the request handle a Response names (the SDK does not export it).
func handleOf(res wasmloop.Response) int64 {
	x := reflect.ValueOf(res).Field(0) // *exchange
	return x.Elem().FieldByName("h").Int()
}

var (
	lastEnded int64 // the handle of the last response /raw ended

	parts struct {
		res  wasmloop.Response
		name string
		next int64
		size int64
	}
)

func serve(req wasmloop.Request, res wasmloop.Response) {
	route, rawQuery, _ := strings.Cut(req.URL(), "?")
	q, _ := url.ParseQuery(rawQuery)
	p := q.Get("p")
	switch route {
	case "/ws":
		if _, err := res.StatFile(p); err != nil {
			wasmloop.Log("ws stat: " + err.Error())
		}
		w, err := res.Upgrade(wasmloop.UpgradeOptions{})
		if err != nil {
			wasmloop.Log("ws refused: " + err.Error())
			res.WriteHead(500)
			res.End("ws refused: " + err.Error())
			return
		}
		w.OnMessage(func(data []byte, binary bool) { w.Send(data, binary) })
		wasmloop.Log("ws upgraded")
	case "/twice":
		if _, err := res.StatFile(p); err != nil {
			res.WriteHead(500)
			res.End("stat p: " + err.Error())
			return
		}
		info, err := res.StatFile(q.Get("q"))
		if err != nil {
			res.WriteHead(500)
			res.End("stat q: " + err.Error())
			return
		}
		res.WriteHead(200, "Content-Length", strconv.FormatInt(info.Size(), 10))
		res.SendFile(q.Get("q"), 0, info.Size(), func(err error) {
			if err != nil {
				wasmloop.Log("twice send: " + err.Error())
			}
		})
	case "/nosend":
		info, err := res.StatFile(p)
		if err != nil {
			res.WriteHead(500)
			res.End("stat: " + err.Error())
			return
		}
		res.End("size " + strconv.FormatInt(info.Size(), 10))
	case "/hang":
		if _, err := res.StatFile(p); err != nil {
			res.WriteHead(500)
			res.End("stat: " + err.Error())
			return
		}
		res.OnClose(func() { wasmloop.Log("hang closed") })
		wasmloop.Log("hung " + p)
	case "/stream":
		if p != "" {
			if _, err := res.StatFile(p); err != nil {
				res.WriteHead(500)
				res.End("stat: " + err.Error())
				return
			}
		}
		res.Write([]byte("streaming\n"))
		res.OnClose(func() { wasmloop.Log("stream closed " + p) })
		wasmloop.Log("streaming " + p)
	case "/panic":
		if _, err := res.StatFile(p); err != nil {
			wasmloop.Log("panic stat: " + err.Error())
		}
		panic("statfileattack: a handler that fails holding a file")
	case "/raw":
		var h int64
		switch hs := q.Get("h"); hs {
		case "self":
			h = handleOf(res)
		case "last":
			h = lastEnded
		default:
			n, _ := strconv.ParseUint(hs, 10, 64)
			h = int64(n)
		}
		in := binary.LittleEndian.AppendUint64(nil, uint64(h))
		in = append(in, p...)
		out, err := wasmloop.CallSync(abi.FnStatForBody, in)
		lastEnded = handleOf(res)
		if err != nil {
			res.End("err " + err.Error())
			return
		}
		if len(out) < abi.StatSize {
			res.End("err short record")
			return
		}
		res.End("ok " + strconv.FormatUint(binary.LittleEndian.Uint64(out[abi.StatSizeAt:]), 10))
	case "/parts":
		info, err := res.StatFile(p)
		if err != nil {
			res.WriteHead(500)
			res.End("stat: " + err.Error())
			return
		}
		size := info.Size()
		res.WriteHead(200, "Content-Length", strconv.FormatInt(size, 10))
		if _, err := res.Write(nil); err != nil { // the head goes: the response has started
			wasmloop.Log("parts respond: " + err.Error())
			return
		}
		half := size / 2
		pp := unsafe.Pointer(unsafe.StringData(p))
		if rc := bodyFile(handleOf(res), pp, uint32(len(p)), 0, half); rc != half {
			wasmloop.Log("parts first half: " + strconv.FormatInt(rc, 10))
		}
		parts.res, parts.name, parts.next, parts.size = res, p, half, size
		wasmloop.Log("parts half")
	case "/rest":
		pr := parts
		parts.res = wasmloop.Response{}
		pp := unsafe.Pointer(unsafe.StringData(pr.name))
		rc := bodyFile(handleOf(pr.res), pp, uint32(len(pr.name)), pr.next, pr.size-pr.next)
		pr.res.End("")
		if rc < 0 {
			res.End("rest err " + abi.Errno(rc).Error())
			return
		}
		res.End("rest " + strconv.FormatInt(rc, 10))
	default:
		res.WriteHead(404)
		res.End("")
	}
}
