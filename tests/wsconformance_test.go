package tests

import (
	"bytes"
	"compress/flate"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// WebSocket conformance, after the case groups of the Autobahn testsuite's fuzzing client:
// 1 framing, 2 pings and pongs, 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8,
// 7 close handling, 9 limits, 10 misc, 12/13 permessage-deflate, plus the opening
// handshake. Every case opens a real loopback connection to samples/wsecho, writes frames
// built by hand (masked as a client must, unless the case is about breaking that rule), in
// one write, frame by frame or in chops of a few bytes, and reads what the server sends:
// echoes, pongs, a close frame with the expected code, then the end of the TCP connection.
// A case that expects no close ends with a closing handshake of ours, so anything the server
// sent that the case did not expect shows up before the server's close. Case names start
// with the Autobahn case number when there is one ("x" when the case is ours). After its
// cases each group checks that the server still echoes on a new connection.
//
// Run: go test -race -count=1 -run TestWSConformance ./tests/

// Close codes the cases expect.
const (
	cfNormal   ws.StatusCode = 1000
	cfProtocol ws.StatusCode = 1002
	cfInvalid  ws.StatusCode = 1007
	cfTooBig   ws.StatusCode = 1009
	cfNoBody   ws.StatusCode = 0 // a close frame without a body (1000 is accepted too)
)

// cfDeflateResponse is the only permessage-deflate response the host gives.
const cfDeflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// cfOffer offers permessage-deflate without parameters.
const cfOffer = "Sec-WebSocket-Extensions: permessage-deflate"

// The key of RFC 6455 §1.3 and the accept value the RFC gives for it.
const (
	cfKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	cfAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// ---------------------------------------------------------------------------------------
// Frames

// cfFrame is one client frame, built by hand so that it can break any rule.
type cfFrame struct {
	op       ws.OpCode
	fin      bool
	rsv      byte // RSV1 = 4, RSV2 = 2, RSV3 = 1
	payload  []byte
	unmasked bool
}

// wire is the frame as sent: header, a fresh random mask, masked payload.
func (f cfFrame) wire() []byte {
	h := ws.Header{Fin: f.fin, Rsv: f.rsv, OpCode: f.op, Length: int64(len(f.payload)), Masked: !f.unmasked}
	if h.Masked {
		h.Mask = ws.NewMask()
	}
	var b bytes.Buffer
	b.Grow(ws.MaxHeaderSize + len(f.payload))
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	start := b.Len()
	b.Write(f.payload)
	if h.Masked {
		ws.Cipher(b.Bytes()[start:], h.Mask, 0)
	}
	return b.Bytes()
}

func cfData(op ws.OpCode, p []byte) cfFrame { return cfFrame{op: op, fin: true, payload: p} }
func cfText(s string) cfFrame               { return cfData(ws.OpText, []byte(s)) }
func cfBin(p []byte) cfFrame                { return cfData(ws.OpBinary, p) }
func cfCont(fin bool, s string) cfFrame {
	return cfFrame{op: ws.OpContinuation, fin: fin, payload: []byte(s)}
}
func cfPing(s string) cfFrame { return cfFrame{op: ws.OpPing, fin: true, payload: []byte(s)} }
func cfPong(s string) cfFrame { return cfFrame{op: ws.OpPong, fin: true, payload: []byte(s)} }

// cfClose is a close frame with code and reason; code 0 gives an empty body.
func cfClose(code ws.StatusCode, reason string) cfFrame {
	if code == 0 && reason == "" {
		return cfCloseBody(nil)
	}
	return cfCloseBody(append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...))
}

// cfCloseBody is a close frame with a raw body.
func cfCloseBody(body []byte) cfFrame { return cfFrame{op: ws.OpClose, fin: true, payload: body} }

// cfOp is a frame with any opcode, reserved ones included.
func cfOp(op int, fin bool, s string) cfFrame {
	return cfFrame{op: ws.OpCode(op), fin: fin, payload: []byte(s)}
}

func (f cfFrame) nofin() cfFrame         { f.fin = false; return f }
func (f cfFrame) withRsv(r byte) cfFrame { f.rsv = r; return f }
func (f cfFrame) plain() cfFrame         { f.unmasked = true; return f }
func (f cfFrame) compressed() cfFrame    { f.rsv |= 4; return f }
func cfFrames(fs ...cfFrame) []cfFrame   { return fs }

// cfJoin concatenates frame lists.
func cfJoin(parts ...[]cfFrame) []cfFrame {
	var out []cfFrame
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// cfSplit frames a message of op as fragments cut at the given payload offsets (ascending);
// no cuts gives one final frame. Empty fragments are allowed.
func cfSplit(op ws.OpCode, p []byte, cuts ...int) []cfFrame {
	var out []cfFrame
	prev := 0
	for _, c := range append(cuts, len(p)) {
		f := cfFrame{op: ws.OpContinuation, payload: p[prev:c]}
		if len(out) == 0 {
			f.op = op
		}
		out = append(out, f)
		prev = c
	}
	out[len(out)-1].fin = true
	return out
}

// cfFragments frames a message of op as fragments of size bytes (the last may be shorter).
func cfFragments(op ws.OpCode, p []byte, size int) []cfFrame {
	var cuts []int
	for c := size; c < len(p); c += size {
		cuts = append(cuts, c)
	}
	return cfSplit(op, p, cuts...)
}

// cfNParts frames a message of op as n fragments of about equal size.
func cfNParts(op ws.OpCode, p []byte, n int) []cfFrame {
	var cuts []int
	for i := 1; i < n; i++ {
		cuts = append(cuts, len(p)*i/n)
	}
	return cfSplit(op, p, cuts...)
}

// cfHeader is a hand-made frame header (with a mask) declaring length bytes of payload and
// b0 as its first byte, for cases that send a header and not the payload.
func cfHeader(b0 byte, length uint64) []byte {
	h := []byte{b0, 0x80 | 127}
	h = binary.BigEndian.AppendUint64(h, length)
	return append(h, 0x12, 0x34, 0x56, 0x78)
}

// ---------------------------------------------------------------------------------------
// Payloads

// cfBytes returns n pseudo-random bytes; the seed makes a failure reproducible.
func cfBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n]
}

// cfProse returns exactly n bytes of valid UTF-8 that compress like text, with 1- to 4-byte
// characters.
func cfProse(seed uint64, n int) []byte {
	words := []string{"lorem", "ipsum", "κόσμε", "µ@ßöäüàá", "€", "𝄞", "wasm", "loop", "echo", "\n", "🙂", "a"}
	r := rand.New(rand.NewPCG(seed, 0x7e47))
	b := make([]byte, 0, n)
	for len(b) < n {
		w := words[r.IntN(len(words))]
		if len(b)+len(w)+1 > n {
			b = append(b, strings.Repeat("x", n-len(b))...)
			break
		}
		b = append(append(b, w...), ' ')
	}
	return b
}

// cfPayload is n bytes for a message of op: prose for text, random bytes for binary.
func cfPayload(op ws.OpCode, seed uint64, n int) []byte {
	if op == ws.OpText {
		return cfProse(seed, n)
	}
	return cfBytes(seed, n)
}

func cfOpName(op ws.OpCode) string {
	switch op {
	case ws.OpText:
		return "text"
	case ws.OpBinary:
		return "binary"
	case ws.OpContinuation:
		return "continuation"
	case ws.OpPing:
		return "ping"
	case ws.OpPong:
		return "pong"
	case ws.OpClose:
		return "close"
	}
	return fmt.Sprintf("opcode %d", op)
}

// cfFlate compresses the way a client would (compress/flate, fastest level); wsflate's
// writer strips the 0x00 0x00 0xff 0xff tail (RFC 7692 §7.2.1).
var cfFlate = wsflate.Helper{
	Compressor: func(w io.Writer) wsflate.Compressor {
		f, _ := flate.NewWriter(w, flate.BestSpeed)
		return f
	},
	Decompressor: func(r io.Reader) wsflate.Decompressor { return flate.NewReader(r) },
}

// cfDeflate compresses p as one message; the helper ends it with a final (BFINAL) block,
// which RFC 7692 §7.2.3.4 allows.
func cfDeflate(p []byte) []byte {
	z, err := cfFlate.Compress(p)
	if err != nil {
		panic(err)
	}
	return z
}

// cfDeflateSync compresses p at level with a sync flush and no final block, and strips the
// tail: the form RFC 7692 §7.2.1 describes.
func cfDeflateSync(p []byte, level int) []byte {
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		panic(err)
	}
	w.Write(p)
	w.Flush()
	z := b.Bytes()
	if !bytes.HasSuffix(z, []byte{0, 0, 0xff, 0xff}) {
		panic("no sync-flush tail")
	}
	return z[:len(z)-4]
}

// cfZipped is a compressed message of op, in one frame with RSV1.
func cfZipped(op ws.OpCode, p []byte) cfFrame {
	return cfFrame{op: op, fin: true, rsv: 4, payload: cfDeflate(p)}
}

// ---------------------------------------------------------------------------------------
// Connections

// cfConn is a raw WebSocket client connection.
type cfConn struct {
	*rawConn
	t       testing.TB
	resp    *http.Response
	deflate bool // permessage-deflate was negotiated
	zipped  int  // echoes that came compressed
}

// cfRequest is an opening handshake for path with cfKey, with extra header lines.
func cfRequest(path string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + cfKey + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// cfAcceptFor is Sec-WebSocket-Accept for key (RFC 6455 §4.2.2).
func cfAcceptFor(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// cfDial connects to s, writes req followed by after in one write, and reads the response
// head (and body, for a status other than 101). The connection is closed when the test ends.
func cfDial(t testing.TB, s *server, req string, after []byte) (*rawConn, *http.Response) {
	t.Helper()
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.send(req + string(after)); err != nil {
		t.Fatalf("sending the handshake: %v", err)
	}
	resp, _, err := c.readResponse("GET", ioTimeout)
	if err != nil {
		t.Fatalf("reading the handshake response: %v", err)
	}
	return c, resp
}

// cfOpen opens a WebSocket to s; extra are more handshake header lines (an extension offer).
func cfOpen(t testing.TB, s *server, extra ...string) *cfConn {
	t.Helper()
	c, resp := cfDial(t, s, cfRequest("/", extra...), nil)
	return cfUpgraded(t, c, resp, cfAccept)
}

// cfUpgraded checks a 101 (accept value, Upgrade, Connection, at most the one deflate
// response) and returns the WebSocket.
func cfUpgraded(t testing.TB, c *rawConn, resp *http.Response, accept string) *cfConn {
	t.Helper()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d, want 101", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != accept {
		t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, accept)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Fatalf("101 with Upgrade %q, Connection %q", resp.Header.Get("Upgrade"), resp.Header.Get("Connection"))
	}
	ext := resp.Header.Values("Sec-WebSocket-Extensions")
	if len(ext) > 1 || len(ext) == 1 && ext[0] != cfDeflateResponse {
		t.Fatalf("Sec-WebSocket-Extensions = %q, want none or %q", ext, cfDeflateResponse)
	}
	return &cfConn{rawConn: c, t: t, resp: resp, deflate: len(ext) == 1}
}

