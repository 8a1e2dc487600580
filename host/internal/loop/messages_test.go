package loop

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
)

func TestPostErrors(t *testing.T) {
	g := NewGroup(nil, Config{Workers: 2})
	for _, l := range g.loops {
		if err := l.init(); err != nil {
			t.Fatal(err)
		}
	}
	l0, l1 := g.loops[0], g.loops[1]
	t.Cleanup(func() { l0.poll.Close() })
	l0.cur = &instance{}
	l0.cur.calls = hostCalls{l: l0, in: l0.cur}
	if rc := l0.cur.calls.Post(1, []byte("hi")); rc != 0 || l1.in.queued.Load() != 1 || len(l1.tasks) != 1 {
		t.Fatalf("Post = %d, queued %d, tasks %d", rc, l1.in.queued.Load(), len(l1.tasks))
	}
	for _, tc := range []struct {
		target int32
		data   []byte
		want   abi.Errno
	}{
		{2, nil, abi.EINVAL}, {-3, nil, abi.EINVAL}, {abi.PostHost, nil, abi.ENOTSUP}, {1, make([]byte, abi.MaxMessage+1), abi.EINVAL},
	} {
		if got := abi.Errno(l0.cur.calls.Post(tc.target, tc.data)); got != tc.want {
			t.Errorf("Post(%d, %d bytes) = %v, want %v", tc.target, len(tc.data), got, tc.want)
		}
	}
	if l1.retire() {
		t.Fatal("a loop with a message waiting must not retire")
	}
	l1.tasks = nil
	if !l1.retire() {
		t.Fatal("an idle loop must retire")
	}
	l1.poll.Close()
	if got := abi.Errno(l0.cur.calls.Post(1, []byte("late"))); got != abi.ECLOSED {
		t.Fatalf("Post to an ended worker = %v, want ECLOSED", got)
	}
	if got := abi.Errno(l0.cur.calls.Post(abi.PostAll, []byte("all"))); got != abi.ECLOSED {
		t.Fatalf("broadcast with an ended worker = %v, want ECLOSED", got)
	}
}

// A loop that ends with tasks still queued — its program failed to start, or its poller
// failed (a stopped loop runs what is queued before it retires) — drops them, and each
// dropped task answers whoever waits on it: a Call fails with ErrProgramEnded, a Swap
// returns, a descriptor handed over is closed. A post after the end is dropped at once.
func TestTasksDroppedWhenTheLoopStops(t *testing.T) {
	g := NewGroup(nil, Config{Workers: 1})
	l := g.loops[0]
	if err := l.init(); err != nil {
		t.Fatal(err)
	}
	queued := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.tasks)
	}

	call, err := g.Call(0, "render", []byte("x"), true) // a busy loop: queued, not borrowed
	if err != nil {
		t.Fatal(err)
	}
	swapped := make(chan error, 1)
	go func() { swapped <- l.runSwap(nil) }()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	ran := false
	l.post(func(*Loop) { ran = true }, func() { unix.Close(fds[0]) })
	for queued() < 3 { // the Swap's post comes from its goroutine
		runtime.Gosched()
	}

	l.teardown()
	if ran {
		t.Fatal("a task ran after its loop stopped")
	}
	if res := within(t, call.Done(), "a call queued on an ended loop"); !errors.Is(res.Err, ErrProgramEnded) {
		t.Fatalf("a call queued on an ended loop ended with %+v, want ErrProgramEnded", res)
	}
	if err := within(t, swapped, "a swap queued on an ended loop"); err != nil {
		t.Fatalf("a swap queued on an ended loop: %v", err)
	}
	if n, err := unix.Read(fds[1], make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("the descriptor a dropped task held is still open: read = %d, %v (want 0, EOF)", n, err)
	}

	dropped := false
	if l.post(func(*Loop) { t.Error("a task ran on an ended loop") }, func() { dropped = true }) || !dropped {
		t.Fatalf("a post to an ended loop: dropped = %v, want refused and dropped at once", dropped)
	}
	if _, err := g.Call(0, "render", nil, true); !errors.Is(err, ErrProgramEnded) {
		t.Fatalf("a call to an ended loop: %v, want ErrProgramEnded", err)
	}
}

// A Swap does not wait for a worker that has not started (a program that has not listened
// runs on worker 0 alone): that worker starts with the new module, or, if it was starting
// with the old one, swaps first thing.
func TestSwapDoesNotWaitForWorkersNotStarted(t *testing.T) {
	g := NewGroup(nil, Config{Workers: 2})
	l1 := g.loops[1]
	if err := l1.init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l1.poll.Close() })
	swapped := make(chan error, 1)
	go func() { swapped <- l1.runSwap(nil) }()
	if err := within(t, swapped, "a swap of a worker not started"); err != nil {
		t.Fatalf("a swap of a worker not started: %v", err)
	}
	l1.mu.Lock()
	defer l1.mu.Unlock()
	if len(l1.tasks) != 1 {
		t.Fatalf("%d tasks queued for the worker, want its swap", len(l1.tasks))
	}
}

// within receives from ch, or fails the test if nothing comes in 10 s: what waits on a task
// must be answered, and a test of that must fail, not hang, when it is not.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer in 10 s", what)
		var zero T
		return zero
	}
}
