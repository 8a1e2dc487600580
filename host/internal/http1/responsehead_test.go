package http1

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wasmloop/wasmloop/host/internal/httpfield"
)

func TestParseResponseHead(t *testing.T) {
	for _, c := range []struct {
		in      string
		status  int
		fields  string
		cl      int64
		chunked bool
		close   bool
		err     bool
	}{
		{in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", status: 200, fields: "Content-Length: 5\r\nX-A: b\r\n", cl: 5},
		{in: "HTTP/1.1 204\r\n\r\n", status: 204, cl: -1},
		{in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n", status: 200, fields: "X-A: b\r\n", cl: -1, chunked: true},
		{in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", status: 200, fields: "Content-Length: 1\r\n", cl: 1, close: true},
		{in: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n", status: 200, fields: "Connection: Keep-Alive\r\n", cl: -1},
		{in: "HTTP/1.1 200 OK\r\nConnection: foo, close\r\n\r\n", status: 200, fields: "Connection: foo, close\r\n", cl: -1, close: true},
		{in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", status: 200, fields: "Content-Length: 5\r\nContent-Length: 5\r\n", cl: 5},
		{in: "HTTP/1.1 200 OK\nX: y\n\n", err: false, status: 0}, // no CRLF CRLF: not whole (yet)
		{in: "HTTP/1.1 200 OK\r\nX: y\n\r\n\r\n", err: true},
		{in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", err: true},
		{in: "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", err: true},
		{in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", err: true},
		{in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: true},
		{in: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", err: true},
		{in: "HTTP/1.1 099 OK\r\n\r\n", err: true},
		{in: "HTTP/1.1 2000 OK\r\n\r\n", err: true},
		{in: "HTTP/1.2 200 OK\r\n\r\n", err: true},
		{in: "HTTP/1.1  200 OK\r\n\r\n", err: true},
		{in: "HTTP/1.1 200 OK\r\n folded\r\n\r\n", err: true},
		{in: "HTTP/1.1 200 O\x00K\r\n\r\n", err: true},
	} {
		h, n, err := ParseResponseHead([]byte(c.in), 1<<10, nil)
		switch {
		case c.err:
			if err == nil {
				t.Errorf("%q: accepted, want an error", c.in)
			}
			continue
		case err != nil:
			t.Errorf("%q: %v", c.in, err)
			continue
		case c.status == 0:
			if n != 0 {
				t.Errorf("%q: a head of %d bytes, want none yet", c.in, n)
			}
			continue
		}
		if want := strings.Index(c.in, "\r\n\r\n") + 4; n != want {
			t.Errorf("%q: n %d, want %d", c.in, n, want)
		}
		if h.Status != c.status || string(h.Fields) != c.fields || h.ContentLength != c.cl || h.Chunked != c.chunked || h.Close != c.close {
			t.Errorf("%q: %+v (fields %q)", c.in, h, h.Fields)
		}
	}
	if _, _, err := ParseResponseHead([]byte("HTTP/1.1 200 OK\r\nX: "+strings.Repeat("y", 2000)), 1<<10, nil); err != ErrHeadTooLarge {
		t.Errorf("a head past the bound without its end: %v, want ErrHeadTooLarge", err)
	}
}

// FuzzParseResponseHead holds the response-head parser to net/http's: whatever it accepts,
// http.ReadResponse reads with the same status, version, fields (but Transfer-Encoding, which
// the parser leaves out of Fields, and a Connection field that says close, which net/http
// drops) and framing.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 304\r\nETag: \"x\"\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Obs: \x80\xff\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, n, err := ParseResponseHead(in, 1<<16, nil)
		if err != nil || n == 0 {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(in[:n])), nil)
		if err != nil {
			t.Fatalf("accepted %q; net/http: %v", in[:n], err)
		}
		if resp.StatusCode != h.Status || resp.ProtoMinor != h.Minor || resp.ProtoMajor != 1 {
			t.Fatalf("%q: status %d HTTP/1.%d; net/http %d %s", in[:n], h.Status, h.Minor, resp.StatusCode, resp.Proto)
		}
		got := http.Header{}
		for b := h.Fields; len(b) > 0; {
			name, value, rest, fault := httpfield.CutLine(b)
			if fault != httpfield.NoFault {
				t.Fatalf("%q: Fields %q has a bad line", in[:n], h.Fields)
			}
			got.Add(string(name), string(value))
			b = rest
		}
		want := resp.Header.Clone()
		want.Del("Transfer-Encoding")
		got.Del("Transfer-Encoding")
		if resp.Close { // net/http drops a Connection field that says close
			got.Del("Connection")
			want.Del("Connection")
		}
		for k, v := range want {
			if !slices.Equal(got[k], v) {
				t.Fatalf("%q: field %s %q; net/http %q", in[:n], k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Fatalf("%q: field %s %q, which net/http has not", in[:n], k, got[k])
			}
		}
		if chunked := slices.Equal(resp.TransferEncoding, []string{"chunked"}); chunked != h.Chunked {
			t.Fatalf("%q: chunked %v; net/http %v", in[:n], h.Chunked, resp.TransferEncoding)
		}
		if h.Framing(false) == BodyLength && resp.ContentLength != h.ContentLength {
			t.Fatalf("%q: Content-Length %d; net/http %d", in[:n], h.ContentLength, resp.ContentLength)
		}
		// A body delimited by the close ends the connection too (ResponseHead.Framing).
		if closes := h.Close || h.Framing(false) == BodyToClose; resp.Close != closes {
			t.Fatalf("%q: close %v; net/http %v", in[:n], closes, resp.Close)
		}
	})
}