// write writes b in one write.
func (c *cfConn) write(b []byte) error {
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := c.Conn.Write(b)
	return err
}

// cfChop says how a step's bytes are written: all in one write (the zero value), one write
// per frame, or in writes of size bytes; with delay between writes.
type cfChop struct {
	frames bool
	size   int
	delay  time.Duration
}

var (
	cfWhole     = cfChop{}
	cfFramewise = cfChop{frames: true, delay: time.Millisecond}
	cfOctetwise = cfChop{size: 1}
)

func (m cfChop) String() string {
	switch {
	case m.frames:
		return "framewise"
	case m.size == 1:
		return "octetwise"
	case m.size > 0:
		return fmt.Sprintf("chops of %d", m.size)
	}
	return "whole"
}

// send writes the frames and then raw, as mode says.
func (c *cfConn) send(mode cfChop, frames []cfFrame, raw []byte) error {
	var chunks [][]byte
	if mode.frames {
		for _, f := range frames {
			chunks = append(chunks, f.wire())
		}
		if len(raw) > 0 {
			chunks = append(chunks, raw)
		}
	} else {
		var all []byte
		for _, f := range frames {
			all = append(all, f.wire()...)
		}
		all = append(all, raw...)
		if mode.size <= 0 {
			chunks = [][]byte{all}
		} else {
			for len(all) > 0 {
				n := min(mode.size, len(all))
				chunks, all = append(chunks, all[:n]), all[n:]
			}
		}
	}
	for i, b := range chunks {
		if i > 0 && mode.delay > 0 {
			time.Sleep(mode.delay)
		}
		if err := c.write(b); err != nil {
			return err
		}
	}
	return nil
}

// sendAsync sends from another goroutine, for a case that must read while it writes; the
// returned function waits (bounded) for the writer and returns its error.
func (c *cfConn) sendAsync(mode cfChop, frames []cfFrame, raw []byte) func() error {
	errc := make(chan error, 1)
	go func() { errc <- c.send(mode, frames, raw) }()
	return func() error {
		select {
		case err := <-errc:
			return err
		case <-time.After(ioTimeout):
			return errors.New("the writer is still blocked")
		}
	}
}

// cfEvent is something the server said: a whole message, a pong, a ping or a close.
type cfEvent struct {
	op   ws.OpCode     // ws.OpText or ws.OpBinary for a message, else the control opcode
	data []byte        // the message (decompressed), the ping or pong payload, the close reason
	code ws.StatusCode // a close's code; 0 for a close without a body
}

func cfMsg(op ws.OpCode, p []byte) cfEvent { return cfEvent{op: op, data: p} }
func cfTextMsg(s string) cfEvent           { return cfMsg(ws.OpText, []byte(s)) }
func cfBinMsg(p []byte) cfEvent            { return cfMsg(ws.OpBinary, p) }
func cfPongOf(s string) cfEvent            { return cfEvent{op: ws.OpPong, data: []byte(s)} }
func cfCloseWith(code ws.StatusCode) cfEvent {
	return cfEvent{op: ws.OpClose, code: code}
}

func (e cfEvent) String() string {
	switch e.op {
	case ws.OpClose:
		if e.code == 0 {
			return fmt.Sprintf("close without a body (reason %q)", e.data)
		}
		return fmt.Sprintf("close %d %q", e.code, e.data)
	case ws.OpText, ws.OpBinary:
		s := e.data
		if len(s) > 40 {
			s = s[:40]
		}
		return fmt.Sprintf("%s message of %d bytes %q…", cfOpName(e.op), len(e.data), s)
	}
	return fmt.Sprintf("%s %q", cfOpName(e.op), e.data)
}

// matches reports whether got is the event e expects. A close without a body is answered
// with an empty close or 1000 (RFC 6455 §5.5.1; Autobahn accepts both); close reasons are
// not compared.
func (e cfEvent) matches(got cfEvent) bool {
	if got.op != e.op {
		return false
	}
	if e.op == ws.OpClose {
		return got.code == e.code || e.code == cfNoBody && got.code == cfNormal
	}
	return bytes.Equal(got.data, e.data)
}

// readFrame reads one server frame within ioTimeout.
func (c *cfConn) readFrame() (ws.Header, []byte, error) {
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return h, nil, err
	}
	if h.Length > 64<<20 {
		return h, nil, fmt.Errorf("server frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(c.br, p)
	return h, p, err
}

// next reads the server's next event, checking that its frames follow RFC 6455 for a server:
// unmasked, no reserved opcode, RSV1 only on the first frame of a message and only with
// permessage-deflate, control frames final and at most 125 bytes, text valid UTF-8, close
// bodies well formed.
func (c *cfConn) next() (cfEvent, error) {
	var ev cfEvent
	inMsg, zipped := false, false
	var msg []byte
	for {
		h, p, err := c.readFrame()
		if err != nil {
			return ev, err
		}
		switch {
		case h.Masked:
			return ev, fmt.Errorf("masked server frame %+v (RFC 6455 §5.1)", h)
		case h.OpCode.IsReserved():
			return ev, fmt.Errorf("server frame with reserved opcode %d", h.OpCode)
		case h.OpCode.IsControl():
			if !h.Fin || h.Length > 125 || h.Rsv != 0 {
				return ev, fmt.Errorf("malformed server control frame %+v", h)
			}
			ev := cfEvent{op: h.OpCode, data: p}
			if h.OpCode == ws.OpClose {
				if len(p) == 1 {
					return ev, errors.New("server close frame with a 1-byte body")
				}
				if len(p) >= 2 {
					ev.code, ev.data = ws.StatusCode(binary.BigEndian.Uint16(p)), p[2:]
					if ev.code < 1000 || ev.code >= 5000 || ev.code.IsProtocolReserved() || ev.code == 1004 {
						return ev, fmt.Errorf("server close code %d may not be sent", ev.code)
					}
				}
				if !utf8.Valid(ev.data) {
					return ev, fmt.Errorf("server close reason %q is not UTF-8", ev.data)
				}
			}
			return ev, nil
		case h.OpCode == ws.OpContinuation:
			if !inMsg || h.Rsv != 0 {
				return ev, fmt.Errorf("unexpected server continuation frame %+v", h)
			}
		default:
			if inMsg {
				return ev, fmt.Errorf("server data frame %+v inside a fragmented message", h)
			}
			if h.Rsv != 0 && !(h.Rsv == 4 && c.deflate) {
				return ev, fmt.Errorf("server frame with RSV bits %03b", h.Rsv)
			}
			inMsg, zipped, ev.op = true, h.Rsv == 4, h.OpCode
		}
		msg = append(msg, p...)
		if !h.Fin {
			continue
		}
		if zipped {
			c.zipped++
			if msg, err = cfFlate.Decompress(msg); err != nil {
				return ev, fmt.Errorf("decompressing the server's message: %v", err)
			}
		}
		if ev.op == ws.OpText && !utf8.Valid(msg) {
			return ev, errors.New("server text message is not valid UTF-8")
		}
		ev.data = msg
		return ev, nil
	}
}

// expect reads events until each of want has come, in order; any other event first fails
// the test.
func (c *cfConn) expect(want ...cfEvent) {
	c.t.Helper()
	for i, w := range want {
		got, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for %v (event %d of %d): %v", w, i+1, len(want), err)
		}
		if !w.matches(got) {
			c.t.Fatalf("event %d of %d: got %v, want %v", i+1, len(want), got, w)
		}
	}
}

// expectEnd checks that the server closes the TCP connection (EOF, nothing more) after its
// close frame.
func (c *cfConn) expectEnd() {
	c.t.Helper()
	if err := c.expectEOF(ioTimeout); err != nil {
		c.t.Fatalf("after the close frame: %v", err)
	}
}

// expectClose expects a close frame with code, then the end of the connection.
func (c *cfConn) expectClose(code ws.StatusCode) {
	c.t.Helper()
	c.expect(cfCloseWith(code))
	c.expectEnd()
}

// closeCleanly sends close 1000 and expects it answered and the connection closed: an echo
// or a pong that was still due, or anything unexpected, fails.
func (c *cfConn) closeCleanly() {
	c.t.Helper()
	if err := c.send(cfWhole, cfFrames(cfClose(cfNormal, "")), nil); err != nil {
		c.t.Fatalf("sending close: %v", err)
	}
	c.expectClose(cfNormal)
}

// roundTrip sends frames (one write) and expects want; for the bigger cases, the writer runs
// concurrently with the reader.
func (c *cfConn) roundTrip(mode cfChop, frames []cfFrame, want ...cfEvent) {
	c.t.Helper()
	wait := c.sendAsync(mode, frames, nil)
	c.expect(want...)
	if err := wait(); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// ---------------------------------------------------------------------------------------
// Table-driven cases

// cfStep writes frames (then raw bytes, for partial or hand-made frames) and expects events.
type cfStep struct {
	send []cfFrame
	mode cfChop
	raw  []byte
	want []cfEvent
}

// cfCase is one case: a connection (ext: more handshake lines) and its steps. When the last
// expected event is a close, the server must then close the TCP connection; otherwise the
// case ends with a clean closing handshake of ours.
type cfCase struct {
	name  string
	ext   []string
	steps []cfStep
}

// cfc is a one-step case.
func cfc(name string, mode cfChop, send []cfFrame, want ...cfEvent) cfCase {
	return cfCase{name: name, steps: []cfStep{{send: send, mode: mode, want: want}}}
}

// cfRaw is a one-step case whose frames are followed by raw bytes.
func cfRaw(name string, send []cfFrame, raw []byte, want ...cfEvent) cfCase {
	return cfCase{name: name, steps: []cfStep{{send: send, raw: raw, want: want}}}
}

func (tc cfCase) with(ext ...string) cfCase { tc.ext = ext; return tc }

// cfRun runs the cases as parallel subtests against s.
func cfRun(t *testing.T, s *server, cases []cfCase) {
	t.Helper()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cfOpen(t, s, tc.ext...)
			for i, st := range tc.steps {
				last := i == len(tc.steps)-1
				failing := len(st.want) > 0 && st.want[len(st.want)-1].op == ws.OpClose
				if err := c.send(st.mode, st.send, st.raw); err != nil && !failing {
					t.Fatalf("step %d: send: %v", i+1, err)
				}
				c.expect(st.want...)
				if failing {
					if !last {
						t.Fatalf("step %d expects a close, yet more steps follow", i+1)
					}
					c.expectEnd()
					return
				}
			}
			c.closeCleanly()
		})
	}
}

