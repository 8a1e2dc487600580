//go:build wasip1

package wasmloop

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// Goroutines in a guest. The host runs Go code only inside its calls into the guest (the
// callbacks): when a callback returns, every other goroutine stops where it is until the next
// one. So that a goroutine a handler starts — or one blocked in an SDK call that waits for
// the host (the wasmhttp Transport, Await) — gets to run, every callback ends by letting
// runnable goroutines run until each blocks again or ends (yieldToGoroutines). A program
// with no goroutine of its own pays one runtime.NumGoroutine per callback.

var (
	// baseGoroutines is how many goroutines a program has before it starts any: the
	// runtime's own and the one callbacks run on. Above it, a callback lets the others run.
	baseGoroutines = runtime.NumGoroutine()
	// woken counts goroutines an SDK completion made runnable that have not run since.
	woken int
	// awaiting counts goroutines parked in Await: an SDK completion wakes them, so they
	// need no timer to run again.
	awaiting int
	// idleRunners are Go's goroutines waiting for work; parked ones need no timer either.
	idleRunners []chan func()
	// inFlight counts the tasks given to Go that have not returned.
	inFlight int
	// yielding is true while the callback's goroutine lets the others run: code that finds
	// it false runs on the callback's goroutine itself, where blocking would stall the
	// worker (Await refuses).
	yielding bool
)

// yieldToGoroutines lets the program's other goroutines run before the callback returns.
func yieldToGoroutines() {
	if runtime.NumGoroutine() <= baseGoroutines {
		wakeDelay = 0
		return
	}
	yielding = true
	runtime.Gosched()
	// A goroutine woken by another may be scheduled after this one, and one that is running
	// can yield back before it is done — the runtime's own waits do (starting a garbage
	// collection waits for its workers with Gosched), which ended the callback with a
	// handler half-run, its response late by a wake-up. So keep yielding while completions
	// wait for their goroutines or the runtime counts others ready to run (bounded: a
	// goroutine that never settles does not hold the callback for ever). The runtime's count
	// costs microseconds to read, so it is asked only while a task given to Go is unfinished:
	// the usual handler is done after the first yield.
	for i := 0; (woken > 0 || inFlight > 0 && othersRunnable()) && i < 1000; i++ {
		runtime.Gosched()
	}
	yielding = false
	wakeForGoTimers()
}

// Go's own timers. A goroutine in time.Sleep, waiting on a time.After or a context deadline,
// or blocked on a channel that such a goroutine will send on, can only run again inside a
// callback, and the host does not see the Go runtime's timers. So while goroutines other than
// those parked in Await are left after a callback, the SDK keeps an unreferenced host timer
// that calls in and lets them run: first after wakeMin, doubling while nothing changes, up to
// wakeMax — a Go timer in a goroutine fires up to wakeMax late, and a goroutine blocked for
// good costs a call every wakeMax (a few microseconds). The wasmloop timers (SetTimeout)
// fire on time and cost nothing while they wait.
const (
	wakeMin = 500 * time.Microsecond
	wakeMax = 10 * time.Millisecond
)

var (
	wakePending bool
	wakeDelay   time.Duration
)

func wakeForGoTimers() {
	if runtime.NumGoroutine()-baseGoroutines-awaiting-len(idleRunners) <= 0 {
		wakeDelay = 0
		return
	}
	if wakePending {
		return
	}
	wakeDelay = min(max(2*wakeDelay, wakeMin), wakeMax)
	h := hostTimerStart(int64(wakeDelay), 0)
	if h < 0 {
		return // too many timers: the next callback tries again
	}
	hostRef(h, 0)
	wakePending = true
	timers.put(h, &Timer{h: h, fn: goTimersWoken})
}

// goTimersWoken runs on the wake timer; the callback's yield then lets the goroutines run
// and arms the next wake if some are still waiting.
func goTimersWoken() { wakePending = false }

// InGoroutine reports whether the calling code runs on a goroutine of the program's own,
// where it may block on the host (Await), rather than on a callback's, where blocking would
// stop the worker.
func InGoroutine() bool { return yielding }

// ErrBlockingCallback is what a blocking SDK call made on a callback's own goroutine fails
// with: it would wait for an event that only the callback's return lets the host deliver.
var ErrBlockingCallback = &blockingError{}

type blockingError struct{}

func (*blockingError) Error() string {
	return "wasmloop: a blocking call on the callback's own goroutine would stop the worker: " +
		"make it from a goroutine (go func() { ... }()), or use the callback form (wasmloop.StartFetch, Connect)"
}

// Await starts an operation with start and blocks the calling goroutine until the operation
// calls done, returning what it passed. It is for code written in Go's blocking style, run
// on a goroutine the program started (go func() { ... }()): the worker goes on serving while
// the goroutine waits. On a callback's own goroutine it returns ErrBlockingCallback at once.
func Await[T any](start func(done func(T)) error) (T, error) {
	var zero T
	if !yielding {
		return zero, ErrBlockingCallback
	}
	ch := make(chan T, 1)
	sent := false
	if err := start(func(v T) {
		if sent {
			return
		}
		sent = true
		woken++
		ch <- v
	}); err != nil {
		return zero, err
	}
	awaiting++
	v := <-ch
	awaiting--
	woken--
	return v, nil
}

// Go runs fn on a goroutine of its own, as go fn() does, reusing a goroutine that ran an
// earlier fn when one is idle: in Go's wasm code a new goroutine's stack grows afresh on every
// start (copied at each doubling), which made a net/http handler's request cost half as much
// again. Like any goroutine a handler starts, fn runs before the callback returns, until it
// blocks or ends. At most maxIdleRunners goroutines wait for work; they cost the program
// nothing else and do not keep it alive.
func Go(fn func()) {
	inFlight++
	if n := len(idleRunners); n > 0 {
		ch := idleRunners[n-1]
		idleRunners = idleRunners[:n-1]
		ch <- fn
		return
	}
	ch := make(chan func(), 1)
	ch <- fn
	go runner(ch)
}

const maxIdleRunners = 64

func runner(ch chan func()) {
	for fn := range ch {
		fn()
		inFlight--
		if len(idleRunners) >= maxIdleRunners {
			return
		}
		// The append and the receive that parks this goroutine run without a switch
		// between them: Go's wasm code has one thread and no preemption.
		idleRunners = append(idleRunners, ch)
	}
}

// runnable is the runtime's count of goroutines ready to run but not running (Go 1.26 and
// later; with an older Go the sample reads as unsupported and othersRunnable is false).
var runnable = []metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}

// othersRunnable reports whether goroutines other than the running one are ready to run.
func othersRunnable() bool {
	metrics.Read(runnable)
	v := runnable[0].Value
	return v.Kind() == metrics.KindUint64 && v.Uint64() > 0
}
