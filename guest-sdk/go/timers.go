//go:build wasip1

package wasmloop

import "time"

// Timer is a pending SetTimeout or SetInterval.
type Timer struct {
	h        int64
	fn       func()
	interval time.Duration
	done     bool
}

var timers registry[Timer]

// SetTimeout runs fn once after d. A pending timer keeps the process alive unless unreferenced.
func SetTimeout(fn func(), d time.Duration) *Timer { return startTimer(fn, d, 0) }

// SetInterval runs fn every d until cleared; d below 1 ms is 1 ms, as in Node.
func SetInterval(fn func(), d time.Duration) *Timer {
	d = max(d, time.Millisecond)
	return startTimer(fn, d, d)
}

func startTimer(fn func(), delay, interval time.Duration) *Timer {
	t := &Timer{fn: fn, interval: interval}
	h := hostTimerStart(int64(delay), int64(interval))
	if h < 0 {
		t.done = true // the host refused (too many timers): the timer never fires
		return t
	}
	t.h = h
	timers.put(h, t)
	return t
}

// ClearTimeout cancels a timeout that has not fired.
func ClearTimeout(t *Timer) { t.clear() }

// ClearInterval stops an interval.
func ClearInterval(t *Timer) { t.clear() }

func (t *Timer) clear() {
	if t == nil || t.done {
		return
	}
	t.done = true
	timers.del(t.h)
	hostClose(t.h)
}

// Unref lets the process exit while this timer is pending (Node's timeout.unref()).
func (t *Timer) Unref() *Timer {
	if !t.done {
		hostRef(t.h, 0)
	}
	return t
}

// Ref undoes Unref.
func (t *Timer) Ref() *Timer {
	if !t.done {
		hostRef(t.h, 1)
	}
	return t
}
