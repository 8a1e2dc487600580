package loop

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
)

// bareSocket opens a WebSocket on one end of a socket pair; nothing is flushed to it unless
// the test does.
func bareSocket(t testing.TB, l *Loop) (*Conn, *wsConn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	c := &Conn{fd: fds[0]}
	for c.fd >= len(l.conns) {
		l.conns = append(l.conns, nil)
	}
	l.conns[c.fd] = c
	l.nconns++
	w := &wsConn{l: l, in: l.cur, conn: c}
	w.handle = l.sockets.add(w)
	c.proto = w
	return c, w
}

// ws_send and ws_close check every argument: a guest cannot put a frame on the wire that the
// peer would have to fail the connection over.
func TestWSHostFunctionsRefuse(t *testing.T) {
	l := bareLoop(t)
	_, w := bareSocket(t, l)
	stale := abi.MakeHandle(abi.KindSocket, w.handle.Gen()+1, w.handle.Index())
	wrongKind := abi.MakeHandle(abi.KindRequest, w.handle.Gen(), w.handle.Index())
	tests := []struct {
		name string
		rc   int32
		want abi.Errno
	}{
		{"text that is not UTF-8", l.cur.calls.WSSend(w.handle, []byte{'a', 0xff}, 0), abi.EINVAL},
		{"unknown send flag", l.cur.calls.WSSend(w.handle, []byte("a"), 4), abi.EINVAL},
		{"stale handle", l.cur.calls.WSSend(stale, []byte("a"), 0), abi.EBADHANDLE},
		{"request handle", l.cur.calls.WSSend(wrongKind, []byte("a"), 0), abi.EBADHANDLE},
		{"close code 999", l.cur.calls.WSClose(w.handle, 999, nil), abi.EINVAL},
		{"close code 1005 (never sent)", l.cur.calls.WSClose(w.handle, 1005, nil), abi.EINVAL},
		{"close code 1006 (never sent)", l.cur.calls.WSClose(w.handle, 1006, nil), abi.EINVAL},
		{"close code 1015 (never sent)", l.cur.calls.WSClose(w.handle, 1015, nil), abi.EINVAL},
		{"close code 5000", l.cur.calls.WSClose(w.handle, 5000, nil), abi.EINVAL},
		{"close code -1", l.cur.calls.WSClose(w.handle, -1, nil), abi.EINVAL},
		{"a reason without a code", l.cur.calls.WSClose(w.handle, 0, []byte("why")), abi.EINVAL},
		{"a reason of 124 bytes", l.cur.calls.WSClose(w.handle, 1000, []byte(strings.Repeat("r", 124))), abi.EINVAL},
		{"a reason that is not UTF-8", l.cur.calls.WSClose(w.handle, 1000, []byte{0xc3}), abi.EINVAL},
		{"close on a stale handle", l.cur.calls.WSClose(stale, 1000, nil), abi.EBADHANDLE},
		{"pause on a stale handle", l.cur.calls.Pause(stale, 1), abi.EBADHANDLE},
	}
	for _, tc := range tests {
		if tc.rc != int32(tc.want) {
			t.Errorf("%s: %d, want %v", tc.name, tc.rc, tc.want)
		}
	}
	if w.closeSent || len(w.conn.out) != 0 {
		t.Fatalf("a refused call sent something: %q", w.conn.out)
	}
}

