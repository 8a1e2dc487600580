package loop

import (
	"time"

	"github.com/wasmloop/wasmloop/abi"
)

// Connection timeouts are enforced by one sweep over the loop's connections a few times per
// shortest timeout, not by a timer per connection: the request path then only stores a
// timestamp (Conn.since), and a timeout fires at most a quarter of its length late.

// sweepEvery is how often the sweep runs.
func (l *Loop) sweepEvery() time.Duration {
	d := min(l.cfg.HeaderTimeout, l.cfg.BodyTimeout, l.cfg.IdleTimeout, l.cfg.WSIdleTimeout, l.cfg.ResponseTimeout, l.cfg.FetchIdleTimeout, 4*lingerTime) / 4
	return max(min(d, time.Second), 10*time.Millisecond)
}

func (l *Loop) startSweep() {
	l.addHostTimer(l.sweepEvery(), func() {
		if l.stopped {
			return
		}
		l.sweep()
		l.flushQueued()
		l.startSweep()
	})
}

// sweep ends lingering connections whose peer never sent its EOF, and lets each open
// connection's protocol apply its own timeouts.
func (l *Loop) sweep() {
	if len(l.retired) > 0 {
		l.collectRetired()
	}
	now := l.clock()
	queued := 0
	l.eachConn(func(c *Conn) {
		queued += c.outLen()
		switch {
		case c.closed():
		case c.phase == connLingering:
			if time.Duration(now-c.since) > lingerTime {
				l.closeConn(c, abi.CloseHost)
			}
		default:
			c.proto.sweep(now)
		}
	})
	if l.stats != nil {
		l.stats.OutputQueued.Store(int64(queued))
		l.stats.WebSocketsOpen.Store(int64(l.sockets.len()))
	}
}
