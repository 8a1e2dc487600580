package http1

import (
	"strconv"
	"strings"
	"testing"
)

// view is a comparable snapshot of a Request, so results from different
// buffers and feeding patterns can be compared with ==.
type view struct {
	Method, Target             string
	Minor                      int
	Headers                    string // "name=value|..." in order
	CL                         int64
	Chunked, KeepAlive, Expect bool
	Upgrade                    bool
}

func viewOf(r *Request) view {
	var h strings.Builder
	for _, f := range r.Headers {
		h.Write(f.Name)
		h.WriteByte('=')
		h.Write(f.Value)
		h.WriteByte('|')
	}
	return view{
		Method: string(r.Method), Target: string(r.Target),
		Minor: r.Minor, Headers: h.String(), CL: r.ContentLength,
		Chunked: r.Chunked, KeepAlive: r.KeepAlive, Expect: r.ExpectContinue,
		Upgrade: r.Upgrade,
	}
}

type validCase struct {
	name string
	in   string
	n    int // head length; 0 means len(in)
	want view
}

// get is the usual origin-form HTTP/1.1 result, to be adjusted per case.
func get(target string, headers string) view {
	return view{Method: "GET", Target: target,
		Minor: 1, Headers: headers, CL: -1, KeepAlive: true}
}

