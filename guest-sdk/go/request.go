//go:build wasip1

package wasmloop

import (
	"github.com/wasmloop/wasmloop/abi"
)

// Request is an incoming request. It is valid until its response has ended and the callback
// that ended it has returned; after that its methods return zero values. Strings and byte
// slices it returns are copies, valid for as long as they are kept.
type Request struct {
	x   *exchange
	gen uint32
}

// Header is one request header field; names are lower-case, as in Node's req.headers.
type Header struct {
	Name, Value string
}

func (r Request) head() *abi.Head {
	if r.x == nil || r.x.gen != r.gen {
		return nil
	}
	return r.x.decode()
}

// Method is the request method: "GET", "POST", ...
func (r Request) Method() string {
	if h := r.head(); h != nil {
		return methodString(h.Method)
	}
	return ""
}

// URL is the request target as sent: "/path?query".
func (r Request) URL() string {
	if h := r.head(); h != nil {
		return string(h.Target)
	}
	return ""
}

// ProtoMinor is 0 for HTTP/1.0 and 1 for HTTP/1.1.
func (r Request) ProtoMinor() int {
	if h := r.head(); h != nil {
		return int(h.Minor)
	}
	return 0
}

// Header returns the first value of the named header (case-insensitive), or "".
func (r Request) Header(name string) string {
	if h := r.head(); h != nil {
		return string(h.Get(name))
	}
	return ""
}

// Host returns the host the request is for: its Host field, which for an absolute-form
// target ("GET http://example.com/x") the host has already set to the target's authority, as
// RFC 9112 §3.2.2 requires, whatever Host field the client sent.
func (r Request) Host() string { return r.Header("Host") }

// Headers returns every header field in the order received. Their names and values share
// one string, copied at once from the packed head: two allocations in all rather than two per
// field (about half a microsecond each in Go's wasm code).
func (r Request) Headers() []Header {
	h := r.head()
	if h == nil {
		return nil
	}
	if len(h.Headers) == 0 {
		return []Header{}
	}
	// The fields lie one after another in the packed head, each after its two lengths (8
	// bytes; ABI.md §4), from the end of the target on.
	start := abi.HeadFixed + len(h.Method) + len(h.Target)
	end := start
	for _, f := range h.Headers {
		end += 8 + len(f.Name) + len(f.Value)
	}
	block := string(r.x.src[start:end])
	out := make([]Header, len(h.Headers))
	p := 0
	for i, f := range h.Headers {
		p += 8
		n, v := len(f.Name), len(f.Value)
		out[i] = Header{block[p : p+n], block[p+n : p+n+v]}
		p += n + v
	}
	return out
}

// VisitHeaders calls fn for every header field in the order received, names lower-case.
// name and value are valid only during the call: copy what you keep. Unlike Headers it
// allocates nothing, for code that builds its own view of the fields (wasmhttp).
func (r Request) VisitHeaders(fn func(name, value []byte)) {
	if h := r.head(); h != nil {
		for _, f := range h.Headers {
			fn(f.Name, f.Value)
		}
	}
}

// ContentLength is the body's length, or -1 when the client did not say in advance.
func (r Request) ContentLength() int64 {
	if h := r.head(); h != nil {
		return h.ContentLength
	}
	return -1
}

// KeepAlive reports whether the client wants the connection kept open.
func (r Request) KeepAlive() bool {
	h := r.head()
	return h != nil && h.Flags&abi.HeadKeepAlive != 0
}

// Body returns the whole request body, which the host has already received. On a server
// that streams bodies (Server.StreamBodies) it returns nil: use OnData and OnEnd.
func (r Request) Body() []byte {
	h := r.head()
	if h == nil || r.x.stream {
		return nil
	}
	x := r.x
	if x.bodyAll {
		return x.body
	}
	x.body = append([]byte(nil), h.Body...)
	if h.Flags&abi.HeadBodyPending != 0 {
		for {
			if cap(x.body)-len(x.body) < 16<<10 {
				grown := make([]byte, len(x.body), 2*cap(x.body)+16<<10)
				copy(grown, x.body)
				x.body = grown
			}
			sp, sn := bytesPtr(x.body[len(x.body):cap(x.body)])
			n := hostBodyRead(x.h, sp, sn)
			if n <= 0 {
				break
			}
			x.body = x.body[:len(x.body)+int(n)]
		}
	}
	x.bodyAll = true
	return x.body
}

var methods = [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}

// methodString returns the common methods without allocating.
func methodString(b []byte) string {
	for _, m := range methods {
		if string(b) == m {
			return m
		}
	}
	return string(b)
}

// OnData registers fn to receive the body of a request on a streaming server, piece by piece
// as it arrives. A piece is valid only during the call: copy what you keep.
func (r Request) OnData(fn func(chunk []byte)) {
	if x := r.live(); x != nil {
		x.onData = fn
		x.listening()
	}
}

// OnEnd registers fn to run after the last piece of the body (also for an empty body).
func (r Request) OnEnd(fn func()) {
	if x := r.live(); x != nil {
		x.onEnd = fn
		x.listening()
	}
}

// listening resumes a body the SDK held because nobody listened to it yet.
func (x *exchange) listening() {
	if x.autoPaused && !x.inHandler {
		x.autoPaused = false
		if !x.userPaused {
			Request{x, x.gen}.Resume()
		}
	}
}

// Pause stops the body: the host stops reading the connection until Resume.
func (r Request) Pause() {
	x := r.live()
	if x == nil || !x.bodyPending() {
		return
	}
	if !x.autoPaused {
		x.userPaused = true
	}
	if !x.paused {
		x.paused = true
		hostPause(x.h, 1)
	}
}

// Resume continues a paused body. For a request that sent Expect: 100-continue the first
// Resume is what tells the client to send the body; the SDK does it when the handler returns
// unless the handler paused the request or answered it.
func (r Request) Resume() {
	x := r.live()
	if x == nil || !x.bodyPending() {
		return
	}
	x.userPaused = false
	if x.paused && !(x.autoPaused && x.onData == nil && x.onEnd == nil) {
		x.paused, x.autoPaused = false, false
		hostPause(x.h, 0)
	}
}

// ExpectsContinue reports whether the client sent Expect: 100-continue and waits for the
// go-ahead (Resume) before sending the body.
func (r Request) ExpectsContinue() bool {
	h := r.head()
	return h != nil && h.Flags&abi.HeadExpect100 != 0
}

func (r Request) live() *exchange {
	if r.x == nil || r.x.gen != r.gen {
		return nil
	}
	return r.x
}
