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
// requests it is answering, keeps its WebSockets and the timers they need, and is closed when
// it holds neither (the sweep looks), or when SwapDrainTimeout passes (its sockets then close
// with 1001 and its requests' connections close).

// errShuttingDown refuses a swap during a shutdown.
var errShuttingDown = errors.New("the program is shutting down")

// Swap makes m the module of every loop. Worker 0 goes first: if the new program fails to
// start there, nothing has changed and the error says why. Then the others swap together; one
// that fails keeps the old module, and the error names it. A loop not running yet starts with
// m.
func (g *Group) Swap(m *guest.Module) error {
	old := g.setModule(m)
	if err := g.loops[0].runSwap(m); err != nil {
		g.setModule(old)
		return err
	}
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
// ended (or not started: it will start with the module set) takes nothing.
func (l *Loop) runSwap(m *guest.Module) error {
	done := make(chan error, 1)
	if !l.post(func(l *Loop) { done <- l.swap(m) }) {
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

func (g *Group) setModule(m *guest.Module) (old *guest.Module) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, g.module = g.module, m
	return old
}

// swap starts an instance of m beside the current one and, if it starts, makes it current
// and retires the old one. If it fails, the old one stays current with its listeners (their
// handles are new ones: the old program's own copies are stale after a failed swap).
func (l *Loop) swap(m *guest.Module) error {
	prev := l.cur
	switch {
	case l.stopped || l.draining:
		return fmt.Errorf("worker %d: %w", l.id, errShuttingDown)
	case prev != nil && prev.module == m, l.restarting:
		return nil // already, or the pending restart takes m
	}
	had := map[*listener]bool{}
	l.listeners.each(func(_ abi.Handle, ln *listener) { had[ln] = true })
	l.orphanListeners() // for the new program to listen on again
	l.ordinal = 0
	if err := l.startInstanceFor(m, true); err != nil {
		failed := l.cur
		l.cur = prev
		failed.retired = true // dropped without touching the listeners
		l.dropInstance(failed, nil, 503)
		l.listeners.each(func(h abi.Handle, ln *listener) { // those failed opened or took
			l.listeners.remove(h)
			if ln.ref {
				l.refs--
			}
			l.orphans = append(l.orphans, ln)
		})
		for _, ln := range l.orphans {
			if had[ln] {
				ln.handle = l.listeners.add(ln)
				if ln.ref {
					l.refs++
				}
			}
		}
		l.orphans = slices.DeleteFunc(l.orphans, func(ln *listener) bool { return had[ln] })
		l.dropOrphans()
		l.afterCallback()
		l.logf("worker %d: the new module failed to start (%v); the old one keeps serving", l.id, err)
		return fmt.Errorf("worker %d: %w", l.id, err)
	}
	l.dropOrphans() // what the new program no longer listens on closes as server.close() does
	l.failures = 0
	if prev != nil {
		prev.retired = true
		l.retired = append(l.retired, prev)
		if d := l.cfg.SwapDrainTimeout; d > 0 && d < time.Duration(1<<62) {
			l.addHostTimer(d, func() { l.expire(prev) })
		}
		l.collectRetired()
	}
	l.logf("worker %d: swapped to the new module", l.id)
	l.afterCallback()
	return nil
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

// holds reports whether a request or WebSocket of in is still open.
func (l *Loop) holds(in *instance) bool {
	found := false
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