// cfGroup starts a wsecho server with flags, runs cases (a function adding subtests) in
// parallel, then checks the server is still healthy.
func cfGroup(t *testing.T, flags []string, cases func(t *testing.T, s *server)) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wsecho", Flags: flags})
	t.Run("cases", func(t *testing.T) { cases(t, s) })
	t.Run("healthy", func(t *testing.T) { cfHealthy(t, s) })
}

// cfHealthy checks that s still runs and echoes on a new connection.
func cfHealthy(t testing.TB, s *server) {
	t.Helper()
	if s.exited() {
		t.Fatalf("the server exited: %v", s.waitErr)
	}
	c := cfOpen(t, s)
	blob := cfBytes(99, 300)
	c.roundTrip(cfWhole, cfFrames(cfText("still here ✓"), cfBin(blob), cfPing("alive?")),
		cfTextMsg("still here ✓"), cfBinMsg(blob), cfPongOf("alive?"))
	c.closeCleanly()
}

// ---------------------------------------------------------------------------------------
// 1 Framing

func TestWSConformanceFraming(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		var cases []cfCase
		lengths := []int{0, 125, 126, 127, 128, 65535, 65536}
		for g, op := range []ws.OpCode{ws.OpText, ws.OpBinary} {
			for i, n := range lengths {
				p := cfPayload(op, uint64(100*g+i), n)
				cases = append(cases, cfc(fmt.Sprintf("1.%d.%d %s length %d", g+1, i+1, cfOpName(op), n),
					cfWhole, cfFrames(cfData(op, p)), cfMsg(op, p)))
			}
			p := cfPayload(op, uint64(100*g+8), 65536)
			cases = append(cases, cfc(fmt.Sprintf("1.%d.8 %s length 65536 in chops of 997", g+1, cfOpName(op)),
				cfChop{size: 997}, cfFrames(cfData(op, p)), cfMsg(op, p)))
			for _, n := range []int{126, 127} {
				p := cfPayload(op, uint64(100*g+n), n)
				cases = append(cases, cfc(fmt.Sprintf("x.%d %s length %d octetwise", g+1, cfOpName(op), n),
					cfOctetwise, cfFrames(cfData(op, p)), cfMsg(op, p)))
			}
			p = cfPayload(op, uint64(100*g+9), 1000)
			cases = append(cases, cfc(fmt.Sprintf("x.%d %s length 1000 in chops of 7 with delays", g+1, cfOpName(op)),
				cfChop{size: 7, delay: 200 * time.Microsecond}, cfFrames(cfData(op, p)), cfMsg(op, p)))
		}
		b := cfBytes(7, 70000)
		cases = append(cases,
			cfc("x mixed messages in one write", cfWhole,
				cfFrames(cfText("one"), cfBin(b[:3]), cfText(""), cfBin(b), cfText("κόσμε")),
				cfTextMsg("one"), cfBinMsg(b[:3]), cfTextMsg(""), cfBinMsg(b), cfTextMsg("κόσμε")),
			// RFC 6455 §5.1: a server MUST close the connection on an unmasked client frame.
			cfc("x unmasked text", cfWhole, cfFrames(cfText("Hello").plain()), cfCloseWith(cfProtocol)),
			cfc("x unmasked empty binary", cfWhole, cfFrames(cfBin(nil).plain()), cfCloseWith(cfProtocol)),
			cfc("x unmasked ping", cfWhole, cfFrames(cfPing("p").plain()), cfCloseWith(cfProtocol)),
			cfc("x unmasked close", cfWhole, cfFrames(cfClose(cfNormal, "").plain()), cfCloseWith(cfProtocol)),
			cfc("x echo then unmasked text", cfWhole, cfFrames(cfText("first"), cfText("second").plain(), cfPing("no")),
				cfTextMsg("first"), cfCloseWith(cfProtocol)),
			// RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
			cfRaw("x 64-bit length with the top bit set", nil, cfHeader(0x82, 1<<63|5), cfCloseWith(cfProtocol)),
		)
		cfRun(t, s, cases)
	})
}

// ---------------------------------------------------------------------------------------
// 2 Pings and pongs

func TestWSConformancePings(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		bin := string([]byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff})
		p125, p126 := strings.Repeat("\xfe", 125), strings.Repeat("\xfe", 126)
		var ten []cfFrame
		var tenPongs []cfEvent
		for i := range 10 {
			p := fmt.Sprintf("payload-%d", i)
			ten, tenPongs = append(ten, cfPing(p)), append(tenPongs, cfPongOf(p))
		}
		cases := []cfCase{
			cfc("2.1 ping without payload", cfWhole, cfFrames(cfPing("")), cfPongOf("")),
			cfc("2.2 ping with text payload", cfWhole, cfFrames(cfPing("Hello, world!")), cfPongOf("Hello, world!")),
			cfc("2.3 ping with binary payload", cfWhole, cfFrames(cfPing(bin)), cfPongOf(bin)),
			cfc("2.4 ping with 125-byte payload", cfWhole, cfFrames(cfPing(p125)), cfPongOf(p125)),
			cfc("2.5 ping with 126-byte payload", cfWhole, cfFrames(cfPing(p126)), cfCloseWith(cfProtocol)),
			cfc("2.6 ping with 125-byte payload octetwise", cfOctetwise, cfFrames(cfPing(p125)), cfPongOf(p125)),
			cfc("2.7 unsolicited pong without payload", cfWhole, cfFrames(cfPong(""))),
			cfc("2.8 unsolicited pong with payload", cfWhole, cfFrames(cfPong("unsolicited pong payload"))),
			cfc("2.9 unsolicited pong, then ping", cfWhole,
				cfFrames(cfPong("unsolicited pong payload"), cfPing("ping payload")), cfPongOf("ping payload")),
			cfc("2.10 ten pings", cfWhole, ten, tenPongs...),
			cfc("2.11 ten pings framewise", cfFramewise, ten, tenPongs...),
			cfc("x ten pings octetwise", cfOctetwise, ten, tenPongs...),
			cfc("x pong with 126-byte payload", cfWhole, cfFrames(cfPong(p126)), cfCloseWith(cfProtocol)),
			cfc("x ping between messages", cfWhole, cfFrames(cfText("a"), cfPing("between"), cfText("b")),
				cfTextMsg("a"), cfPongOf("between"), cfTextMsg("b")),
			cfc("x pings and pongs mixed", cfWhole, cfFrames(cfPing("1"), cfPong("x"), cfPing("2"), cfPong(""), cfPing("3")),
				cfPongOf("1"), cfPongOf("2"), cfPongOf("3")),
		}
		cfRun(t, s, cases)
	})
}

// ---------------------------------------------------------------------------------------
// 3 Reserved bits (no extension negotiated: any RSV bit fails the connection, RFC 6455 §5.2)

func TestWSConformanceReservedBits(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		hello := "Hello, world!"
		cases := []cfCase{
			cfc("3.1 text with RSV 1", cfWhole, cfFrames(cfText(hello).withRsv(1)), cfCloseWith(cfProtocol)),
			cfc("3.2 text, text with RSV 2, ping", cfWhole,
				cfFrames(cfText(hello), cfText(hello).withRsv(2), cfPing(hello)), cfTextMsg(hello), cfCloseWith(cfProtocol)),
			cfc("3.3 text, text with RSV 3, ping framewise", cfFramewise,
				cfFrames(cfText(hello), cfText(hello).withRsv(3), cfPing(hello)), cfTextMsg(hello), cfCloseWith(cfProtocol)),
			cfc("3.4 text, text with RSV 4, ping octetwise", cfOctetwise,
				cfFrames(cfText(hello), cfText(hello).withRsv(4), cfPing(hello)), cfTextMsg(hello), cfCloseWith(cfProtocol)),
			cfc("3.5 binary with RSV 5", cfWhole, cfFrames(cfBin(bytes.Repeat([]byte{0xff}, 8)).withRsv(5)), cfCloseWith(cfProtocol)),
			cfc("3.6 ping with RSV 6", cfWhole, cfFrames(cfPing(hello).withRsv(6)), cfCloseWith(cfProtocol)),
			cfc("3.7 close with RSV 7", cfWhole, cfFrames(cfClose(cfNormal, "").withRsv(7)), cfCloseWith(cfProtocol)),
		}
		// Every RSV combination on every frame type, after a message that must be echoed
		// first; the ping after the bad frame must not be answered.
		kinds := []struct {
			name string
			bad  func(rsv byte) []cfFrame
		}{
			{"text", func(r byte) []cfFrame { return cfFrames(cfText("bad").withRsv(r)) }},
			{"binary", func(r byte) []cfFrame { return cfFrames(cfBin([]byte("bad")).withRsv(r)) }},
			{"continuation", func(r byte) []cfFrame {
				return cfFrames(cfText("frag").nofin(), cfCont(true, "ment").withRsv(r))
			}},
			{"ping", func(r byte) []cfFrame { return cfFrames(cfPing("bad").withRsv(r)) }},
			{"pong", func(r byte) []cfFrame { return cfFrames(cfPong("bad").withRsv(r)) }},
			{"close", func(r byte) []cfFrame { return cfFrames(cfClose(cfNormal, "bad").withRsv(r)) }},
		}
		for _, k := range kinds {
			for rsv := byte(1); rsv <= 7; rsv++ {
				send := cfJoin(cfFrames(cfText("before")), k.bad(rsv), cfFrames(cfPing("after")))
				cases = append(cases, cfc(fmt.Sprintf("x %s with RSV bits %03b", k.name, rsv), cfWhole, send,
					cfTextMsg("before"), cfCloseWith(cfProtocol)))
			}
		}
		cfRun(t, s, cases)
	})
}

// ---------------------------------------------------------------------------------------
// 4 Opcodes

