//go:build wasip1

package wasmloop

import (
	"github.com/wasmloop/wasmloop/abi"
)

// Request is an incoming request. It stays valid after the handler returns.
type Request struct {
	Method string // "GET", "POST", ...
	URL    string // the request target as sent: "/path?query"
	// ProtoMinor is 0 for HTTP/1.0 and 1 for HTTP/1.1.
	ProtoMinor int

	h        int64
	head     abi.Head
	body     []byte
	bodyDone bool
}

// Header is one request header field; names are lower-case, as in Node's req.headers.
type Header struct {
	Name, Value string
}

// Header returns the first value of the named header (case-insensitive), or "".
func (r *Request) Header(name string) string {
	return string(r.head.Get(name))
}

// Headers returns every header field in the order received.
func (r *Request) Headers() []Header {
	out := make([]Header, len(r.head.Headers))
	for i, f := range r.head.Headers {
		out[i] = Header{string(f.Name), string(f.Value)}
	}
	return out
}

// ContentLength is the body's length, or -1 when the client did not say in advance.
func (r *Request) ContentLength() int64 { return r.head.ContentLength }

// KeepAlive reports whether the client wants the connection kept open.
func (r *Request) KeepAlive() bool { return r.head.Flags&abi.HeadKeepAlive != 0 }

// Body returns the whole request body. The host has already received it; a body larger than
// what arrived with the request is copied from the host on the first call.
func (r *Request) Body() []byte {
	for !r.bodyDone {
		if cap(r.body)-len(r.body) < 16<<10 {
			grown := make([]byte, len(r.body), 2*cap(r.body)+16<<10)
			copy(grown, r.body)
			r.body = grown
		}
		spare := r.body[len(r.body):cap(r.body)]
		sp, sn := bytesPtr(spare)
		n := hostBodyRead(r.h, sp, sn)
		if n <= 0 {
			r.bodyDone = true
			break
		}
		r.body = r.body[:len(r.body)+int(n)]
	}
	return r.body
}
