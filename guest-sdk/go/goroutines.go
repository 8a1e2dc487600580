//go:build wasip1

package wasmloop

import "runtime"

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
	// yielding is true while the callback's goroutine lets the others run: code that finds
	// it false runs on the callback's goroutine itself, where blocking would stall the
	// worker (Await refuses).
	yielding bool
)

// yieldToGoroutines lets the program's other goroutines run before the callback returns.
func yieldToGoroutines() {
	if runtime.NumGoroutine() <= baseGoroutines {
		return
	}
	yielding = true
	runtime.Gosched()
	// A goroutine woken by another may be scheduled after this one: keep yielding while
	// completions are waiting for their goroutines (bounded: a goroutine that is woken and
	// never reaches its receive does not hold the callback for ever).
	for i := 0; woken > 0 && i < 1000; i++ {
		runtime.Gosched()
	}
	yielding = false
}

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
	v := <-ch
	woken--
	return v, nil
}
