package loop

import (
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
)

// Connection timeouts are enforced by one sweep over the loop's connections a few times per
// shortest timeout, not by a timer per connection: the request path then only stores a
// timestamp (Conn.since), and a timeout fires at most a quarter of its length late.

// sweepEvery is how often the sweep runs.
func (l *Loop) sweepEvery() time.Duration {
	d := min(l.cfg.HeaderTimeout, l.cfg.BodyTimeout, l.cfg.IdleTimeout, l.cfg.WSIdleTimeout, 4*lingerTime) / 4
	return max(min(d, time.Second), 10*time.Millisecond)
}

func (l *Loop) startSweep() {
	l.addHostTimer(l.sweepEvery(), func() {
		if l.stopped {
			return
		}
		l.sweep()
		l.flushDirty()
		l.startSweep()
	})
}

// sweep closes the connections that waited too long in their current state. A connection
// whose request is with the guest has no timeout here: answering is the program's business.
func (l *Loop) sweep() {
	now := l.clock()
	for _, c := range l.conns {
		if c == nil || c.closed {
			continue
		}
		if c.lingering {
			if time.Duration(now-c.since) > lingerTime {
				l.closeConn(c, abi.CloseHost)
			}
			continue
		}
		if w := c.ws; w != nil {
			l.sweepWS(c, w, now)
			continue
		}
		if c.outLen() > 0 && time.Duration(now-c.wrote) > l.cfg.IdleTimeout {
			// The client has read nothing for that long: it is not coming back for it.
			l.closeConn(c, abi.CloseHost)
			continue
		}
		if c.closeAfter {
			continue // closing already, once its output is written
		}
		waited := time.Duration(now - c.since)
		if ex := c.ex; ex != nil {
			// The guest's turn, unless it is waiting for more of a streamed body.
			if ex.receiving() && waited > l.cfg.BodyTimeout {
				l.streamFailed(c, ex, errBodyStalled)
			}
			continue
		}
		switch {
		case c.inBody:
			if waited > l.cfg.BodyTimeout {
				l.replyError(c, 408, "the request body stopped arriving")
			}
		case c.inHead:
			if waited > l.cfg.HeaderTimeout {
				l.replyError(c, 408, "the request head took too long")
			}
		case c.outLen() == 0:
			if waited > l.cfg.IdleTimeout {
				l.closeConn(c, abi.CloseHost)
			}
		}
	}
}

var errBodyStalled = &http1.Error{Status: 408, Reason: "the request body stopped arriving"}

// atConnCap reports whether this loop holds its share of Config.MaxConns.
func (l *Loop) atConnCap() bool {
	if l.cfg.MaxConns <= 0 {
		return false
	}
	share := (l.cfg.MaxConns + len(l.g.loops) - 1) / len(l.g.loops)
	return l.nconns >= share
}