func TestWSConformanceOpcodes(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		hello := "Hello, world!"
		var cases []cfCase
		for g, ops := range [][]int{{3, 4, 5, 6, 7}, {11, 12, 13, 14, 15}} {
			kind := "non-control"
			if g == 1 {
				kind = "control"
			}
			cases = append(cases,
				cfc(fmt.Sprintf("4.%d.1 reserved %s opcode %d", g+1, kind, ops[0]), cfWhole,
					cfFrames(cfOp(ops[0], true, "")), cfCloseWith(cfProtocol)),
				cfc(fmt.Sprintf("4.%d.2 reserved %s opcode %d with payload", g+1, kind, ops[1]), cfWhole,
					cfFrames(cfOp(ops[1], true, "reserved opcode payload")), cfCloseWith(cfProtocol)),
				cfc(fmt.Sprintf("4.%d.3 text, reserved %s opcode %d, ping", g+1, kind, ops[2]), cfWhole,
					cfFrames(cfText(hello), cfOp(ops[2], true, ""), cfPing(hello)), cfTextMsg(hello), cfCloseWith(cfProtocol)),
				cfc(fmt.Sprintf("4.%d.4 text, reserved %s opcode %d with payload, ping", g+1, kind, ops[3]), cfWhole,
					cfFrames(cfText(hello), cfOp(ops[3], true, "reserved opcode payload"), cfPing(hello)),
					cfTextMsg(hello), cfCloseWith(cfProtocol)),
				cfc(fmt.Sprintf("4.%d.5 text, reserved %s opcode %d with payload, ping octetwise", g+1, kind, ops[4]), cfOctetwise,
					cfFrames(cfText(hello), cfOp(ops[4], true, "reserved opcode payload"), cfPing(hello)),
					cfTextMsg(hello), cfCloseWith(cfProtocol)),
			)
			for _, op := range ops {
				cases = append(cases,
					cfc(fmt.Sprintf("x opcode %d not final", op), cfWhole, cfFrames(cfOp(op, false, "x")), cfCloseWith(cfProtocol)),
					cfc(fmt.Sprintf("x opcode %d inside a fragmented message", op), cfWhole,
						cfFrames(cfText("frag").nofin(), cfOp(op, true, ""), cfCont(true, "ment")), cfCloseWith(cfProtocol)))
			}
		}
		cfRun(t, s, cases)
	})
}

// ---------------------------------------------------------------------------------------
// 5 Fragmentation

func TestWSConformanceFragmentation(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		hello := "Hello, world!"
		twoFrags := cfFrames(cfText("fragment1").nofin(), cfCont(true, "fragment2"))
		withPing := cfFrames(cfText("fragment1").nofin(), cfPing("ping payload"), cfCont(true, "fragment2"))
		contFirst := func(fin bool) []cfFrame {
			return cfFrames(cfCont(fin, "non-continuation payload"), cfText(hello))
		}
		cases := []cfCase{
			cfc("5.1 ping in 2 fragments", cfWhole, cfFrames(cfPing("fragment1").nofin(), cfCont(true, "fragment2")), cfCloseWith(cfProtocol)),
			cfc("5.2 pong in 2 fragments", cfWhole, cfFrames(cfPong("fragment1").nofin(), cfCont(true, "fragment2")), cfCloseWith(cfProtocol)),
			cfc("5.3 text in 2 fragments", cfWhole, twoFrags, cfTextMsg("fragment1fragment2")),
			cfc("5.4 text in 2 fragments octetwise", cfOctetwise, twoFrags, cfTextMsg("fragment1fragment2")),
			cfc("5.5 text in 2 fragments framewise", cfFramewise, twoFrags, cfTextMsg("fragment1fragment2")),
			cfc("5.6 text in 2 fragments, ping between", cfWhole, withPing, cfPongOf("ping payload"), cfTextMsg("fragment1fragment2")),
			cfc("5.7 text in 2 fragments, ping between, octetwise", cfOctetwise, withPing, cfPongOf("ping payload"), cfTextMsg("fragment1fragment2")),
			cfc("5.8 text in 2 fragments, ping between, framewise", cfFramewise, withPing, cfPongOf("ping payload"), cfTextMsg("fragment1fragment2")),
			cfc("5.9 final continuation without a message", cfWhole, contFirst(true), cfCloseWith(cfProtocol)),
			cfc("5.10 final continuation without a message, octetwise", cfOctetwise, contFirst(true), cfCloseWith(cfProtocol)),
			cfc("5.11 final continuation without a message, framewise", cfFramewise, contFirst(true), cfCloseWith(cfProtocol)),
			cfc("5.12 continuation without a message", cfWhole, contFirst(false), cfCloseWith(cfProtocol)),
			cfc("5.13 continuation without a message, octetwise", cfOctetwise, contFirst(false), cfCloseWith(cfProtocol)),
			cfc("5.14 continuation without a message, framewise", cfFramewise, contFirst(false), cfCloseWith(cfProtocol)),
			cfc("5.15 text in 2 fragments, then a continuation", cfWhole,
				cfFrames(cfText("fragment1").nofin(), cfCont(true, "fragment2"), cfCont(false, "fragment3"), cfText("fragment4")),
				cfTextMsg("fragment1fragment2"), cfCloseWith(cfProtocol)),
			cfc("5.16 continuation, text, continuation (twice)", cfWhole,
				cfFrames(cfCont(false, "fragment1"), cfText("fragment2").nofin(), cfCont(true, "fragment3"),
					cfCont(false, "fragment1"), cfText("fragment2").nofin(), cfCont(true, "fragment3")),
				cfCloseWith(cfProtocol)),
			cfc("5.17 final continuation, text, continuation (twice)", cfWhole,
				cfFrames(cfCont(true, "fragment1"), cfText("fragment2").nofin(), cfCont(true, "fragment3"),
					cfCont(true, "fragment1"), cfText("fragment2").nofin(), cfCont(true, "fragment3")),
				cfCloseWith(cfProtocol)),
			cfc("5.18 text in 2 fragments, both text", cfWhole,
				cfFrames(cfText("fragment1").nofin(), cfText("fragment2")), cfCloseWith(cfProtocol)),
			cfc("x binary during a fragmented text", cfWhole,
				cfFrames(cfText("fragment1").nofin(), cfBin([]byte("fragment2"))), cfCloseWith(cfProtocol)),
			cfc("x text during a fragmented binary", cfWhole,
				cfFrames(cfBin([]byte("fragment1")).nofin(), cfCont(false, "fragment2"), cfText("fragment3")), cfCloseWith(cfProtocol)),
			cfc("x close in 2 fragments", cfWhole, cfFrames(cfClose(cfNormal, "frag").nofin(), cfCont(true, "ment")), cfCloseWith(cfProtocol)),
			cfc("x close not final, alone", cfWhole, cfFrames(cfClose(cfNormal, "").nofin()), cfCloseWith(cfProtocol)),
			cfc("x empty text fragments", cfWhole, cfFrames(cfText("").nofin(), cfCont(false, ""), cfCont(true, "")), cfTextMsg("")),
			cfc("x empty binary fragments", cfWhole, cfFrames(cfBin(nil).nofin(), cfCont(false, ""), cfCont(true, "")), cfBinMsg(nil)),
			cfc("x empty first and last fragments", cfWhole, cfFrames(cfBin(nil).nofin(), cfCont(false, "middle"), cfCont(true, "")), cfBinMsg([]byte("middle"))),
			cfc("x fragmented message, then a whole one", cfWhole,
				cfFrames(cfText("a").nofin(), cfCont(true, "b"), cfText("c"), cfBin([]byte("d")).nofin(), cfCont(true, "e")),
				cfTextMsg("ab"), cfTextMsg("c"), cfBinMsg([]byte("de"))),
		}
		// 5.19/5.20: the first pong must come while the message is still incomplete.
		pings := func(name string, mode cfChop) cfCase {
			return cfCase{name: name, steps: []cfStep{
				{mode: mode, send: cfFrames(cfText("fragment1").nofin(), cfCont(false, "fragment2"), cfPing("pongme 1!")),
					want: []cfEvent{cfPongOf("pongme 1!")}},
				{mode: mode, send: cfFrames(cfCont(false, "fragment3"), cfCont(false, "fragment4"), cfPing("pongme 2!"), cfCont(true, "fragment5")),
					want: []cfEvent{cfPongOf("pongme 2!"), cfTextMsg("fragment1fragment2fragment3fragment4fragment5")}},
			}}
		}
		cases = append(cases, pings("5.19 pings between fragments, pong before the message ends", cfWhole),
			pings("5.20 pings between fragments, framewise", cfFramewise))
		// Text and binary in 1 to 8 fragments, cut anywhere (inside characters too), with and
		// without a ping after each fragment.
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary} {
			p := []byte("fragmented payload µ𝄞 κόσμε")
			if op == ws.OpBinary {
				p = cfBytes(5, 200)
			}
			for n := 1; n <= 8; n++ {
				frames := cfNParts(op, p, n)
				cases = append(cases, cfc(fmt.Sprintf("x %s in %d fragments", cfOpName(op), n), cfWhole, frames, cfMsg(op, p)))
				var mixed []cfFrame
				var want []cfEvent
				for i, f := range frames {
					mixed = append(mixed, f)
					if i < len(frames)-1 {
						ping := fmt.Sprintf("after fragment %d", i+1)
						mixed, want = append(mixed, cfPing(ping)), append(want, cfPongOf(ping))
					}
				}
				cases = append(cases, cfc(fmt.Sprintf("x %s in %d fragments, pings between", cfOpName(op), n), cfWhole,
					mixed, append(want, cfMsg(op, p))...))
			}
		}
		cfRun(t, s, cases)
	})
}

// ---------------------------------------------------------------------------------------
// 6 UTF-8

// cfUTF8 is one of Autobahn's UTF-8 test sequences (from Markus Kuhn's UTF-8-test.txt).
type cfUTF8 struct {
	valid bool
	s     string
}

