package http1

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/wasmloop/wasmloop/host/internal/httpfield"
)

// fuzzLimits gives the fuzzer a way to reach every limit with short inputs.
func fuzzLimits(small bool) Limits {
	if small {
		return Limits{MaxHeaderBytes: 96, MaxHeaderCount: 3, MaxRequestLine: 40,
			MaxBodyBytes: 100, MaxChunkLine: 16, MaxTrailerBytes: 24}
	}
	return Limits{}
}

// within reports whether s lies inside buf's memory.
func within(buf, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	b := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= b && p+uintptr(len(s)) <= b+uintptr(len(buf))
}

// checkAccepted asserts what must hold of any head the parser accepts.
func checkAccepted(t *testing.T, in []byte, n int, req *Request, lim Limits) {
	t.Helper()
	lim = lim.norm()
	head := in[:n]
	if n < len("A * HTTP/1.0\r\n\r\n") || !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		t.Fatalf("head %q does not end in CRLFCRLF", head)
	}
	if bytes.Contains(bytes.ReplaceAll(head, []byte("\r\n"), nil), []byte("\r")) ||
		bytes.Contains(bytes.ReplaceAll(head, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatalf("accepted a bare CR or LF in %q", head)
	}
	if !httpfield.IsToken(req.Method) || len(req.Target) == 0 {
		t.Fatalf("method %q target %q", req.Method, req.Target)
	}
	if req.Major != 1 || (req.Minor != 0 && req.Minor != 1) {
		t.Fatalf("version %d.%d", req.Major, req.Minor)
	}
	for _, s := range [][]byte{req.Method, req.Target} {
		if !within(head, s) {
			t.Fatalf("%q does not alias the head", s)
		}
	}
	if len(req.Headers) > lim.MaxHeaderCount {
		t.Fatalf("%d headers", len(req.Headers))
	}
	if lead := len(head) - len(bytes.TrimLeft(head, "\r\n")); n-lead > lim.MaxHeaderBytes || lead > 2*maxLeadingLines {
		t.Fatalf("head of %d bytes after %d leading", n-lead, lead)
	}
	cls, tes, hosts := 0, 0, 0
	absolute := req.Target[0] != '/' && req.Target[0] != '*' && string(req.Method) != "CONNECT"
	for _, h := range req.Headers {
		// The Host of an absolute-form request is the target's authority (RFC 9112
		// §3.2.2), in a field of the parser's own when HTTP/1.0 sent none.
		added := absolute && bytes.Equal(h.Name, hostName)
		if !httpfield.IsToken(h.Name) || !(within(head, h.Name) || added) || !within(head, h.Value) {
			t.Fatalf("header %q: %q", h.Name, h.Value)
		}
		if absolute && httpfield.EqualFold(h.Name, "host") && !bytes.Contains(req.Target, h.Value) {
			t.Fatalf("absolute-form target %q with Host %q", req.Target, h.Value)
		}
		if len(h.Value) > 0 && (h.Value[0] == ' ' || h.Value[0] == '\t' ||
			h.Value[len(h.Value)-1] == ' ' || h.Value[len(h.Value)-1] == '\t') {
			t.Fatalf("untrimmed value %q", h.Value)
		}
		for _, c := range h.Value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				t.Fatalf("control byte in value %q", h.Value)
			}
		}
		switch {
		case httpfield.EqualFold(h.Name, "content-length"):
			cls++
		case httpfield.EqualFold(h.Name, "transfer-encoding"):
			tes++
		case httpfield.EqualFold(h.Name, "host"):
			hosts++
		}
	}
	if cls > 1 || tes > 1 || hosts > 1 || (cls > 0 && tes > 0) || (req.Minor == 1 && hosts == 0) {
		t.Fatalf("framing fields CL=%d TE=%d Host=%d accepted in HTTP/1.%d", cls, tes, hosts, req.Minor)
	}
	if req.Chunked != (tes == 1) || (req.Chunked && req.ContentLength != -1) {
		t.Fatalf("chunked=%v CL=%d", req.Chunked, req.ContentLength)
	}
	if req.ContentLength < -1 || req.ContentLength > lim.MaxBodyBytes || (cls == 0) != (req.ContentLength == -1) {
		t.Fatalf("content length %d", req.ContentLength)
	}
	// The head alone is a complete head of the same length.
	p := Parser{Limits: lim}
	var again Request
	if n2, err := p.Parse(head, &again); n2 != n || err != nil || viewOf(&again) != viewOf(req) {
		t.Fatalf("reparse of head: %d, %v", n2, err)
	}
}

