package loop

import (
	"runtime/debug"
	"time"
)

// The host holds some of what clients send until it is whole: a request body that did not
// arrive with its head, a WebSocket message that has not all arrived. Each is capped per
// connection, but thousands of connections that each send 1 MiB less one byte and go quiet
// held 4.8 GB. So what is held is also counted against one budget for the process
// (Config.BufferBudget): a connection whose next piece would pass it is answered 503 (a
// request) or closed with 1013, try again later (a WebSocket), and what it held is let go.

// reserveBuffered counts n more bytes held for a client, or reports that the budget has no
// room for them (nothing is counted then).
func (g *Group) reserveBuffered(n int64) bool {
	held := g.buffered.Add(n)
	if held > int64(g.cfg.BufferBudget) {
		g.buffered.Add(-n)
		return false
	}
	if held > g.bufferedPeak.Load() { // racy between loops, and only ever a hint
		g.bufferedPeak.Store(held)
	}
	return true
}

// releaseBuffered counts n bytes let go. Once much was held and little is left, the freed
// memory goes back to the OS now rather than in minutes (the Go runtime returns it slowly):
// at most once per freeEvery.
func (g *Group) releaseBuffered(n int64) {
	left := g.buffered.Add(-n)
	if left > freeBelow || g.bufferedPeak.Load() < freeAbove {
		return
	}
	now := time.Now().UnixNano()
	last := g.freedAt.Load()
	if now-last < int64(freeEvery) || !g.freedAt.CompareAndSwap(last, now) {
		return
	}
	g.bufferedPeak.Store(left)
	go debug.FreeOSMemory()
}

const (
	freeAbove = 64 << 20 // a peak of held bytes worth returning to the OS
	freeBelow = 8 << 20  // and little held now
	freeEvery = 5 * time.Second
)

// holdBuffered keeps *charged equal to size, the bytes a connection holds now, within the
// budget; false means the budget has no room for the growth (nothing changed).
func (l *Loop) holdBuffered(charged *int64, size int) bool {
	switch d := int64(size) - *charged; {
	case d > 0:
		if !l.g.reserveBuffered(d) {
			return false
		}
	case d < 0:
		l.g.releaseBuffered(-d)
	}
	*charged = int64(size)
	return true
}