// cfUTF8Groups returns Autobahn's UTF-8 test sequences, in the groups of cases 6.5 to 6.23.
func cfUTF8Groups() [][]cfUTF8 {
	v := func(s string) cfUTF8 { return cfUTF8{true, s} }
	x := func(s string) cfUTF8 { return cfUTF8{false, s} }
	vss := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" // κόσμε
	var g [][]cfUTF8
	add := func(seqs ...cfUTF8) { g = append(g, seqs) }
	add(v("hello\x24world"), v("hello\xc2\xa2world"), v("hello\xe2\x82\xacworld"), v("hello\xf0\xa4\xad\xa2world"), v(vss))
	var prefixes []cfUTF8
	for i := 1; i <= len(vss); i++ {
		prefixes = append(prefixes, cfUTF8{utf8.ValidString(vss[:i]), vss[:i]})
	}
	add(prefixes...)
	add(v("\x00"), v("\xc2\x80"), v("\xe0\xa0\x80"), v("\xf0\x90\x80\x80"))
	add(x("\xf8\x88\x80\x80\x80"), x("\xfc\x84\x80\x80\x80\x80"))
	add(v("\x7f"), v("\xdf\xbf"), v("\xef\xbf\xbf"), v("\xf4\x8f\xbf\xbf"))
	add(x("\xf7\xbf\xbf\xbf"), x("\xfb\xbf\xbf\xbf\xbf"), x("\xfd\xbf\xbf\xbf\xbf\xbf"))
	add(v("\xed\x9f\xbf"), v("\xee\x80\x80"), v("\xef\xbf\xbd"), v("\xf4\x8f\xbf\xbf"), x("\xf4\x90\x80\x80"))
	var conts []byte
	for b := 0x80; b < 0xbf; b++ {
		conts = append(conts, byte(b))
	}
	add(x("\x80"), x("\xbf"), x("\x80\xbf"), x("\x80\xbf\x80"), x("\x80\xbf\x80\xbf"), x("\x80\xbf\x80\xbf\x80"),
		x("\x80\xbf\x80\xbf\x80\xbf"), x(string(conts)))
	var lonely []cfUTF8
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var s []byte
		for b := r[0]; b < r[1]; b++ {
			s = append(s, byte(b), 0x20)
		}
		lonely = append(lonely, x(string(s)))
	}
	add(lonely...)
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	var miss []cfUTF8
	for _, m := range missing {
		miss = append(miss, x(m))
	}
	add(miss...)
	add(x(strings.Join(missing, "")))
	add(x("\xfe"), x("\xff"), x("\xfe\xfe\xff\xff"))
	add(x("\xc0\xaf"), x("\xe0\x80\xaf"), x("\xf0\x80\x80\xaf"), x("\xf8\x80\x80\x80\xaf"), x("\xfc\x80\x80\x80\x80\xaf"))
	add(x("\xc1\xbf"), x("\xe0\x9f\xbf"), x("\xf0\x8f\xbf\xbf"), x("\xf8\x87\xbf\xbf\xbf"), x("\xfc\x83\xbf\xbf\xbf\xbf"))
	add(x("\xc0\x80"), x("\xe0\x80\x80"), x("\xf0\x80\x80\x80"), x("\xf8\x80\x80\x80\x80"), x("\xfc\x80\x80\x80\x80\x80"))
	add(x("\xed\xa0\x80"), x("\xed\xad\xbf"), x("\xed\xae\x80"), x("\xed\xaf\xbf"), x("\xed\xb0\x80"), x("\xed\xbe\x80"), x("\xed\xbf\xbf"))
	add(x("\xed\xa0\x80\xed\xb0\x80"), x("\xed\xa0\x80\xed\xbf\xbf"), x("\xed\xad\xbf\xed\xb0\x80"), x("\xed\xad\xbf\xed\xbf\xbf"),
		x("\xed\xae\x80\xed\xb0\x80"), x("\xed\xae\x80\xed\xbf\xbf"), x("\xed\xaf\xbf\xed\xb0\x80"), x("\xed\xaf\xbf\xed\xbf\xbf"))
	nonchars := []cfUTF8{v("\xef\xbf\xbe"), v("\xef\xbf\xbf")}
	for _, z1 := range []string{"\xf0", "\xf1", "\xf2", "\xf3", "\xf4"} {
		for _, z2 := range []string{"\x8f", "\x9f", "\xaf", "\xbf"} {
			if z1 == "\xf4" && z2 != "\x8f" {
				continue // above U+10FFFF
			}
			for _, z3 := range []string{"\xbe", "\xbf"} {
				if zz := z1 + z2 + "\xbf" + z3; zz != "\xf0\x8f\xbf\xbe" && zz != "\xf0\x8f\xbf\xbf" {
					nonchars = append(nonchars, v(zz))
				}
			}
		}
	}
	add(nonchars...)
	add(v("\xef\xbf\xb9"), v("\xef\xbf\xba"), v("\xef\xbf\xbb"), v("\xef\xbf\xbc"), v("\xef\xbf\xbd"), v("\xef\xbf\xbe"), v("\xef\xbf\xbf"))
	return g
}

// cfTextIn1ByteFragments frames text s as fragments of one byte each.
func cfTextIn1ByteFragments(s string) []cfFrame { return cfFragments(ws.OpText, []byte(s), 1) }

func TestWSConformanceUTF8(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		vss := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" // κόσμε
		hello := "Hello-µ@ßöäüàá-UTF-8!!"
		bad := vss + "\xed\xa0\x80" + "edited" // a surrogate inside
		cases := []cfCase{
			cfc("6.1.1 empty text", cfWhole, cfFrames(cfText("")), cfTextMsg("")),
			cfc("6.1.2 three empty text fragments", cfWhole, cfFrames(cfText("").nofin(), cfCont(false, ""), cfCont(true, "")), cfTextMsg("")),
			cfc("6.1.3 empty, payload, empty fragments", cfWhole,
				cfFrames(cfText("").nofin(), cfCont(false, "middle frame payload"), cfCont(true, "")), cfTextMsg("middle frame payload")),
			cfc("6.2.1 valid UTF-8 in one frame", cfWhole, cfFrames(cfText(hello)), cfTextMsg(hello)),
			cfc("6.2.2 valid UTF-8 in 2 fragments at a character boundary", cfWhole,
				cfSplit(ws.OpText, []byte(hello), strings.Index(hello, "ß")), cfTextMsg(hello)),
			cfc("6.2.3 valid UTF-8 in 1-byte fragments", cfWhole, cfTextIn1ByteFragments(hello), cfTextMsg(hello)),
			cfc("6.2.4 κόσμε in 1-byte fragments", cfWhole, cfTextIn1ByteFragments(vss), cfTextMsg(vss)),
			cfc("6.3.1 invalid UTF-8 in one frame", cfWhole, cfFrames(cfText(bad)), cfCloseWith(cfInvalid)),
			cfc("6.3.2 invalid UTF-8 in 1-byte fragments", cfWhole, cfTextIn1ByteFragments(bad), cfCloseWith(cfInvalid)),
			// 6.4: fail fast. Only the start of the message is sent: the 1007 must come before
			// the rest (it never comes here), as soon as the first byte that cannot continue
			// valid UTF-8 arrives.
			cfc("6.4.1 invalid fragment, rest not sent", cfWhole,
				cfFrames(cfText(vss).nofin(), cfCont(false, "\xf4\x90\x80\x80")), cfCloseWith(cfInvalid)),
			cfc("6.4.2 invalid byte in its own fragment, rest not sent", cfWhole,
				cfFrames(cfText(vss+"\xf4").nofin(), cfCont(false, "\x90")), cfCloseWith(cfInvalid)),
			cfRaw("6.4.3 invalid bytes in a partial frame, rest not sent", nil,
				cfText(vss + "\xf4\x90\x80\x80" + "edited").wire()[:2+4+len(vss)+4], cfCloseWith(cfInvalid)),
			cfRaw("6.4.4 invalid byte at the end of a partial frame, rest not sent", nil,
				cfText(vss + "\xf4\x90\x80\x80" + "edited").wire()[:2+4+len(vss)+2], cfCloseWith(cfInvalid)),
			cfc("x invalid first fragment, rest not sent", cfWhole,
				cfFrames(cfText("\xc0\xaf and more").nofin()), cfCloseWith(cfInvalid)),
			cfc("x valid fragments, then an invalid one, rest not sent", cfWhole,
				cfFrames(cfText("a\xf0\x9d").nofin(), cfCont(false, "\x84"), cfCont(false, "\x9e ok \xff")), cfCloseWith(cfInvalid)),
			cfc("x message ending inside a character", cfWhole,
				cfFrames(cfText("a\xf0\x9d").nofin(), cfCont(true, "\x84")), cfCloseWith(cfInvalid)),
			cfc("x 4-byte characters octetwise in one frame", cfOctetwise, cfFrames(cfText("a𝄞b🙂")), cfTextMsg("a𝄞b🙂")),
			cfc("x echo, then invalid text", cfWhole, cfFrames(cfText("fine"), cfText(bad), cfText("never")),
				cfTextMsg("fine"), cfCloseWith(cfInvalid)),
			cfc("x invalid UTF-8 is fine in binary", cfWhole, cfFrames(cfBin([]byte(bad))), cfBinMsg([]byte(bad))),
		}
		// A 4-byte character split across 2 (and 3) fragments at every byte position.
		for _, str := range []string{"a𝄞b", "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"} {
			for i := 0; i <= len(str); i++ {
				cases = append(cases, cfc(fmt.Sprintf("x %q in 2 fragments cut at %d", str, i), cfWhole,
					cfSplit(ws.OpText, []byte(str), i), cfTextMsg(str)))
				for j := i; j <= len(str); j++ {
					cases = append(cases, cfc(fmt.Sprintf("x %q in 3 fragments cut at %d and %d", str, i, j), cfWhole,
						cfSplit(ws.OpText, []byte(str), i, j), cfTextMsg(str)))
				}
			}
		}
		badChar := "a\xf4\x90\x80\x80b"
		for i := 0; i <= len(badChar); i++ {
			cases = append(cases, cfc(fmt.Sprintf("x %q in 2 fragments cut at %d", badChar, i), cfWhole,
				cfSplit(ws.OpText, []byte(badChar), i), cfCloseWith(cfInvalid)))
		}
		// 6.5 to 6.23: each sequence in one frame (as Autobahn) and in 1-byte fragments.
		for gi, group := range cfUTF8Groups() {
			for j, seq := range group {
				if seq.valid != utf8.ValidString(seq.s) {
					t.Fatalf("table error: 6.%d.%d %x valid=%v", gi+5, j+1, seq.s, seq.valid)
				}
				want := cfTextMsg(seq.s)
				if !seq.valid {
					want = cfCloseWith(cfInvalid)
				}
				name := fmt.Sprintf("6.%d.%d %x", gi+5, j+1, seq.s)
				if len(name) > 60 {
					name = name[:60] + "…"
				}
				cases = append(cases, cfc(name, cfWhole, cfFrames(cfText(seq.s)), want))
				if len(seq.s) > 1 {
					cases = append(cases, cfc(name+" in 1-byte fragments", cfWhole, cfTextIn1ByteFragments(seq.s), want))
				}
			}
		}
		cfRun(t, s, cases)
	})
}

// ---------------------------------------------------------------------------------------
// 7 Close handling

