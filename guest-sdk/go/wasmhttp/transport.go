//go:build wasip1

// Package wasmhttp runs Go code written against net/http in a wasmloop guest.
//
// ListenAndServe and NewServer serve any http.Handler — an http.ServeMux with Go 1.22
// patterns, a router, middleware — with the request and response bodies streamed, http.Flusher,
// r.Context() cancelled when the client leaves, and WebSocket upgrades through Upgrade. Each
// request runs on a goroutine of its own, so a handler may block as net/http code does.
//
// Transport is an http.RoundTripper over the host's fetch (wasmloop.StartFetch), so
//
//	client := &http.Client{Transport: wasmhttp.Transport{}}
//	resp, err := client.Get("http://127.0.0.1:8080/users/1")
//
// works in a handler served by ListenAndServe, or in any goroutine. A round trip waits for
// the host, and the host can answer only once the callback that is running returns: so the
// goroutine waits while the worker goes on serving, and runs again (inside a later callback)
// when the response is in. Called on a callback's own goroutine (in a wasmloop.Handler, without
// go), RoundTrip fails at once with wasmloop.ErrBlockingCallback instead of stopping the
// worker for ever.
//
// Hosts must be granted (wasmloop run --allow-connect HOST[:PORT]). The request's context
// deadline becomes the fetch's timeout; cancelling the context otherwise takes effect when the
// goroutine next runs. Redirects are the http.Client's to follow (each one a new fetch).
//
// Kept out of package wasmloop so that a guest that does not use net/http does not carry it
// (net/http adds about 2.8 MB to a module: samples/hello is 2.7 MB, the same server through
// ListenAndServe 5.6 MB).
package wasmhttp

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

// Transport is an http.RoundTripper over the host's fetch.
type Transport struct{}

// Install makes Transport net/http's DefaultTransport, so that http.Get, http.Post and every
// http.Client without a transport of its own go through the host (from a goroutine). Without
// it they use Go's wasip1 network, an in-process fake that reaches nothing.
func Install() { http.DefaultTransport = Transport{} }

// head is what the fetch's response callback delivers.
type head struct {
	r   *wasmloop.FetchResponse
	err error
}

// RoundTrip sends req through the host and returns the response once its head is in; the
// body is read as the caller reads it.
func (Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !wasmloop.InGoroutine() {
		closeBody(req)
		return nil, wasmloop.ErrBlockingCallback
	}
	fr := wasmloop.FetchRequest{Method: req.Method, URL: req.URL.String()}
	if req.Host != "" && req.Host != req.URL.Host {
		fr.Header = append(fr.Header, "Host", req.Host)
	}
	for name, values := range req.Header {
		for _, v := range values {
			fr.Header = append(fr.Header, name, v)
		}
	}
	if d, ok := req.Context().Deadline(); ok {
		fr.Timeout = max(time.Until(d), time.Millisecond)
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody {
		fr.StreamBody = true
		if req.ContentLength > 0 {
			fr.Header = append(fr.Header, "Content-Length", strconv.FormatInt(req.ContentLength, 10))
		}
	}
	var f *wasmloop.Fetch
	h, err := wasmloop.Await(func(done func(head)) error {
		var err error
		f, err = wasmloop.StartFetch(fr, func(r *wasmloop.FetchResponse, err error) { done(head{r, err}) })
		if err == nil && hasBody {
			go sendBody(f, req.Body)
		}
		return err
	})
	if err == nil {
		err = h.err
	}
	if err != nil {
		if hasBody && f == nil {
			closeBody(req)
		}
		return nil, err
	}
	resp := &http.Response{
		Status:     strconv.Itoa(h.r.Status) + " " + http.StatusText(h.r.Status),
		StatusCode: h.r.Status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{},
		ContentLength: -1,
		Request:       req,
		Body:          &body{r: h.r},
	}
	for _, hd := range h.r.Header {
		resp.Header.Add(hd.Name, hd.Value)
	}
	if cl, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil {
		resp.ContentLength = cl
	}
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// errBodyNotWanted ends sendBody when the fetch takes no more of the request body.
var errBodyNotWanted = errors.New("wasmhttp: the fetch takes no more of the request body")

// sendBody copies a request body to the fetch, a piece at a time, each after the last went
// out, on a goroutine of its own (reading the body may block).
func sendBody(f *wasmloop.Fetch, rc io.ReadCloser) {
	defer rc.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			piece := append([]byte(nil), buf[:n]...)
			if _, werr := wasmloop.Await(func(done func(struct{})) error {
				switch {
				case f.Write(piece):
					done(struct{}{})
				case !f.Writable():
					// The fetch failed or finished (an early answer, a redirect, a refusal):
					// it never drains, and the rest of the body is not wanted.
					return errBodyNotWanted
				default:
					f.OnDrain(func() { done(struct{}{}) })
				}
				return nil
			}); werr != nil {
				f.Abort()
				return
			}
		}
		if err == io.EOF {
			f.End()
			return
		}
		if err != nil {
			f.Abort()
			return
		}
	}
}

// body is a response body read through the host, one piece per Read that finds none left.
type body struct {
	r      *wasmloop.FetchResponse
	rest   []byte
	err    error
	closed bool
}

type piece struct {
	data []byte
	err  error
}

func (b *body) Read(p []byte) (int, error) {
	for len(b.rest) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.closed {
			return 0, errors.New("wasmhttp: read of a closed body")
		}
		pc, err := wasmloop.Await(func(done func(piece)) error {
			return b.r.Read(256<<10, func(data []byte, err error) { done(piece{data, err}) })
		})
		if err != nil {
			return 0, err
		}
		b.rest, b.err = pc.data, pc.err
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

func (b *body) Close() error {
	if !b.closed {
		b.closed = true
		if b.err == nil {
			b.r.Close()
		}
	}
	return nil
}
