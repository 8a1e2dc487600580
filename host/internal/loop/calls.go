package loop

import (
	"errors"
	"fmt"

	"github.com/wasmloop/wasmloop/abi"
)

// Calls from the embedding program into the guest (ABI 1.4, host.App.Call). A call is
// delivered on a worker's loop as an event, wasmloop_on_call, with its name and payload in the
// inbox — at once, on the caller's goroutine, if the worker sleeps (borrow.go), else queued as
// a task for the loop's next turn; the guest answers with call_return then or from any later
// callback (after a timer, a message, a host function's result). Until then the call is a
// handle of the instance that took it, and keeps the loop alive as a request does. The Go
// side waits on a channel; if it gives up (its context ended) the call is withdrawn and the
// guest hears wasmloop_on_close for it.

// CallResult is how a call ended: the guest's answer (Failed when it answered with an error
// message), or Err when it never answered.
type CallResult struct {
	Data   []byte
	Failed bool
	Err    error
}

// Errors a call can end with other than the guest's own answer.
var (
	ErrNoOnCall       = errors.New("the program takes no calls (it does not export wasmloop_on_call)")
	ErrCallDropped    = errors.New("the program dropped the call without answering")
	ErrInstanceFailed = errors.New("the program's instance failed before answering; a fresh one has taken over")
	ErrProgramEnded   = errors.New("the program has ended")
	ErrNoSuchWorker   = errors.New("no such worker")
)

// inboundCall is one call from the embedder.
type inboundCall struct {
	name    string
	payload []byte
	done    chan CallResult // buffered: the loop never waits for the caller
	in      *instance       // the instance that took it, once delivered
	h       abi.Handle      // its handle, once delivered
	read    int             // payload bytes the guest has had (inbox, then body_read)
}

// A Call is a call in flight, as the embedder holds it.
type Call struct {
	l *Loop
	c *inboundCall
}

// Done delivers the call's result, once.
func (c Call) Done() <-chan CallResult { return c.c.done }

// Withdraw gives up on the call: if the guest has not answered yet, it hears on_close for it
// and a later call_return is refused.
func (c Call) Withdraw() {
	c.l.post(func(l *Loop) { l.withdrawCall(c.c) }, nil)
}

// Call delivers a call of name with payload to worker (or, if worker is -1, to the next
// worker in turn, or a sleeping one) and returns it. A worker asleep in its wait takes the
// call at once (borrow.go): on the calling goroutine if inline, else on a goroutine of its
// own, for a caller that must be free to give up while the guest runs; a busy worker has it
// queued. The payload is the group's from then on.
func (g *Group) Call(worker int, name string, payload []byte, inline bool) (Call, error) {
	var target *Loop
	switch {
	case worker == -1:
		target = g.nextLoop()
	case worker == 0 || worker > 0 && worker < len(g.loops) && g.othersStarted.Load():
		target = g.loops[worker]
	case worker > 0 && worker < len(g.loops):
		return Call{}, fmt.Errorf("worker %d has not started: a program runs on worker 0 alone until it listens (or with KeepAlive)", worker)
	default:
		return Call{}, fmt.Errorf("%w: %d (the program has %d)", ErrNoSuchWorker, worker, len(g.loops))
	}
	c := &inboundCall{name: name, payload: payload, done: make(chan CallResult, 1)}
	deliver := func(l *Loop) { l.deliverCall(c) }
	if l := g.borrowFor(worker, target); l != nil {
		if inline {
			l.runBorrowed(deliver)
		} else {
			go l.runBorrowed(deliver)
		}
		return Call{l, c}, nil
	}
	if !target.post(deliver, func() { c.done <- CallResult{Err: ErrProgramEnded} }) {
		return Call{}, ErrProgramEnded
	}
	return Call{target, c}, nil
}