func TestWSConformanceClose(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		close1000 := cfClose(cfNormal, "")
		big := cfProse(71, 256<<10)
		cases := []cfCase{
			cfc("7.1.1 text, then close", cfWhole, cfFrames(cfText("Hello World!"), close1000), cfTextMsg("Hello World!"), cfCloseWith(cfNormal)),
			cfc("7.1.2 close twice", cfWhole, cfFrames(close1000, close1000), cfCloseWith(cfNormal)),
			cfc("7.1.3 close, then ping: no pong", cfWhole, cfFrames(close1000, cfPing("Hello World!")), cfCloseWith(cfNormal)),
			cfc("7.1.4 close, then text: no echo", cfWhole, cfFrames(close1000, cfText("Hello World!")), cfCloseWith(cfNormal)),
			cfc("7.1.5 close inside a fragmented message", cfWhole,
				cfFrames(cfText("fragment1").nofin(), close1000, cfCont(true, "fragment2")), cfCloseWith(cfNormal)),
			cfc("7.1.6 256 KiB text, close, ping", cfWhole, cfFrames(cfData(ws.OpText, big), close1000, cfPing("Hello World!")),
				cfMsg(ws.OpText, big), cfCloseWith(cfNormal)),
			cfc("7.3.1 close without a body", cfWhole, cfFrames(cfClose(0, "")), cfCloseWith(cfNoBody)),
			cfc("7.3.2 close with a 1-byte body", cfWhole, cfFrames(cfCloseBody([]byte{0x03})), cfCloseWith(cfProtocol)),
			cfc("7.3.3 close 1000 without a reason", cfWhole, cfFrames(close1000), cfCloseWith(cfNormal)),
			cfc("7.3.4 close 1000 with a reason", cfWhole, cfFrames(cfClose(cfNormal, "Hello World!")), cfCloseWith(cfNormal)),
			cfc("7.3.5 close 1000 with a 123-byte reason", cfWhole, cfFrames(cfClose(cfNormal, strings.Repeat("*", 123))), cfCloseWith(cfNormal)),
			cfc("7.3.6 close 1000 with a 124-byte reason", cfWhole, cfFrames(cfClose(cfNormal, strings.Repeat("*", 124))), cfCloseWith(cfProtocol)),
			cfc("7.5.1 close with an invalid UTF-8 reason", cfWhole,
				cfFrames(cfClose(cfNormal, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")), cfCloseWith(cfInvalid)),
			cfc("x close with a truncated UTF-8 reason", cfWhole, cfFrames(cfClose(cfNormal, "ok \xf0\x9d\x84")), cfCloseWith(cfInvalid)),
			cfc("x close with a 4-byte-character reason", cfWhole, cfFrames(cfClose(4000, "bye 𝄞")), cfCloseWith(4000)),
			cfc("x close octetwise", cfOctetwise, cfFrames(cfClose(3000, "octet by octet")), cfCloseWith(3000)),
			cfc("x ping, then close", cfWhole, cfFrames(cfPing("first"), close1000), cfPongOf("first"), cfCloseWith(cfNormal)),
		}
		// 7.7: valid codes are echoed; 1012–1014 are registered with IANA since RFC 6455.
		valid := []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}
		for i, code := range valid {
			cases = append(cases, cfc(fmt.Sprintf("7.7.%d close %d is echoed", i+1, code), cfWhole,
				cfFrames(cfClose(code, "")), cfCloseWith(code)))
		}
		for _, code := range []ws.StatusCode{1012, 1013, 1014} {
			cases = append(cases, cfc(fmt.Sprintf("x close %d is echoed", code), cfWhole,
				cfFrames(cfClose(code, "")), cfCloseWith(code)))
		}
		// 7.9 and 7.13: invalid codes fail the connection.
		invalid := []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999}
		for i, code := range invalid {
			cases = append(cases, cfc(fmt.Sprintf("7.9.%d invalid close %d", i+1, code), cfWhole,
				cfFrames(cfCloseBody(binary.BigEndian.AppendUint16(nil, uint16(code)))), cfCloseWith(cfProtocol)))
		}
		for i, code := range []int{5000, 65535} {
			cases = append(cases, cfc(fmt.Sprintf("7.13.%d invalid close %d", i+1, code), cfWhole,
				cfFrames(cfCloseBody(binary.BigEndian.AppendUint16(nil, uint16(code)))), cfCloseWith(cfProtocol)))
		}
		for _, code := range []int{1015, 2, 4, 1999, 2001, 3000 - 1, 5001, 9999} {
			cases = append(cases, cfc(fmt.Sprintf("x invalid close %d", code), cfWhole,
				cfFrames(cfCloseBody(binary.BigEndian.AppendUint16(nil, uint16(code)))), cfCloseWith(cfProtocol)))
		}
		cfRun(t, s, cases)
		// A client that shuts its side right after its close frame still gets the answer.
		t.Run("x close, then the client shuts its side", func(t *testing.T) {
			t.Parallel()
			c := cfOpen(t, s)
			if err := c.send(cfWhole, cfFrames(cfText("last words"), cfClose(4002, "")), nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.expect(cfTextMsg("last words"), cfCloseWith(4002))
			c.expectEnd()
		})
		// Clients that vanish mid-message, mid-header or right after a frame must not upset
		// the server (the group's health check follows).
		for _, cut := range []int{1, 2, 6, 9, 20} {
			t.Run(fmt.Sprintf("x client vanishes after %d bytes of a frame", cut), func(t *testing.T) {
				t.Parallel()
				c := cfOpen(t, s)
				if err := c.write(cfText(strings.Repeat("v", 300)).wire()[:cut]); err != nil {
					t.Fatal(err)
				}
				c.Close()
			})
		}
	})
}

// ---------------------------------------------------------------------------------------
// 9 Limits and performance

func TestWSConformanceLimits(t *testing.T) {
	const limit = 4 << 20
	cfGroup(t, []string{"--ws-max-message", "4MiB"}, func(t *testing.T, s *server) {
		ops := []ws.OpCode{ws.OpText, ws.OpBinary}
		for _, op := range ops {
			for _, n := range []int{1 << 20, 2 << 20, 4 << 20} {
				t.Run(fmt.Sprintf("9.1 %s %d MiB in one frame", cfOpName(op), n>>20), func(t *testing.T) {
					t.Parallel()
					p := cfPayload(op, uint64(n)+uint64(op), n)
					c := cfOpen(t, s)
					c.roundTrip(cfWhole, cfFrames(cfData(op, p)), cfMsg(op, p))
					c.closeCleanly()
				})
				t.Run(fmt.Sprintf("9.3 %s %d MiB in 64 KiB fragments", cfOpName(op), n>>20), func(t *testing.T) {
					t.Parallel()
					p := cfPayload(op, uint64(n)+10+uint64(op), n)
					c := cfOpen(t, s)
					c.roundTrip(cfWhole, cfFragments(op, p, 64<<10), cfMsg(op, p))
					c.closeCleanly()
				})
			}
			t.Run(fmt.Sprintf("9.3 %s 1 MiB in 256-byte fragments", cfOpName(op)), func(t *testing.T) {
				t.Parallel()
				p := cfPayload(op, 256+uint64(op), 1<<20)
				c := cfOpen(t, s)
				c.roundTrip(cfWhole, cfFragments(op, p, 256), cfMsg(op, p))
				c.closeCleanly()
			})
			t.Run(fmt.Sprintf("9.5 %s 1 MiB in chops of 1 KiB", cfOpName(op)), func(t *testing.T) {
				t.Parallel()
				p := cfPayload(op, 1024+uint64(op), 1<<20)
				c := cfOpen(t, s)
				c.roundTrip(cfChop{size: 1 << 10}, cfFrames(cfData(op, p)), cfMsg(op, p))
				c.closeCleanly()
			})
			// One byte over the cap: the length in the header is enough to refuse it, so
			// only the header is sent and the 1009 must come without the payload.
			t.Run(fmt.Sprintf("x %s one byte over the cap, header only", cfOpName(op)), func(t *testing.T) {
				t.Parallel()
				c := cfOpen(t, s)
				if err := c.write(cfHeader(0x80|byte(op), limit+1)); err != nil {
					t.Fatal(err)
				}
				c.expectClose(cfTooBig)
			})
		}
		t.Run("x binary one byte over the cap, whole payload streamed", func(t *testing.T) {
			t.Parallel()
			c := cfOpen(t, s)
			wait := c.sendAsync(cfChop{size: 64 << 10}, cfFrames(cfBin(make([]byte, limit+1))), nil)
			c.expect(cfCloseWith(cfTooBig))
			c.SetWriteDeadline(time.Now()) // stop the writer: the server reads no more
			wait()
			c.expectEnd()
		})
		t.Run("x text one byte over the cap in 64 KiB fragments", func(t *testing.T) {
			t.Parallel()
			c := cfOpen(t, s)
			// The 65th header pushes the message over the cap; its payload is not sent.
			frames := cfFragments(ws.OpText, []byte(strings.Repeat("a", limit)), 64<<10)
			frames[len(frames)-1].fin = false
			wait := c.sendAsync(cfWhole, frames, []byte{0x80, 0x81, 1, 2, 3, 4})
			c.expect(cfCloseWith(cfTooBig))
			if err := wait(); err != nil {
				t.Fatalf("send: %v", err)
			}
			c.expectEnd()
		})
		t.Run("x binary exactly at the cap in 1 MiB fragments, pings between", func(t *testing.T) {
			t.Parallel()
			p := cfBytes(4242, limit)
			var frames []cfFrame
			var want []cfEvent
			for i, f := range cfFragments(ws.OpBinary, p, 1<<20) {
				if i > 0 {
					frames, want = append(frames, cfPing(fmt.Sprint(i))), append(want, cfPongOf(fmt.Sprint(i)))
				}
				frames = append(frames, f)
			}
			c := cfOpen(t, s)
			c.roundTrip(cfWhole, frames, append(want, cfBinMsg(p))...)
			c.closeCleanly()
		})
		t.Run("9.7 1000 small messages pipelined", func(t *testing.T) {
			t.Parallel()
			var frames []cfFrame
			var want []cfEvent
			for i := range 1000 {
				p := []byte(fmt.Sprintf("message %07d!", i)) // 16 bytes
				op := ws.OpText
				if i%2 == 1 {
					op = ws.OpBinary
				}
				frames, want = append(frames, cfData(op, p)), append(want, cfMsg(op, p))
			}
			c := cfOpen(t, s)
			c.roundTrip(cfWhole, frames, want...)
			c.closeCleanly()
		})
		t.Run("9.7 1000 round trips of 16 bytes", func(t *testing.T) {
			t.Parallel()
			c := cfOpen(t, s)
			for i := range 1000 {
				p := fmt.Sprintf("round trip %05d", i)
				c.roundTrip(cfWhole, cfFrames(cfText(p)), cfTextMsg(p))
			}
			c.closeCleanly()
		})
		t.Run("9.8 100 round trips of 64 KiB", func(t *testing.T) {
			t.Parallel()
			c := cfOpen(t, s)
			p := cfBytes(98, 64<<10)
			for i := range 100 {
				p[0] = byte(i)
				c.roundTrip(cfWhole, cfFrames(cfBin(p)), cfBinMsg(p))
			}
			c.closeCleanly()
		})
		// Back-pressure: more echoes than the socket buffers hold, so wsecho pauses reading
		// until the client reads; nothing may be lost or reordered across the pauses.
		t.Run("x 16 messages of 1 MiB pipelined", func(t *testing.T) {
			t.Parallel()
			var frames []cfFrame
			var want []cfEvent
			for i := range 16 {
				op := ws.OpText
				if i%2 == 1 {
					op = ws.OpBinary
				}
				p := cfPayload(op, uint64(1600+i), 1<<20)
				frames, want = append(frames, cfData(op, p)), append(want, cfMsg(op, p))
			}
			c := cfOpen(t, s)
			c.roundTrip(cfWhole, frames, want...)
			c.closeCleanly()
		})
		t.Run("x 8 MiB of 64 KiB messages and a close, read late", func(t *testing.T) {
			t.Parallel()
			var frames []cfFrame
			var want []cfEvent
			for i := range 128 {
				p := cfBytes(uint64(6400+i), 64<<10)
				frames, want = append(frames, cfBin(p)), append(want, cfBinMsg(p))
			}
			frames = append(frames, cfPing("last"), cfClose(3001, "after all that"))
			want = append(want, cfPongOf("last"), cfCloseWith(3001))
			c := cfOpen(t, s)
			wait := c.sendAsync(cfWhole, frames, nil)
			// Read only once the server's output has backed up: wsecho then pauses, and the
			// server stops reading.
			awaitPeerStopsReading(t, c.Conn, ioTimeout)
			c.expect(want...)
			if err := wait(); err != nil {
				t.Fatalf("send: %v", err)
			}
			c.expectEnd()
		})
	})
}

