package host_test

// Review 40: attacks on the swap, message and Handler changes since e147c27, with
// tests/testdata/guests/review40 (built here, twice at most per run) and msgatk.

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// Fixed with this test (a bug of 7bbeab0, host/internal/loop/swap.go): a Swap that reaches
// worker 0 while its failed instance's replacement waits out its restart delay returns nil at once ("the pending
// restart takes m", swap.go:110) — but the group's module is now set only when worker 0's
// swap commits (swap.go:136), which that early return skips. The restart then takes
// currentModule(), the OLD module: Swap reported success, App.mod is the new module, the
// other workers run it, and worker 0 runs the old program (held messages included) until
// its next failure, which restarts the old one again. Before 7bbeab0 Swap set the module
// first, and the pending restart took the new one.
func TestReview40SwapDuringWorker0RestartDelayTakesTheNewProgram(t *testing.T) {
	newWasm, err := os.ReadFile(review40Wasm)
	if err != nil {
		t.Fatal(err)
	}
	// Warm the compilation cache, so that Swap's compile is short beside the restart delay.
	warm := load(t, review40Wasm, host.Config{})
	warm.Close(context.Background())

	app, got, logs := startMsgatk(t, host.Config{Workers: 1, MaxRestarts: 20})
	pingUntilPong(t, app, got)
	// Ten traps in a row: each replacement gets the next "die" (held, then delivered once it
	// has started) and fails before serving anything; the tenth failure waits 2.56 s.
	for range 10 {
		if err := app.Post(0, []byte("die|0|")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-logs.appears("(failure 10 in a row)"):
	case <-time.After(20 * time.Second):
		t.Fatalf("worker 0 never reached its tenth failure in a row")
	}
	seen := time.Now() // the 2.56 s delay began before its log line
	if err := app.Swap(context.Background(), newWasm); err != nil {
		t.Fatalf("Swap during the restart delay: %v", err)
	}
	if d := time.Since(seen); d > 2*time.Second {
		t.Skipf("the swap took %v: it may not have landed inside the 2.56 s restart delay", d)
	}
	t.Logf("Swap returned nil %v into the restart delay", time.Since(seen))
	// The restart ends the delay; whichever program answers the ping is worker 0's.
	for range 100 {
		if err := app.Post(0, []byte("ping")); err != nil {
			t.Fatalf("Post ping: %v", err)
		}
		if m, ok := await(t, got, "pong ", 200*time.Millisecond); ok {
			if !strings.HasPrefix(m, "pong review40 ") {
				t.Fatalf("Swap returned nil, but after the pending restart worker 0 runs the old program: its ping got %q (msgatk's), want \"pong review40 …\"", m)
			}
			return
		}
	}
	t.Fatal("no pong within 100 pings after the restart")
}