// parseTrickle feeds in one byte at a time; every tenth call gets a fresh
// copy so that aliases are checked against a moving buffer.
func parseTrickle(in []byte, lim Limits) (int, view, error) {
	p := Parser{Limits: lim}
	var req Request
	for k := 1; k <= len(in); k++ {
		buf := in[:k:k]
		if k%10 == 0 {
			buf = bytes.Clone(buf)
		}
		n, err := p.Parse(buf, &req)
		if err != nil || n > 0 {
			return n, viewOf(&req), err
		}
	}
	return 0, view{}, nil
}

func addParseSeeds(f *testing.F, small bool) {
	for _, tc := range validCases {
		f.Add([]byte(tc.in), small)
	}
	for _, tc := range rejectCases {
		f.Add([]byte(tc.in+"Host: x\r\n\r\n"), small)
	}
}

func FuzzParse(f *testing.F) {
	addParseSeeds(f, false)
	addParseSeeds(f, true)
	f.Fuzz(func(t *testing.T, in []byte, small bool) {
		lim := fuzzLimits(small)
		p := Parser{Limits: lim}
		var req Request
		n, err := p.Parse(in, &req)
		if err != nil {
			var e *Error
			if n != 0 || !errors.As(err, &e) || e.Status < 400 || e.Status > 505 {
				t.Fatalf("Parse = %d, %v", n, err)
			}
		}
		if n < 0 || n > len(in) {
			t.Fatalf("n = %d of %d", n, len(in))
		}
		if n > 0 {
			checkAccepted(t, in, n, &req, lim)
		}
		n2, v2, err2 := parseTrickle(in, lim)
		if n2 != n || err2 != err {
			t.Fatalf("whole: %d, %v; byte at a time: %d, %v", n, err, n2, err2)
		}
		if n > 0 && v2 != viewOf(&req) {
			t.Fatalf("byte at a time differs:\n%+v\n%+v", v2, viewOf(&req))
		}
	})
}

func addChunkedSeeds(f *testing.F, small bool) {
	for _, tc := range chunkedValid {
		f.Add([]byte(tc.in+tc.rest), small)
	}
	for _, tc := range chunkedReject {
		f.Add([]byte(tc.in+"\r\n0\r\n\r\n"), small)
	}
}

func FuzzChunked(f *testing.F) {
	addChunkedSeeds(f, false)
	addChunkedSeeds(f, true)
	f.Fuzz(func(t *testing.T, in []byte, small bool) {
		lim := fuzzLimits(small)
		d := ChunkedDecoder{Limits: lim}
		var whole decodeResult
		var data []byte
		for {
			piece, c, done, err := d.Next(in[whole.consumed:])
			if c < 0 || whole.consumed+c > len(in) || (piece != nil && len(piece) == 0) {
				t.Fatalf("Next: piece %q consumed %d at %d of %d", piece, c, whole.consumed, len(in))
			}
			if !within(in[whole.consumed:whole.consumed+c], piece) {
				t.Fatalf("piece does not alias the consumed bytes")
			}
			data = append(data, piece...)
			whole.consumed += c
			if err != nil || done {
				whole.done, whole.err = done, err
				break
			}
			if c == 0 && piece == nil {
				break
			}
		}
		whole.data = string(data)
		if whole.err != nil {
			whole.consumed = 0
		}
		if int64(len(data)) > lim.norm().MaxBodyBytes {
			t.Fatalf("%d bytes of data beyond the limit", len(data))
		}
		if whole.done {
			if !bytes.HasSuffix(in[:whole.consumed], []byte("\r\n")) {
				t.Fatalf("done without final CRLF: %q", in[:whole.consumed])
			}
			d2 := ChunkedDecoder{Limits: lim}
			if again := decodeWhole(&d2, in[:whole.consumed]); again != whole {
				t.Fatalf("re-decode of consumed bytes: %+v vs %+v", again, whole)
			}
		}
		d.Reset()
		if trickle := decodeTrickle(t, &d, in); trickle != whole {
			t.Fatalf("whole %+v\ntrickle %+v", whole, trickle)
		}
		// One-directional check against net/http's chunked reader, which
		// stops after the last-chunk line (it leaves trailers to its
		// caller): whatever it refuses before that, we refuse.
		if !small {
			_, herr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(in)))
			if herr != nil && herr != io.ErrUnexpectedEOF && whole.err == nil {
				t.Fatalf("net/http refuses (%v), we do not: %+v", herr, whole)
			}
		}
	})
}

