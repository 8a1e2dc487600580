package websocket

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/wasmloop/wasmloop/abi"
)

// upgradeSeeds are request header blocks, one field a line (see
// splitHeaders): the TestCheckUpgrade shapes and the extension offers that
// sit on the edges of RFC 7692 §7.1.
var upgradeSeeds = []string{
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13",
	"upgrade: h2c, WebSocket\nCONNECTION: keep-alive, UPGRADE\nsec-websocket-key: " + rfcKey + "\nSEC-WEBSOCKET-VERSION: 13\nOrigin: http://a",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\nSec-WebSocket-Version: 13\nSec-WebSocket-Protocol: chat, superchat\nSec-WebSocket-Protocol: v2.json,,",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAB==\nSec-WebSocket-Version: 13",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\nSec-WebSocket-Version: 13",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=\"10\"; server_no_context_takeover ; client_no_context_takeover",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=15",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; client_max_window_bits=9",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=\"1\\5\", permessage-deflate; foo=1",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=08\nSec-WebSocket-Extensions: PERMESSAGE-DEFLATE; SERVER_MAX_WINDOW_BITS=15",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: foo; a=\"x\t \x80y\", permessage-deflate",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate;",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nContent-Length: 0\nTransfer-Encoding: chunked",
	"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " + rfcKey + "\nSec-WebSocket-Version: 13\nSec-WebSocket-Version: 13",
}

// splitHeaders reads a fuzz input as header fields, one a line, value
// trimmed as http1 gives it. Names and values are otherwise left as they
// come: CheckUpgrade must not trust them.
func splitHeaders(block []byte) []abi.Header {
	var h []abi.Header
	for _, line := range bytes.Split(block, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		h = append(h, abi.Header{Name: name, Value: bytes.Trim(value, " \t")})
	}
	return h
}

// offer is one extension offer as read by readOffers.
type offer struct {
	name    string
	params  [][2]string // key, unquoted value
	hasVal  []bool
	escaped bool // a quoted value had a backslash escape
}

// readOffers is a second reading of Sec-WebSocket-Extensions (RFC 6455
// §9.1), written as a splitter over quoted strings rather than a scanner.
// It reports false where it cannot make sense of the syntax.
func readOffers(values []string) ([]offer, bool) {
	// Split s at sep outside quoted strings.
	split := func(s string, sep byte) ([]string, bool) {
		var out []string
		start, quoted := 0, false
		for i := 0; i < len(s); i++ {
			switch {
			case quoted && s[i] == '\\':
				i++
			case s[i] == '"':
				quoted = !quoted
			case !quoted && s[i] == sep:
				out = append(out, s[start:i])
				start = i + 1
			}
		}
		return append(out, s[start:]), !quoted
	}
	isToken := func(s string) bool {
		return s != "" && strings.Trim(s, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == ""
	}
	var offers []offer
	for _, v := range values {
		elems, ok := split(v, ',')
		if !ok {
			return nil, false
		}
		for _, el := range elems {
			if strings.Trim(el, " \t") == "" {
				continue
			}
			parts, _ := split(el, ';')
			o := offer{name: strings.Trim(parts[0], " \t")}
			if !isToken(o.name) {
				return nil, false
			}
			for _, p := range parts[1:] {
				k, val, hasVal := strings.Cut(p, "=")
				k, val = strings.Trim(k, " \t"), strings.Trim(val, " \t")
				if !isToken(k) {
					return nil, false
				}
				if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
					q := val[1 : len(val)-1]
					o.escaped = o.escaped || strings.Contains(q, "\\")
					var b strings.Builder
					for i := 0; i < len(q); i++ {
						if q[i] == '\\' {
							i++
						}
						if i < len(q) {
							b.WriteByte(q[i])
						}
					}
					val = b.String()
				} else if hasVal && !isToken(val) {
					return nil, false
				}
				o.params = append(o.params, [2]string{k, val})
				o.hasVal = append(o.hasVal, hasVal)
			}
			offers = append(offers, o)
		}
	}
	return offers, true
}

