package loop

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// A host function that panics on an operation's goroutine fails the operation (EIO) and is
// logged on the loop; the process goes on.
func TestOpGoRecoversPanic(t *testing.T) {
	var logs bytes.Buffer
	l := &Loop{cfg: &Config{Log: slog.New(slog.NewTextHandler(&logs, nil))}}
	if err := l.init(); err != nil {
		t.Fatal(err)
	}
	defer l.poll.Close()
	op := &Op{l: l, in: &instance{ctx: context.Background()}}
	l.pendingOps++
	if !l.sleep() {
		t.Fatal("the loop had work before the test began")
	}
	op.Go(func(context.Context, []byte) ([]byte, error) { panic("boom") }, []byte("in"))
	if _, woken, err := l.poll.Wait(l.events, 10_000); err != nil || !woken { // the goroutine's post wakes it
		t.Fatalf("the loop was not woken: %v, %v", woken, err)
	}
	l.awake()
	l.runTasks()
	if len(l.queue.results) != 1 {
		t.Fatalf("%d results, want the one of the operation", len(l.queue.results))
	}
	if r := l.queue.results[0]; !r.failed || !strings.HasPrefix(string(r.res), "EIO ") {
		t.Errorf("the result: failed %v, %q; want EIO", r.failed, r.res)
	}
	if l.pendingAsync != 0 || l.pendingAsyncBytes != 0 {
		t.Errorf("the goroutine is still counted: %d, %d bytes", l.pendingAsync, l.pendingAsyncBytes)
	}
	if !strings.Contains(logs.String(), "panicked on its goroutine: boom") {
		t.Errorf("no log line of the panic: %q", logs.String())
	}
}