// Deliberate differences from net/http:
//
// The differential below checks one direction only: whenever
// net/http.ReadRequest refuses a head, Parser refuses it too (or needs more
// bytes, when net/http refused for lack of them). Parser refusing what
// net/http accepts is expected and not reported: that is most of the
// strictness rows (repeated equal Content-Length, CL with TE, TE in 1.0,
// missing Host, HTTP/1.2+, bare LF line endings, spaces in field names,
// CONNECT to a path, fragments and bad escapes in the query, and so on).
//
// The only rows where net/http refuses and Parser accepts:
//
//  1. Empty lines (CRLF) before the request line. RFC 9112 §2.2 says a
//     server SHOULD ignore at least one; net/http reads the empty line as a
//     malformed request line. Parser skips up to maxLeadingLines.
//
// When both accept, the method, target, version, Host, framing and
// keep-alive verdicts must agree.
func FuzzDifferentialNetHTTP(f *testing.F) {
	addParseSeeds(f, false)
	f.Fuzz(func(t *testing.T, in []byte, small bool) {
		if bytes.HasPrefix(in, []byte("\r\n")) {
			return // difference 1
		}
		lim := fuzzLimits(small)
		p := Parser{Limits: lim}
		var req Request
		n, err := p.Parse(in, &req)
		hreq, herr := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
		if herr != nil {
			switch {
			case err != nil:
				return
			case n > 0:
				t.Fatalf("net/http refuses (%v), we accept %q", herr, in[:n])
			}
			// We need more bytes. net/http reads a partial last line as a
			// line at EOF, so only its verdict on the complete lines counts:
			// those must leave it wanting more too.
			cut := bytes.LastIndexByte(in, '\n') + 1
			if cut == 0 {
				return
			}
			_, herr = http.ReadRequest(bufio.NewReader(bytes.NewReader(in[:cut])))
			if herr != io.ErrUnexpectedEOF && herr != io.EOF {
				t.Fatalf("net/http refuses the complete lines (%v), we want more of %q", herr, in)
			}
			return
		}
		if err != nil || n == 0 {
			return // we are stricter, or the rest is incomplete for us only
		}
		wantCL := req.ContentLength
		if wantCL == -1 && !req.Chunked {
			wantCL = 0 // net/http reports "no body" as 0 for requests
		}
		got := fmt.Sprintf("%s %s 1.%d host=%q cl=%d chunked=%v close=%v",
			hreq.Method, hreq.RequestURI, hreq.ProtoMinor, hreq.Host, hreq.ContentLength,
			len(hreq.TransferEncoding) > 0, hreq.Close)
		want := fmt.Sprintf("%s %s 1.%d host=%q cl=%d chunked=%v close=%v",
			req.Method, req.Target, req.Minor, requestHost(&req), wantCL, req.Chunked, !req.KeepAlive)
		if got != want {
			t.Fatalf("verdicts differ on %q\nnet/http %s\nours     %s", in, got, want)
		}
	})
}

// requestHost is the host a request the parser accepted is for, read the way
// RFC 9112 §3.2.2 and net/http read it: the authority of an absolute-form or
// authority-form target, else the Host field (nil without one). The server
// hands target and fields to the guest as they are; comparing this with
// net/http's Host checks that what we accept names one host both agree on.
func requestHost(req *Request) []byte {
	t := req.Target
	if string(req.Method) == "CONNECT" {
		return t
	}
	for _, scheme := range []string{"http://", "https://"} {
		if len(t) > len(scheme) && httpfield.EqualFold(t[:len(scheme)], scheme) {
			a := t[len(scheme):]
			if i := bytes.IndexAny(a, "/?"); i >= 0 {
				a = a[:i]
			}
			return a
		}
	}
	for _, h := range req.Headers {
		if httpfield.EqualFold(h.Name, "host") {
			return h.Value
		}
	}
	return nil
}

// checkDifferential is the one-directional rule of FuzzDifferentialNetHTTP
// for a complete input: if net/http refuses it, so do we.
func checkDifferential(t *testing.T, in string) {
	t.Helper()
	var p Parser
	var req Request
	n, err := p.Parse([]byte(in), &req)
	_, herr := http.ReadRequest(bufio.NewReader(strings.NewReader(in)))
	if herr != nil && err == nil {
		t.Errorf("net/http refuses %q (%v); we answer %d, nil", in, herr, n)
	}
}

