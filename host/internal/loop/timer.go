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
	when     int64  // ns since the loop's epoch
	interval int64  // ns; 0 for one-shot
	index    int    // position in the heap, -1 when not in it
	seq      uint64 // order among timers of one deadline: when it was added (timerHeap)
	handle   abi.Handle
	in       *instance // a guest timer's instance
	fn       func()
	ref      bool
}

// timerHeap orders timers by deadline, and timers of one deadline by when they were added:
// Node fires timers due at the same time in the order they were started, and the timers one
// callback starts with one delay share a deadline (the loop's clock is read once a pass).
// container/heap alone keeps no order among equals (16 timers of 5 ms fired 0 1 3 14 13 …).
type timerHeap struct {
	list timerList
	seq  uint64 // the last timer's place among equal deadlines
}

func (h *timerHeap) Len() int { return len(h.list) }

func (h *timerHeap) add(t *timer) {
	h.seq++
	t.seq = h.seq
	heap.Push(&h.list, t)
}

func (h *timerHeap) remove(t *timer) {
	if t.index >= 0 {
		heap.Remove(&h.list, t.index)
	}
}

// next returns the earliest timer without removing it, or nil.
func (h *timerHeap) next() *timer {
	if len(h.list) == 0 {
		return nil
	}
	return h.list[0]
}

// timerList is timerHeap's container/heap.Interface.
type timerList []*timer

func (h timerList) Len() int { return len(h) }
func (h timerList) Less(i, j int) bool {
	if h[i].when != h[j].when {
		return h[i].when < h[j].when
	}
	return h[i].seq < h[j].seq
}
func (h timerList) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerList) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerList) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
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
