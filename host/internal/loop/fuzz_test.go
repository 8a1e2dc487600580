package loop

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// FuzzServe feeds arbitrary bytes, split at arbitrary points, to a connection served by the
// hello guest, as a peer would send them, then hangs up. Whatever the bytes, the host must
// not panic, every byte it sends back must parse as a sequence of HTTP/1.1 responses (the
// guest's 200s, or the host's own 4xx/5xx and then a close), and no request may stay open.
func FuzzServe(f *testing.F) { fuzzServe(f, buildSample(f, "hello")) }

// FuzzServeStreamed is FuzzServe with a guest that streams request bodies (on_body, pause and
// resume as its response fills) and echoes them: the streamed-body path under arbitrary input.
func FuzzServeStreamed(f *testing.F) { fuzzServe(f, buildGuest(f, "testdata/streamecho")) }

func fuzzServe(f *testing.F, wasm []byte) {
	for _, seed := range []string{
		benchRequest,
		benchRequest + benchRequest,
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + benchRequest,
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
	} {
		f.Add([]byte(seed), uint16(7))
	}
	l := guestLoop(f, wasm)
	ln := listenerOf(f, l)
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		wire := feed(t, l, ln, "", in, split)
		if n := l.exchanges.len(); n != 0 {
			t.Fatalf("%d requests still open after the peer left", n)
		}
		br := bufio.NewReader(bytes.NewReader(wire))
		for {
			if _, err := br.Peek(1); err == io.EOF {
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("unparseable output: %v\n%q", err, wire)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 100 {
				continue
			}
			if resp.StatusCode != 200 && (resp.StatusCode < 400 || !resp.Close) {
				t.Fatalf("status %d (close %v) in %q", resp.StatusCode, resp.Close, wire)
			}
		}
	})
}

// FuzzServeWebSocket does for the WebSocket path what FuzzServe does for HTTP: after a valid
// handshake (with or without a permessage-deflate offer) arbitrary bytes, split at arbitrary
// points, reach a connection accepted by samples/wsecho. The host must not panic; after the
// 101 everything it sends must be well-formed server frames (unmasked, known opcodes, RSV1
// only on compressed data frames), nothing may follow its close frame, and once the peer has
// gone no socket or request may stay open.
func FuzzServeWebSocket(f *testing.F) {
	mask := func(op byte, payload string, fin bool) string {
		b0 := op
		if fin {
			b0 |= 0x80
		}
		key := [4]byte{1, 2, 3, 4}
		out := []byte{b0, 0x80 | byte(len(payload)), 1, 2, 3, 4}
		for i := 0; i < len(payload); i++ {
			out = append(out, payload[i]^key[i%4])
		}
		return string(out)
	}
	for _, seed := range []string{
		mask(1, "hello", true),
		mask(2, "\x00\x01\x02", true) + mask(9, "ping", true),
		mask(1, "frag", false) + mask(9, "", true) + mask(0, "ment", true),
		mask(8, "\x03\xe8bye", true),
		mask(1, "\xce\xba\xe1\xbd\xb9\xcf\x83", true),
		mask(1, "\xed\xa0\x80", true),
		mask(0x41, "\xf2\x48\xcd\xc9\xc9\x07\x00", true),
		"\x81\x05hello",
	} {
		f.Add([]byte(seed), uint16(3), false)
		f.Add([]byte(seed), uint16(1), true)
	}
	l := guestLoop(f, buildSample(f, "wsecho"))
	ln := listenerOf(f, l)
	f.Fuzz(func(t *testing.T, in []byte, split uint16, deflate bool) {
		hs := "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
		if deflate {
			hs += "Sec-WebSocket-Extensions: permessage-deflate\r\n"
		}
		wire := feed(t, l, ln, hs+"\r\n", in, split)
		if n, m := l.sockets.len(), l.exchanges.len(); n != 0 || m != 0 {
			t.Fatalf("%d sockets and %d requests still open after the peer left", n, m)
		}
		br := bufio.NewReader(bytes.NewReader(wire))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("handshake answer: %v %v\n%q", err, resp, wire)
		}
		closed := false
		for {
			h, err := ws.ReadHeader(br)
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("unparseable frame: %v\n%q", err, wire)
			}
			if closed {
				t.Fatalf("a frame after the close frame: %+v", h)
			}
			switch {
			case h.Masked:
				t.Fatalf("a masked server frame: %+v", h)
			case h.OpCode != ws.OpText && h.OpCode != ws.OpBinary && !h.OpCode.IsControl(),
				h.OpCode.IsControl() && (h.Length > 125 || !h.Fin || h.Rsv != 0),
				h.Rsv != 0 && (h.Rsv != 4 || !deflate):
				t.Fatalf("a bad server frame: %+v", h)
			}
			if _, err := io.CopyN(io.Discard, br, h.Length); err != nil {
				t.Fatalf("short frame %+v: %v", h, err)
			}
			closed = h.OpCode == ws.OpClose
		}
	})
}

// feed plays a peer on a new connection of ln: it sends prefix whole, then in split into
// pieces of split%512+1 bytes, pumping the loop after each as a readable event would, then
// shuts its write side, and returns every byte the host sent until the connection closed (or
// was closed by feed, after the loop stopped making progress).
func feed(t *testing.T, l *Loop, ln *listener, prefix string, in []byte, split uint16) []byte {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Skip(err)
	}
	unix.SetNonblock(fds[0], true)
	unix.SetNonblock(fds[1], true)
	defer unix.Close(fds[1])
	l.addConn(fds[0], ln)
	c := l.conns[fds[0]]
	var wire []byte
	buf := make([]byte, 64<<10)
	pump := func() {
		l.readConn(c)
		l.settle()
		for {
			n, _ := unix.Read(fds[1], buf)
			if n <= 0 {
				break
			}
			wire = append(wire, buf[:n]...)
		}
		if !c.closed() {
			l.flush(c)
		}
	}
	if prefix != "" {
		unix.Write(fds[1], []byte(prefix))
		pump()
	}
	step := int(split%512) + 1
	for i := 0; i < len(in) && !c.closed(); i += step {
		unix.Write(fds[1], in[i:min(i+step, len(in))])
		pump()
	}
	unix.Shutdown(fds[1], unix.SHUT_WR)
	for i := 0; i < 8 && !c.closed(); i++ {
		pump()
	}
	if !c.closed() {
		l.closeConn(c, 0)
		l.settle()
	}
	return wire
}
