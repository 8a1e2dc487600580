//go:build wasip1

package wasmloop

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
)

// Outbound HTTP (ABI 1.6), as Node's fetch with callbacks. The host sends a plain http://
// request with its worker's own HTTP/1.1 client (connections kept between fetches), and any
// other with Go's net/http client (HTTP/2, TLS with the system's roots), to hosts the
// command line grants (wasmloop run --allow-connect HOST[:PORT], host.Config.AllowConnect);
// anything else fails with a *NetError that says which flag would grant it. The response's
// head comes to the callback; its body is read piece by piece, each piece asked for when the
// program is ready for it, so a slow reader slows the peer and nothing piles up.
//
// For code written against net/http's Client, package wasmhttp has an http.RoundTripper over
// this, for use from a goroutine.

// FetchRequest is what Fetch sends.
type FetchRequest struct {
	Method string // "" means GET
	URL    string // http:// or https://
	// Header is name, value pairs. Host sets the request's host; Content-Length matters
	// only with StreamBody (the body then goes without chunks); the transport sets the rest
	// of the framing.
	Header []string
	// Body is the whole request body, at most 16 MiB. For a larger one, or one sent as it
	// comes, leave it nil, set StreamBody and write it with (*Fetch).Write and End.
	Body       []byte
	StreamBody bool
	// Timeout bounds the whole exchange, head and body; 0 means none.
	Timeout time.Duration
	// FollowRedirects follows up to 10 redirects, each to a granted host; without it a 3xx
	// response is the answer.
	FollowRedirects bool
}

// Fetch is a request under way.
type Fetch struct {
	s      stream
	onErr  func(error)
	answer func(*FetchResponse, error)
	// The response and its first fields are allocated with the Fetch: in Go's wasm code an
	// allocation costs about half a microsecond, and a proxy makes a fetch per request.
	res    FetchResponse
	fields [8]Header
}

// FetchResponse is a response's head, and its body to read.
type FetchResponse struct {
	Status int
	Header []Header // as the server sent them (for https, names canonicalised by Go's client)
	f      *Fetch
}

