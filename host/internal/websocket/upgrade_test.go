package websocket

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/wasmloop/wasmloop/abi"
)

const rfcKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3

func hdrs(lines ...string) []abi.Header {
	var out []abi.Header
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		out = append(out, abi.Header{Name: []byte(name), Value: []byte(strings.TrimSpace(value))})
	}
	return out
}

func baseHeaders(extra ...string) []abi.Header {
	return hdrs(append([]string{"Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
		"Sec-WebSocket-Key: " + rfcKey, "Sec-WebSocket-Version: 13"}, extra...)...)
}

func without(h []abi.Header, name string) []abi.Header {
	var out []abi.Header
	for _, x := range h {
		if !strings.EqualFold(string(x.Name), name) {
			out = append(out, x)
		}
	}
	return out
}

func TestCheckUpgrade(t *testing.T) {
	cases := []struct {
		name         string
		method       string
		major, minor int
		h            []abi.Header
		err          *Error
		check        func(*testing.T, Upgrade)
	}{
		{name: "minimal", h: baseHeaders(), check: func(t *testing.T, u Upgrade) {
			if string(u.Key) != rfcKey || u.Protocols != nil || u.DeflateOffered || u.Deflate {
				t.Fatalf("%+v", u)
			}
		}},
		{name: "case and lists", h: hdrs("upgrade: h2c, WebSocket", "CONNECTION: keep-alive, UPGRADE", "sec-websocket-key: "+rfcKey, "SEC-WEBSOCKET-VERSION: 13", "Origin: http://a")},
		{name: "connection tokens over two fields", h: append(without(baseHeaders(), "connection"), hdrs("Connection: keep-alive", "Connection: upgrade")...)},
		{name: "POST", method: "POST", h: baseHeaders(), err: errMethod},
		{name: "lowercase get", method: "get", h: baseHeaders(), err: errMethod},
		{name: "HTTP/1.0", minor: 0, h: baseHeaders(), err: errVersion},
		{name: "HTTP/2.0", major: 2, minor: 0, h: baseHeaders(), err: errVersion},
		{name: "no Upgrade", h: without(baseHeaders(), "upgrade"), err: errNoUpgrade},
		{name: "Upgrade other", h: append(without(baseHeaders(), "upgrade"), hdrs("Upgrade: h2c")...), err: errNoUpgrade},
		{name: "Upgrade substring", h: append(without(baseHeaders(), "upgrade"), hdrs("Upgrade: websockets")...), err: errNoUpgrade},
		{name: "no Connection", h: without(baseHeaders(), "connection"), err: errNoConnection},
		{name: "Connection keep-alive", h: append(without(baseHeaders(), "connection"), hdrs("Connection: keep-alive")...), err: errNoConnection},
		{name: "no key", h: without(baseHeaders(), "sec-websocket-key"), err: errKey},
		{name: "short key", h: append(without(baseHeaders(), "sec-websocket-key"), hdrs("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA")...), err: errKey},
		{name: "key of 17 bytes", h: append(without(baseHeaders(), "sec-websocket-key"), hdrs("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=")...), err: errKey},
		{name: "key not base64", h: append(without(baseHeaders(), "sec-websocket-key"), hdrs("Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==")...), err: errKey},
		{name: "two keys", h: baseHeaders("Sec-WebSocket-Key: " + rfcKey), err: errDupKey},
		{name: "version 8", h: append(without(baseHeaders(), "sec-websocket-version"), hdrs("Sec-WebSocket-Version: 8")...), err: errWSVersion},
		{name: "no version", h: without(baseHeaders(), "sec-websocket-version"), err: errWSVersion},
		{name: "two versions", h: baseHeaders("Sec-WebSocket-Version: 13"), err: errWSVersion},
		{name: "protocols", h: baseHeaders("Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Protocol: v2.json,,"), check: func(t *testing.T, u Upgrade) {
			if len(u.Protocols) != 3 || string(u.Protocols[0]) != "chat" || string(u.Protocols[1]) != "superchat" || string(u.Protocols[2]) != "v2.json" {
				t.Fatalf("%q", u.Protocols)
			}
		}},
		{name: "bad protocol", h: baseHeaders("Sec-WebSocket-Protocol: chat, super chat"), err: errProtocols},
		{name: "body", h: baseHeaders("Content-Length: 5"), err: errBody},
		{name: "empty body ok", h: baseHeaders("Content-Length: 0")},
		{name: "chunked body", h: baseHeaders("Transfer-Encoding: chunked"), err: errBody},
		{name: "deflate plain", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate"), check: deflateIs(true, true, wsflate.Parameters{})},
		{name: "deflate browser", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"),
			check: deflateIs(true, true, wsflate.Parameters{ClientMaxWindowBits: 1})},
		{name: "deflate params", h: baseHeaders(`Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; client_max_window_bits="10"; server_no_context_takeover ; client_no_context_takeover`),
			check: deflateIs(true, true, wsflate.Parameters{ClientMaxWindowBits: 10, ServerNoContextTakeover: true, ClientNoContextTakeover: true})},
		{name: "deflate small server window declined", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10"),
			check: deflateIs(true, false, wsflate.Parameters{})},
		{name: "deflate fallback offer", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=15"),
			check: deflateIs(true, true, wsflate.Parameters{ServerMaxWindowBits: 15})},
		{name: "deflate duplicate param declined", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
			check: deflateIs(true, false, wsflate.Parameters{})},
		{name: "deflate unknown param declined", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; foo=1"), check: deflateIs(true, false, wsflate.Parameters{})},
		{name: "deflate bad bits declined", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16"), check: deflateIs(true, false, wsflate.Parameters{})},
		{name: "deflate leading zero declined", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=08"), check: deflateIs(true, false, wsflate.Parameters{})},
		{name: "deflate valueless server bits declined", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits"), check: deflateIs(true, false, wsflate.Parameters{})},
		{name: "other extension", h: baseHeaders("Sec-WebSocket-Extensions: foo; bar=\"baz\""), check: deflateIs(false, false, wsflate.Parameters{})},
		{name: "extensions syntax", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate;"), err: errExtensions},
		{name: "extensions syntax 2", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate; a=\"unterminated"), err: errExtensions},
		{name: "extensions syntax 3", h: baseHeaders("Sec-WebSocket-Extensions: permessage-deflate client_max_window_bits"), err: errExtensions},
		{name: "extensions syntax 4", h: baseHeaders("Sec-WebSocket-Extensions: =x"), err: errExtensions},
		{name: "quoted control byte", h: baseHeaders("Sec-WebSocket-Extensions: foo; a=\"x\x01y\""), err: errExtensions},
		{name: "quoted DEL", h: baseHeaders("Sec-WebSocket-Extensions: foo; a=\"x\x7fy\""), err: errExtensions},
		{name: "quoted HTAB, SP and obs-text", h: baseHeaders("Sec-WebSocket-Extensions: foo; a=\"x\t \x80y\""), check: deflateIs(false, false, wsflate.Parameters{})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = "GET"
			}
			major, minor := c.major, c.minor
			if major == 0 {
				major = 1
				if c.name != "HTTP/1.0" {
					minor = 1
				}
			}
			u, err := CheckUpgrade([]byte(method), major, minor, c.h)
			if err != c.err {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if err == nil && c.check != nil {
				c.check(t, u)
			}
			if err != nil {
				resp, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(err.AppendResponse(nil))), nil)
				if rerr != nil || resp.StatusCode != err.Status || !resp.Close {
					t.Fatalf("response: %v %v", resp, rerr)
				}
				if err.Status == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
					t.Fatal("426 without Sec-WebSocket-Version: 13")
				}
			}
		})
	}
}

func deflateIs(offered, ok bool, p wsflate.Parameters) func(*testing.T, Upgrade) {
	return func(t *testing.T, u Upgrade) {
		t.Helper()
		if u.DeflateOffered != offered || u.Deflate != ok || (ok && u.DeflateParams != p) {
			t.Fatalf("offered %v ok %v params %+v", u.DeflateOffered, u.Deflate, u.DeflateParams)
		}
	}
}

func TestAppendAccept(t *testing.T) {
	u, e := CheckUpgrade([]byte("GET"), 1, 1, baseHeaders("Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Extensions: permessage-deflate"))
	if e != nil {
		t.Fatal(e)
	}
	out, e := AppendAccept(nil, &u, "superchat", true, []byte("Set-Cookie: a=b\r\nX-Y: z\r\n"))
	if e != nil {
		t.Fatal(e)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Connection") != "Upgrade" ||
		resp.Header.Get("Sec-WebSocket-Protocol") != "superchat" || resp.Header.Get("X-Y") != "z" ||
		resp.Header.Get("Sec-WebSocket-Extensions") != deflateResponse {
		t.Fatalf("%q", out)
	}
	if !bytes.HasSuffix(out, []byte("X-Y: z\r\n\r\n")) {
		t.Fatalf("%q", out)
	}
	for _, c := range []struct {
		proto   string
		deflate bool
		extra   string
		err     *Error
	}{
		{"chat", false, "", nil},
		{"", false, "", nil},
		{"other", false, "", errNotOffered},
		{"Chat", false, "", errNotOffered},
		{"", false, "X:v\r\nY:\t v \t\r\nZ:\r\n", nil},
		{"", false, "X: caf\xc3\xa9\r\n", nil},
		{"", false, "Sec-WebSocket: 1\r\nUpgrade-Insecure-Requests: 1\r\n", nil},
		{"", false, "X: y", errExtraHeaders},
		{"", false, "X: y\r", errExtraHeaders},
		{"", false, "X: y\n", errExtraHeaders},
		{"", false, "X: 1\nY: 2\r\n", errExtraHeaders},
		{"", false, "X y\r\n", errExtraHeaders},
		{"", false, "X : 1\r\n", errExtraHeaders},
		{"", false, ": 1\r\n", errExtraHeaders},
		{"", false, "X\r\n", errExtraHeaders},
		{"", false, "X(): 1\r\n", errExtraHeaders},
		{"", false, "X: a\rb\r\n", errExtraHeaders},
		{"", false, "X: a\x00b\r\n", errExtraHeaders},
		{"", false, "X: \x7f\r\n", errExtraHeaders},
		{"", false, "X: 1\r\n 2\r\n", errExtraHeaders},
		{"", false, "\r\n", errExtraHeaders},
		{"", false, "X: 1\r\n\r\nHTTP/1.1 200 OK\r\n", errExtraHeaders},
		{"", false, "Sec-WebSocket-Accept: x\r\n", errReservedField},
		{"", false, "connection: close\r\n", errReservedField},
		{"", false, "UPGRADE: h2c\r\n", errReservedField},
		{"", false, "sec-websocket-protocol: chat\r\n", errReservedField},
		{"", false, "X: 1\r\nSec-WebSocket-Extensions: x\r\n", errReservedField},
		{"", false, "Upgrade: x\r\nX y\r\n", errReservedField}, // line by line: the first line decides
		{"", false, "X y\r\nUpgrade: x\r\n", errExtraHeaders},
	} {
		if _, e := AppendAccept(nil, &u, c.proto, c.deflate, []byte(c.extra)); e != c.err {
			t.Fatalf("%q %q: %v, want %v", c.proto, c.extra, e, c.err)
		}
	}
	if _, e := AppendAccept(nil, &Upgrade{Key: []byte(strings.Repeat("A", 100))}, "", false, nil); e != errNotChecked {
		t.Fatal(e)
	}
	plain, _ := CheckUpgrade([]byte("GET"), 1, 1, baseHeaders())
	if _, e := AppendAccept(nil, &plain, "", true, nil); e != errNoDeflate {
		t.Fatal(e)
	}
	if a := testing.AllocsPerRun(100, func() { AppendAccept(out[:0], &u, "chat", true, nil) }); a != 0 {
		t.Fatalf("%v allocs", a)
	}
}

// TestHandshakeInterop runs gobwas/ws's client handshake against
// CheckUpgrade and AppendAccept over an in-memory pipe, with
// net/http parsing the request head (as http1 would).
func TestHandshakeInterop(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	go func() {
		defer server.Close()
		req, err := http.ReadRequest(bufio.NewReader(server))
		if err != nil {
			done <- err
			return
		}
		var h []abi.Header
		for name, vs := range req.Header {
			for _, v := range vs {
				h = append(h, abi.Header{Name: []byte(name), Value: []byte(v)})
			}
		}
		u, e := CheckUpgrade([]byte(req.Method), req.ProtoMajor, req.ProtoMinor, h)
		if e != nil {
			done <- e
			return
		}
		out, e := AppendAccept(nil, &u, "b", false, nil)
		if e != nil {
			done <- e
			return
		}
		out = AppendFrame(out, ws.OpText, []byte("hi"), true)
		_, err = server.Write(out)
		done <- err
	}()
	d := ws.Dialer{Protocols: []string{"a", "b"}}
	uri, _ := url.Parse("ws://example.com/chat")
	br, hs, err := d.Upgrade(client, uri)
	if err != nil {
		t.Fatal(err)
	}
	if hs.Protocol != "b" {
		t.Fatalf("protocol %q", hs.Protocol)
	}
	var rd = client.(interface{ Read([]byte) (int, error) })
	src := bufio.NewReader(rd)
	if br != nil {
		src = br
	}
	f, err := ws.ReadFrame(src)
	if err != nil || string(f.Payload) != "hi" {
		t.Fatal(f, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
