package loop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
)

// An instance's life on a loop, in one place: it starts (startInstance); when one of its
// callbacks traps or exits it is failed and replaced (guestFailed); and a swap to a new
// module starts the new one beside it and retires it (swap.go). Everything a failed
// instance's handles named is answered, closed or handed over here.

// instance is one guest instance on a loop and what the loop keeps for it. The current one
// (Loop.cur) gets new requests, messages and listeners; one retired by a swap only finishes
// the requests, WebSockets and timers it holds, then goes.
type instance struct {
	g                  *guest.Instance // nil until _initialize has run
	calls              hostCalls       // the host functions, as this instance calls them
	inboxPtr, inboxLen uint32
	retired            bool
	module             *guest.Module
	held               []byte // a host function's result the guest has yet to copy (host_result)
	msgRest            []byte // the part of the message being delivered past the inbox (message_read)
	minor              int32  // the minor ABI version the guest speaks, once instantiated

	// ctx is what host functions the instance calls run with: cancelled when the instance
	// is closed, so that what they started for it (a fetch, a connection) ends with it.
	// Retiring(ctx) is cancelled earlier, when a swap retires the instance: what takes new
	// work for it (a TCP listener) stops then.
	ctx    context.Context
	cancel context.CancelFunc
	retire context.CancelFunc

	rawConns int // its raw TCP connections open (tcpstream.go): a retired instance keeps them
}

// retiringKey finds an instance's retiring context in its ctx.
type retiringKey struct{}

// Retiring returns the context, carried by ctx, that ends when the instance ctx belongs to is
// retired by a swap (or closed); nil for a context of no instance.
func Retiring(ctx context.Context) context.Context {
	rc, _ := ctx.Value(retiringKey{}).(context.Context)
	return rc
}

// workerKey finds the worker an instance runs on in its ctx.
type workerKey struct{}

// Worker returns the worker whose instance ctx belongs to (every instance of a worker, old
// and new across swaps, gives the same), and false for a context of no instance.
func Worker(ctx context.Context) (int, bool) {
	w, ok := ctx.Value(workerKey{}).(int)
	return w, ok
}

// newInstance is an instance of m, not yet instantiated, whose host calls reach l.
func (l *Loop) newInstance(m *guest.Module) *instance {
	in := &instance{module: m}
	in.calls = hostCalls{l: l, in: in}
	base, cancel := context.WithCancel(l.g.callCtx)
	retiring, retire := context.WithCancel(base)
	ctx := context.WithValue(context.WithValue(base, retiringKey{}, retiring), workerKey{}, l.id)
	in.ctx, in.cancel, in.retire = context.WithValue(ctx, instanceKey{}, in), cancel, retire
	return in
}

// close closes the instance's guest, if it has one, and ends what it started.
func (in *instance) close() {
	if in.g != nil {
		in.g.Close()
	}
	if in.cancel != nil {
		in.cancel()
	}
}

// live reports whether the instance can be called.
func (in *instance) live() bool { return in != nil && in.g != nil && !in.g.Dead() }

// inbox is the guest's inbox in its memory, or false when it has none.
func (in *instance) inbox() ([]byte, bool) {
	if in.inboxLen == 0 || in.g == nil {
		return nil, false
	}
	return in.g.Memory().Read(in.inboxPtr, in.inboxLen)
}

// instanceConfig is what this worker's instances are made with: the group's, with the
// worker's own output if it has one.
func (l *Loop) instanceConfig() guest.InstanceConfig {
	cfg := l.cfg.Instance
	if l.id < len(l.cfg.Output) {
		cfg.Stdout, cfg.Stderr = l.cfg.Output[l.id].Stdout, l.cfg.Output[l.id].Stderr
	}
	if l.stats != nil {
		cfg.OnCall = l.stats.observeCallback
	}
	return cfg
}

// startInstance instantiates m, makes it the current instance and runs the program's
// top-level code. A proc_exit there ends the process with its code (Node's process.exit in
// a script's top level), unless the start is a swap's, which only fails.
func (l *Loop) startInstance(m *guest.Module) error {
	return l.startInstanceFor(m, false)
}

func (l *Loop) startInstanceFor(m *guest.Module, swap bool) error {
	in := l.newInstance(m)
	l.cur = in // host calls made during _initialize find no instance and get ESTATE
	inst, err := m.Instantiate(l.g.callCtx, l.instanceConfig(), &in.calls)
	if exit, ok := err.(*guest.ExitError); ok && !swap {
		l.g.exit(exit.Code) // proc_exit in initialisation ends the process with its code
		return nil
	}
	if err != nil {
		in.cancel()
		return err
	}
	in.g, in.minor = inst, inst.Minor()
	return l.begin(in, swap)
}

