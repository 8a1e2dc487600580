package guest

import (
	"context"
	"errors"
	"github.com/wasmloop/wasmloop/abi"
	"io"
	"testing"
	"time"
)

// A module whose start function (run by instantiation, before any export) loops for ever is
// stopped by the start-up budget like _initialize would be.
func TestStartFunctionLoopIsStopped(t *testing.T) {
	ctx := context.Background()
	mod := loopingStart(t)
	_, err := mod.Instantiate(ctx, InstanceConfig{StartBudget: 50 * time.Millisecond}, nil)
	var be *BudgetError
	if !errors.As(err, &be) || be.Budget != 50*time.Millisecond {
		t.Fatalf("Instantiate = %v, want a BudgetError of 50ms", err)
	}
}

// A start function of nothing but fills, each of 32 MiB and no loop between them, is stopped
// by the start-up budget: the meter charges bulk operations by their length.
func TestStraightLineFillsAreStopped(t *testing.T) {
	ctx := context.Background()
	start := []byte{0x41, 0x80, 0x04, 0x40, 0x00, 0x1a} // memory.grow 512 pages (32 MiB), drop
	for range 1000 {                                    // memory.fill(0, 1, 32 MiB): 1000 of them take seconds
		start = append(start, 0x41, 0, 0x41, 1, 0x41, 0x80, 0x80, 0x80, 0x10, 0xfc, 11, 0)
	}
	mod := compiledWithStart(t, append(start, 0x0b))
	_, err := mod.Instantiate(ctx, InstanceConfig{StartBudget: 50 * time.Millisecond}, nil)
	var be *BudgetError
	if !errors.As(err, &be) {
		t.Fatalf("Instantiate = %v, want a BudgetError", err)
	}
}

// A cancelled context ends an instance's calls even with no budget (a warm spare being made
// when the program stops).
func TestCancelledContextStopsALoop(t *testing.T) {
	ctx := context.Background()
	mod := loopingStart(t)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := mod.Instantiate(cctx, InstanceConfig{}, nil)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Instantiate = %v, want context.Canceled", err)
	}
}

// loopingStart compiles a guest whose start function loops for ever.
func loopingStart(t *testing.T) *Module {
	t.Helper()
	return compiledWithStart(t, []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}) // loop br 0 end end
}

// compiledWithStart compiles, in an interruptible runtime closed when the test ends, a guest
// whose start function has the given body.
func compiledWithStart(t *testing.T, start []byte) *Module {
	t.Helper()
	m := validGuest()
	m.start = start
	return compiledInterruptible(t, m)
}

