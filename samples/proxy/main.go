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
	for _, h := range headers {
		if !hopByHop(h.Name) && h.Name != "host" {
			header = append(header, h.Name, h.Value)
		}
	}
	header = append(header, "X-Forwarded-Host", req.Host())
	hasBody := req.ContentLength() != 0
	answered := false
	fail := func(err error) {
		if answered {
			res.End("") // the head is out: only a short body tells the client
			return
		}
		answered = true
		status := 502
		var ne *wasmloop.NetError
		if errors.As(err, &ne) && ne.Timeout() {
			status = 504
		}
		res.WriteHead(status, "Content-Type", "text/plain; charset=utf-8")
		res.End("proxy: " + err.Error() + "\n")
	}
	f, err := wasmloop.StartFetch(wasmloop.FetchRequest{
		Method: req.Method(), URL: upstream + req.URL(), Header: header, StreamBody: hasBody,
	}, func(r *wasmloop.FetchResponse, err error) {
		if err != nil {
			fail(err)
			return
		}
		answered = true
		status := r.Status
		for _, h := range r.Header {
			if !hopByHop(h.Name) {
				res.SetHeader(h.Name, h.Value)
			}
		}
		res.WriteHead(status)
		pipe(r, res)
	})
	if err != nil {
		fail(err)
		return
	}
	res.OnClose(f.Abort) // the client left: so does the upstream request
	if hasBody {
		f.OnError(fail)
		req.OnData(func(chunk []byte) {
			if !f.Write(chunk) { // the upstream is slower: hold the client's body in the kernel
				req.Pause()
				f.OnDrain(req.Resume)
			}
		})
		req.OnEnd(f.End)
	}
}

// pipe copies the upstream's body to the client, asking for each piece once the client has
// taken the last.
func pipe(r *wasmloop.FetchResponse, res wasmloop.Response) {
	var next func()
	next = func() {
		err := r.Read(256<<10, func(data []byte, err error) {
			switch {
			case err == io.EOF:
				res.End("")
			case err != nil:
				wasmloop.Log("proxy: reading the upstream's body: " + err.Error())
				res.End("") // short of Content-Length (or without the last chunk): the client sees it cut
			default:
				if _, err := res.Write(data); err != nil {
					r.Close()
					return
				}
				res.OnDrain(next) // at once, unless the client is slower
			}
		})
		if err != nil {
			res.End("")
		}
	}
	next()
}
