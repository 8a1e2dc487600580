package loop

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
)

// statsLoop is guestLoop with the metrics' counters and an access log (into the buffer).
func statsLoop(t *testing.T, wasm []byte) (*Loop, *bytes.Buffer) {
	t.Helper()
	l := statsGuestLoop(t, wasm)
	var buf bytes.Buffer
	l.cfg.AccessLog = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	return l, &buf
}

// statsGuestLoop is guestLoop with Config.Stats on (so the instance reports its calls too).
func statsGuestLoop(t testing.TB, wasm []byte) *Loop {
	t.Helper()
	return newGuestLoop(t, wasm, Config{Stats: true})
}

func totalRequests(s *Stats) (n uint64) {
	for i := range s.Requests {
		n += s.Requests[i].Load()
	}
	return n
}

// A WebSocket handshake the guest accepts is answered (101): it is a request like any other,
// counted in the 1xx class and access-logged.
func TestStatsCountWebSocketAccept(t *testing.T) {
	l, log := statsLoop(t, buildSample(t, "wsecho"))
	c, _ := socketConn(t, l, listenerOf(t, l))
	req := "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	serveOnce(l, c, []byte(req))
	l.settle()
	if l.sockets.len() != 1 {
		t.Fatalf("the guest did not accept the WebSocket (%d sockets)", l.sockets.len())
	}
	if got := l.stats.Requests[1].Load(); got != 1 {
		t.Errorf("1xx requests = %d after a 101, want 1 (all classes: %d)", got, totalRequests(l.stats))
	}
	if !strings.Contains(log.String(), "status=101") {
		t.Errorf("no access-log record for the 101: %q", log)
	}
}