// deflateOf reads a permessage-deflate offer by RFC 7692 §7.1 as written:
// only the four parameters, each at most once, the two *_no_context_takeover
// without a value, window bits 8 to 15 in plain decimal, a value required
// for server_max_window_bits and optional for client_max_window_bits.
func deflateOf(o offer) (wsflate.Parameters, bool) {
	var p wsflate.Parameters
	seen := map[string]bool{}
	bits := func(v string) (wsflate.WindowBits, bool) {
		for n := 8; n <= 15; n++ {
			if v == strconv.Itoa(n) {
				return wsflate.WindowBits(n), true
			}
		}
		return 0, false
	}
	for i, kv := range o.params {
		k, v, hasVal := strings.ToLower(kv[0]), kv[1], o.hasVal[i]
		if seen[k] {
			return p, false
		}
		seen[k] = true
		var ok bool
		switch k {
		case "server_no_context_takeover":
			p.ServerNoContextTakeover, ok = true, !hasVal
		case "client_no_context_takeover":
			p.ClientNoContextTakeover, ok = true, !hasVal
		case "server_max_window_bits":
			p.ServerMaxWindowBits, ok = bits(v)
			ok = ok && hasVal
		case "client_max_window_bits":
			if !hasVal {
				p.ClientMaxWindowBits, ok = 1, true
			} else {
				p.ClientMaxWindowBits, ok = bits(v)
			}
		}
		if !ok {
			return p, false
		}
	}
	return p, true
}

// acceptFor is Sec-WebSocket-Accept for key (RFC 6455 §4.2.2 item 5.4).
func acceptFor(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// checkAccept101 reads head, which AppendAccept wrote for u, with net/http
// and holds it to RFC 6455 §4.2.2: one complete 101 head and nothing after
// it, Upgrade, Connection and Sec-WebSocket-Accept as the RFC has them, the
// chosen subprotocol and deflate response and no other Sec-WebSocket-*
// field, and extra's fields (already known well-formed) as written.
func checkAccept101(t *testing.T, head []byte, u *Upgrade, protocol string, deflate bool, extra []byte) {
	t.Helper()
	if !bytes.HasSuffix(head, []byte("\r\n\r\n")) || bytes.Index(head, []byte("\r\n\r\n")) != len(head)-4 {
		t.Fatalf("%q is not one head ending at its blank line", head)
	}
	src := bytes.NewReader(head)
	br := bufio.NewReader(src)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("net/http refuses %q: %v", head, err)
	}
	if br.Buffered() != 0 || src.Len() != 0 {
		t.Fatalf("%q: bytes after the head", head)
	}
	if resp.StatusCode != 101 || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		t.Fatalf("%q: status %d %s", head, resp.StatusCode, resp.Proto)
	}
	want := map[string][]string{
		"Upgrade":              {"websocket"},
		"Connection":           {"Upgrade"},
		"Sec-Websocket-Accept": {acceptFor(string(u.Key))},
	}
	if protocol != "" {
		want["Sec-Websocket-Protocol"] = []string{protocol}
	}
	if deflate {
		want["Sec-Websocket-Extensions"] = []string{deflateResponse}
	}
	for k, v := range resp.Header {
		if w, ok := want[k]; ok || strings.HasPrefix(k, "Sec-Websocket-") {
			if !slices.Equal(v, w) {
				t.Fatalf("%q: %s %q, want %q", head, k, v, w)
			}
		}
	}
	for k := range want {
		if _, ok := resp.Header[k]; !ok {
			t.Fatalf("%q: no %s", head, k)
		}
	}
	lines, _ := readExtra(extra)
	got := resp.Header.Clone()
	for _, l := range lines {
		k := http.CanonicalHeaderKey(l[0])
		if len(got[k]) == 0 || got[k][0] != l[1] {
			t.Fatalf("%q: extra field %s: %q, net/http %q", head, k, l[1], got[k])
		}
		got[k] = got[k][1:]
	}
}

