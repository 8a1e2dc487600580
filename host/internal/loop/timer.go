package loop

import (
	"container/heap"
	"math"
	"time"

	"github.com/wasmloop/wasmloop/abi"
)

// timer is a guest timer (handle != 0) or one of the host's own (fn != nil), kept in the
// loop's heap by deadline on the loop's monotonic clock.
type timer struct {
	when     int64 // ns since the loop's epoch
	interval int64 // ns; 0 for one-shot
	index    int   // position in the heap, -1 when not in it
	handle   abi.Handle
	in       *instance // a guest timer's instance
	fn       func()
	ref      bool
}

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when < h[j].when }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}

func (h *timerHeap) add(t *timer) { heap.Push(h, t) }

func (h *timerHeap) remove(t *timer) {
	if t.index >= 0 {
		heap.Remove(h, t.index)
	}
}

// next returns the earliest timer without removing it, or nil.
func (h timerHeap) next() *timer {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

// startTimer starts a guest timer and returns its handle. delay is at least 1 ns: a timer
// never fires in the pass that started it, so a timer that starts a timer of delay 0 cannot
// keep the loop from polling (ABI.md §1). An interval is at least 1 ms, or 0 for one-shot.
func (l *Loop) startTimer(in *instance, delay, interval int64) abi.Handle {
	delay = max(delay, 1)
	if interval < 0 {
		interval = 0
	} else if interval > 0 && interval < 1e6 {
		interval = 1e6
	}
	t := &timer{when: addSat(l.clock(), delay), interval: interval, ref: true, index: -1, in: in}
	t.handle = l.timers.add(t)
	l.heap.add(t)
	l.refs++
	return t.handle
}

// addSat adds without overflowing: a deadline past the end of time stays there.
func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func (l *Loop) fireTimers() {
	now := l.clock()
	for {
		t := l.heap.next()
		if t == nil || t.when > now || l.stopped {
			return
		}
		l.heap.remove(t)
		if t.fn != nil {
			t.fn()
			continue
		}
		h, in := t.handle, t.in
		if t.interval > 0 {
			// Like Node: the next run is an interval after this one fired, so a loop that
			// fell behind does not fire a burst to catch up.
			t.when = addSat(now, t.interval)
			l.heap.add(t)
		} else {
			l.freeTimer(t)
		}
		if !in.live() {
			continue
		}
		rc, err := in.g.OnTimer(h)
		l.checkResult(in, abi.ExportOnTimer, rc, err)
		l.afterCallback()
	}
}

func (l *Loop) freeTimer(t *timer) {
	l.heap.remove(t)
	if l.timers.remove(t.handle) && t.ref {
		l.refs--
	}
}

// addHostTimer schedules one of the host's own callbacks; it holds no reference. The timer
// is returned for a caller that may remove it from the heap before it is due (a fetch's
// timeout, once the fetch has ended).
func (l *Loop) addHostTimer(after time.Duration, fn func()) *timer {
	t := &timer{when: addSat(l.clock(), int64(after)), fn: fn}
	l.heap.add(t)
	return t
}