// The default cap is 1 MiB.
func TestWSConformanceDefaultLimit(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		at := cfBytes(1, 1<<20)
		cfRun(t, s, []cfCase{
			cfc("x binary at the default cap (1 MiB)", cfWhole, cfFrames(cfBin(at)), cfBinMsg(at)),
			cfRaw("x binary one byte over the default cap, header only", nil, cfHeader(0x82, 1<<20+1), cfCloseWith(cfTooBig)),
			cfRaw("x text over the cap by far, header only", nil, cfHeader(0x81, 1<<40), cfCloseWith(cfTooBig)),
			cfRaw("x continuation pushing a message over the cap", cfFrames(cfBin(at[:1<<19]).nofin()),
				cfHeader(0x00, 1<<19+1), cfCloseWith(cfTooBig)),
		})
	})
}

// ---------------------------------------------------------------------------------------
// 10 Misc

func TestWSConformanceMisc(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		text, blob := cfProse(10, 65536), cfBytes(10, 65536)
		cfRun(t, s, []cfCase{
			cfc("10.1.1 text of 64 KiB in 1300-byte fragments", cfWhole, cfFragments(ws.OpText, text, 1300), cfMsg(ws.OpText, text)),
			cfc("x binary of 64 KiB in 1300-byte fragments", cfWhole, cfFragments(ws.OpBinary, blob, 1300), cfBinMsg(blob)),
			cfc("x text of 64 KiB in 1300-byte fragments, chops of 1000", cfChop{size: 1000}, cfFragments(ws.OpText, text, 1300), cfMsg(ws.OpText, text)),
		})
	})
}

// ---------------------------------------------------------------------------------------
// 12/13 permessage-deflate (RFC 7692)

