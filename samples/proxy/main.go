//go:build wasip1

// Command proxy forwards every request to the base URL in its UPSTREAM environment variable
// and streams the answer back, both bodies flowing piece by piece with back-pressure end to
// end: a slow client slows the upstream's response, a slow upstream slows the client's
// upload.
//
//	wasmloop run --env UPSTREAM=http://127.0.0.1:8080 --allow-connect 127.0.0.1:8080 ./samples/proxy
//
// Hop-by-hop fields (Connection, Keep-Alive, TE, Transfer-Encoding, Upgrade, Proxy-*) stay
// on their hop; the request goes with the upstream's host and an X-Forwarded-Host naming
// the client's. A failed upstream answers 502, one past its timeout 504.
package main

import (
	"cmp"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	upstream := strings.TrimSuffix(os.Getenv("UPSTREAM"), "/")
	if upstream == "" {
		wasmloop.Log("proxy: set UPSTREAM to the base URL to forward to, e.g. --env UPSTREAM=http://127.0.0.1:8080 --allow-connect 127.0.0.1:8080")
		os.Exit(2)
	}
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	host := cmp.Or(os.Getenv("HOST"), "127.0.0.1") // HOST=0.0.0.0: every interface (in a container)
	srv := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) { forward(upstream, req, res) })
	srv.StreamBodies()
	if err := srv.Listen(port, host); err != nil {
		wasmloop.Log("proxy: listen: " + err.Error())
		os.Exit(1)
	}
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Forwarding to " + upstream)
		wasmloop.Log("Server running at http://" + host + ":" + strconv.Itoa(port) + "/")
	}
}

// hopByHop are the fields that belong to one connection (RFC 9110 §7.6.1).
// hopByHop reports the fields that belong to one connection, not to the message (RFC 9110
// §7.6.1), in any case. A switch with EqualFold allocates nothing, where lowering the name
// for a map did, per field (an allocation is dear in Go's wasm code).
func hopByHop(name string) bool {
	for _, h := range [...]string{"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
		"proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"} {
		if len(name) == len(h) && strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// forward sends req to the upstream and streams the answer to res.
func forward(upstream string, req wasmloop.Request, res wasmloop.Response) {
	headers := req.Headers()
	header := make([]string, 0, 2*len(headers)+2)
	client := ""
	for _, h := range headers {
		switch {
		case h.Name == "host":
			client = h.Value // the request's host (req.Host), without another copy
		case !hopByHop(h.Name):
			header = append(header, h.Name, h.Value)
		}
	}
	header = append(header, "X-Forwarded-Host", client)
	hasBody := req.ContentLength() != 0
	x := &forwarding{res: res}
	f, err := wasmloop.StartFetch(wasmloop.FetchRequest{
		Method: req.Method(), URL: upstream + req.URL(), Header: header, StreamBody: hasBody,
	}, x.head)
	if err != nil {
		x.fail(err)
		return
	}
	res.OnClose(f.Abort) // the client left: so does the upstream request
	if hasBody {
		f.OnError(x.fail)
		req.OnData(func(chunk []byte) {
			if !f.Write(chunk) { // the upstream is slower: hold the client's body in the kernel
				req.Pause()
				f.OnDrain(req.Resume)
			}
		})
		req.OnEnd(f.End)
	}
}

// forwarding is one request on its way: its state, and the fetch's callbacks as methods.
// One allocation for the state and one per callback bound, where closures over the same
// state took more (an allocation costs about half a microsecond in Go's wasm code).
type forwarding struct {
	res      wasmloop.Response
	answered bool // the client has had a head
	up       *wasmloop.FetchResponse
	next     func()              // readNext, bound once
	gotPiece func([]byte, error) // piece, bound once
}

// fail answers 502 (504 past the fetch's timeout), or, once the head is out, cuts the body
// short: only that tells the client.
func (x *forwarding) fail(err error) {
	if x.answered {
		x.res.End("")
		return
	}
	x.answered = true
	status := 502
	var ne *wasmloop.NetError
	if errors.As(err, &ne) && ne.Timeout() {
		status = 504
	}
	x.res.WriteHead(status, "Content-Type", "text/plain; charset=utf-8")
	x.res.End("proxy: " + err.Error() + "\n")
}

// head passes the upstream's head on, then its body.
func (x *forwarding) head(r *wasmloop.FetchResponse, err error) {
	if err != nil {
		x.fail(err)
		return
	}
	x.answered = true
	for _, h := range r.Header {
		if !hopByHop(h.Name) {
			x.res.SetHeader(h.Name, h.Value)
		}
	}
	x.res.WriteHead(r.Status)
	x.up, x.next, x.gotPiece = r, x.readNext, x.piece
	x.readNext()
}

// readNext asks the upstream for the next piece of its body, once the client has taken the
// last: back-pressure from the client to the upstream.
func (x *forwarding) readNext() {
	if err := x.up.Read(256<<10, x.gotPiece); err != nil {
		x.res.End("")
	}
}

// piece passes a piece of the upstream's body on.
func (x *forwarding) piece(data []byte, err error) {
	switch {
	case err == io.EOF:
		x.res.End("")
	case err != nil:
		wasmloop.Log("proxy: reading the upstream's body: " + err.Error())
		x.res.End("") // short of Content-Length (or without the last chunk): the client sees it cut
	default:
		if _, err := x.res.Write(data); err != nil {
			x.up.Close()
			return
		}
		x.res.OnDrain(x.next) // at once, unless the client is slower
	}
}
