package host

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// readAnswer reads one whole answer as the Handler does: the status line, the fields into h,
// then the body.
func readAnswer(raw, method string, h http.Header) (answerHead, []byte, *bufio.Reader, error) {
	br := bufio.NewReaderSize(strings.NewReader(raw), 16<<10)
	status, http10, err := readStatusLine(br)
	if err != nil {
		return answerHead{}, nil, br, err
	}
	a, err := readFields(br, h, status, http10, method)
	if err != nil {
		return a, nil, br, err
	}
	body, err := io.ReadAll(io.LimitReader(answerBody(br, a), 1<<20))
	return a, body, br, err
}

func TestReadAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, raw, method string
		before            http.Header // what the embedder's middleware set
		status            int
		header            http.Header
		body              string
		close             bool
		rest              string // what is left for the next answer
	}{
		{name: "sized", raw: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello World\nHTTP/1.1",
			status: 200, header: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"12"}}, body: "Hello World\n", rest: "HTTP/1.1"},
		{name: "chunked, its framing not copied", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n1\r\n!\r\n0\r\n\r\nnext",
			status: 200, header: http.Header{}, body: "Hello!", rest: "next"},
		{name: "chunked with a trailer section", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n",
			status: 200, header: http.Header{}, body: "hi"},
		{name: "to the close", raw: "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nall of it",
			status: 200, header: http.Header{"X-A": {"1"}}, body: "all of it", close: true},
		{name: "HEAD has no body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nnext", method: "HEAD",
			status: 200, header: http.Header{"Content-Length": {"12"}}, rest: "next"},
		{name: "304 has no body", raw: "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\nnext",
			status: 304, header: http.Header{"Etag": {`"x"`}}, rest: "next"},
		{name: "204 has no body", raw: "HTTP/1.1 204 No Content\r\n\r\nnext", status: 204, header: http.Header{}, rest: "next"},
		{name: "a 1xx head has no body", raw: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n",
			status: 103, header: http.Header{"Link": {"</a>"}}, rest: "HTTP/1.1 200 OK\r\n"},
		{name: "Connection: close", raw: "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
			status: 200, header: http.Header{"Content-Length": {"0"}}, close: true},
		{name: "HTTP/1.0 closes", raw: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
			status: 200, header: http.Header{"Content-Length": {"1"}}, body: "x", close: true},
		{name: "HTTP/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx",
			status: 200, header: http.Header{"Connection": {"Keep-Alive"}, "Content-Length": {"1"}}, body: "x"},
		{name: "a field longer than the reader's buffer", raw: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 40<<10) + "\r\nContent-Length: 0\r\n\r\n",
			status: 200, header: http.Header{"X-Big": {strings.Repeat("b", 40<<10)}, "Content-Length": {"0"}}},
		{name: "no reason phrase", raw: "HTTP/1.1 599\r\nContent-Length: 0\r\n\r\n", status: 599, header: http.Header{"Content-Length": {"0"}}},
		{name: "names canonical, values trimmed, repeats kept in order",
			raw:    "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nx-thing:  v \r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
			status: 200, header: http.Header{"Set-Cookie": {"a=1", "b=2"}, "X-Thing": {"v"}, "Content-Length": {"0"}}},
		{name: "the answer's fields replace the middleware's; the rest stay",
			raw:    "HTTP/1.1 200 OK\r\nX-Frame-Options: DENY\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Length: 0\r\n\r\n",
			before: http.Header{"X-Frame-Options": {"ALLOW"}, "X-Request-Id": {"7"}},
			status: 200, header: http.Header{"X-Frame-Options": {"DENY", "SAMEORIGIN"}, "X-Request-Id": {"7"}, "Content-Length": {"0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.before {
				h[k] = v
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			a, body, br, err := readAnswer(tc.raw, method, h)
			if err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(br)
			if a.status != tc.status || string(body) != tc.body || a.close != tc.close || string(rest) != tc.rest {
				t.Errorf("status %d body %q close %v rest %q; want %d %q %v %q", a.status, body, a.close, rest, tc.status, tc.body, tc.close, tc.rest)
			}
			if !reflect.DeepEqual(h, tc.header) {
				t.Errorf("header %v, want %v", h, tc.header)
			}
		})
	}
}