func TestWSConformanceCompression(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		// 13: offers. An acceptable offer gets the one response the host gives (cfUpgraded
		// checks it); a declined one gets a 101 without the extension, after which RSV1 is
		// a protocol error.
		offers := []struct {
			name   string
			fields []string
			ok     bool
		}{
			{"13.1 permessage-deflate", []string{"permessage-deflate"}, true},
			{"13.2 client_no_context_takeover", []string{"permessage-deflate; client_no_context_takeover"}, true},
			{"13.x server_no_context_takeover", []string{"permessage-deflate; server_no_context_takeover"}, true},
			{"13.3 client_max_window_bits", []string{"permessage-deflate; client_max_window_bits"}, true},
			{"13.4 client_max_window_bits=8", []string{"permessage-deflate; client_max_window_bits=8"}, true},
			{"13.5 client_max_window_bits=15", []string{"permessage-deflate; client_max_window_bits=15"}, true},
			{"13.x client_max_window_bits quoted", []string{`permessage-deflate; client_max_window_bits="10"`}, true},
			{"13.6 server_max_window_bits=15", []string{"permessage-deflate; server_max_window_bits=15"}, true},
			{"13.7 every parameter", []string{"permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=9; server_max_window_bits=15"}, true},
			{"13.x server_max_window_bits=9 declined, next offer taken", []string{"permessage-deflate; server_max_window_bits=9, permessage-deflate; client_max_window_bits"}, true},
			{"13.x offer in a second field", []string{"x-unknown-extension", "permessage-deflate"}, true},
			{"13.x server_max_window_bits=8 declined", []string{"permessage-deflate; server_max_window_bits=8"}, false},
			{"13.x server_max_window_bits=14 declined", []string{"permessage-deflate; server_max_window_bits=14"}, false},
			{"13.x server_max_window_bits without value declined", []string{"permessage-deflate; server_max_window_bits"}, false},
			{"13.x client_max_window_bits=7 declined", []string{"permessage-deflate; client_max_window_bits=7"}, false},
			{"13.x client_max_window_bits=16 declined", []string{"permessage-deflate; client_max_window_bits=16"}, false},
			{"13.x client_max_window_bits=09 declined", []string{"permessage-deflate; client_max_window_bits=09"}, false},
			{"13.x unknown parameter declined", []string{"permessage-deflate; foo=bar"}, false},
			{"13.x repeated parameter declined", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, false},
			{"13.x value on a flag declined", []string{"permessage-deflate; server_no_context_takeover=1"}, false},
			{"13.x other extension only", []string{"x-webkit-deflate-frame"}, false},
		}
		for _, o := range offers {
			t.Run(o.name, func(t *testing.T) {
				t.Parallel()
				var ext []string
				for _, f := range o.fields {
					ext = append(ext, "Sec-WebSocket-Extensions: "+f)
				}
				c := cfOpen(t, s, ext...)
				if c.deflate != o.ok {
					t.Fatalf("permessage-deflate negotiated = %v, want %v", c.deflate, o.ok)
				}
				p := cfProse(13, 4096)
				if !o.ok {
					c.roundTrip(cfWhole, cfFrames(cfText("plain"), cfZipped(ws.OpText, p)), cfTextMsg("plain"), cfCloseWith(cfProtocol))
					c.expectEnd()
					return
				}
				c.roundTrip(cfWhole, cfFrames(cfZipped(ws.OpText, p), cfText("plain"), cfZipped(ws.OpBinary, p[:100])),
					cfMsg(ws.OpText, p), cfTextMsg("plain"), cfBinMsg(p[:100]))
				c.closeCleanly()
			})
		}

		// 12: compressed messages of every size, several per connection (each compressed on
		// its own: no context takeover), in one frame and in 1 KiB fragments.
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary} {
			for _, n := range []int{0, 16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10} {
				count := max(2, min(10, (256<<10)/max(n, 1)))
				t.Run(fmt.Sprintf("12.x %d %s messages of %d bytes", count, cfOpName(op), n), func(t *testing.T) {
					t.Parallel()
					var frames []cfFrame
					var want []cfEvent
					for i := range count {
						p := cfPayload(op, uint64(n*16+i), n)
						frames, want = append(frames, cfZipped(op, p)), append(want, cfMsg(op, p))
					}
					c := cfOpen(t, s, cfOffer)
					c.roundTrip(cfWhole, frames, want...)
					c.closeCleanly()
					t.Logf("%d of %d echoes came compressed", c.zipped, count)
				})
			}
			for _, n := range []int{4 << 10, 64 << 10, 256 << 10} {
				t.Run(fmt.Sprintf("12.x %s of %d bytes, compressed in 1 KiB fragments", cfOpName(op), n), func(t *testing.T) {
					t.Parallel()
					p := cfPayload(op, uint64(n*3), n)
					frames := cfFragments(op, cfDeflate(p), 1<<10)
					frames[0] = frames[0].compressed()
					c := cfOpen(t, s, cfOffer)
					c.roundTrip(cfWhole, frames, cfMsg(op, p))
					c.closeCleanly()
				})
			}
		}

		text := cfProse(12, 4<<10)
		zeros := make([]byte, 1<<20)
		zipText := cfDeflate(text)
		mid := len(zipText) / 2
		var oneByteFrags []cfFrame
		smallZip := cfDeflate([]byte("κόσμε 𝄞 κόσμε 𝄞 κόσμε 𝄞"))
		oneByteFrags = cfFragments(ws.OpText, smallZip, 1)
		oneByteFrags[0] = oneByteFrags[0].compressed()
		cases := []cfCase{
			cfc("12.x sync-flush form, level 6", cfWhole, cfFrames(cfData(ws.OpText, cfDeflateSync(text, 6)).compressed()), cfMsg(ws.OpText, text)),
			cfc("12.x sync-flush form, stored blocks", cfWhole, cfFrames(cfData(ws.OpText, cfDeflateSync(text, flate.NoCompression)).compressed()), cfMsg(ws.OpText, text)),
			cfc("12.x sync-flush form, Huffman only", cfWhole, cfFrames(cfData(ws.OpBinary, cfDeflateSync(text, flate.HuffmanOnly)).compressed()), cfBinMsg(text)),
			cfc("12.x compressed and plain messages mixed", cfWhole,
				cfFrames(cfZipped(ws.OpText, text), cfText("plain"), cfZipped(ws.OpBinary, text[:10]), cfBin(text[:70])),
				cfMsg(ws.OpText, text), cfTextMsg("plain"), cfBinMsg(text[:10]), cfBinMsg(text[:70])),
			cfc("12.x compressed fragments with a ping between", cfWhole,
				cfFrames(cfData(ws.OpText, zipText[:mid]).nofin().compressed(), cfPing("between"), cfCont(true, string(zipText[mid:]))),
				cfPongOf("between"), cfMsg(ws.OpText, text)),
			cfc("12.x compressed text in 1-byte fragments", cfWhole, oneByteFrags, cfTextMsg("κόσμε 𝄞 κόσμε 𝄞 κόσμε 𝄞")),
			cfc("12.x ping and close on a deflate connection", cfWhole, cfFrames(cfPing("p"), cfClose(4001, "done")), cfPongOf("p"), cfCloseWith(4001)),
			cfc("x decompressed size exactly at the cap", cfWhole, cfFrames(cfZipped(ws.OpBinary, zeros)), cfBinMsg(zeros)),
			cfc("x decompressed size one byte over the cap", cfWhole,
				cfFrames(cfZipped(ws.OpBinary, append(zeros[:len(zeros):len(zeros)], 0))), cfCloseWith(cfTooBig)),
			cfc("x decompressed size far over the cap", cfWhole,
				cfFrames(cfZipped(ws.OpText, make([]byte, 8<<20))), cfCloseWith(cfTooBig)),
			cfRaw("x compressed size over the cap, header only", nil, cfHeader(0xc2, 1<<20+1), cfCloseWith(cfTooBig)),
			cfc("x RSV1 on a continuation", cfWhole,
				cfFrames(cfData(ws.OpText, zipText[:mid]).nofin().compressed(), cfCont(true, string(zipText[mid:])).compressed()), cfCloseWith(cfProtocol)),
			cfc("x RSV1 on a continuation of a plain message", cfWhole,
				cfFrames(cfText("plain").nofin(), cfCont(true, string(zipText)).compressed()), cfCloseWith(cfProtocol)),
			cfc("x RSV1 on a ping", cfWhole, cfFrames(cfText("before"), cfPing("p").compressed()), cfTextMsg("before"), cfCloseWith(cfProtocol)),
			cfc("x RSV1 on a pong", cfWhole, cfFrames(cfPong("p").compressed()), cfCloseWith(cfProtocol)),
			cfc("x RSV1 on a close", cfWhole, cfFrames(cfClose(cfNormal, "").compressed()), cfCloseWith(cfProtocol)),
			cfc("x RSV2 on text", cfWhole, cfFrames(cfText("x").withRsv(2)), cfCloseWith(cfProtocol)),
			cfc("x RSV3 on binary", cfWhole, cfFrames(cfBin([]byte("x")).withRsv(1)), cfCloseWith(cfProtocol)),
			cfc("x RSV1 and RSV2 on compressed text", cfWhole, cfFrames(cfData(ws.OpText, zipText).withRsv(6)), cfCloseWith(cfProtocol)),
			cfc("x invalid deflate data (reserved block type)", cfWhole,
				cfFrames(cfBin([]byte{0xff, 0xff, 0xff, 0xff}).compressed()), cfCloseWith(cfInvalid)),
			cfc("x invalid deflate data (stored block length)", cfWhole,
				cfFrames(cfBin([]byte{0x01, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'}).compressed()), cfCloseWith(cfInvalid)),
			cfc("x compressed text with invalid UTF-8", cfWhole,
				cfFrames(cfZipped(ws.OpText, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"))), cfCloseWith(cfInvalid)),
			cfc("x compressed text ending inside a character", cfWhole,
				cfFrames(cfZipped(ws.OpText, []byte("ok \xf0\x9d\x84"))), cfCloseWith(cfInvalid)),
		}
		for i := range cases {
			cases[i] = cases[i].with(cfOffer)
		}
		cfRun(t, s, cases)
	})
}

// ---------------------------------------------------------------------------------------
// The opening handshake (RFC 6455 §4.2)

// cfRejected sends req and expects status, "Connection: close" and the end of the connection.
func cfRejected(t *testing.T, s *server, req string, status int) *http.Response {
	t.Helper()
	c, resp := cfDial(t, s, req, nil)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d", resp.StatusCode, status)
	}
	if !resp.Close {
		t.Errorf("a %d without Connection: close", status)
	}
	if err := c.expectEOF(ioTimeout); err != nil {
		t.Fatalf("after the %d: %v", status, err)
	}
	return resp
}

func TestWSConformanceHandshake(t *testing.T) {
	cfGroup(t, nil, func(t *testing.T, s *server) {
		base := func(drop string, extra ...string) string {
			var lines []string
			for _, l := range []string{"Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
				"Sec-WebSocket-Key: " + cfKey, "Sec-WebSocket-Version: 13"} {
				if drop == "" || !strings.HasPrefix(l, drop+":") {
					lines = append(lines, l)
				}
			}
			return "GET / HTTP/1.1\r\n" + strings.Join(append(lines, extra...), "\r\n") + "\r\n\r\n"
		}
		t.Run("valid, with subprotocols and Origin", func(t *testing.T) {
			t.Parallel()
			c, resp := cfDial(t, s, cfRequest("/chat?room=1", "Sec-WebSocket-Protocol: chat, superchat", "Origin: http://example.com"), nil)
			w := cfUpgraded(t, c, resp, cfAccept)
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "chat" {
				t.Errorf("Sec-WebSocket-Protocol = %q, want chat (the first offered)", got)
			}
			if got := resp.Header.Get("X-Worker"); got != "0" {
				t.Errorf("X-Worker = %q, want 0", got)
			}
			w.roundTrip(cfWhole, cfFrames(cfText("hi")), cfTextMsg("hi"))
			w.closeCleanly()
		})
		t.Run("valid, random key", func(t *testing.T) {
			t.Parallel()
			key := base64.StdEncoding.EncodeToString(cfBytes(uint64(time.Now().UnixNano()), 16))
			req := strings.Replace(cfRequest("/"), cfKey, key, 1)
			c, resp := cfDial(t, s, req, nil)
			if resp.Header.Get("Sec-WebSocket-Protocol") != "" {
				t.Errorf("Sec-WebSocket-Protocol %q, none was offered", resp.Header.Get("Sec-WebSocket-Protocol"))
			}
			cfUpgraded(t, c, resp, cfAcceptFor(key)).closeCleanly()
		})
		t.Run("valid, tokens in other cases and lists", func(t *testing.T) {
			t.Parallel()
			req := "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n" +
				"sec-websocket-key: " + cfKey + "\r\nsec-websocket-version: 13\r\n\r\n"
			c, resp := cfDial(t, s, req, nil)
			cfUpgraded(t, c, resp, cfAccept).closeCleanly()
		})
		t.Run("valid, subprotocols over two fields, key with surrounding whitespace", func(t *testing.T) {
			t.Parallel()
			req := base("Sec-WebSocket-Key", "Sec-WebSocket-Key: \t "+cfKey+" ",
				"Sec-WebSocket-Protocol: ,", "Sec-WebSocket-Protocol: v2.echo, v1.echo")
			c, resp := cfDial(t, s, req, nil)
			w := cfUpgraded(t, c, resp, cfAccept)
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "v2.echo" {
				t.Errorf("Sec-WebSocket-Protocol = %q, want v2.echo", got)
			}
			w.closeCleanly()
		})
		// Frames pipelined behind the request, before the 101 is read, are not lost.
		t.Run("frames pipelined behind the handshake", func(t *testing.T) {
			t.Parallel()
			var after []byte
			for _, f := range cfFrames(cfText("early"), cfPing("early ping"), cfBin([]byte{1, 2, 3})) {
				after = append(after, f.wire()...)
			}
			c, resp := cfDial(t, s, cfRequest("/"), after)
			w := cfUpgraded(t, c, resp, cfAccept)
			w.expect(cfTextMsg("early"), cfPongOf("early ping"), cfBinMsg([]byte{1, 2, 3}))
			w.closeCleanly()
		})
		t.Run("handshake and frames octetwise", func(t *testing.T) {
			t.Parallel()
			c, err := dialRaw(s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			all := []byte(cfRequest("/", cfOffer))
			all = append(all, cfText("late").wire()...)
			all = append(all, cfZipped(ws.OpText, []byte("zipped")).wire()...)
			for i := range all {
				if err := c.send(string(all[i : i+1])); err != nil {
					t.Fatal(err)
				}
			}
			resp, _, err := c.readResponse("GET", ioTimeout)
			if err != nil {
				t.Fatal(err)
			}
			w := cfUpgraded(t, c, resp, cfAccept)
			w.expect(cfTextMsg("late"), cfTextMsg("zipped"))
			w.closeCleanly()
		})
		rejects := []struct {
			name   string
			req    string
			status int
		}{
			{"missing key", base("Sec-WebSocket-Key"), 400},
			{"key of 15 bytes", base("Sec-WebSocket-Key", "Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(make([]byte, 15))), 400},
			{"key of 17 bytes", base("Sec-WebSocket-Key", "Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(make([]byte, 17))), 400},
			{"key not base64", base("Sec-WebSocket-Key", "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="), 400},
			{"two keys", base("", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="), 400},
			{"version 8", base("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), 426},
			{"no version", base("Sec-WebSocket-Version"), 426},
			{"POST", strings.Replace(base("", "Content-Length: 0"), "GET", "POST", 1), 400},
			{"HEAD", strings.Replace(base(""), "GET", "HEAD", 1), 400},
			{"a request body", base("", "Content-Length: 5") + "hello", 400},
			{"malformed subprotocol list", base("", "Sec-WebSocket-Protocol: chat, sup er"), 400},
			{"malformed extension list", base("", "Sec-WebSocket-Extensions: ;;"), 400},
		}
		for _, r := range rejects {
			t.Run(r.name+" is refused", func(t *testing.T) {
				t.Parallel()
				resp := cfRejected(t, s, r.req, r.status)
				if r.status == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
					t.Errorf("426 with Sec-WebSocket-Version %q, want 13", resp.Header.Get("Sec-WebSocket-Version"))
				}
			})
		}
		// RFC 9110 §7.8: a server MUST ignore Upgrade in an HTTP/1.0 request; wsecho answers it
		// as a plain request, and HTTP/1.0 without keep-alive closes after the response.
		t.Run("HTTP/1.0 is not upgraded", func(t *testing.T) {
			t.Parallel()
			c, resp := cfDial(t, s, strings.Replace(base(""), "HTTP/1.1", "HTTP/1.0", 1), nil)
			if resp.StatusCode == 101 {
				t.Fatalf("HTTP/1.0 request upgraded")
			}
			if resp.StatusCode != 200 && (resp.StatusCode < 400 || resp.StatusCode > 499) {
				t.Fatalf("status %d, want 200 (Upgrade ignored) or 4xx", resp.StatusCode)
			}
			if err := c.expectEOF(ioTimeout); err != nil {
				t.Fatalf("after the %d: %v", resp.StatusCode, err)
			}
		})
		// RFC 6455 §4.2.1: a handshake that does not match the description (here: no
		// "Connection: Upgrade", item 4) MUST be answered with an error code such as 400.
		// websocket.CheckUpgrade has that rejection (errNoConnection), but the loop only
		// consults it for requests http1 flags Upgrade, which needs the Connection token: the
		// request reaches wsecho as a plain GET and gets its 200.
		t.Run("no Connection: upgrade is refused", func(t *testing.T) {
			t.Parallel()
			c, resp := cfDial(t, s, base("Connection"), nil)
			switch {
			case resp.StatusCode == 101:
				t.Fatalf("upgraded without Connection: upgrade")
			case resp.StatusCode != 400:
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
			if err := c.expectEOF(ioTimeout); err != nil {
				t.Fatalf("after the 400: %v", err)
			}
		})
		// An upgrade to another protocol is a plain request: 200 on the same connection.
		t.Run("upgrade to h2c is a plain request", func(t *testing.T) {
			t.Parallel()
			c, resp := cfDial(t, s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			resp, body, err := c.roundTrip(get("/again"))
			if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "wsecho") {
				t.Fatalf("second request on the connection: %v %v %q", resp, err, body)
			}
		})
		t.Run("plain GET on the same listener", func(t *testing.T) {
			t.Parallel()
			resp, body := httpGet(t, client(nil), s.URL("/"))
			if resp.StatusCode != 200 || !strings.Contains(string(body), "wsecho") {
				t.Fatalf("GET /: %d %q", resp.StatusCode, body)
			}
		})
	})
}