// Get returns the first value of the named header (case-insensitive), or "".
func (r *FetchResponse) Get(name string) string {
	for _, h := range r.Header {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// StartFetch sends req; fn gets the response head, or the failure, in a later callback. The
// returned *Fetch writes a streamed body and aborts. A request that cannot start (a URL that
// is not http or https, a host not granted, too many streams) fails here.
func StartFetch(req FetchRequest, fn func(*FetchResponse, error)) (*Fetch, error) {
	if len(req.Method) > 255 {
		return nil, &NetError{Op: "fetch", Code: abi.FileEINVAL, Message: "the method is longer than 255 bytes"}
	}
	var flags byte
	if req.FollowRedirects {
		flags |= abi.FetchFollowRedirects
	}
	if req.StreamBody {
		flags |= abi.FetchStreamBody
	}
	// The request is encoded in the stream calls' shared input (stream.go): the host is done
	// with it when the call returns, and a buffer per fetch cost more than the encoding.
	in, took := takeInput()
	in = binary.LittleEndian.AppendUint32(in, uint32(min(req.Timeout.Milliseconds(), 1<<32-1)))
	in = append(in, flags, byte(len(req.Method)))
	in = append(in, req.Method...)
	in = binary.LittleEndian.AppendUint32(in, uint32(len(req.URL)))
	in = append(in, req.URL...)
	at := len(in)
	in = binary.LittleEndian.AppendUint32(in, 0) // the block's length, once it is written
	for i := 0; i+1 < len(req.Header); i += 2 {
		in = append(append(append(append(in, req.Header[i]...), ": "...), req.Header[i+1]...), "\r\n"...)
	}
	binary.LittleEndian.PutUint32(in[at:], uint32(len(in)-at-4))
	in = append(in, req.Body...)
	ip, n := bytesPtr(in)
	res, err := callSync(abi.FnFetch, ip, n, false) // a view of the host's answer: read at once
	// Read before anything else runs: another goroutine's sync call, if this one is parked
	// (stream.go, callInput), would write its answer over res.
	var id uint64
	short := err == nil && len(res) < 8
	if err == nil && !short {
		id = binary.LittleEndian.Uint64(res)
	}
	giveInput(in, took)
	if err != nil {
		return nil, netError("fetch", err)
	}
	if short {
		return nil, &NetError{Op: "fetch", Code: abi.FileEIO, Message: "a short answer from the host"}
	}
	f := &Fetch{s: stream{id: id, closeLast: true}, answer: fn}
	head := f.head
	// The head comes as a view of the inbox: head copies what it keeps into one string.
	in, took = takeInput()
	in = f.s.withID(in)
	err = call(abi.FnFetchResponse, in, head, true)
	giveInput(in, took)
	if err != nil {
		f.s.close()
		return nil, netError("fetch", err)
	}
	return f, nil
}

// wroteFailed hears of a failed write or end of a streamed body.
func (f *Fetch) wroteFailed(err error) {
	if f.onErr != nil {
		f.onErr(err)
	}
}

// FetchAll sends req and calls fn with the response (or the failure), its body read whole:
// for the common case of a small answer. A body larger than limit bytes (0: 16 MiB) fails.
func FetchAll(req FetchRequest, limit int, fn func(status int, header []Header, body []byte, err error)) error {
	_, err := StartFetch(req, func(r *FetchResponse, err error) {
		if err != nil {
			fn(0, nil, nil, err)
			return
		}
		r.ReadAll(limit, func(body []byte, err error) { fn(r.Status, r.Header, body, err) })
	})
	return err
}

func (f *Fetch) head(res []byte, err error) {
	fn := f.answer
	f.answer = nil
	if err != nil {
		f.s.close()
		fn(nil, netError("fetch", err))
		return
	}
	if len(res) < 2 {
		f.s.close()
		fn(nil, &NetError{Op: "fetch", Code: abi.FileEIO, Message: "a short response head from the host"})
		return
	}
	r := &f.res
	*r = FetchResponse{Status: int(binary.LittleEndian.Uint16(res)), f: f, Header: f.fields[:0]}
	block := string(res[2:]) // every name and value: one allocation
	if n := strings.Count(block, "\r\n"); n > len(f.fields) {
		r.Header = make([]Header, 0, n) // one allocation, not one per doubling
	}
	for block != "" {
		line, rest, _ := strings.Cut(block, "\r\n")
		block = rest
		if name, value, ok := strings.Cut(line, ": "); ok {
			r.Header = append(r.Header, Header{Name: name, Value: value})
		}
	}
	fn(r, nil)
}

// Write queues a piece of a streamed request body. It reports whether the queue is below
// its mark; when false, wait for OnDrain before writing more — the peer is slower — unless
// the body takes no more (Writable): then the piece was dropped, and OnDrain never runs.
func (f *Fetch) Write(p []byte) bool {
	f.hearFailures()
	return f.s.write(p)
}

// hearFailures routes the stream's failed writes and end to OnError: bound at the first
// write or end, so that a fetch that writes nothing (a GET) makes no closure for it.
func (f *Fetch) hearFailures() {
	if f.s.onWrote == nil {
		f.s.onWrote = f.wroteFailed
	}
}

// OnDrain runs fn once the queued body is below the mark: now, if it is. A body that takes
// no more writes (Writable false) never drains: fn does not run; one waiting when the fetch
// closes runs then, once, and finds Writable false.
func (f *Fetch) OnDrain(fn func()) { f.s.drain(fn) }

// Writable reports whether the request body still takes writes: false once End or Abort
// was called, or the fetch failed or finished (its answer read to the end, or refused).
func (f *Fetch) Writable() bool { return !f.s.closed && !f.s.ending }

// End ends a streamed request body once what is queued has gone.
func (f *Fetch) End() {
	f.hearFailures()
	f.s.end()
}

// OnError sets fn to hear of a failed write or end of the request body.
func (f *Fetch) OnError(fn func(error)) { f.onErr = fn }

// Abort ends the fetch: a pending head or read fails, the connection is dropped.
func (f *Fetch) Abort() { f.s.close() }

// Read asks for the next piece of the body, up to max bytes (at most 256 KiB); fn gets it,
// or io.EOF at the end (the stream is then closed), or the failure (the stream is closed
// too). One read at a time.
func (r *FetchResponse) Read(max int, fn func(data []byte, err error)) error {
	return r.f.s.read(max, fn)
}

// ReadAll reads the whole body; more than limit bytes (0: 16 MiB) fails.
func (r *FetchResponse) ReadAll(limit int, fn func(body []byte, err error)) {
	if limit <= 0 {
		limit = 16 << 20
	}
	var body []byte
	var next func()
	next = func() {
		err := r.Read(abi.MaxStreamRead, func(data []byte, err error) {
			switch {
			case err == io.EOF:
				fn(body, nil)
			case err != nil:
				fn(nil, err)
			case len(body)+len(data) > limit:
				r.Close()
				fn(nil, errors.New("wasmloop fetch: the body is larger than "+strconv.Itoa(limit)+" bytes"))
			default:
				body = append(body, data...)
				next()
			}
		})
		if err != nil {
			fn(nil, err)
		}
	}
	next()
}

// Close drops the rest of the body.
func (r *FetchResponse) Close() { r.f.s.close() }