// dialConn is a connection for gobwas/ws's client: it answers the request
// the client writes with AppendAccept for u, under the client's own key
// (the dialer picks a random one), so the client checks our 101.
type dialConn struct {
	t        *testing.T
	u        Upgrade
	protocol string
	deflate  bool
	extra    []byte
	req, out bytes.Buffer
}

func (c *dialConn) Write(p []byte) (int, error) { return c.req.Write(p) }

func (c *dialConn) Read(p []byte) (int, error) {
	if c.out.Len() == 0 && c.req.Len() > 0 {
		req, err := http.ReadRequest(bufio.NewReader(&c.req))
		if err != nil {
			c.t.Fatalf("gobwas request: %v", err)
		}
		c.u.Key = []byte(req.Header.Get("Sec-WebSocket-Key"))
		out, e := AppendAccept(nil, &c.u, c.protocol, c.deflate, c.extra)
		if e != nil {
			c.t.Fatalf("AppendAccept under the client's key %q: %v", c.u.Key, e)
		}
		c.out.Write(out)
	}
	if c.out.Len() == 0 {
		return 0, io.EOF
	}
	return c.out.Read(p)
}

// checkGobwas has gobwas/ws's client, offering what u says the peer
// offered, complete a handshake against our 101.
func checkGobwas(t *testing.T, u *Upgrade, protocol string, deflate bool, extra []byte) {
	t.Helper()
	d := ws.Dialer{}
	for _, p := range u.Protocols {
		d.Protocols = append(d.Protocols, string(p))
	}
	if deflate {
		d.Extensions = []httphead.Option{u.DeflateParams.Option()}
	}
	c := &dialConn{t: t, u: *u, protocol: protocol, deflate: deflate, extra: extra}
	br, hs, err := d.Upgrade(c, &url.URL{Scheme: "ws", Host: "a", Path: "/"})
	if err != nil {
		t.Fatalf("gobwas/ws refuses our 101 (protocol %q, deflate %v, extra %q): %v", protocol, deflate, extra, err)
	}
	if br != nil {
		t.Fatal("gobwas/ws has bytes after our 101")
	}
	if hs.Protocol != protocol {
		t.Fatalf("gobwas/ws negotiated protocol %q, want %q", hs.Protocol, protocol)
	}
	if got := len(hs.Extensions) == 1 && string(hs.Extensions[0].Name) == wsflate.ExtensionName; got != deflate {
		t.Fatalf("gobwas/ws extensions %v, want deflate %v", hs.Extensions, deflate)
	}
}

