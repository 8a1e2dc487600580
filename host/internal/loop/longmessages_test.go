package loop

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// messageGroup is a group of n loops that do not run: what is posted to them stays queued.
// Each has a bare current instance speaking minor.
func messageGroup(t *testing.T, n int, minor int32) (*Group, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	g := NewGroup(nil, Config{Workers: n, Log: slog.New(slog.NewTextHandler(out, nil))})
	for _, l := range g.loops {
		if err := l.init(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.poll.Close() })
		l.cur = &instance{minor: minor}
		l.cur.calls = hostCalls{l: l, in: l.cur}
	}
	return g, out
}

// A receiver holds at most maxQueuedBytes of undelivered messages: 16 of 1 MiB, then ELIMIT;
// a refused message is not counted, and one delivered frees its bytes.
func TestMessageByteBound(t *testing.T) {
	g, _ := messageGroup(t, 2, abi.Minor)
	l0, l1 := g.loops[0], g.loops[1]
	msg := make([]byte, abi.MaxMessage)
	for i := range maxQueuedBytes / abi.MaxMessage {
		if rc := l0.cur.calls.Post(1, msg); rc != 0 {
			t.Fatalf("message %d: %v", i+1, abi.Errno(rc))
		}
	}
	if rc := l0.cur.calls.Post(1, msg); abi.Errno(rc) != abi.ELIMIT {
		t.Fatalf("past 16 MiB queued: %v, want ELIMIT", abi.Errno(rc))
	}
	if q, b := l1.in.queued.Load(), l1.in.bytes.Load(); q != 16 || b != maxQueuedBytes {
		t.Fatalf("queued %d messages, %d bytes; want 16, 16 MiB", q, b)
	}
	// The bound counts bytes: not even one more fits.
	if rc := l0.cur.calls.Post(1, []byte("x")); abi.Errno(rc) != abi.ELIMIT {
		t.Fatalf("a byte more: %v, want ELIMIT", abi.Errno(rc))
	}
	l1.runTasks() // delivers them all (to no guest: dropped), freeing the bytes
	if q, b := l1.in.queued.Load(), l1.in.bytes.Load(); q != 0 || b != 0 {
		t.Fatalf("after delivery: queued %d, %d bytes", q, b)
	}
	if rc := l0.cur.calls.Post(1, msg); rc != 0 {
		t.Fatalf("after delivery: %v", abi.Errno(rc))
	}
	// The embedder's messages count against the same bound.
	for range maxQueuedBytes/abi.MaxMessage - 1 {
		if err := g.PostFromHost(1, msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.PostFromHost(1, msg); err != abi.ELIMIT {
		t.Fatalf("the embedder's 17th MiB: %v, want ELIMIT", err)
	}
	if err := g.PostFromHost(1, make([]byte, abi.MaxMessage+1)); err != abi.EINVAL {
		t.Fatalf("the embedder's message over MaxMessage: %v, want EINVAL", err)
	}
}

// broadcast writes every worker's outcome, returns how many refused, and logs them by worker.
func TestBroadcastCodes(t *testing.T) {
	g, out := messageGroup(t, 4, abi.Minor)
	l0 := g.loops[0]
	g.loops[2].in.queued.Store(maxQueuedMessages) // full
	g.loops[3].mu.Lock()
	g.loops[3].dead = true // ended
	g.loops[3].mu.Unlock()
	codes := bytes.Repeat([]byte{0x55}, 4*4+3)
	if n := l0.cur.calls.Broadcast([]byte("hello"), codes); n != 2 {
		t.Fatalf("Broadcast = %d, want 2 refusals", n)
	}
	workers, errs := abi.BroadcastRefusals(codes[:16])
	if len(workers) != 2 || workers[0] != 2 || workers[1] != 3 || errs[0] != abi.ELIMIT || errs[1] != abi.ECLOSED {
		t.Fatalf("refusals %v %v, want workers [2 3] with ELIMIT, ECLOSED", workers, errs)
	}
	if !bytes.Equal(codes[:8], make([]byte, 8)) || !bytes.Equal(codes[16:], []byte{0x55, 0x55, 0x55}) {
		t.Fatalf("codes % x: the sender and worker 1 must be 0, the bytes past the last code untouched", codes)
	}
	if g.loops[1].in.queued.Load() != 1 {
		t.Fatal("worker 1 did not get the message")
	}
	if want := "a broadcast of 5 bytes was not delivered to worker 2 (ELIMIT), worker 3 (ECLOSED)"; !strings.Contains(out.String(), want) {
		t.Fatalf("log %q, want a line with %q", out, want)
	}
	// A buffer too short for every code: the count still says how many refused.
	if n := l0.cur.calls.Broadcast([]byte("x"), nil); n != 2 {
		t.Fatalf("Broadcast without a codes buffer = %d, want 2", n)
	}
	// post(-1) answers the first refusal, as in 1.2.
	if rc := l0.cur.calls.Post(abi.PostAll, []byte("x")); abi.Errno(rc) != abi.ELIMIT {
		t.Fatalf("post(-1) = %v, want ELIMIT", abi.Errno(rc))
	}
	if n := l0.cur.calls.Broadcast(make([]byte, abi.MaxMessage+1), codes); abi.Errno(n) != abi.EINVAL {
		t.Fatalf("Broadcast over MaxMessage = %v, want EINVAL", abi.Errno(n))
	}
}

// A guest built for 1.2–1.6 gets what it got before: it posts at most 4096 bytes (EINVAL
// beyond), and nobody can send it more (ENOTSUP), while 4096 bytes pass either way.
func TestMessagesOlderGuests(t *testing.T) {
	g, _ := messageGroup(t, 2, 6)
	l0, l1 := g.loops[0], g.loops[1]
	l1.in.short.Store(true) // what noteCurrent records for a current instance speaking 1.6
	if rc := l0.cur.calls.Post(1, make([]byte, abi.MaxShortMessage+1)); abi.Errno(rc) != abi.EINVAL {
		t.Fatalf("a 1.6 guest posting 4097 bytes: %v, want EINVAL", abi.Errno(rc))
	}
	if rc := l0.cur.calls.Post(1, make([]byte, abi.MaxShortMessage)); rc != 0 {
		t.Fatalf("a 1.6 guest posting 4096 bytes: %v", abi.Errno(rc))
	}
	l0.cur.minor = abi.Minor // the sender is new, the receiver old
	if rc := l0.cur.calls.Post(1, make([]byte, abi.MaxShortMessage+1)); abi.Errno(rc) != abi.ENOTSUP {
		t.Fatalf("4097 bytes to a 1.6 guest: %v, want ENOTSUP", abi.Errno(rc))
	}
	if err := g.PostFromHost(1, make([]byte, 5000)); err != abi.ENOTSUP {
		t.Fatalf("the embedder's 5000 bytes to a 1.6 guest: %v, want ENOTSUP", err)
	}
	codes := make([]byte, 8)
	if n := l0.cur.calls.Broadcast(make([]byte, 5000), codes); n != 1 {
		t.Fatalf("broadcast of 5000 bytes to a 1.6 guest: %d refusals, want 1", n)
	}
	if w, e := abi.BroadcastRefusals(codes); len(w) != 1 || w[0] != 1 || e[0] != abi.ENOTSUP {
		t.Fatalf("refusals %v %v, want worker 1 ENOTSUP", w, e)
	}
	// During _initialize the version is not known yet: the 1.2 cap.
	in := &instance{}
	in.calls = hostCalls{l: l0, in: in}
	if rc := in.calls.Post(1, make([]byte, abi.MaxShortMessage+1)); abi.Errno(rc) != abi.EINVAL {
		t.Fatalf("4097 bytes before the version is known: %v, want EINVAL", abi.Errno(rc))
	}
}

// message_read gives the part of a message past the inbox, and with no room, how much is left.
func TestMessageRead(t *testing.T) {
	l := bareLoop(t)
	calls := &l.cur.calls
	if n := calls.MessageRead(nil); n != 0 {
		t.Fatalf("outside a delivery: %d left, want 0", n)
	}
	l.cur.msgRest = []byte("abcdefg")
	if n := calls.MessageRead(nil); n != 7 {
		t.Fatalf("%d left, want 7", n)
	}
	buf := make([]byte, 4)
	if n := calls.MessageRead(buf); n != 4 || string(buf) != "abcd" {
		t.Fatalf("read %d %q", n, buf)
	}
	if n := calls.MessageRead(buf); n != 3 || string(buf[:3]) != "efg" {
		t.Fatalf("read %d %q", n, buf[:n])
	}
	if n := calls.MessageRead(buf); n != 0 {
		t.Fatalf("at the end: %d", n)
	}
}