// begin makes in, instantiated, the current instance and runs wasmloop_on_start.
func (l *Loop) begin(in *instance, swap bool) error {
	l.cur = in
	l.noteCurrent()
	rc, err := in.g.Start()
	if err != nil {
		if in.g.Deadlocked() {
			l.logf("%s", deadlockHint)
		}
		if exit, ok := err.(*guest.ExitError); ok && !swap {
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

// deadlockHint follows the Go runtime's "all goroutines are asleep - deadlock!": in a guest
// that is a habit from ordinary Go programs that cannot work here, and the runtime's message
// does not say what to do instead.
const deadlockHint = "the program's Go code blocked for ever (the Go runtime found every goroutine asleep): " +
	"main must return, since the host runs the event loop after it — serve with wasmloop.CreateServer(...).Listen " +
	"or wasmhttp.ListenAndServe, not http.ListenAndServe, and do not end main with select {}; " +
	"a wasmloop.Handler must not wait on a channel for what a later event delivers (start a goroutine)"

// startError is a non-zero result of wasmloop_on_start: the program's start-up failed
// (ABI.md §2). The value is the program's own status; it is named when it is one of the ABI's
// error codes, which the Go SDK returns when a host call it makes before main fails.
type startError struct{ rc int32 }

func (e *startError) Error() string {
	return callbackResult(abi.ExportStart, e.rc) + " (the program's start-up failed)"
}

// callbackResult says what a guest callback's non-zero result means, for a log line or an
// error: one of the ABI's error codes by name (a host call failed and the guest passed its
// code on), any other value as the program's own failure status — never "wasmloop errno 1".
func callbackResult(export string, rc int32) string {
	if e := abi.Errno(rc); e.Known() {
		return export + " returned " + e.Error() + " (" + strconv.Itoa(int(rc)) + ")"
	}
	return export + " failed with status " + strconv.Itoa(int(rc))
}

// checkResult handles what a callback of in that concerns no request returned: a failure
// replaces the instance (guestFailed), and a non-zero result is logged by name (ABI.md §2).
func (l *Loop) checkResult(in *instance, export string, rc int32, err error) {
	if err != nil {
		l.guestFailed(in, err, nil)
	} else if rc != 0 {
		l.logf("%s", callbackResult(export, rc))
	}
}

// guestFailed handles a callback of in that trapped, exited, or ran past its budget. The
// instance is poisoned: the request it was handling (ex, may be nil) is answered 500 (503
// past a budget), and so is every other request of the instance; its sockets close with
// 1011 and its timers are dropped. The current instance is replaced and the replacement
// takes over the listeners; a retired one just goes.
func (l *Loop) guestFailed(in *instance, err error, ex *exchange) {
	var exit *guest.ExitError
	if errors.As(err, &exit) && exit.Code == 0 && !in.retired {
		l.g.exit(0)
		return
	}
	status := 500
	var budget *guest.BudgetError
	var stopped *guest.StoppedError
	if s := l.stats; s != nil {
		if errors.As(err, new(*guest.BudgetError)) {
			s.BudgetBreaches.Add(1)
		} else if !errors.As(err, &stopped) {
			s.Traps.Add(1)
		}
	}
	switch {
	case errors.As(err, &stopped):
		status = 503
		l.logfFor(ex, "%v", err)
	case exit != nil:
		// os.Exit in a callback is a Go habit: say what ends the program instead.
		l.logfFor(ex, "the guest died (proc_exit %d in a callback); replacing the instance (os.Exit or exit() in a callback is a crash; to end the program, call wasmloop.Exit)", exit.Code)
	case errors.As(err, &budget):
		// What it was answering could be answered by a healthy instance: 503, not 500.
		status = 503
		l.logfFor(ex, "%v; replacing the instance", err)
	default:
		l.logfFor(ex, "%v", err)
	}
	if in.g.Deadlocked() { // the Go runtime's fatal error reaches us as a trap or an exit
		l.logf("%s", deadlockHint)
	}
	if in.retired {
		l.dropInstance(in, ex, status)
		return
	}
	if ex != nil || in.g.Served() > 0 {
		// It did some work, or a request made it fail: not a guest that fails as it starts.
		// (Counting a request that crashes every fresh instance would let a client stop
		// the process by repeating it.)
		l.failures = 0
	}
	l.dropInstance(in, ex, status)
	l.replace()
}

// replace starts the instance that takes over from one that failed. A guest that fails again
// before it has served a single event is failing as it starts: it is restarted after a delay
// that doubles with each consecutive failure (restartDelay), not in a hot loop, and after
// MaxRestarts consecutive failures the process gives up and exits 1.
func (l *Loop) replace() {
	if l.stats != nil {
		l.stats.Replacements.Add(1)
	}
	l.failures++
	if l.failures > l.cfg.MaxRestarts {
		msg := fmt.Sprintf("the guest failed %d times in a row without serving anything; giving up", l.failures)
		l.dropOrphans()
		if !l.g.giveUp(fmt.Errorf("worker %d: %s", l.id, msg)) {
			l.logf("%s", msg) // Run returns another error: this one is said here
		}
		return
	}
	if d := restartDelay(l.failures); d > 0 {
		l.logf("restarting the instance in %v (failure %d in a row)", d, l.failures)
		l.restarting = true // keeps the loop alive with nothing referenced (alive)
		l.addHostTimer(d, l.restart)
		return
	}
	l.restart()
}

// restart starts the replacement instance; one that fails to start counts as a failure.
func (l *Loop) restart() {
	l.restarting = false
	if l.stopped || l.g.callCtx.Err() != nil { // stopping: a call of it was ended (stopCalls)
		return
	}
	var err error
	if in := l.takeSpare(); in != nil {
		err = l.begin(in, false)
	} else {
		err = l.startInstance(l.g.currentModule())
	}
	if err != nil {
		l.logf("the replacement instance failed to start: %v", err)
		l.dropInstance(l.cur, nil, 503)
		l.replace()
		return
	}
	l.dropOrphans()
	l.infof("the instance was replaced")
	l.afterCallback()
	l.makeSpare() // for the next one: a worker whose guest failed once may fail again
	l.deliverHeld()
}

// A warm spare: once a worker's instance has failed, the next replacement is instantiated
// ahead of time, off the loop, so that a failure costs the loop only the new program's
// wasmloop_on_start, not wazero's instantiation and the guest's _initialize (a Go guest's
// runtime start), which held up every other connection of the worker. Workers whose guest
// never fails keep no spare: it would cost an instance's memory each.

// makeSpare starts instantiating the spare on another goroutine, unless there is one or one
// is being made; the loop takes it when the goroutine posts it back.
func (l *Loop) makeSpare() {
	if l.spare != nil || l.spareBusy || l.stopped || l.draining {
		return
	}
	m := l.g.currentModule()
	in := l.newInstance(m)
	l.spareBusy = true
	cfg := l.instanceConfig()
	l.g.spares.Add(1)
	go func() {
		defer l.g.spares.Done()
		inst, err := m.Instantiate(l.g.callCtx, cfg, offLoop{&in.calls})
		l.post(func(l *Loop) {
			l.spareBusy = false
			switch {
			case err != nil:
				in.cancel()
				l.logf("a spare instance failed to start: %v", err)
			case l.stopped || l.draining || m != l.g.currentModule():
				inst.Close()
				in.cancel()
			default:
				inst.SetHost(&in.calls) // on the loop from now on
				in.g, in.minor = inst, inst.Minor()
				l.spare = in
			}
		}, func() { // the loop has ended
			if inst != nil {
				inst.Close()
			}
			in.cancel()
		})
	}()
}

// takeSpare returns the spare, if it is of the current module, and forgets it.
func (l *Loop) takeSpare() *instance {
	in := l.spare
	l.spare = nil
	if in != nil && in.module != l.g.currentModule() {
		in.close()
		return nil
	}
	return in
}

// restartDelay is the wait before restarting after n consecutive failures: none after the
// first, then 10 ms doubling to 5 s.
func restartDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return min(10*time.Millisecond<<min(n-2, 10), 5*time.Second)
}

// dropInstance ends everything in's handles name and closes it: its requests are answered
// status (or their connections closed, when an answer has begun), its sockets close with 1011
// and its timers go. The current instance's listening sockets wait (orphanListeners) for a
// replacement to listen on them again.
func (l *Loop) dropInstance(in *instance, ex *exchange, status int) {
	if ex != nil {
		l.failExchange(ex, status)
	}
	var open []*exchange
	l.exchanges.each(func(_ abi.Handle, e *exchange) {
		if e.in == in {
			open = append(open, e)
		}
	})
	for _, e := range open {
		l.failExchange(e, status)
	}
	// The notices for it are void: nobody will be told.
	l.queue.closeNotices = slices.DeleteFunc(l.queue.closeNotices, func(n closeNote) bool { return n.in == in })
	l.failSockets(in)
	l.failCalls(in, ErrInstanceFailed)
	var ts []*timer
	l.timers.each(func(_ abi.Handle, t *timer) {
		if t.in == in {
			ts = append(ts, t)
		}
	})
	for _, t := range ts {
		l.freeTimer(t)
	}
	in.close()
	in.inboxPtr, in.inboxLen = 0, 0
	if in.retired {
		l.retired = slices.DeleteFunc(l.retired, func(r *instance) bool { return r == in })
		return
	}
	l.orphanListeners()
	l.ordinal = 0 // the replacement's port-0 listens match the same keys
}