// FuzzCheckUpgrade reads a peer's handshake fields. CheckUpgrade never
// panics, and what it accepts is what RFC 6455 §4.2.1 and RFC 7692 allow:
// one Sec-WebSocket-Key of 24 base64 characters decoding to 16 bytes,
// subprotocols that are tokens, and a permessage-deflate offer taken only
// if its parameters are valid, unrepeated and known (held against
// readOffers/deflateOf, both ways, except that an offer with a backslash
// escape is declined: no valid value needs one, and CheckUpgrade does not
// unescape). The 101 built from
// the result is then read by net/http and by gobwas/ws's client. sel picks
// the subprotocol (low nibble), whether deflate is taken (bit 4), and a
// wrong method or version (bits 6, 7).
func FuzzCheckUpgrade(f *testing.F) {
	for i, s := range upgradeSeeds {
		f.Add([]byte(s), byte(i))
	}
	f.Add([]byte(upgradeSeeds[0]), byte(0x40))
	f.Add([]byte(upgradeSeeds[0]), byte(0x80))
	f.Fuzz(func(t *testing.T, block []byte, sel byte) {
		method, minor := "GET", 1
		if sel&0x40 != 0 {
			method = "get"
		}
		if sel&0x80 != 0 {
			minor = 0
		}
		h := splitHeaders(block)
		u, e := CheckUpgrade([]byte(method), 1, minor, h)
		if e != nil {
			if e.Status != 400 && e.Status != 426 {
				t.Fatalf("rejection %v", e)
			}
			if u.Key != nil || u.Protocols != nil || u.DeflateOffered {
				t.Fatalf("a rejection with a result: %+v", u)
			}
			return
		}
		if method != "GET" || minor != 1 {
			t.Fatalf("accepted %s HTTP/1.%d", method, minor)
		}
		var keys, exts []string
		for _, x := range h {
			switch strings.ToLower(string(x.Name)) {
			case "sec-websocket-key":
				keys = append(keys, string(x.Value))
			case "sec-websocket-extensions":
				exts = append(exts, string(x.Value))
			}
		}
		if len(keys) != 1 || string(u.Key) != keys[0] {
			t.Fatalf("key %q from fields %q", u.Key, keys)
		}
		k, err := base64.StdEncoding.DecodeString(string(u.Key))
		if len(u.Key) != 24 || strings.Trim(string(u.Key), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" ||
			err != nil || len(k) != 16 || base64.StdEncoding.EncodeToString(k) != string(u.Key) {
			t.Fatalf("accepted key %q", u.Key)
		}
		for _, p := range u.Protocols {
			if len(p) == 0 || strings.Trim(string(p), "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
				t.Fatalf("subprotocol %q", p)
			}
		}

		offers, ok := readOffers(exts)
		if !ok {
			t.Fatalf("accepted extensions %q, which do not parse", exts)
		}
		offered, found := false, false
		var first wsflate.Parameters
		for _, o := range offers {
			if !strings.EqualFold(o.name, wsflate.ExtensionName) {
				continue
			}
			offered = true
			p, valid := deflateOf(o)
			// The server takes the first valid offer that leaves it
			// compress/flate's 32 KiB window.
			if valid && !o.escaped && (p.ServerMaxWindowBits == 0 || p.ServerMaxWindowBits == 15) && !found {
				found, first = true, p
			}
		}
		if u.DeflateOffered != offered || u.Deflate != found || (found && u.DeflateParams != first) {
			t.Fatalf("extensions %q: offered %v deflate %v %+v; want %v %v %+v",
				exts, u.DeflateOffered, u.Deflate, u.DeflateParams, offered, found, first)
		}

		protocol := ""
		if n := int(sel & 0x0f); len(u.Protocols) > 0 && n > 0 {
			protocol = string(u.Protocols[(n-1)%len(u.Protocols)])
		}
		deflate := u.Deflate && sel&0x10 != 0
		out, e := AppendAccept(nil, &u, protocol, deflate, nil)
		if e != nil {
			t.Fatalf("AppendAccept of an accepted handshake: %v", e)
		}
		checkAccept101(t, out, &u, protocol, deflate, nil)
		checkGobwas(t, &u, protocol, deflate, nil)
	})
}

// readExtra is a second reading of the guest's extra block: CRLF-ended
// lines of token ":" value with no control byte but HTAB. It reports false
// for anything else, and returns name and trimmed value pairs.
func readExtra(b []byte) ([][2]string, bool) {
	s := string(b)
	if s == "" {
		return nil, true
	}
	if !strings.HasSuffix(s, "\r\n") {
		return nil, false
	}
	var out [][2]string
	for _, line := range strings.Split(s[:len(s)-2], "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.Trim(name, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return nil, false
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, false
			}
		}
		out = append(out, [2]string{name, strings.Trim(value, " \t")})
	}
	return out, true
}

// reserved reports whether a guest may not set the field name in a 101.
func reserved(name string) bool {
	n := strings.ToLower(name)
	return n == "upgrade" || n == "connection" || strings.HasPrefix(n, "sec-websocket-")
}