// compiledInterruptible compiles m in an interruptible runtime closed when the test ends.
func compiledInterruptible(t *testing.T, m module) *Module {
	t.Helper()
	ctx := context.Background()
	rt, err := NewRuntime(ctx, RuntimeConfig{CacheDir: "-", Interruptible: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.Compile(ctx, m.encode())
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

// A guest asleep in WASI's poll_oneoff is inside its call: the budget ends the sleep too.
func TestSleepIsStopped(t *testing.T) {
	ctx := context.Background()
	m := validGuest()
	m.imports = append(m.imports, wimport{"wasi_snapshot_preview1", "poll_oneoff", []byte{tI32, tI32, tI32, tI32}, []byte{tI32}})
	// One clock subscription at 0 (monotonic clock, relative, 30 s), events at 64, the count at 128.
	m.start = append([]byte{0x41, 16, 0x41, 1, 0x36, 2, 0}, // i32.store 16 <- 1 (clock id)
		append(append([]byte{0x41, 24, 0x42}, sleb(30e9)...), 0x37, 3, 0)...) // i64.store 24 <- 30e9 ns
	m.start = append(m.start, 0x41, 0, 0x41, 0xc0, 0x00, 0x41, 1, 0x41, 0x80, 0x01, 0x10, 1, 0x1a, 0x0b)
	mod := compiledInterruptible(t, m)
	_, err := mod.Instantiate(ctx, InstanceConfig{StartBudget: 50 * time.Millisecond}, nil)
	var be *BudgetError
	if !errors.As(err, &be) {
		t.Fatalf("Instantiate = %v, want the budget to end the 30 s sleep", err)
	}
}

// random_get of a large memory is filled a chunk at a time, and the budget ends it between
// chunks (256 MiB took 700 ms in one host call).
func TestRandomGetIsStopped(t *testing.T) {
	ctx := context.Background()
	m := validGuest()
	m.imports = append(m.imports, wimport{"wasi_snapshot_preview1", "random_get", []byte{tI32, tI32}, []byte{tI32}})
	// memory.grow to 256 MiB, then random_get of 255 MiB from 0, eight times over.
	m.start = append([]byte{0x41}, sleb(4095)...)
	m.start = append(m.start, 0x40, 0, 0x1a)
	for range 8 {
		m.start = append(append(m.start, 0x41, 0, 0x41), sleb(255<<20)...)
		m.start = append(m.start, 0x10, 1, 0x1a)
	}
	m.start = append(m.start, 0x0b)
	mod := compiledInterruptible(t, m)
	_, err := mod.Instantiate(ctx, InstanceConfig{StartBudget: 20 * time.Millisecond}, nil)
	var be *BudgetError
	if !errors.As(err, &be) {
		t.Fatalf("Instantiate = %v, want the budget to end random_get", err)
	}
}

// poll_oneoff takes at most maxSubscriptions: wazero's did Go work and allocated for each of
// millions, past the budget.
func TestPollOneoffBounded(t *testing.T) {
	ctx := context.Background()
	m := validGuest()
	m.imports = append(m.imports, wimport{"wasi_snapshot_preview1", "poll_oneoff", []byte{tI32, tI32, tI32, tI32}, []byte{tI32}})
	// memory.grow 3; store at 200000 the errno of poll_oneoff(0, 100000, 2000, 200004).
	m.start = []byte{0x41, 3, 0x40, 0, 0x1a}
	for _, v := range []int64{200000, 0, 100000, 2000, 200004} {
		m.start = append(append(m.start, 0x41), sleb(v)...)
	}
	m.start = append(m.start, 0x10, 1, 0x36, 2, 0, 0x0b)
	mod := compiledInterruptible(t, m)
	inst, err := mod.Instantiate(ctx, InstanceConfig{StartBudget: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if errno, _ := inst.mod.Memory().ReadUint32Le(200000); errno != wasiEINVAL {
		t.Errorf("poll_oneoff of 2,000 subscriptions = %d, want EINVAL (%d)", errno, wasiEINVAL)
	}
}

// An export whose call ran long (deep recursion here) is looked up afresh afterwards, so that
// the stack wazero grew for it is not kept outside the memory limit.
func TestLongCallRefreshesItsExport(t *testing.T) {
	ctx := context.Background()
	m := validGuest()
	self := len(m.imports) + len(m.exports) // the index wasmloop_on_timer gets
	m.exports = append(m.exports, wexport{abi.ExportOnTimer, []byte{tI64}, []byte{tI32}})
	// on_timer(n): 1,000 i64 locals (an 8 KB frame); n == 0 ? 0 : on_timer(n-1)
	body := []byte{1, 0xe8, 0x07, tI64, 0x20, 0, 0x50, 0x04, tI32, 0x41, 0, 0x05, 0x20, 0, 0x42, 1, 0x7d, 0x10}
	body = append(append(body, leb(self)...), 0x0b, 0x0b)
	m.bodies[abi.ExportOnTimer] = body
	mod := compiledInterruptible(t, m)
	inst, err := mod.Instantiate(ctx, InstanceConfig{CallBudget: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	before := inst.onTimer
	if _, err := inst.OnTimer(3); err != nil { // shallow: kept
		t.Fatal(err)
	}
	if inst.onTimer != before {
		t.Error("a short call's export was looked up again")
	}
	if _, err := inst.OnTimer(10_000); err != nil { // 10,000 frames of 8 KB: 80 MB of stack
		t.Fatal(err)
	}
	if inst.onTimer == before {
		t.Error("after 80 MB of recursion the export, and its stack, were kept")
	}
}

// Only the Go runtime's own deadlock report marks an instance deadlocked: a program that logs
// the words does not.
func TestDeadlockReportOnly(t *testing.T) {
	for _, c := range []struct {
		writes []string
		want   bool
	}{
		{[]string{"fatal error: ", "all goroutines are asleep - deadlock!", "\n"}, true},
		{[]string{"fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [select (no cases)]:\n"}, true},
		{[]string{"log: the runtime says all goroutines are asleep - deadlock! when...\n"}, false},
		{[]string{"all goroutines are asleep - deadlock!\n"}, false},
	} {
		i := &Instance{}
		w := stoppableWriter{io.Discard, i, true}
		for _, s := range c.writes {
			w.Write([]byte(s))
		}
		if i.Deadlocked() != c.want {
			t.Errorf("%q: deadlocked %v, want %v", c.writes, i.Deadlocked(), c.want)
		}
	}
}