// TestDifferentialByteSweep puts every byte value in every part of a head
// and applies the differential rule. Coverage-guided fuzzing rarely finds a
// wrong entry in a byte-class table (every byte takes the same code path),
// so the tables are checked exhaustively here.
func TestDifferentialByteSweep(t *testing.T) {
	templates := []string{
		"G%sT / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /?q=%s HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%%%s0 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a%s/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a:8%s/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://[::%s]/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT a%s:443 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.%s\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX%sY: v\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a%sb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX:%s\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a%s\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1%s\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked%s\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length%s\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n%s\r\n",
		"%sGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	}
	for _, tpl := range templates {
		for b := 0; b < 256; b++ {
			checkDifferential(t, fmt.Sprintf(tpl, string([]byte{byte(b)})))
		}
	}
	// Pairs of printable bytes where structure matters: authorities,
	// escapes and the version.
	pairs := []string{
		"GET http://%s/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://[%s]/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a:%s HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT %s HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET %s HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%%%s HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/%s\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n",
	}
	for _, tpl := range pairs {
		for b1 := byte(0x20); b1 < 0x7f; b1++ {
			for b2 := byte(0x20); b2 < 0x7f; b2++ {
				checkDifferential(t, fmt.Sprintf(tpl, string([]byte{b1, b2})))
			}
		}
	}
}

// TestChunkedByteSweep is TestDifferentialByteSweep for chunk lines,
// against net/http's chunked reader.
func TestChunkedByteSweep(t *testing.T) {
	for _, tpl := range []string{
		"%s\r\nhello\r\n0\r\n\r\n",
		"5%s\r\nhello\r\n0\r\n\r\n",
		"5;%s\r\nhello\r\n0\r\n\r\n",
		"5;a=%s\r\nhello\r\n0\r\n\r\n",
		"5;a=\"%s\"\r\nhello\r\n0\r\n\r\n",
		"5\r%s\nhello\r\n0\r\n\r\n",
		"5\r\nhello%s\r\n0\r\n\r\n",
		"5\r\nhello\r%s\n0\r\n\r\n",
		"5\r\nhello\r\n0%s\r\n\r\n",
	} {
		for b := 0; b < 256; b++ {
			in := fmt.Sprintf(tpl, string([]byte{byte(b)}))
			var d ChunkedDecoder
			got := decodeWhole(&d, []byte(in))
			_, herr := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(in)))
			if herr != nil && herr != io.ErrUnexpectedEOF && got.err == nil {
				t.Errorf("net/http refuses %q (%v), we do not", in, herr)
			}
		}
	}
}

// TestWriteSeedCorpus regenerates testdata/fuzz from the test tables. It
// runs only when HTTP1_WRITE_CORPUS=1, so ordinary runs never touch testdata.
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("HTTP1_WRITE_CORPUS") != "1" {
		t.Skip("set HTTP1_WRITE_CORPUS=1 to regenerate the seed corpora")
	}
	write := func(target string, in string, small bool) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", in, small)
		sum := sha256.Sum256([]byte(body))
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, "seed-"+fmt.Sprintf("%x", sum[:8]))
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var heads []string
	for _, tc := range validCases {
		heads = append(heads, tc.in)
	}
	for _, tc := range rejectCases {
		heads = append(heads, tc.in+"Host: x\r\n\r\n")
	}
	heads = append(heads, extraHeadSeeds...)
	for _, h := range heads {
		write("FuzzParse", h, false)
		write("FuzzParse", h, true)
		write("FuzzDifferentialNetHTTP", h, false)
	}
	for _, tc := range chunkedValid {
		write("FuzzChunked", tc.in+tc.rest, false)
		write("FuzzChunked", tc.in+tc.rest, true)
	}
	for _, tc := range chunkedReject {
		write("FuzzChunked", tc.in+"\r\n0\r\n\r\n", false)
	}
}

// extraHeadSeeds are smuggling classics that are not table rows above.
var extraHeadSeeds = []string{
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nX: x\nTransfer-Encoding: chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\rGET /admin HTTP/1.1\r\n\r\n",
	"GET /a?b=c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
	"GET http://a/b HTTP/1.1\r\nHost: b\r\n\r\n",
	"GET http://a:80 HTTP/1.1\r\nHost: b\r\n\r\n",
	"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nhost: a\r\nX-Forwarded-For: 1.2.3.4\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	strings.Repeat("\r\n", 5) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
}
