package guest

import (
	"sync"
	"time"
)

// A guest call that runs past its budget is stopped by a watchdog, not by a deadline per call.
// Compiled with wazero's termination checks (RuntimeConfig.Interruptible), guest code leaves
// to Go at every loop header and function entry, where the Go scheduler can stop it for a
// garbage collection and where wazero looks whether the call's context is done. Each instance
// calls with a context of its own; the watchdog cancels it when the instance has been inside
// one call for longer than its budget. The loop's side of a call is two atomic adds (the
// instance's call counter); a context.WithTimeout per call would cost a timer each.

// watchdog watches the instances of one Runtime from one goroutine, which runs while any
// instance with a budget exists.
type watchdog struct {
	mu      sync.Mutex
	watched map[*Instance]*sighting
	tick    time.Duration // the shortest budget watched / 10, within [minTick, maxTick]
	running bool
	changed chan struct{} // a watch or unwatch: recompute the tick, or stop
}

// sighting is what the watchdog last saw of an instance: the call in progress (its counter,
// odd while inside) and when it first saw it.
type sighting struct {
	seq   uint64
	since time.Time
}

const (
	minTick = 2 * time.Millisecond
	maxTick = 25 * time.Millisecond
)

// watch starts watching inst (its budgets are set).
func (w *watchdog) watch(inst *Instance) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched == nil {
		w.watched = map[*Instance]*sighting{}
		w.changed = make(chan struct{}, 1)
	}
	w.watched[inst] = &sighting{}
	w.retick()
	if !w.running {
		w.running = true
		go w.run()
	}
}

// unwatch stops watching inst.
func (w *watchdog) unwatch(inst *Instance) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watched[inst]; !ok {
		return
	}
	delete(w.watched, inst)
	w.retick()
}

// retick sets the tick from the shortest budget watched and wakes the goroutine to use it;
// mu is held.
func (w *watchdog) retick() {
	tick := maxTick
	for inst := range w.watched {
		for _, b := range [...]time.Duration{inst.startBudget, inst.callBudget} {
			if b > 0 {
				tick = min(tick, b/10)
			}
		}
	}
	w.tick = max(tick, minTick)
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watchdog) run() {
	w.mu.Lock()
	t := time.NewTicker(w.tick)
	w.mu.Unlock()
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.changed:
		}
		w.mu.Lock()
		if len(w.watched) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		t.Reset(w.tick)
		now := time.Now()
		for inst, s := range w.watched {
			seq := inst.seq.Load()
			switch {
			case seq&1 == 0: // not in a call
			case seq != s.seq:
				s.seq, s.since = seq, now
			default:
				if b := inst.budgetNow(); b > 0 && now.Sub(s.since) >= b {
					inst.interrupt()
				}
			}
		}
		w.mu.Unlock()
	}
}
