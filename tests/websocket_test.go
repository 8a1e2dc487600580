package tests

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// WebSocket end to end: samples/wsecho and samples/chat driven by gobwas/ws's client over
// real sockets. The protocol's corner cases, case group by case group, are in
// wsconformance_test.go; Node's ws client and Chromium have their own files.

func init() {
	guestBuilds = append(guestBuilds,
		guestBuild{"wsecho", "./samples/wsecho", true},
		guestBuild{"chat", "./samples/chat", true},
	)
}

// wsDial opens a WebSocket to url with gobwas/ws's client and returns the connection and the
// 101's header fields. dialer may be nil. The connection is closed when the test ends.
func wsDial(t testing.TB, url string, dialer *ws.Dialer) (net.Conn, http.Header) {
	t.Helper()
	var d ws.Dialer
	if dialer != nil {
		d = *dialer
	}
	hdr := http.Header{}
	d.Timeout = ioTimeout
	d.OnHeader = func(k, v []byte) error {
		hdr.Add(string(k), string(v))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, _, _, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	return c, hdr
}

// wsURL is the WebSocket URL of path on s.
func (s *server) wsURL(path string) string { return "ws://" + s.Addr + path }

// wsRoundTrip sends msg and checks that the same message comes back.
func wsRoundTrip(t testing.TB, c net.Conn, op ws.OpCode, msg []byte) {
	t.Helper()
	if err := wsutil.WriteClientMessage(c, op, msg); err != nil {
		t.Fatalf("send %d bytes: %v", len(msg), err)
	}
	got, gotOp, err := wsutil.ReadServerData(c)
	if err != nil {
		t.Fatalf("echo of %d bytes: %v", len(msg), err)
	}
	if gotOp != op || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes (%v): got %d bytes (%v)", len(msg), op, len(got), gotOp)
	}
}