// What the host puts on the wire for the guest's calls, and the order of states.
func TestWSHostFunctionsFrame(t *testing.T) {
	l := bareLoop(t)
	c, w := bareSocket(t, l)
	if rc := l.cur.calls.WSSend(w.handle, []byte("hi"), 0); rc != 0 {
		t.Fatalf("send text: %d", rc)
	}
	if rc := l.cur.calls.WSSend(w.handle, []byte{1, 2, 3}, abi.WSBinary); rc != 0 {
		t.Fatalf("send binary: %d", rc)
	}
	if rc := l.cur.calls.WSClose(w.handle, 4000, []byte("done ✓")); rc != 0 {
		t.Fatalf("close: %d", rc)
	}
	want := []byte{0x81, 2, 'h', 'i', 0x82, 3, 1, 2, 3, 0x88, 2 + 8, 0x0f, 0xa0}
	want = append(want, "done ✓"...)
	if !bytes.Equal(c.out, want) {
		t.Errorf("wire:\n got % x\nwant % x", c.out, want)
	}
	if rc := l.cur.calls.WSSend(w.handle, []byte("late"), 0); rc != int32(abi.ESTATE) {
		t.Errorf("send after close: %d, want ESTATE", rc)
	}
	if rc := l.cur.calls.WSClose(w.handle, 1000, nil); rc != int32(abi.ESTATE) {
		t.Errorf("second close: %d, want ESTATE", rc)
	}
	// Closing the handle drops the connection without an event, and the handle goes stale.
	if rc := l.cur.calls.Close(w.handle); rc != 0 {
		t.Fatalf("close(handle): %d", rc)
	}
	if len(l.queue.closeNotices) != 0 {
		t.Errorf("close(handle) queued on_ws_close: %v", l.queue.closeNotices)
	}
	if rc := l.cur.calls.WSSend(w.handle, []byte("x"), 0); rc != int32(abi.EBADHANDLE) {
		t.Errorf("send on a closed handle: %d, want EBADHANDLE", rc)
	}
}

// ABI.md: the handle on_close or on_ws_close names goes stale after the call, so during it
// the guest's end or ws_send hears ECLOSED (the closes guest traps on anything else, which
// would replace the instance).
func TestHandleLiveDuringCloseCallbacks(t *testing.T) {
	l := guestLoop(t, buildC(t, "testdata/closes/closes.c"))
	inst := l.cur
	for _, tc := range []struct{ name, req string }{
		{"on_close", "GET /held HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"on_ws_close", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"},
	} {
		c, peer := socketConn(t, l, listenerOf(t, l))
		unix.Write(peer, []byte(tc.req))
		l.readConn(c)
		l.settle()
		if open := l.exchanges.len() + l.sockets.len(); open != 1 {
			t.Fatalf("%s: %d requests and sockets open, want 1", tc.name, open)
		}
		l.closeConn(c, abi.ClosePeer)
		l.settle()
		if l.cur != inst || !inst.live() {
			t.Fatalf("%s: the guest trapped: the handle it was closing did not answer ECLOSED", tc.name)
		}
		if open := l.exchanges.len() + l.sockets.len(); open != 0 {
			t.Fatalf("%s: the handle is still live after the call (%d open)", tc.name, open)
		}
	}
}

// A message that could take the unsent output past the cap closes the connection before it
// is compressed: a compressible one would otherwise be deflated whole first (512 MiB of it
// took the host to 3.3 GB).
func TestWSSendChecksTheCapBeforeCompressing(t *testing.T) {
	l := bareLoop(t)
	l.cfg.MaxOutput = 1 << 20
	c, w := bareSocket(t, l)
	w.deflate = true
	if rc := l.cur.calls.WSSend(w.handle, make([]byte, 2<<20), abi.WSBinary); rc != int32(abi.ECLOSED) || !c.closed() {
		t.Fatalf("a 2 MiB compressible message under a 1 MiB cap: %d, closed %v; want ECLOSED and closed", rc, c.closed())
	}
}

// A message whose partial bytes would pass the process's buffer budget closes its socket with
// 1013 (try again later), and what it held is let go.
func TestWSMessagePastTheBufferBudget(t *testing.T) {
	l := bareLoop(t)
	l.cfg.BufferBudget = 64 << 10
	c, w := bareSocket(t, l)
	// A masked binary frame announcing 200 KiB, and the first 100 KiB of it (mask 0: the
	// payload is as sent).
	frame := []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x03, 0x20, 0x00, 0, 0, 0, 0}
	frame = append(frame, make([]byte, 100<<10)...)
	w.serve(frame)
	if !w.ended || len(c.out) < 4 || c.out[0] != 0x88 || c.out[2] != 0x03 || c.out[3] != 0xf5 { // close, 1013
		t.Fatalf("ended %v; output % x", w.ended, c.out[:min(len(c.out), 16)])
	}
	if held := l.g.buffered.Load(); held != 0 || w.held != 0 {
		t.Fatalf("%d bytes still counted (the socket: %d)", held, w.held)
	}
}