// A WebSocket handshake the host refuses (400: no Sec-WebSocket-Key) is a host-answered error
// like a parse error's 400, and must be counted as one.
func TestStatsCountRejectedUpgrade(t *testing.T) {
	l, log := statsLoop(t, buildSample(t, "hello"))
	c, _ := socketConn(t, l, listenerOf(t, l))
	serveOnce(l, c, []byte("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
	if !bytes.HasPrefix(c.out, []byte("HTTP/1.1 400 ")) {
		t.Fatalf("answered %q", c.out)
	}
	if got := l.stats.Requests[4].Load(); got != 1 {
		t.Errorf("4xx requests = %d after a refused handshake, want 1", got)
	}
	if !strings.Contains(log.String(), "status=400") {
		t.Errorf("no access-log record for the 400: %q", log)
	}
}

// A host-answered error measures from the request's arrival, not from when the connection
// last became idle: a keep-alive connection idle for 5 s that then sends a bad request gets
// its 400 at once.
func TestStatsErrorDurationExcludesIdle(t *testing.T) {
	l, _ := statsLoop(t, buildSample(t, "hello"))
	c := testConn(l, listenerOf(t, l))
	l.now = time.Now().Add(-5 * time.Second)
	if body := serveGET(t, l, c, "/"); body != "Hello World\n" {
		t.Fatalf("got %q", body)
	}
	l.now = time.Now()
	sumBefore := l.stats.RequestDuration.Sum.Load()
	serveOnce(l, c, []byte("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"))
	if !bytes.HasPrefix(c.out, []byte("HTTP/1.1 400 ")) {
		t.Fatalf("answered %q", c.out)
	}
	if d := time.Duration(l.stats.RequestDuration.Sum.Load() - sumBefore); d > time.Second {
		t.Errorf("the 400 was recorded as taking %v; it was answered as it arrived", d)
	}
}

// A request the guest failed to answer in time (ResponseTimeout: 503) is logged with its
// method and path, and timed from its own arrival (3 s ago), not from when the connection
// finished its previous request (10 s ago).
func TestStatsResponseTimeout503(t *testing.T) {
	l, log := statsLoop(t, buildGuest(t, "testdata/hold"))
	l.cfg.ResponseTimeout = time.Second
	c, _ := socketConn(t, l, listenerOf(t, l))
	t0 := time.Now()
	l.now = t0.Add(-10 * time.Second)
	serveOnce(l, c, []byte("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"))
	l.settle()
	l.now = t0.Add(-3 * time.Second)
	serveOnce(l, c, []byte("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"))
	l.now = t0
	sumBefore := l.stats.RequestDuration.Sum.Load()
	httpOf(c).sweep(l.clock())
	if got := l.stats.Requests[5].Load(); got != 1 {
		t.Fatalf("5xx = %d", got)
	}
	if d := time.Duration(l.stats.RequestDuration.Sum.Load() - sumBefore); d < 2*time.Second || d > 5*time.Second {
		t.Errorf("the 503 was recorded as taking %v, want about 3s", d)
	}
	if !strings.Contains(log.String(), "method=GET path=/hold status=503") {
		t.Errorf("access log of the 503: %q", log)
	}
}

// A request whose guest call fails (500, failExchange) is access-logged with its method and
// path, like every other request.
func TestStatsFailedRequestLogged(t *testing.T) {
	l, log := statsLoop(t, buildGuest(t, "testdata/crash"))
	c := testConn(l, listenerOf(t, l))
	serveOnce(l, c, []byte("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n"))
	if !bytes.HasPrefix(c.out, []byte("HTTP/1.1 500 ")) {
		t.Fatalf("answered %q", c.out)
	}
	if got := l.stats.Requests[5].Load(); got != 1 {
		t.Errorf("5xx = %d, want 1", got)
	}
	if !strings.Contains(log.String(), "method=GET path=/panic status=500") {
		t.Errorf("access log of the 500: %q", log)
	}
}

// A response that started (status 200 on the wire) and whose client left before its end is
// counted and logged: it was answered, and these are exactly the requests an operator looks
// for (long downloads, event streams).
func TestStatsClientLeavesMidResponse(t *testing.T) {
	l, log := statsLoop(t, buildSample(t, "stream"))
	c, peer := socketConn(t, l, listenerOf(t, l))
	l.now = time.Now().Add(-time.Second)
	serveOnce(l, c, []byte("GET /lines HTTP/1.1\r\nHost: a\r\n\r\n"))
	l.settle()
	l.now = l.now.Add(150 * time.Millisecond) // the first line, from the guest's timer
	l.fireTimers()
	l.settle()
	if ex := httpOf(c).ex; ex == nil || !ex.started || ex.status != 200 {
		t.Fatalf("the response did not start: %+v", ex)
	}
	unix.Close(peer)
	l.closeConn(c, abi.ClosePeer) // what the next write's EPIPE, or a hang-up, does
	l.settle()
	if !c.closed() {
		t.Fatal("the connection is still open")
	}
	if got := totalRequests(l.stats); got != 1 {
		t.Errorf("requests counted = %d after a 200 whose client left mid-body, want 1", got)
	}
	if !strings.Contains(log.String(), "path=/lines status=200") {
		t.Errorf("no access-log record: %q", log)
	}
}

// The gauge of open connections follows the connections through every close path.
func TestStatsConnsGauge(t *testing.T) {
	l, _ := statsLoop(t, buildGuest(t, "testdata/crash"))
	c1, _ := socketConn(t, l, listenerOf(t, l))
	c2, _ := socketConn(t, l, listenerOf(t, l))
	if got := l.stats.ConnsOpen.Load(); got != 2 {
		t.Fatalf("conns open = %d, want 2", got)
	}
	serveOnce(l, c1, []byte("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n"))
	l.settle()
	l.closeConn(c2, 0)
	l.closeConn(c1, 0)
	if got := l.stats.ConnsOpen.Load(); got != 0 || l.nconns != 0 {
		t.Fatalf("conns open = %d (nconns %d), want 0", got, l.nconns)
	}
}

// The dispatch path allocates no more with the counters on than without.
func TestDispatchAllocationsWithStats(t *testing.T) {
	l := statsGuestLoop(t, buildSample(t, "hello"))
	c := testConn(l, listenerOf(t, l))
	parsed(t, l, c)
	dispatchOnce(l, c)
	resetOutput(l, c)
	if a := testing.AllocsPerRun(1000, func() { dispatchOnce(l, c); resetOutput(l, c) }); a > 2 {
		t.Fatalf("%v allocations per dispatch with stats, want at most 2", a)
	}
	if n := totalRequests(l.stats); n < 1000 {
		t.Fatalf("%d counted", n)
	}
}
