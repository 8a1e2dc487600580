package loop

import (
	"context"
	"fmt"

	"github.com/wasmloop/wasmloop/abi"
)

// Functions the embedding program defines for the guest (ABI 1.4, host.Config.Functions).
// A sync function runs on the loop inside the guest's host_call, as every host function does;
// an async one runs on a goroutine of its own, and its result comes back as a task on the
// loop and reaches the guest as an event, wasmloop_on_host_result, never inside the call that
// started it. A function's error reaches the guest as its result, marked failed, never as a
// trap; a name the embedder did not define is ENOTSUP, so a guest can probe for a function.

// HostFunc is one function the embedder defines: exactly one of Sync and Async is set.
//
// Done, when set, is called once an Async result has been handed to the guest or dropped (its
// instance gone, the loop ended): until then the result is held in the host's memory, and a
// function that budgets the memory its results hold (the file functions) releases it here.
//
// Start is the third kind, for the host's own functions that run on the loop's reactor (raw
// TCP, op.go): it runs on the loop inside the guest's call, must not block, and finishes its
// Op later — from the reactor, or from a goroutine through Op.GoThen or Op.FinishFrom — and
// the result reaches the guest as an Async one does. in is the guest's memory, valid only
// during the call.
type HostFunc struct {
	Sync  func(ctx context.Context, in []byte) ([]byte, error)
	Async func(ctx context.Context, in []byte) ([]byte, error)
	Start func(op *Op, in []byte)
	Done  func(res []byte, failed bool)
}

// maxPendingAsync bounds the async host calls a worker has in flight (ELIMIT beyond), and
// maxPendingAsyncBytes the copies of their inputs the host holds meanwhile: a guest could
// otherwise make the host copy its whole memory 4096 times.
const (
	maxPendingAsync      = 4096
	maxPendingAsyncBytes = 256 << 20
)

// maxPendingOps bounds the loop operations (Start) a worker has started and not delivered:
// enough for a read, a write and an end on each of a program's 8,192 streams, and a bound on
// the results a guest could pile up by calling in a loop (each is held until delivered).
const maxPendingOps = 32768

// HostCall runs a sync function. The result is written to out when it fits; otherwise it is
// held, and host_result copies it, until the next host call or the end of the callback.
func (a *hostCalls) HostCall(name, in, out []byte) int64 {
	a.in.held = nil
	var res []byte
	var failed bool
	if string(name) == abi.FnStatForBody { // the host's own, on the request's exchange
		if a.l.cfg.OpenFile == nil {
			return int64(abi.ENOTSUP)
		}
		res, failed = a.statForBody(in)
	} else {
		f, ok := a.l.hostFunc(name)
		if !ok || f.Sync == nil {
			return int64(abi.ENOTSUP)
		}
		res, failed = a.l.runHostFunc(a.in.ctx, name, f.Sync, in)
	}
	r := int64(len(res))
	if failed {
		r |= abi.HostCallFailed
	}
	if len(res) <= len(out) {
		copy(out, res)
	} else {
		a.in.held = res
	}
	return r
}

// hostFunc finds the embedder's function name. A guest tends to call one function again and
// again, so the last one found is compared first, which spares hashing the name.
func (l *Loop) hostFunc(name []byte) (HostFunc, bool) {
	if last := &l.lastHostFunc; last.name != "" && last.name == string(name) {
		return last.f, true
	}
	f, ok := l.cfg.Functions[string(name)]
	if ok {
		l.lastHostFunc.name, l.lastHostFunc.f = string(name), f
	}
	return f, ok
}

// runHostFunc runs an embedder's function, turning an error, or a panic, into a failed
// result: the embedder's bug must not take the loop, and with it the process, down.
func (l *Loop) runHostFunc(ctx context.Context, name []byte, f func(context.Context, []byte) ([]byte, error), in []byte) (res []byte, failed bool) {
	defer func() {
		if p := recover(); p != nil {
			l.logf("host function %q panicked: %v", name, p)
			res, failed = []byte(fmt.Sprintf("host function %q panicked", name)), true
		}
	}()
	res, err := f(ctx, in)
	if err != nil {
		return []byte(err.Error()), true
	}
	return res, false
}

// HostCallAsync starts an async function: a Start function on the loop at once, an Async one
// on a goroutine; tag comes back with its result.
func (a *hostCalls) HostCallAsync(name, in []byte, tag int64) int32 {
	l, inst := a.l, a.in
	f, ok := l.hostFunc(name)
	if !ok || f.Async == nil && f.Start == nil {
		return errno(abi.ENOTSUP)
	}
	if !inst.g.HasOnHostResult() {
		return errno(abi.ESTATE) // the result could not be delivered
	}
	if f.Start != nil {
		if l.pendingOps >= maxPendingOps {
			return errno(abi.ELIMIT)
		}
		l.startOp(&Op{l: l, in: inst, tag: tag}, name, f.Start, in)
		return 0
	}
	if l.pendingAsync >= maxPendingAsync || l.pendingAsyncBytes+len(in) > maxPendingAsyncBytes {
		return errno(abi.ELIMIT)
	}
	l.pendingAsync++
	l.pendingAsyncBytes += len(in)
	fn, input := append([]byte(nil), name...), append([]byte(nil), in...)
	go func() {
		// What the guest hears if the function ends its goroutine (runtime.Goexit: a test's
		// t.FailNow) rather than return: the deferred delivery still runs.
		res, failed := []byte(fmt.Sprintf("host function %q ended without returning (runtime.Goexit)", fn)), true
		n := len(input)
		defer func() {
			l.post(func(l *Loop) {
				l.pendingAsync--
				l.pendingAsyncBytes -= n
				l.deliverHostResult(inst, f.Done, tag, res, failed)
			}, func() { f.done(res, failed) }) // the loop has ended: nobody is waiting
		}()
		res, failed = l.runHostFunc(inst.ctx, fn, f.Async, input)
	}()
	return 0
}

func (f HostFunc) done(res []byte, failed bool) {
	if f.Done != nil {
		f.Done(res, failed)
	}
}

// deliverHostResult runs on the loop: the async call tagged tag has finished. done, when
// set, hears that the result was handed over or dropped.
func (l *Loop) deliverHostResult(in *instance, done func([]byte, bool), tag int64, res []byte, failed bool) {
	if done != nil {
		defer done(res, failed)
	}
	if l.stopped || !in.live() {
		return // the instance that asked is gone
	}
	inbox, ok := in.inbox()
	if !ok {
		return
	}
	n := copy(inbox, res)
	in.held = res[n:]
	status := int32(abi.CallOK)
	if failed {
		status = abi.CallFailed
	}
	rc, err := in.g.OnHostResult(tag, status, uint32(len(res)))
	l.checkResult(in, abi.ExportOnHostResult, rc, err)
	in.held = nil
	l.afterCallback()
}

// HostResult copies the held part of a host function's result.
func (a *hostCalls) HostResult(dst []byte) int32 {
	n := copy(dst, a.in.held)
	a.in.held = a.in.held[n:]
	return int32(n)
}
