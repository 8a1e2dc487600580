package loop

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
)

// An instance's life on a loop, in one place: it starts (startInstance), and when one of its
// callbacks traps or exits it is failed and replaced (guestFailed). Everything the old
// instance's handles named is answered, closed or handed over here.

// startInstance instantiates the module and runs the program's top-level code.
func (l *Loop) startInstance() error {
	l.inst = nil // host calls made during _initialize find no instance and get ESTATE
	inst, err := l.g.module.Instantiate(context.Background(), l.cfg.Instance, &l.calls)
	if exit, ok := err.(*guest.ExitError); ok {
		l.g.exit(exit.Code) // proc_exit in initialisation ends the process with its code
		return nil
	}
	if err != nil {
		return err
	}
	l.inst = inst
	rc, err := inst.Start()
	if err != nil {
		if exit, ok := err.(*guest.ExitError); ok {
			l.g.exit(exit.Code)
			return nil
		}
		return err
	}
	if rc != 0 {
		return &startError{rc}
	}
	return nil
}

// startError is a non-zero result of wasmloop_on_start: the program's start-up failed
// (ABI.md §2). The value is the program's own; it is named only when it is one of the ABI's
// errnos, which the Go SDK returns when a host call it makes before main fails.
type startError struct{ rc int32 }

func (e *startError) Error() string {
	msg := "wasmloop_on_start returned " + strconv.Itoa(int(e.rc))
	// Errno.Error gives a known code's name (EBADHANDLE, …) and spells out any other value.
	if name := abi.Errno(e.rc).Error(); e.rc < 0 && strings.HasPrefix(name, "E") {
		msg += " = " + name
	}
	return msg + " (the program's start-up failed)"
}

// guestFailed handles a callback that trapped or exited. A trap poisons the instance: the
// request it was handling (ex, may be nil) gets a 500, every other request of the instance is
// failed the same way, its sockets are closed with 1011, its timers are dropped, and a fresh
// instance takes over the listeners.
func (l *Loop) guestFailed(err error, ex *exchange) {
	var exit *guest.ExitError
	if errors.As(err, &exit) && exit.Code == 0 {
		l.g.exit(0)
		return
	}
	status := 500
	var budget *guest.BudgetError
	switch {
	case exit != nil:
		l.logf("worker %d: the guest died (proc_exit %d in a callback); replacing the instance", l.id, exit.Code)
	case errors.As(err, &budget):
		// What it was answering could be answered by a healthy instance: 503, not 500.
		status = 503
		l.logf("worker %d: %v; replacing the instance", l.id, err)
	default:
		l.logf("worker %d: %v", l.id, err)
	}
	if ex != nil || l.inst.Served() > 0 {
		// It did some work, or a request made it fail: not a guest that fails as it starts.
		// (Counting a request that crashes every fresh instance would let a client stop
		// the process by repeating it.)
		l.failures = 0
	}
	l.dropInstance(ex, status)
	l.replace()
}

// replace starts the instance that takes over from one that failed. A guest that fails again
// before it has served a single event is failing as it starts: it is restarted after a delay
// that doubles with each consecutive failure (restartDelay), not in a hot loop, and after
// MaxRestarts consecutive failures the process gives up and exits 1.
func (l *Loop) replace() {
	l.failures++
	if l.failures > l.cfg.MaxRestarts {
		l.logf("worker %d: the guest failed %d times in a row without serving anything; giving up", l.id, l.failures)
		l.dropOrphans()
		l.g.giveUp(fmt.Errorf("worker %d: the guest failed %d times in a row", l.id, l.failures))
		return
	}
	if d := restartDelay(l.failures); d > 0 {
		l.logf("worker %d: restarting the instance in %v (failure %d in a row)", l.id, d, l.failures)
		l.restarting = true // keeps the loop alive with nothing referenced (alive)
		l.addHostTimer(d, l.restart)
		return
	}
	l.restart()
}

// restart starts the replacement instance; one that fails to start counts as a failure.
func (l *Loop) restart() {
	l.restarting = false
	if l.stopped {
		return
	}
	if err := l.startInstance(); err != nil {
		l.logf("worker %d: the replacement instance failed to start: %v", l.id, err)
		if l.inst != nil {
			l.dropInstance(nil, 503)
		}
		l.replace()
		return
	}
	l.dropOrphans()
	l.logf("worker %d: the instance was replaced", l.id)
	l.afterCallback()
}

// restartDelay is the wait before restarting after n consecutive failures: none after the
// first, then 10 ms doubling to 5 s.
func restartDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return min(10*time.Millisecond<<min(n-2, 10), 5*time.Second)
}

// dropInstance ends everything the failed instance's handles name, except its listening
// sockets, which wait (orphanListeners) for the replacement to listen on them again. Its
// requests are answered status.
func (l *Loop) dropInstance(ex *exchange, status int) {
	if ex != nil {
		l.failExchange(ex, status)
	}
	var open []*exchange
	l.exchanges.each(func(_ abi.Handle, e *exchange) { open = append(open, e) })
	for _, e := range open {
		l.failExchange(e, status)
	}
	l.queue.closeNotices = l.queue.closeNotices[:0] // the replacement knows none of them
	l.failSockets()
	var ts []*timer
	l.timers.each(func(_ abi.Handle, t *timer) { ts = append(ts, t) })
	for _, t := range ts {
		l.freeTimer(t)
	}
	l.orphanListeners()
	l.inst.Close()
	l.inboxPtr, l.inboxLen = 0, 0
	l.ordinal = 0 // the replacement's port-0 listens match the same keys
}