// borrowFor borrows target, or, for a call to any worker (-1), the first started worker
// from target on that sleeps; nil if none does.
func (g *Group) borrowFor(worker int, target *Loop) *Loop {
	if target.borrow() {
		return target
	}
	if worker != -1 || !g.othersStarted.Load() {
		return nil
	}
	for i := 1; i < len(g.loops); i++ {
		if l := g.loops[(target.id+i)%len(g.loops)]; l.borrow() {
			return l
		}
	}
	return nil
}

// nextLoop is the next worker in turn: worker 0 alone until the others have started.
func (g *Group) nextLoop() *Loop {
	if !g.othersStarted.Load() {
		return g.loops[0]
	}
	return g.loops[g.nextConn.Add(1)%uint64(len(g.loops))]
}

// deliverCall runs on the loop, at the top of a turn.
func (l *Loop) deliverCall(c *inboundCall) {
	in := l.cur
	switch {
	case l.stopped || !in.live():
		c.done <- CallResult{Err: ErrProgramEnded}
		return
	case !in.g.HasOnCall():
		c.done <- CallResult{Err: ErrNoOnCall}
		return
	}
	inbox, ok := in.inbox()
	if !ok || len(inbox) < len(c.name) {
		c.done <- CallResult{Err: fmt.Errorf("the call's name does not fit the program's inbox (%d bytes)", len(inbox))}
		return
	}
	c.in, c.h = in, l.calls.add(c)
	n := copy(inbox, c.name)
	c.read = copy(inbox[n:], c.payload)
	rc, err := in.g.OnCall(c.h, uint32(len(c.name)), uint32(len(c.payload)))
	if err != nil {
		l.guestFailed(in, err, nil) // fails the call with the instance's others (dropInstance)
	} else if rc != 0 {
		l.endCall(c, CallResult{Err: errors.New(callbackResult(abi.ExportOnCall, rc))})
	}
	l.afterCallback()
}

// endCall removes a pending call and hands its result to the caller.
func (l *Loop) endCall(c *inboundCall, r CallResult) {
	if got, ok := l.calls.get(c.h); !ok || got != c {
		return
	}
	l.calls.remove(c.h)
	c.done <- r
	l.readied = true
}

// withdrawCall ends a call the caller gave up on, telling the guest if it still held it.
func (l *Loop) withdrawCall(c *inboundCall) {
	if got, ok := l.calls.get(c.h); !ok || got != c {
		return // answered, failed, or never delivered (its result is already in done)
	}
	l.calls.remove(c.h)
	c.done <- CallResult{Err: errors.New("withdrawn")}
	if in := c.in; in.live() {
		rc, err := in.g.OnClose(c.h, abi.CloseHost)
		l.checkResult(in, abi.ExportOnClose, rc, err)
		l.afterCallback()
	}
}

// failCalls ends the calls an instance held (it failed, or the loop is ending).
func (l *Loop) failCalls(in *instance, err error) {
	var held []*inboundCall
	l.calls.each(func(_ abi.Handle, c *inboundCall) {
		if in == nil || c.in == in {
			held = append(held, c)
		}
	})
	for _, c := range held {
		l.endCall(c, CallResult{Err: err})
	}
}

// CallReturn answers a call: status CallOK with the result, or CallFailed with an error
// message.
func (a *hostCalls) CallReturn(h abi.Handle, status int32, data []byte) int32 {
	c, ok := a.l.calls.get(h)
	if !ok || c.in != a.in {
		return errno(abi.EBADHANDLE)
	}
	if status != abi.CallOK && status != abi.CallFailed {
		return errno(abi.EINVAL)
	}
	a.l.endCall(c, CallResult{Data: append([]byte(nil), data...), Failed: status == abi.CallFailed})
	return 0
}

// readCallPayload copies the part of a call's payload that did not fit the inbox.
func (l *Loop) readCallPayload(in *instance, h abi.Handle, dst []byte) int32 {
	c, ok := l.calls.get(h)
	if !ok || c.in != in {
		return errno(abi.EBADHANDLE)
	}
	n := copy(dst, c.payload[c.read:])
	c.read += n
	return int32(n)
}