// FuzzAppendAccept gives AppendAccept what a guest controls: the
// subprotocol it picks and its extra header block, for a handshake whose
// client offered offers. The result is either a 500 with dst untouched,
// exactly when the choice is not offered or the block is not well-formed
// field lines or sets Upgrade, Connection or a Sec-WebSocket-* field; or
// exactly one 101 head that net/http and gobwas/ws's client accept with
// the handshake's own fields, none of them overridden or repeated.
func FuzzAppendAccept(f *testing.F) {
	for _, c := range []struct {
		offers, protocol string
		deflate          bool
		extra            string
	}{
		{"chat, superchat", "superchat", true, "Set-Cookie: a=b\r\nX-Y: z\r\n"},
		{"chat", "chat", false, ""},
		{"chat", "Chat", false, ""},
		{"chat", "other", false, ""},
		{"", "", true, "X:v\r\nY:\t v \t\r\nZ:\r\n"},
		{"", "", false, "X: caf\xc3\xa9\r\n"},
		{"", "", false, "Sec-WebSocket: 1\r\nUpgrade-Insecure-Requests: 1\r\n"},
		{"", "", false, "X: y"},
		{"", "", false, "X: y\n"},
		{"", "", false, "X: 1\nY: 2\r\n"},
		{"", "", false, "X: a\rb\r\n"},
		{"", "", false, "X: 1\r\n 2\r\n"},
		{"", "", false, "X: 1\r\n\r\nHTTP/1.1 200 OK\r\n"},
		{"", "", false, "Sec-WebSocket-Accept: x\r\n"},
		{"", "", false, "connection: close\r\n"},
		{"", "", false, "X: 1\r\nSec-WebSocket-Extensions: x\r\n"},
		{"a", "a", false, "Sec-WebSocket-Protocol: b\r\n"},
		{"a", "a\r\nX: y", false, ""},
		{"a", "", false, "Upgrade: x\r\nX y\r\n"},
		{"a", "", false, "Content-Length: 5\r\n"},
	} {
		f.Add(c.offers, c.protocol, c.deflate, []byte(c.extra))
	}
	f.Fuzz(func(t *testing.T, offers, protocol string, deflate bool, extra []byte) {
		h := baseHeaders("Sec-WebSocket-Extensions: permessage-deflate")
		if offers != "" {
			h = append(h, abi.Header{Name: []byte("Sec-WebSocket-Protocol"), Value: []byte(offers)})
		}
		u, e := CheckUpgrade([]byte("GET"), 1, 1, h)
		if e != nil {
			return // offers is not a token list; FuzzCheckUpgrade covers that
		}
		dst := []byte("prefix")
		out, e := AppendAccept(dst, &u, protocol, deflate, extra)

		lines, wellFormed := readExtra(extra)
		allowed := wellFormed
		for _, l := range lines {
			allowed = allowed && !reserved(l[0])
		}
		chosen := protocol == ""
		for _, p := range u.Protocols {
			chosen = chosen || string(p) == protocol
		}
		if e != nil {
			if e.Status != 500 || string(out) != "prefix" || len(out) != len(dst) {
				t.Fatalf("refusal %v with %q", e, out)
			}
			if allowed && chosen {
				t.Fatalf("refused (%v) protocol %q of %q, extra %q", e, protocol, offers, extra)
			}
			return
		}
		if !allowed || !chosen {
			t.Fatalf("emitted protocol %q of %q, extra %q (extra well-formed %v)", protocol, offers, extra, wellFormed)
		}
		if !bytes.HasPrefix(out, dst) {
			t.Fatalf("dst overwritten: %q", out)
		}
		checkAccept101(t, out[len(dst):], &u, protocol, deflate, extra)
		checkGobwas(t, &u, protocol, deflate, extra)
	})
}
