package loop

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gobwas/ws"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
)

// Swapping the module under a running program (SIGHUP, --watch, App.Swap) loses no request.
// Each loop starts an instance of the new module beside its current one and makes it current:
// it runs the new program's top-level code, which listens again and takes over the listening
// sockets (as a replacement after a crash does), so no connection in a backlog is refused;
// every connection's next request goes to it. The old instance is retired: it finishes the
// requests it is answering, keeps its WebSockets, its raw TCP connections and the timers they
// need (its TCP listeners stop accepting: the new program listens on their addresses and
// takes over their sockets, reach/listeners.go), and is closed
// when it holds none (the sweep looks), or when SwapDrainTimeout passes (its sockets then
// close with 1001, and its requests' and raw connections close).

// maxRetired is how many retired instances a worker keeps while they finish their work.
const maxRetired = 1

// errShuttingDown refuses a swap during a shutdown.
var errShuttingDown = errors.New("the program is shutting down")

// Swap makes m the module of every loop. Worker 0 goes first: if the new program fails to
// start there, nothing has changed and the error says why. Then the others swap together; one
// that fails keeps the old module, and the error names it. A loop not running yet starts with
// m.
func (g *Group) Swap(m *guest.Module) error {
	// The group's module becomes m only once worker 0 has started it (swap), and workers not
	// started yet (the old program never listened) start only then, with m, if the new
	// program listens: set before, and started by the new program's listen, a worker
	// started m while worker 0 found m failing, took the failure for its own start's, and
	// ended the process (helper-41, TestSandboxAttackSwapWhileWorkersStart).
	if err := g.loops[0].runSwap(m); err != nil {
		return err
	}
	// Worker 0 made m current, or will at its pending restart, or has ended: either way m is
	// what any new or replacement instance starts from now (set already in the first two).
	g.setModule(m)
	errs := make(chan error, len(g.loops))
	for _, l := range g.loops[1:] {
		go func() { errs <- l.runSwap(m) }()
	}
	var all []error
	for range g.loops[1:] {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// runSwap has l swap to m on its own goroutine and waits for the outcome. A loop that has
// ended takes nothing. One not started yet (workers 1… before the program listens) is not
// waited for: it may never start, and it starts with the module set — or, if it was already
// starting with the old one, its queued swap makes it current first thing (swapping to the
// module it has is nothing).
func (l *Loop) runSwap(m *guest.Module) error {
	done := make(chan error, 1)
	l.post(func(l *Loop) { done <- l.swap(m) }, func() { done <- nil })
	if l.id != 0 && !l.g.othersStarted.Load() {
		return nil
	}
	return <-done
}

// UsesModule reports whether some loop made an instance of m current (after a Swap that
// failed on some workers only).
func (g *Group) UsesModule(m *guest.Module) bool {
	return g.currentModule() == m
}

// currentModule is the module new and replacement instances are made from.
func (g *Group) currentModule() *guest.Module {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.module
}

func (g *Group) setModule(m *guest.Module) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.module = m
}

// handover is a listener the current instance holds while a swap's new instance starts: the
// new one may take it over (adopt) under a handle of its own, and the old handle, reference
// and mode are kept until the swap commits (the old handle goes) or fails (the new one goes).
type handover struct {
	ln     *listener
	handle abi.Handle
	ref    bool
	stream bool
	taken  bool
}

// swap starts an instance of m beside the current one and, if it starts, makes it current
// and retires the old one. If it fails, the old one stays current with its listeners, under
// the handles it knows.
func (l *Loop) swap(m *guest.Module) error {
	prev := l.cur
	switch {
	case l.stopped || l.draining:
		return fmt.Errorf("worker %d: %w", l.id, errShuttingDown)
	case prev != nil && prev.module == m:
		return nil // already
	case l.restarting:
		if l.id == 0 {
			l.g.setModule(m) // the pending restart takes m (restart: currentModule)
		}
		return nil
	}
	l.listeners.each(func(h abi.Handle, ln *listener) {
		l.handovers = append(l.handovers, handover{ln: ln, handle: h, ref: ln.ref, stream: ln.stream})
	})
	ordinal := l.ordinal
	l.ordinal = 0 // the new program's port-0 listens match the same keys
	l.swapping = true
	err := l.startInstanceFor(m, true)
	l.swapping = false
	startOthers := l.startOthersLater
	l.startOthersLater = false
	if err != nil {
		failed := l.cur
		l.cur, l.ordinal = prev, ordinal
		l.noteCurrent()
		failed.retired = true // dropped without touching the listeners
		l.dropInstance(failed, nil, 503)
		l.rollBackHandover()
		l.afterCallback()
		l.logf("the new module failed to start (%v); the old one keeps serving", err)
		return fmt.Errorf("worker %d: %w", l.id, err)
	}
	l.commitHandover()
	if l.id == 0 {
		l.g.setModule(m) // before this turn ends: a restart of worker 0's takes m from now
		if startOthers {
			// The new program listened where the old one never had: the other workers start
			// now, with m. Started by its listen, they would have started m (or the old module)
			// under a program that could still fail, and a failure of theirs ends the process.
			l.g.startOthers()
		}
	}
	l.failures = 0
	if prev != nil {
		prev.retired = true
		prev.retire() // its TCP listeners stop: the new program took over their sockets
		l.retired = append(l.retired, prev)
		if d := l.cfg.SwapDrainTimeout; d > 0 && d < time.Duration(1<<62) {
			l.addHostTimer(d, func() { l.expire(prev) })
		}
		l.collectRetired()
		// One retired program per worker keeps its memory at a time: a swap while an older one
		// still drains ends that one's work at once, as its drain timeout would (1001 to its
		// WebSockets, its connections closed), so a worker holds at most two instances however
		// many swaps come. Six swaps in a row, each retiring a program that held a request and
		// 40 MiB, had one worker at 368 MiB (helper-41, TestSandboxAttackSwapsKeepOneRetiredProgram).
		for len(l.retired) > maxRetired {
			oldest := l.retired[0]
			l.expire(oldest)
			l.dropInstance(oldest, nil, 503)
		}
	}
	if l.stats != nil {
		l.stats.Swaps.Add(1)
	}
	l.infof("swapped to the new module")
	l.afterCallback()
	return nil
}

// commitHandover ends a swap that succeeded: the old handles of the listeners the new program
// took over go, and those it did not listen on close, as server.close() does.
func (l *Loop) commitHandover() {
	for _, h := range l.handovers {
		if !h.taken {
			l.closeListener(h.handle, h.ln)
			continue
		}
		if l.listeners.remove(h.handle) && h.ref {
			l.refs--
		}
	}
	l.handovers = l.handovers[:0]
}

// rollBackHandover ends a swap that failed: what the failed program listened on anew closes,
// and the listeners it took over are the old program's again, under their old handles.
func (l *Loop) rollBackHandover() {
	old := map[abi.Handle]bool{}
	for _, h := range l.handovers {
		old[h.handle] = true
	}
	var newer []abi.Handle
	l.listeners.each(func(h abi.Handle, _ *listener) {
		if !old[h] {
			newer = append(newer, h)
		}
	})
	for _, h := range newer {
		ln, _ := l.listeners.get(h)
		if !slices.ContainsFunc(l.handovers, func(o handover) bool { return o.ln == ln }) {
			l.closeListener(h, ln) // opened by the failed program
			continue
		}
		if l.listeners.remove(h) && ln.ref {
			l.refs--
		}
	}
	for _, h := range l.handovers {
		h.ln.handle, h.ln.ref, h.ln.stream = h.handle, h.ref, h.stream
	}
	l.handovers = l.handovers[:0]
}

// collectRetired closes the retired instances that hold no request and no WebSocket any more;
// their timers go with them.
func (l *Loop) collectRetired() {
	for _, in := range slices.Clone(l.retired) {
		if !l.holds(in) {
			l.dropInstance(in, nil, 503)
		}
	}
}

// holds reports whether a request, WebSocket or raw TCP connection of in is still open.
func (l *Loop) holds(in *instance) bool {
	found := in.rawConns > 0
	l.exchanges.each(func(_ abi.Handle, ex *exchange) { found = found || ex.in == in })
	l.sockets.each(func(_ abi.Handle, w *wsConn) { found = found || w.in == in })
	return found
}

// expire ends what a retired instance still holds once SwapDrainTimeout has passed: its
// WebSockets get a 1001 close, its requests' connections close (it hears on_close), and after
// the closing handshake's own bound it goes whatever is left.
func (l *Loop) expire(in *instance) {
	if !slices.Contains(l.retired, in) {
		return
	}
	var conns []*Conn
	l.exchanges.each(func(_ abi.Handle, ex *exchange) {
		if ex.in == in && ex.hc != nil {
			conns = append(conns, ex.hc.c)
		}
	})
	l.eachConn(func(c *Conn) {
		if t, ok := c.proto.(*tcpConn); ok && t.in == in {
			conns = append(conns, c) // its raw TCP connections close too
		}
	})
	for _, c := range conns {
		l.closeConn(c, abi.CloseHost)
	}
	l.sockets.each(func(_ abi.Handle, w *wsConn) {
		if w.in == in && !w.closeSent && !w.ended && w.conn != nil {
			w.close(ws.StatusGoingAway, "the application was replaced")
		}
	})
	l.addHostTimer(wsCloseTimeout, func() {
		if slices.Contains(l.retired, in) {
			l.dropInstance(in, nil, 503)
		}
	})
}
