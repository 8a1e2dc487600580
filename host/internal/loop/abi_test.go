package loop

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/abi"
)

// bareLoop is a loop with no guest and no sockets: enough to drive the host functions.
func bareLoop(t testing.TB) *Loop {
	t.Helper()
	g := NewGroup(nil, Config{Workers: 1})
	l := g.loops[0]
	if err := l.init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.poll.Close() })
	l.cur = &instance{} // no guest: host functions that need one answer ESTATE
	l.cur.calls = hostCalls{l: l, in: l.cur}
	return l
}

// request parses raw as if it arrived on a fresh connection and opens its exchange.
func request(t testing.TB, l *Loop, raw string) (*Conn, *exchange) {
	t.Helper()
	c := testConn(l, nil)
	n, err := httpOf(c).parser.Parse([]byte(raw), &l.httpScratch.req)
	if err != nil || n != len(raw) {
		t.Fatalf("parse %q: n=%d err=%v", raw, n, err)
	}
	return c, httpOf(c).newExchange(&l.httpScratch.req)
}

func TestRespondFraming(t *testing.T) {
	tests := []struct {
		name    string
		req     string
		status  int32
		hdr     string
		body    string
		end     bool
		writes  []string
		want    []string // substrings of the head, in order
		netBody string   // the body as net/http reads it
		absent  []string
		closing bool // the connection must close after the response
	}{
		{name: "whole response gets Content-Length", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 200,
			hdr: "Content-Type: text/plain\r\n", body: "hi", end: true,
			want: []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/plain\r\n", "Date: ", "Content-Length: 2\r\n"}, netBody: "hi", absent: []string{"chunked", "Connection"}},
		{name: "streamed response is chunked", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: "ab", writes: []string{"cde"},
			want: []string{"Transfer-Encoding: chunked\r\n", "\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"}, netBody: "abcde", absent: []string{"Content-Length"}},
		{name: "declared length streams unframed", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, hdr: "Content-Length: 5\r\n", body: "ab", writes: []string{"cde"},
			want: []string{"Content-Length: 5\r\n"}, netBody: "abcde", absent: []string{"chunked"}},
		{name: "HEAD has no body but its length", req: "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: "hello", end: true,
			want: []string{"Content-Length: 5\r\n"}, absent: []string{"hello"}},
		{name: "204 has neither", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 204, body: "x", end: true,
			want: []string{"HTTP/1.1 204 No Content\r\n"}, absent: []string{"Content-Length", "\r\n\r\nx"}},
		{name: "HTTP/1.0 keep-alive is said", req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200, body: "x", end: true,
			want: []string{"Connection: keep-alive\r\n"}, netBody: "x"},
		{name: "HTTP/1.0 default closes", req: "GET / HTTP/1.0\r\n\r\n", status: 200, body: "x", end: true,
			want: []string{"Content-Length: 1\r\n", "Connection: close\r\n"}, netBody: "x", closing: true},
		{name: "HTTP/1.0 stream is close-delimited", req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200, body: "ab", writes: []string{"c"},
			want: []string{"Connection: close\r\n"}, netBody: "abc", absent: []string{"chunked", "Content-Length"}, closing: true},
		{name: "guest's Connection: close is honoured once", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, hdr: "Connection: close\r\n", end: true,
			want: []string{"Connection: close\r\n"}, closing: true},
		{name: "guest's Date is kept", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, hdr: "Date: Tue, 15 Nov 1994 08:12:31 GMT\r\n", end: true,
			want: []string{"Date: Tue, 15 Nov 1994"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := bareLoop(t)
			c, ex := request(t, l, tc.req)
			flags := int32(0)
			if tc.end {
				flags = abi.RespondEnd
			}
			if rc := l.cur.calls.Respond(ex.handle, tc.status, []byte(tc.hdr), []byte(tc.body), flags); rc != 0 {
				t.Fatalf("Respond = %v", abi.Errno(rc))
			}
			for _, w := range tc.writes {
				if rc := l.cur.calls.Write(ex.handle, []byte(w)); rc != 0 {
					t.Fatalf("Write = %v", abi.Errno(rc))
				}
			}
			if !tc.end {
				if rc := l.cur.calls.End(ex.handle); rc != 0 {
					t.Fatalf("End = %v", abi.Errno(rc))
				}
			}
			wire := string(c.out)
			at := 0
			for _, w := range tc.want {
				i := strings.Index(wire[at:], w)
				if i < 0 {
					t.Fatalf("missing %q after offset %d in:\n%s", w, at, wire)
				}
				at += i + len(w)
			}
			for _, a := range tc.absent {
				if strings.Contains(wire, a) {
					t.Fatalf("unexpected %q in:\n%s", a, wire)
				}
			}
			if (c.phase != connOpen) != tc.closing {
				t.Fatalf("closeAfter = %v, want %v", (c.phase != connOpen), tc.closing)
			}
			if _, ok := l.exchanges.get(ex.handle); ok {
				t.Fatal("the handle is still live after the response ended")
			}
			body, err := readResponse(wire, tc.req)
			if err != nil {
				t.Fatalf("net/http cannot read the response: %v\n%s", err, wire)
			}
			if body != tc.netBody {
				t.Fatalf("body = %q, want %q", body, tc.netBody)
			}
		})
	}
}

func TestHostFunctionErrors(t *testing.T) {
	l := bareLoop(t)
	c, ex := request(t, l, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	h := ex.handle
	stale := abi.MakeHandle(abi.KindRequest, h.Gen()+1, h.Index())
	tests := []struct {
		name string
		call func() int32
		want abi.Errno
	}{
		{"write before respond", func() int32 { return l.cur.calls.Write(h, []byte("x")) }, abi.ESTATE},
		{"end before respond", func() int32 { return l.cur.calls.End(h) }, abi.ESTATE},
		{"status below 200", func() int32 { return l.cur.calls.Respond(h, 101, nil, nil, abi.RespondEnd) }, abi.EINVAL},
		{"status above 999", func() int32 { return l.cur.calls.Respond(h, 1000, nil, nil, abi.RespondEnd) }, abi.EINVAL},
		{"unknown flag", func() int32 { return l.cur.calls.Respond(h, 200, nil, nil, 2) }, abi.EINVAL},
		{"header splitting", func() int32 {
			return l.cur.calls.Respond(h, 200, []byte("A: b\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\n"), nil, abi.RespondEnd)
		}, abi.EINVAL},
		{"bare LF in a header", func() int32 { return l.cur.calls.Respond(h, 200, []byte("A: b\nc\r\n"), nil, abi.RespondEnd) }, abi.EINVAL},
		{"guest framing", func() int32 {
			return l.cur.calls.Respond(h, 200, []byte("Transfer-Encoding: chunked\r\n"), nil, abi.RespondEnd)
		}, abi.EINVAL},
		{"length mismatch", func() int32 {
			return l.cur.calls.Respond(h, 200, []byte("Content-Length: 3\r\n"), []byte("ab"), abi.RespondEnd)
		}, abi.EINVAL},
		{"204 with a length", func() int32 { return l.cur.calls.Respond(h, 204, []byte("Content-Length: 0\r\n"), nil, abi.RespondEnd) }, abi.EINVAL},
		{"stale handle", func() int32 { return l.cur.calls.Respond(stale, 200, nil, nil, abi.RespondEnd) }, abi.EBADHANDLE},
		{"wrong kind", func() int32 { return l.cur.calls.Close(abi.MakeHandle(abi.KindTimer, h.Gen(), h.Index())) }, abi.EBADHANDLE},
		{"ref on a request", func() int32 { return l.cur.calls.Ref(h, 0) }, abi.EBADHANDLE},
		{"small inbox", func() int32 { return l.cur.calls.Inbox(0, abi.MinInbox-1) }, abi.EINVAL},
	}
	for _, tc := range tests {
		if got := abi.Errno(tc.call()); got != tc.want {
			t.Fatalf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// None of the refused calls may have sent anything.
	if len(c.out) != 0 {
		t.Fatalf("refused calls wrote %q", c.out)
	}
	if rc := l.cur.calls.Respond(h, 200, []byte("Content-Length: 3\r\n"), []byte("ab"), 0); rc != 0 {
		t.Fatalf("declared-length respond = %v", abi.Errno(rc))
	}
	for _, tc := range []struct {
		name string
		call func() int32
		want abi.Errno
	}{
		{"respond twice", func() int32 { return l.cur.calls.Respond(h, 200, nil, nil, abi.RespondEnd) }, abi.ESTATE},
		{"write past the declared length", func() int32 { return l.cur.calls.Write(h, []byte("cd")) }, abi.EINVAL},
	} {
		if got := abi.Errno(tc.call()); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if rc := l.cur.calls.End(h); rc != 0 {
		t.Fatalf("End = %v", abi.Errno(rc))
	}
	if c.phase == connOpen {
		t.Fatal("a response short of its declared length must close the connection")
	}
	if got := abi.Errno(l.cur.calls.End(h)); got != abi.EBADHANDLE {
		t.Fatalf("End on an ended request = %v, want EBADHANDLE", got)
	}
}

func TestTimerHandles(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/hold"))
	base := l.refs // the guest's listener
	a := abi.Handle(l.cur.calls.TimerStart(int64(50e6), 0))
	b := abi.Handle(l.cur.calls.TimerStart(-5, 1)) // negative delay is the next turn; a tiny interval is 1 ms
	if a.Kind() != abi.KindTimer || b.Kind() != abi.KindTimer || l.refs != base+2 {
		t.Fatalf("handles %x %x, refs %d", uint64(a), uint64(b), l.refs)
	}
	if tb, _ := l.timers.get(b); tb.interval != 1e6 || tb.when != l.clock()+1 {
		t.Fatalf("timer b: when %d (now %d) interval %d", tb.when, l.clock(), tb.interval)
	}
	if rc := l.cur.calls.Ref(a, 0); rc != 0 || l.refs != base+1 {
		t.Fatalf("unref: rc %d refs %d", rc, l.refs)
	}
	if rc := l.cur.calls.Ref(a, 0); rc != 0 || l.refs != base+1 {
		t.Fatalf("unref twice must not count twice: refs %d", l.refs)
	}
	if rc := l.cur.calls.Close(a); rc != 0 || l.refs != base+1 {
		t.Fatalf("clearing an unreferenced timer: rc %d refs %d", rc, l.refs)
	}
	heapLen := l.heap.Len()
	if rc := l.cur.calls.Close(b); rc != 0 || l.refs != base || l.heap.Len() != heapLen-1 {
		t.Fatalf("clear: rc %d refs %d heap %d", rc, l.refs, l.heap.Len())
	}
	if got := abi.Errno(l.cur.calls.Close(b)); got != abi.EBADHANDLE {
		t.Fatalf("clearing twice = %v", got)
	}
	l.cur.calls.Ref(listenerOf(t, l).handle, 0)
	if l.alive() {
		t.Fatal("a loop with nothing referenced must not stay alive")
	}
}

func TestTimerNeedsAnInstanceAndCallback(t *testing.T) {
	if got := abi.Errno(bareLoop(t).cur.calls.TimerStart(1, 0)); got != abi.ESTATE {
		t.Fatalf("TimerStart with no instance = %v, want ESTATE", got)
	}
}

func TestRejectionsAnswerAndClose(t *testing.T) {
	l := bareLoop(t)
	tests := []struct {
		raw    string
		status string
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "400"},
		{"GET / HTTP/1.1\r\n\r\n", "400"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"},
	}
	for _, tc := range tests {
		c := testConn(l, nil)
		httpOf(c).parser.Limits = l.cfg.Limits
		used := c.proto.serve([]byte(tc.raw))
		if used != len(tc.raw) || c.phase == connOpen {
			t.Errorf("%q: used %d, closeAfter %v", tc.raw, used, (c.phase != connOpen))
		}
		if !bytes.HasPrefix(c.out, []byte("HTTP/1.1 "+tc.status+" ")) || !bytes.Contains(c.out, []byte("Connection: close\r\n")) {
			t.Errorf("%q: answered %q", tc.raw, c.out)
		}
	}
}

// A guest cannot hold more timers than --max-timers on a worker, nor open more than
// maxListeners listeners: past either, the call answers ELIMIT and the host stays as it was.
func TestTimerAndListenerCaps(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/hold"))
	l.cfg.MaxTimers = l.timers.len() + 3
	for i := range 3 {
		if h := l.cur.calls.TimerStart(int64(time.Hour), 0); h < 0 {
			t.Fatalf("timer %d: %v", i, abi.Errno(h))
		}
	}
	if got := abi.Errno(l.cur.calls.TimerStart(int64(time.Hour), 0)); got != abi.ELIMIT || l.timers.len() != l.cfg.MaxTimers {
		t.Fatalf("a timer past the cap: %v, %d timers", got, l.timers.len())
	}
	addr := []byte("127.0.0.1")
	for l.listeners.len() < maxListeners {
		if h := l.cur.calls.Listen(addr, 0, 0); h < 0 {
			t.Fatalf("listener %d: %v", l.listeners.len(), abi.Errno(h))
		}
	}
	if got := abi.Errno(l.cur.calls.Listen(addr, 0, 0)); got != abi.ELIMIT || l.listeners.len() != maxListeners {
		t.Fatalf("a listener past the cap: %v, %d listeners", got, l.listeners.len())
	}
}

// The loop's log is rate-limited: a guest that makes the host log in a loop gets logBurst
// lines a second through, and the count of the rest.
func TestLogRateLimit(t *testing.T) {
	l := bareLoop(t)
	var out strings.Builder
	l.cfg.Log = slog.New(slog.NewTextHandler(&out, nil))
	l.epoch = time.Now() // a second that has just begun
	for range 3 * logBurst {
		l.logf("the same complaint")
	}
	if n := strings.Count(out.String(), "the same complaint"); n != logBurst {
		t.Fatalf("%d lines logged in a second, want %d", n, logBurst)
	}
	l.epoch = l.epoch.Add(-time.Second) // the next second
	l.logf("after")
	if !strings.Contains(out.String(), fmt.Sprintf("%d log lines dropped", 2*logBurst)) {
		t.Fatalf("the dropped lines were not counted:\n%s", out.String())
	}
}
