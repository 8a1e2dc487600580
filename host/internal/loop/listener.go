package loop

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

// maxListeners caps an instance's listeners: each is a descriptor per worker, and a guest
// that listened in a loop took the process to its descriptor limit, after which nothing could
// be accepted.
const maxListeners = 256

// listener is a listening socket the guest opened (or, after an instance replacement, took
// over from the instance before it).
type listener struct {
	fd      int // -1 for a worker that receives descriptors from loop 0 (handoff)
	key     listenKey
	port    int
	ref     bool
	stream  bool // requests' bodies are streamed (abi.ListenStreamBody)
	closed  bool
	waiting bool  // accept failed for lack of descriptors; a retry timer is set
	full    bool  // the loop is at its connection cap; accepting resumes when one closes
	delay   int64 // ns before that retry; doubles while it keeps failing
	handle  abi.Handle
	next    int // handoff round-robin
}

// listen opens (or takes over from the previous instance) a listening socket for key and
// registers it; it returns the listener's handle or an errno.
func (l *Loop) listen(addr netip.Addr, port int, stream bool) int64 {
	key := listenKey{addr: addr, port: port}
	if port == 0 {
		key.ordinal = l.ordinal
		l.ordinal++
	}
	ln := l.adopt(key)
	if ln == nil {
		ln = &listener{fd: -1, key: key}
		if !l.cfg.NoPorts && (!l.cfg.HandoffAccept || l.id == 0) {
			bound, err := l.g.portFor(key, func(p int) (int, error) {
				fd, bound, err := poll.Listen(addr, p, !l.cfg.HandoffAccept, unix.SOMAXCONN)
				ln.fd = fd
				return bound, err
			})
			if err != nil {
				l.logf("listen %s:%d: %v", addr, port, err)
				l.g.listenFailed(fmt.Errorf("listen %s: %w", netip.AddrPortFrom(addr, uint16(port)), err))
				return int64(abi.EADDR)
			}
			ln.port = bound
			if err := l.poll.AddListener(ln.fd); err != nil {
				unix.Close(ln.fd)
				return int64(abi.EADDR)
			}
			l.g.socketOpened(key, bound)
		}
	}
	l.g.listened.Store(true)
	ln.ref = true
	ln.stream = stream
	l.refs++
	ln.handle = l.listeners.add(ln)
	switch {
	case l.id != 0:
	case l.swapping:
		l.startOthersLater = true // if this program becomes current (swap)
	default:
		l.g.startOthers()
	}
	if ln.fd >= 0 {
		// Connections may already wait in the backlog (an adopted socket, or a fast client):
		// an edge-triggered poller reports only new arrivals.
		l.queue.acceptAgain(ln)
	}
	return int64(ln.handle)
}

// acceptAll accepts until EAGAIN, or until this listener's share of the wake-up is used.
func (l *Loop) acceptAll(ln *listener) {
	if ln.waiting || ln.closed {
		return // a retry timer is pending
	}
	for i := 0; i < acceptPerWake; i++ {
		if l.atConnCap() {
			// Leave the rest in the backlog: the connections we have keep being served, and
			// accepting resumes when one of them closes (closeConn).
			ln.full = true
			return
		}
		fd, err := poll.Accept(ln.fd)
		switch {
		case err == nil:
			ln.delay = 0
		case err == unix.EAGAIN:
			return
		case poll.IsAbortedAccept(err):
			continue
		case poll.IsTemporaryAcceptError(err):
			// Out of descriptors: leave the connections in the backlog, keep serving the
			// ones we have, and try again later (gnet stops its whole engine here).
			if l.stats != nil {
				l.stats.AcceptBackoffs.Add(1)
			}
			if ln.delay == 0 {
				ln.delay = int64(5 * time.Millisecond)
				l.logf("accept: %v; backing off while open connections are served", err)
			} else {
				ln.delay = min(2*ln.delay, int64(time.Second))
			}
			ln.waiting = true
			l.addHostTimer(time.Duration(ln.delay), func() {
				ln.waiting = false
				l.acceptAll(ln)
			})
			return
		default:
			l.logf("accept: %v", err)
			return
		}
		if l.cfg.HandoffAccept && len(l.g.loops) > 1 {
			l.handoff(ln, fd)
			continue
		}
		l.addConn(fd, ln)
	}
	l.queue.acceptAgain(ln)
}

// atConnCap reports whether this loop holds its share of Config.MaxConns.
func (l *Loop) atConnCap() bool {
	if l.cfg.MaxConns <= 0 {
		return false
	}
	share := (l.cfg.MaxConns + len(l.g.loops) - 1) / len(l.g.loops)
	return l.nconns >= share
}

// handoff gives an accepted descriptor to the next worker in turn.
func (l *Loop) handoff(ln *listener, fd int) {
	w := ln.next % len(l.g.loops)
	ln.next++
	target := l.g.loops[w]
	if target == l {
		l.addConn(fd, ln)
		return
	}
	key := ln.key
	target.post(func(t *Loop) {
		if own := t.listenerFor(key); own != nil && !t.draining && !t.stopped {
			t.addConn(fd, own)
		} else {
			unix.Close(fd)
		}
	}, func() { unix.Close(fd) }) // that worker has ended
}

// listenerFor finds this loop's listener for key (handoff mode).
func (l *Loop) listenerFor(key listenKey) *listener {
	var found *listener
	l.listeners.each(func(_ abi.Handle, ln *listener) {
		if ln.key == key && !ln.closed {
			found = ln
		}
	})
	return found
}

// adopt takes over a socket the previous instance listened on: one a failed instance left,
// or, during a swap, one the current instance still holds (its handle stays valid until the
// swap commits).
func (l *Loop) adopt(key listenKey) *listener {
	for i, ln := range l.orphans {
		if ln.key == key {
			l.orphans = append(l.orphans[:i], l.orphans[i+1:]...)
			return ln
		}
	}
	for i := range l.handovers {
		if h := &l.handovers[i]; !h.taken && h.ln.key == key {
			h.taken = true
			return h.ln
		}
	}
	return nil
}

// orphanListeners keeps the listeners of an instance that is being replaced, without their
// handles, for the new instance to adopt when it listens on the same keys.
func (l *Loop) orphanListeners() {
	l.listeners.each(func(h abi.Handle, ln *listener) {
		l.listeners.remove(h)
		if ln.ref {
			l.refs--
		}
		l.orphans = append(l.orphans, ln)
	})
}

// dropOrphans closes the listeners the new instance did not take over.
func (l *Loop) dropOrphans() {
	for _, ln := range l.orphans {
		l.closeSocket(ln)
		l.retireConns(ln)
	}
	l.orphans = nil
}

func (l *Loop) closeListener(h abi.Handle, ln *listener) {
	if !l.listeners.remove(h) {
		return
	}
	if ln.ref {
		l.refs--
	}
	l.closeSocket(ln)
	l.retireConns(ln)
}

// closeSocket closes a listener's socket, if this worker has one of its own.
func (l *Loop) closeSocket(ln *listener) {
	ln.closed = true
	if ln.fd >= 0 {
		unix.Close(ln.fd)
		l.g.socketClosed(ln.key)
	}
}

// retireConns ends the connections of a listener that is gone, as Node's server.close() does
// since v19: what that means is the protocol's (listenerClosed); a connection already
// lingering keeps protecting the response still in flight to its client.
func (l *Loop) retireConns(ln *listener) {
	l.eachConn(func(c *Conn) {
		if c.ln == ln && c.phase != connLingering {
			c.proto.listenerClosed()
		}
	})
}