// Whatever breaks the syntax the worker writes, or stops short, is an error: never an answer
// taken for whole.
func TestReadAnswerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      error // nil: any error
	}{
		{"nothing at all", "", io.EOF},
		{"cut in the status line", "HTTP/1.1 20", io.ErrUnexpectedEOF},
		{"cut in the fields", "HTTP/1.1 200 OK\r\nContent-Len", io.ErrUnexpectedEOF},
		{"cut before the empty line", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", io.ErrUnexpectedEOF},
		{"cut in a sized body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", io.ErrUnexpectedEOF},
		{"cut in a chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHel", nil},
		{"cut before the last chunk's end", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", io.ErrUnexpectedEOF},
		{"a bad trailer line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n", errMalformedAnswer},
		{"HTTP/2 status line", "HTTP/2 200 OK\r\n\r\n", errMalformedAnswer},
		{"HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", errMalformedAnswer},
		{"a two-digit status", "HTTP/1.1 20 OK\r\n\r\n", errMalformedAnswer},
		{"a status below 100", "HTTP/1.1 099 OK\r\n\r\n", errMalformedAnswer},
		{"a letter in the status", "HTTP/1.1 2x0 OK\r\n\r\n", errMalformedAnswer},
		{"no space after the status", "HTTP/1.1 200OK\r\n\r\n", errMalformedAnswer},
		{"a bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", errMalformedAnswer},
		{"a bare LF in the fields", "HTTP/1.1 200 OK\r\nX: 1\n\r\n", errMalformedAnswer},
		{"a field without a colon", "HTTP/1.1 200 OK\r\nX 1\r\n\r\n", errMalformedAnswer},
		{"space before the colon", "HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", errMalformedAnswer},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n", errMalformedAnswer},
		{"a Content-Length with a sign", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", errMalformedAnswer},
		{"an empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", errMalformedAnswer},
		{"a huge Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n", errMalformedAnswer},
		{"two Content-Lengths that differ", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", errMalformedAnswer},
		{"a coding other than chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", errMalformedAnswer},
		{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", errMalformedAnswer},
		{"chunked and a length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", errMalformedAnswer},
		{"a line longer than maxAnswerLine", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxAnswerLine+1) + "\r\n\r\n", errMalformedAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := readAnswer(tc.raw, http.MethodGet, http.Header{})
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// A head that fails part-way leaves none of its fields in the ResponseWriter's header: they
// would go out with the 503 that answers in its place.
func TestReadAnswerFailedHeadLeavesNoFields(t *testing.T) {
	h := http.Header{"X-Request-Id": {"7"}}
	_, _, _, err := readAnswer("HTTP/1.1 200 OK\r\nSet-Cookie: session=1\r\nX-Request-Id: 8\r\nContent-Length: x\r\n\r\n", http.MethodGet, h)
	if err == nil {
		t.Fatal("a bad Content-Length was read")
	}
	if len(h) != 0 {
		t.Errorf("after the failed head the header holds %v, want none of its fields", h)
	}
}

// FuzzReadAnswer holds the reader to net/http's: whatever it takes whole, http.ReadResponse
// reads the same way — the same status, the same fields (but the framing's own) and the same
// body. Seeds are in testdata/fuzz/FuzzReadAnswer and below.
func FuzzReadAnswer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello World\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n0\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\ngone",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 304 Not Modified\r\nEtag: \"a\"\r\n\r\n",
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		h := http.Header{}
		a, body, _, err := readAnswer(raw, method, h)
		if err != nil || len(body) == 1<<20 {
			return
		}
		if a.status < 100 || a.status > 999 {
			t.Fatalf("status %d", a.status)
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("read whole here, refused by net/http: %v", err)
		}
		theirs, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read whole here, net/http's body failed: %v", err)
		}
		if resp.StatusCode != a.status || string(theirs) != string(body) {
			t.Fatalf("status %d body %q here; net/http %d %q", a.status, body, resp.StatusCode, theirs)
		}
		for k, v := range h {
			if !reflect.DeepEqual(resp.Header[k], v) {
				t.Fatalf("field %s: %q here, %q from net/http", k, v, resp.Header[k])
			}
		}
	})
}