var validCases = []validCase{
	{name: "simple GET", in: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: get("/", "Host=example.com|")},
	{name: "typical browser GET", in: typicalGET, want: func() view {
		v := get("/index.html?q=1&r=%20x", "Host=example.com|User-Agent=Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0|Accept=text/html,application/xhtml+xml;q=0.9,*/*;q=0.8|Accept-Language=en-US,en;q=0.5|Accept-Encoding=gzip, deflate, br|Connection=keep-alive|Cookie=session=abc123; theme=dark|Upgrade-Insecure-Requests=1|")
		return v
	}()},
	{name: "POST with Content-Length and body", in: "POST /submit HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello",
		n: len("POST /submit HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\n"),
		want: view{Method: "POST", Target: "/submit", Minor: 1,
			Headers: "Host=example.com|Content-Length=5|", CL: 5, KeepAlive: true}},
	{name: "Content-Length zero and leading zeros", in: "POST / HTTP/1.1\r\nHost: example.com\r\ncontent-length: 007\r\n\r\n",
		want: view{Method: "POST", Target: "/", Minor: 1,
			Headers: "Host=example.com|content-length=007|", CL: 7, KeepAlive: true}},
	{name: "chunked", in: "POST /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		n: len("POST /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"),
		want: view{Method: "POST", Target: "/up", Minor: 1,
			Headers: "Host=example.com|Transfer-Encoding=chunked|", CL: -1, Chunked: true, KeepAlive: true}},
	{name: "chunked with OWS and case", in: "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: \t ChUnKeD \t\r\nTrailer: X-Checksum\r\n\r\n",
		want: view{Method: "POST", Target: "/", Minor: 1,
			Headers: "Host=example.com|Transfer-Encoding=ChUnKeD|Trailer=X-Checksum|", CL: -1, Chunked: true, KeepAlive: true}},
	{name: "HTTP/1.0 without Host", in: "GET /old HTTP/1.0\r\n\r\n",
		want: view{Method: "GET", Target: "/old", CL: -1}},
	{name: "HTTP/1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: example.com\r\n\r\n",
		want: view{Method: "GET", Target: "/",
			Headers: "Connection=Keep-Alive|Host=example.com|", CL: -1, KeepAlive: true}},
	{name: "HTTP/1.0 close beats keep-alive", in: "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
		want: view{Method: "GET", Target: "/",
			Headers: "Connection=keep-alive, close|", CL: -1}},
	{name: "HTTP/1.1 close", in: "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: ,close,\r\n\r\n",
		want: func() view { v := get("/", "Host=example.com|Connection=,close,|"); v.KeepAlive = false; return v }()},
	{name: "websocket upgrade", in: "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		want: func() view {
			v := get("/chat", "Host=example.com|Upgrade=websocket|Connection=keep-alive, Upgrade|Sec-WebSocket-Key=dGhlIHNhbXBsZSBub25jZQ==|Sec-WebSocket-Version=13|")
			v.Upgrade = true
			return v
		}()},
	{name: "Upgrade field without Connection token", in: "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n",
		want: get("/", "Host=example.com|Upgrade=websocket|")},
	{name: "Upgrade ignored in HTTP/1.0", in: "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
		want: view{Method: "GET", Target: "/",
			Headers: "Upgrade=websocket|Connection=upgrade|", CL: -1}},
	{name: "Expect 100-continue", in: "PUT /f HTTP/1.1\r\nHost: example.com\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n",
		want: view{Method: "PUT", Target: "/f", Minor: 1,
			Headers: "Host=example.com|Expect=100-Continue|Content-Length=10|", CL: 10, KeepAlive: true, Expect: true}},
	{name: "Expect 100-continue ignored in HTTP/1.0", in: "PUT /f HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
		want: view{Method: "PUT", Target: "/f",
			Headers: "Expect=100-continue|Content-Length=1|", CL: 1}},
	// RFC 9112 §3.2.2: the target's authority is the Host, whatever the field said.
	{name: "absolute-form", in: "GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: ignored.example\r\n\r\n",
		want: view{Method: "GET", Target: "http://Example.com:8080/a/b?c=d",
			Minor: 1, Headers: "Host=Example.com:8080|", CL: -1, KeepAlive: true}},
	{name: "absolute-form HTTP/1.0 without Host", in: "GET http://good.example/x HTTP/1.0\r\nAccept: */*\r\n\r\n",
		want: view{Method: "GET", Target: "http://good.example/x",
			Headers: "Accept=*/*|Host=good.example|", CL: -1}},
	{name: "absolute-form https without path", in: "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: view{Method: "GET", Target: "HTTPS://example.com",
			Minor: 1, Headers: "Host=example.com|", CL: -1, KeepAlive: true}},
	{name: "absolute-form IPv6", in: "GET http://[2001:db8::1]:80/x HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n",
		want: view{Method: "GET", Target: "http://[2001:db8::1]:80/x",
			Minor: 1, Headers: "Host=[2001:db8::1]:80|", CL: -1, KeepAlive: true}},
	{name: "asterisk-form", in: "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: view{Method: "OPTIONS", Target: "*",
			Minor: 1, Headers: "Host=example.com|", CL: -1, KeepAlive: true}},
	{name: "authority-form CONNECT", in: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		want: view{Method: "CONNECT", Target: "example.com:443",
			Minor: 1, Headers: "Host=example.com:443|", CL: -1, KeepAlive: true}},
	{name: "CONNECT IPv4", in: "CONNECT 10.0.0.1:8443 HTTP/1.1\r\nHost: 10.0.0.1:8443\r\n\r\n",
		want: view{Method: "CONNECT", Target: "10.0.0.1:8443",
			Minor: 1, Headers: "Host=10.0.0.1:8443|", CL: -1, KeepAlive: true}},
	{name: "one leading empty line", in: "\r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: get("/", "Host=example.com|")},
	{name: "four leading empty lines", in: "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: get("/", "Host=example.com|")},
	{name: "empty Host", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n",
		want: get("/", "Host=|")},
	{name: "Host IPv6 and port", in: "GET / HTTP/1.1\r\nHost: [::ffff:192.0.2.1]:8080\r\n\r\n",
		want: get("/", "Host=[::ffff:192.0.2.1]:8080|")},
	{name: "Host with empty port", in: "GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n",
		want: get("/", "Host=example.com:|")},
	{name: "values: OWS trimmed, inner space kept, obs-text, empty", in: "GET / HTTP/1.1\r\nHost: example.com\r\nX-A:\t a  b \t\r\nX-B:\r\nX-C: \xe2\x82\xac\r\nX-D:   \r\nx-lower:v\r\n\r\n",
		want: get("/", "Host=example.com|X-A=a  b|X-B=|X-C=\xe2\x82\xac|X-D=|x-lower=v|")},
	{name: "token chars in method and names", in: "M-1!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: example.com\r\n!#$%&'*+-.^_`|~09aZ: x\r\n\r\n",
		want: func() view {
			v := get("/", "Host=example.com|!#$%&'*+-.^_`|~09aZ=x|")
			v.Method = "M-1!#$%&'*+.^_`|~"
			return v
		}()},
	{name: "target with escapes and sub-delims", in: "GET /a%2Fb/c;d=e,f?g=h&i=%7E&j=(k)*+!$'@:/? HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: get("/a%2Fb/c;d=e,f?g=h&i=%7E&j=(k)*+!$'@:/?", "Host=example.com|")},
	{name: "Trailer declaring allowed fields", in: "GET / HTTP/1.1\r\nHost: example.com\r\nTrailer: X-A, , X-B\r\n\r\n",
		want: get("/", "Host=example.com|Trailer=X-A, , X-B|")},
	{name: "pipelined: first head only", in: "GET /1 HTTP/1.1\r\nHost: example.com\r\n\r\nGET /2 HTTP/1.1\r\nHost: example.com\r\n\r\n",
		n: len("GET /1 HTTP/1.1\r\nHost: example.com\r\n\r\n"), want: get("/1", "Host=example.com|")},
	{name: "pipelined: garbage after head is not looked at", in: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n\x00\n\r garbage",
		n: len("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), want: get("/", "Host=example.com|")},
}

const typicalGET = "GET /index.html?q=1&r=%20x HTTP/1.1\r\n" +
	"Host: example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=abc123; theme=dark\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"\r\n"

func TestParseValid(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			wantN := tc.n
			if wantN == 0 {
				wantN = len(tc.in)
			}
			var p Parser
			var req Request
			n, err := p.Parse([]byte(tc.in), &req)
			if err != nil || n != wantN {
				t.Fatalf("Parse = %d, %v; want %d, nil", n, err, wantN)
			}
			if got := viewOf(&req); got != tc.want {
				t.Fatalf("request\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestParseIncremental feeds each valid request one byte at a time, each
// time in a freshly allocated buffer (as a growing connection buffer may
// move), and requires the same result as a whole feed. It also checks that
// each call scanned every byte it was given, i.e. nothing is left for a
// later rescan.
func TestParseIncremental(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			wantN := tc.n
			if wantN == 0 {
				wantN = len(tc.in)
			}
			var p Parser
			var req Request
			for k := 1; k <= len(tc.in); k++ {
				buf := []byte(tc.in[:k]) // new backing array every call
				n, err := p.Parse(buf, &req)
				if err != nil {
					t.Fatalf("prefix %d: %v", k, err)
				}
				if n == 0 {
					if k >= wantN {
						t.Fatalf("prefix %d: still needs more, head is %d bytes", k, wantN)
					}
					if p.pos != k {
						t.Fatalf("prefix %d: scanned to %d, not to the end", k, p.pos)
					}
					continue
				}
				if n != wantN || k != wantN {
					t.Fatalf("prefix %d: n = %d, want %d at prefix %d", k, n, wantN, wantN)
				}
				// Mutating the old buffers must not matter: aliases come from buf.
				if got := viewOf(&req); got != tc.want {
					t.Fatalf("request\n got %+v\nwant %+v", got, tc.want)
				}
				for i := range buf {
					buf[i] = 'X'
				}
				if req.Method[0] != 'X' {
					t.Fatalf("Method does not alias the completing buffer")
				}
				return
			}
			t.Fatalf("never completed")
		})
	}
}

func TestParseReuseAndPipelining(t *testing.T) {
	in := []byte("GET /1 HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc" +
		"\r\nGET /3 HTTP/1.0\r\n\r\n")
	var p Parser
	var req Request
	var got []string
	for off := 0; off < len(in); {
		n, err := p.Parse(in[off:], &req)
		if err != nil || n == 0 {
			t.Fatalf("at %d: %d, %v", off, n, err)
		}
		got = append(got, string(req.Target)+" "+strconv.Itoa(len(req.Headers)))
		off += n
		if req.ContentLength > 0 {
			off += int(req.ContentLength)
		}
		if len(req.Headers) > 3 {
			t.Fatalf("Headers not reset: %d", len(req.Headers))
		}
	}
	want := "/1 3,/2 2,/3 0"
	if s := strings.Join(got, ","); s != want {
		t.Fatalf("got %q want %q", s, want)
	}
}

// rejectCase inputs end exactly at the byte that makes the request
// unacceptable, so the test can assert that every shorter prefix is merely
// incomplete: the rule fires on that byte and not later.
type rejectCase struct {
	name string
	in   string
	err  *Error
	lim  Limits
}

const h11 = "GET / HTTP/1.1\r\n"
const hh = h11 + "Host: example.com\r\n"

var rejectCases = []rejectCase{
	// Leading lines.
	{"leading bare LF", "\n", errBareLF, Limits{}},
	{"leading bare CR", "\rG", errBareCR, Limits{}},
	{"bare LF after leading CRLF", "\r\n\n", errBareLF, Limits{}},
	{"five leading empty lines", "\r\n\r\n\r\n\r\n\r\n", errLeadingLines, Limits{}},

	// Method.
	{"empty method", " ", errEmptyMethod, Limits{}},
	{"bad method char", "G@", errMethodChar, Limits{}},
	{"tab after method", "GET\t", errMethodChar, Limits{}},
	{"non-ASCII method", "G\xc3", errMethodChar, Limits{}},
	{"method then CR", "GET\r", errRequestLine, Limits{}},
	{"method then LF", "GET\n", errBareLF, Limits{}},

	// Target.
	{"double space before target", "GET  ", errEmptyTarget, Limits{}},
	{"NUL in target", "GET /a\x00", errTargetChar, Limits{}},
	{"DEL in target", "GET /\x7f", errTargetChar, Limits{}},
	{"tab in target", "GET /\t", errTargetChar, Limits{}},
	{"non-ASCII in target", "GET /caf\xc3", errTargetChar, Limits{}},
	{"fragment in target", "GET /a#", errTargetChar, Limits{}},
	{"bad escape", "GET /%4g", errPercent, Limits{}},
	{"short escape", "GET /%4 ", errPercent, Limits{}},
	{"bad escape in query", "GET /?q=%z", errPercent, Limits{}},
	{"target then LF (HTTP/0.9 style)", "GET /\n", errBareLF, Limits{}},
	{"target then CR (HTTP/0.9 style)", "GET /\r", errRequestLine, Limits{}},
	{"asterisk with GET", "GET * ", errTargetForm, Limits{}},
	{"relative target", "GET foo ", errTargetForm, Limits{}},
	{"authority-form with GET", "GET example.com:80 ", errTargetForm, Limits{}},
	{"ftp absolute-form", "GET ftp://example.com/ ", errTargetForm, Limits{}},
	{"absolute-form without authority", "GET http:// ", errTargetForm, Limits{}},
	{"absolute-form empty host", "GET http:///x ", errAbsoluteTarget, Limits{}},
	{"absolute-form userinfo", "GET http://u:p@example.com/ ", errAbsoluteTarget, Limits{}},
	{"absolute-form query without path", "GET http://example.com?x ", errAbsoluteTarget, Limits{}},
	{"absolute-form bad port", "GET http://example.com:99999/ ", errAbsoluteTarget, Limits{}},
	{"absolute-form unclosed IPv6", "GET http://[::1/ ", errAbsoluteTarget, Limits{}},
	{"absolute-form IPv4 in brackets", "GET http://[127.0.0.1]/ ", errAbsoluteTarget, Limits{}},
	{"absolute-form escaped host", "GET http://ex%61mple.com/ ", errAbsoluteTarget, Limits{}},
	{"CONNECT origin-form", "CONNECT /x ", errAuthorityTarget, Limits{}},
	{"CONNECT without port", "CONNECT example.com ", errAuthorityTarget, Limits{}},
	{"CONNECT with path", "CONNECT example.com:443/x ", errAuthorityTarget, Limits{}},
	{"CONNECT empty port", "CONNECT example.com: ", errAuthorityTarget, Limits{}},

	// Version.
	{"lowercase version", "GET / h", errVersion, Limits{}},
	{"double space before version", "GET /  ", errVersion, Limits{}},
	{"not HTTP", "GET / HTTX", errVersion, Limits{}},
	{"two-digit minor", "GET / HTTP/1.10", errVersion, Limits{}},
	{"two-digit major", "GET / HTTP/11", errVersion, Limits{}},
	{"missing minor", "GET / HTTP/1\r", errVersion, Limits{}},
	{"letter version", "GET / HTTP/x", errVersion, Limits{}},
	{"trailing space after version", "GET / HTTP/1.1 ", errVersion, Limits{}},
	{"bare LF after version", "GET / HTTP/1.1\n", errBareLF, Limits{}},
	{"bare CR after version", "GET / HTTP/1.1\rX", errBareCR, Limits{}},
	{"HTTP/0.9", "GET / HTTP/0.9\r", errVersionNotSupp, Limits{}},
	{"HTTP/1.2", "GET / HTTP/1.2\r", errVersionNotSupp, Limits{}},
	{"HTTP/2.0", "GET / HTTP/2.0\r", errVersionNotSupp, Limits{}},
	{"HTTP/3.0", "GET / HTTP/3.0\r", errVersionNotSupp, Limits{}},
	{"HTTP/2 preface", "PRI * ", errTargetForm, Limits{}},
	{"OPTIONS * HTTP/2.0", "OPTIONS * HTTP/2.0\r", errVersionNotSupp, Limits{}},

	// Field lines.
	{"space before first field", h11 + " ", errLeadingSpace, Limits{}},
	{"obs-fold SP", hh + "X: a\r\n ", errObsFold, Limits{}},
	{"obs-fold HTAB", hh + "X: a\r\n\t", errObsFold, Limits{}},
	{"space before colon", hh + "Content-Length ", errSpaceBeforeColon, Limits{}},
	{"tab before colon", hh + "X\t", errSpaceBeforeColon, Limits{}},
	{"empty name", hh + ":", errEmptyName, Limits{}},
	{"bad name char", hh + "X@", errNameChar, Limits{}},
	{"non-ASCII name", hh + "X\xff", errNameChar, Limits{}},
	{"quote in name", hh + "\"", errNameChar, Limits{}},
	{"no colon", hh + "X\r", errNoColon, Limits{}},
	{"bare LF in name", hh + "X\n", errBareLF, Limits{}},
	{"bare LF ends field", hh + "X: a\n", errBareLF, Limits{}},
	{"bare LF in empty value", hh + "X:\n", errBareLF, Limits{}},
	{"bare CR in value", hh + "X: a\rb", errBareCR, Limits{}},
	{"bare CR in empty value", hh + "X:\rb", errBareCR, Limits{}},
	{"bare LF at field start", hh + "\n", errBareLF, Limits{}},
	{"bare CR at end of head", hh + "\rX", errBareCR, Limits{}},
	{"NUL in value", hh + "X: a\x00", errValueChar, Limits{}},
	{"NUL as value", hh + "X: \x00", errValueChar, Limits{}},
	{"ESC in value", hh + "X: a\x1b", errValueChar, Limits{}},
	{"DEL in value", hh + "X: a\x7f", errValueChar, Limits{}},
	{"VT in value", hh + "X: \x0b", errValueChar, Limits{}},

	// Content-Length.
	{"duplicate Content-Length equal", hh + "Content-Length: 5\r\nContent-Length: 5\r\n", errDupCL, Limits{}},
	{"duplicate Content-Length differing", hh + "Content-Length: 5\r\ncontent-length: 6\r\n", errDupCL, Limits{}},
	{"Content-Length list", hh + "Content-Length: 5, 5\r\n", errBadCL, Limits{}},
	{"Content-Length plus sign", hh + "Content-Length: +5\r\n", errBadCL, Limits{}},
	{"Content-Length negative", hh + "Content-Length: -1\r\n", errBadCL, Limits{}},
	{"Content-Length inner space", hh + "Content-Length: 1 2\r\n", errBadCL, Limits{}},
	{"Content-Length empty", hh + "Content-Length: \r\n", errBadCL, Limits{}},
	{"Content-Length hex", hh + "Content-Length: 0x5\r\n", errBadCL, Limits{}},
	{"Content-Length decimal point", hh + "Content-Length: 5.0\r\n", errBadCL, Limits{}},
	{"Content-Length overflow", hh + "Content-Length: 9223372036854775808\r\n", errBadCL, Limits{}},
	{"Content-Length too large", hh + "Content-Length: 1048577\r\n", errBodyTooLarge, Limits{}},
	{"Content-Length over custom limit", hh + "Content-Length: 11\r\n", errBodyTooLarge, Limits{MaxBodyBytes: 10}},
	{"Content-Length then Transfer-Encoding", hh + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", errCLAndTE, Limits{}},
	{"Transfer-Encoding then Content-Length", hh + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", errCLAndTE, Limits{}},

	// Transfer-Encoding.
	{"TE gzip", hh + "Transfer-Encoding: gzip\r\n", errTEUnsupported, Limits{}},
	{"TE identity", hh + "Transfer-Encoding: identity\r\n", errTEUnsupported, Limits{}},
	{"TE gzip, chunked", hh + "Transfer-Encoding: gzip, chunked\r\n", errTEUnsupported, Limits{}},
	{"TE chunked, chunked", hh + "Transfer-Encoding: chunked, chunked\r\n", errTEUnsupported, Limits{}},
	{"TE chunked with parameter", hh + "Transfer-Encoding: chunked;q=1\r\n", errTEUnsupported, Limits{}},
	{"TE twice", hh + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", errTEUnsupported, Limits{}},
	{"TE empty", hh + "Transfer-Encoding: \r\n", errBadTE, Limits{}},
	{"TE trailing comma", hh + "Transfer-Encoding: chunked,\r\n", errBadTE, Limits{}},
	{"TE quoted", hh + "Transfer-Encoding: \"chunked\"\r\n", errBadTE, Limits{}},
	{"TE garbage", hh + "Transfer-Encoding: chun ked\r\n", errBadTE, Limits{}},
	{"TE obs-text", hh + "Transfer-Encoding: chunked\xff\r\n", errBadTE, Limits{}},
	{"TE second field garbage", hh + "Transfer-Encoding: chunked\r\nTransfer-Encoding: ,\r\n", errBadTE, Limits{}},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n", errTE10, Limits{}},

	// Host.
	{"HTTP/1.1 without Host", h11 + "X: y\r\n\r\n", errNoHost, Limits{}},
	{"absolute-form without Host", "GET http://example.com/ HTTP/1.1\r\n\r\n", errNoHost, Limits{}},
	{"duplicate Host", hh + "Host: example.com\r\n", errDupHost, Limits{}},
	{"duplicate Host in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n", errDupHost, Limits{}},
	{"Host with space", h11 + "Host: a b\r\n", errBadHost, Limits{}},
	{"Host with slash", h11 + "Host: a/b\r\n", errBadHost, Limits{}},
	{"Host with userinfo", h11 + "Host: u@a\r\n", errBadHost, Limits{}},
	{"Host with bad port", h11 + "Host: a:b\r\n", errBadHost, Limits{}},
	{"Host with two colons", h11 + "Host: a:1:2\r\n", errBadHost, Limits{}},
	{"Host port too big", h11 + "Host: a:65536\r\n", errBadHost, Limits{}},
	{"Host only port", h11 + "Host: :80\r\n", errBadHost, Limits{}},
	{"Host unclosed bracket", h11 + "Host: [::1\r\n", errBadHost, Limits{}},
	{"Host bad IPv6", h11 + "Host: [1:2]\r\n", errBadHost, Limits{}},
	{"Host IPv6 zone", h11 + "Host: [fe80::1%25eth0]\r\n", errBadHost, Limits{}},
	{"Host escape", h11 + "Host: a%2eb\r\n", errBadHost, Limits{}},
	{"Host obs-text", h11 + "Host: caf\xc3\xa9\r\n", errBadHost, Limits{}},

	// Connection, Expect, Trailer.
	{"Connection garbage", hh + "Connection: keep alive\r\n", errBadConnection, Limits{}},
	{"Expect other", hh + "Expect: 200-ok\r\n", errExpect, Limits{}},
	{"Expect empty", hh + "Expect:\r\n", errExpect, Limits{}},
	{"Expect list", hh + "Expect: 100-continue, x\r\n", errExpect, Limits{}},
	{"Trailer declares Content-Length", hh + "Trailer: X, content-length\r\n", errBadTrailerDecl, Limits{}},
	{"Trailer declares Host", hh + "Trailer: Host\r\n", errBadTrailerDecl, Limits{}},
	{"Trailer garbage", hh + "Trailer: a b\r\n", errBadTrailerDecl, Limits{}},

	// Limits.
	{"request line too long", "GET /" + strings.Repeat("a", 8<<10-5) + "x", errLineTooLong, Limits{}},
	{"request line too long in version", "GET /" + strings.Repeat("a", 20-13) + " HTTP/1.1", errLineTooLong, Limits{MaxRequestLine: 20}},
	{"method too long", strings.Repeat("G", 9), errLineTooLong, Limits{MaxRequestLine: 8}},
	{"head too large", hh + "X: " + strings.Repeat("v", 16<<10-len(hh)-2), errHeadTooLarge, Limits{}},
	{"head too large at final CRLF", hh + "\r", errHeadTooLarge, Limits{MaxHeaderBytes: len(hh)}},
	{"too many fields", hh + "A: 1\r\nB: 2\r\nC", errTooManyFields, Limits{MaxHeaderCount: 3}},
}

func TestParseReject(t *testing.T) {
	for _, tc := range rejectCases {
		t.Run(tc.name, func(t *testing.T) {
			// Fed whole, with plausible bytes after the offending one.
			p := Parser{Limits: tc.lim}
			var req Request
			n, err := p.Parse([]byte(tc.in+"Host: x\r\n\r\n"), &req)
			if err != tc.err || n != 0 {
				t.Fatalf("whole: Parse = %d, %v; want %v", n, err, tc.err)
			}
			// The error is sticky.
			if _, err2 := p.Parse([]byte(tc.in), &req); err2 != tc.err {
				t.Fatalf("not sticky: %v", err2)
			}
			// Fed byte by byte, it fires exactly on the last byte of tc.in.
			p = Parser{Limits: tc.lim}
			for k := 1; k <= len(tc.in); k++ {
				n, err := p.Parse([]byte(tc.in[:k]), &req)
				if k < len(tc.in) {
					if err != nil || n != 0 {
						t.Fatalf("prefix %d/%d: %d, %v; want need-more", k, len(tc.in), n, err)
					}
					continue
				}
				if err != tc.err {
					t.Fatalf("last byte: %v; want %v", err, tc.err)
				}
			}
			if p.Reset(); p.err != nil || p.pos != 0 {
				t.Fatalf("Reset did not clear")
			}
		})
	}
}

func TestParseShorterBufferRestarts(t *testing.T) {
	// Breaking the grow-only contract must not yield a head cut from
	// bytes the parser skipped: it starts over.
	var p Parser
	var req Request
	if n, err := p.Parse([]byte("GET /long-path HTTP/1.1\r\n"), &req); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	in := []byte("GET / HTTP/1.0\r\n\r\n")
	if n, err := p.Parse(in, &req); n != len(in) || err != nil || string(req.Target) != "/" {
		t.Fatalf("%d, %v, %q", n, err, req.Target)
	}
}

func TestParseStatusCodes(t *testing.T) {
	for _, tc := range []struct {
		e      *Error
		status int
	}{
		{errLineTooLong, 414}, {errHeadTooLarge, 431}, {errTooManyFields, 431},
		{errBodyTooLarge, 413}, {errExpect, 417}, {errTEUnsupported, 501},
		{errVersionNotSupp, 505}, {errDupCL, 400}, {errBareLF, 400},
	} {
		if tc.e.Status != tc.status {
			t.Errorf("%q: status %d want %d", tc.e.Reason, tc.e.Status, tc.status)
		}
		if !strings.Contains(tc.e.Error(), tc.e.Reason) {
			t.Errorf("Error() = %q", tc.e.Error())
		}
	}
}

func TestParseLimitsExact(t *testing.T) {
	// A head of exactly MaxHeaderBytes and a request line of exactly
	// MaxRequestLine pass; one byte more does not.
	head := hh + "\r\n"
	p := Parser{Limits: Limits{MaxHeaderBytes: len(head), MaxRequestLine: len(h11) - 2}}
	var req Request
	if n, err := p.Parse([]byte(head), &req); n != len(head) || err != nil {
		t.Fatalf("exact limits: %d, %v", n, err)
	}
	p = Parser{Limits: Limits{MaxHeaderCount: 1}}
	if n, err := p.Parse([]byte(head), &req); n != len(head) || err != nil {
		t.Fatalf("exact count: %d, %v", n, err)
	}
	p = Parser{Limits: Limits{MaxBodyBytes: 5}}
	in := hh + "Content-Length: 5\r\n\r\n"
	if n, err := p.Parse([]byte(in), &req); n != len(in) || err != nil || req.ContentLength != 5 {
		t.Fatalf("exact body: %d, %v", n, err)
	}
}

func TestValidIPv6(t *testing.T) {
	for _, s := range []string{"::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
		"2001:db8::ff00:42:8329", "::ffff:192.0.2.1", "1:2:3:4:5:6:1.2.3.4", "ABCD:ef01::"} {
		if !validIPv6([]byte(s)) {
			t.Errorf("%q rejected", s)
		}
	}
	for _, s := range []string{"", ":", ":::", "1", "1:2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::",
		"12345::", "::g", "1.2.3.4", "::1.2.3", "::1.2.3.256", "::01.2.3.4", ":1::", "1:", "1:2:3:4:5:6:7:1.2.3.4"} {
		if validIPv6([]byte(s)) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	buf := []byte(typicalGET)
	var p Parser
	var req Request
	if n, err := p.Parse(buf, &req); n != len(buf) || err != nil {
		t.Fatal(n, err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if n, err := p.Parse(buf, &req); n != len(buf) || err != nil {
			t.Fatal(n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %v times per request", allocs)
	}
	// Rejections are preallocated too.
	bad := []byte(hh + "Content-Length: 1\r\nContent-Length: 1\r\n\r\n")
	allocs = testing.AllocsPerRun(1000, func() {
		p.Reset()
		if _, err := p.Parse(bad, &req); err == nil {
			t.Fatal("accepted")
		}
	})
	if allocs != 0 {
		t.Fatalf("rejecting allocates %v times", allocs)
	}
}

func BenchmarkParse(b *testing.B) {
	buf := []byte(typicalGET)
	var p Parser
	var req Request
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := p.Parse(buf, &req); n != len(buf) || err != nil {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkParseByteAtATime shows the cost of a trickled head stays linear.
func BenchmarkParseByteAtATime(b *testing.B) {
	buf := []byte(typicalGET)
	var p Parser
	var req Request
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		for k := 1; k <= len(buf); k++ {
			if n, err := p.Parse(buf[:k], &req); err != nil || (n != 0) != (k == len(buf)) {
				b.Fatal(k, n, err)
			}
		}
	}
}
