package loop

import (
	"context"
	"errors"
	"fmt"
)

// Op is one async host call served on the loop (HostFunc.Start): the host's raw TCP streams
// are read and written by the loop's own reactor (tcpstream.go), without a goroutine per
// operation, and an operation that must block (a dial, a DNS lookup, a fetch's body) runs on
// a goroutine that hands its result back through Go or GoThen. Either way the result is queued
// by Finish and reaches the guest as wasmloop_on_host_result once the current callback is
// over (settle), never inside the call that started it. An Op is finished exactly once; its
// methods are called on the loop's goroutine only.
type Op struct {
	l        *Loop
	in       *instance
	tag      int64
	finished bool
	// done, when set, hears that the result was handed to the guest or dropped: a result
	// that holds a budget (reach's read buffers) gives it back there.
	done func(res []byte, failed bool)
	// handOver, when set, runs as the result is handed to the guest, before its callback,
	// or dropped: an operation that keeps others of its kind waiting (one read per stream
	// at a time) lets the next one start there, so that answers cannot pass each other.
	handOver func()
	// pooled: the result is one of the loop's buffers (getBufN), back in the pool once
	// delivered or dropped.
	pooled bool
	// conn is the TCP connection the operation is on, if any: its close turns the
	// operation's undelivered result into the close's error (tcpConn.closed).
	conn *tcpConn
}

// opResult is a finished Op's result, waiting for the end of the callback (deferred.go).
type opResult struct {
	op     *Op
	res    []byte
	failed bool
}

// startOp runs a Start function, turning a panic into a failed result as runHostFunc does.
func (l *Loop) startOp(op *Op, name []byte, start func(*Op, []byte), in []byte) {
	l.pendingOps++
	defer func() {
		if p := recover(); p != nil {
			l.logf("host function %q panicked: %v", name, p)
			op.Finish(nil, fmt.Errorf("host function %q panicked", name))
		}
	}()
	start(op, in)
}

// Context is the calling instance's: it ends when the instance does.
func (o *Op) Context() context.Context { return o.in.ctx }

// OnDone sets what hears that the result was handed over or dropped.
func (o *Op) OnDone(done func(res []byte, failed bool)) { o.done = done }

// OnHandOver sets what runs as the result is handed to the guest, before the guest's callback
// (so the callback may start the next operation of the kind), or dropped.
func (o *Op) OnHandOver(f func()) { o.handOver = f }

// Finish ends the operation with res, or with err's text marked failed. A second Finish is
// ignored: the first result is the one the guest gets.
func (o *Op) Finish(res []byte, err error) {
	if o.finished {
		return
	}
	o.finished = true
	failed := err != nil
	if failed {
		res = []byte(err.Error())
	}
	o.l.queue.result(opResult{o, res, failed})
}

// Go runs f on a goroutine with a copy of in and finishes the operation with its result.
func (o *Op) Go(f func(ctx context.Context, in []byte) ([]byte, error), in []byte) {
	o.GoThen(func(ctx context.Context, in []byte) (func(), func()) {
		res, err := f(ctx, in)
		return func() { o.Finish(res, err) }, func() {
			if o.done != nil {
				o.done(res, err != nil) // the loop has ended: nobody is waiting
			}
		}
	}, in)
}

// GoThen runs f on a goroutine with a copy of in; then, on the loop, what f returned first
// (which finishes the operation), or, if the loop ends before it can run that, what it returned second
// (which releases what the first would have handed over). Goroutines count against the
// worker's bound on async calls in flight (ELIMIT beyond, as for an Async function).
func (o *Op) GoThen(f func(ctx context.Context, in []byte) (then, orElse func()), in []byte) {
	deliver := o.countAsync(len(in))
	if deliver == nil {
		return
	}
	input, ctx := append([]byte(nil), in...), o.in.ctx
	go func() { deliver(o.guarded(f, ctx, input)) }()
}

// FinishFrom is GoThen for a goroutine that runs already — one that waits for a network answer
// anyway, as a fetch's does — so that no goroutine is started for the operation: it returns
// what that goroutine calls, once, with what the loop runs then (which finishes the operation)
// or instead, if the loop has ended meanwhile. It counts against the worker's bound on async
// calls in flight as GoThen does; refused, it finishes the operation with ELIMIT and returns
// nil.
func (o *Op) FinishFrom() (deliver func(then, orElse func())) { return o.countAsync(0) }

// countAsync counts one async call in flight, holding n bytes of input, and returns what ends it.
func (o *Op) countAsync(n int) func(then, orElse func()) {
	l := o.l
	if l.pendingAsync >= maxPendingAsync || l.pendingAsyncBytes+n > maxPendingAsyncBytes {
		o.Finish(nil, errLimit)
		return nil
	}
	l.pendingAsync++
	l.pendingAsyncBytes += n
	return func(then, orElse func()) {
		l.post(func(l *Loop) {
			l.pendingAsync--
			l.pendingAsyncBytes -= n
			then()
		}, orElse)
	}
}

// guarded runs f, turning a panic into a failed result logged on the loop, as runHostFunc
// does for the embedder's functions: a host function's bug must not take the process down.
func (o *Op) guarded(f func(context.Context, []byte) (func(), func()), ctx context.Context, in []byte) (then, orElse func()) {
	defer func() {
		if p := recover(); p != nil {
			then, orElse = func() {
				o.l.logf("a host function panicked on its goroutine: %v", p)
				o.Finish(nil, errPanicked)
			}, nil
		}
	}()
	return f(ctx, in)
}

// errPanicked is the result of an operation whose goroutine panicked.
var errPanicked = errors.New("EIO the host function panicked")

// errLimit is a Go refused for the bound on async calls in flight. The text begins with the
// code the SDK reads.
var errLimit = fmt.Errorf("ELIMIT the worker has %d host operations in flight, the most it may", maxPendingAsync)

// deliverResults hands finished operations' results to the guest, in the order they finished.
func (l *Loop) deliverResults() {
	q := &l.queue
	for len(q.results) > 0 && !l.stopped {
		r := q.results[0]
		q.results[0] = opResult{}
		q.results = q.results[1:]
		l.pendingOps--
		if r.op.handOver != nil {
			r.op.handOver()
		}
		l.deliverHostResult(r.op.in, r.op.done, r.op.tag, r.res, r.failed)
		if r.op.pooled && !r.failed {
			l.putBuf(r.res)
		}
		l.flushQueued()
	}
	q.results = q.results[:0]
}

// dropResults releases the results no guest will get (the loop ended).
func (l *Loop) dropResults() {
	for _, r := range l.queue.results {
		if r.op.handOver != nil {
			r.op.handOver()
		}
		if r.op.done != nil {
			r.op.done(r.res, r.failed)
		}
		if r.op.pooled && !r.failed {
			l.putBuf(r.res)
		}
	}
	l.queue.results = nil
}
