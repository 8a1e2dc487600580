package loop

import "time"

// A caller's turn. A call from the embedding program (App.Call) that finds its worker asleep
// in the poller's wait, with nothing queued, runs the worker's turn itself, on the caller's
// goroutine, instead of queuing the call and waking the loop's thread: the guest answers
// before Call would otherwise have reached the loop. Posting costs two hand-offs between
// threads (the wake-up of the loop, then of the caller), which on a shared machine are most
// of a call's time: 35–60 µs a call against 5–9 µs borrowed (RATIONALE.md, "Embedding").
//
// The loop stays the only one to touch its state: borrow succeeds only while the loop's
// thread is between sleep and awake, where it reads nothing of it, and awake waits until the
// borrower gives the loop back (under mu, so what the borrower wrote happens before the loop
// reads it). The borrowed turn ends as every turn does, with settle; then, if what it did
// changes how long the loop may sleep (a timer due before the one the wait is for, work
// queued, or nothing left to keep it alive), the loop's thread is woken to look again.
//
// Events the poller returned while the loop was borrowed are handled after it; an event for a
// descriptor the turn closed and reused meanwhile reaches the new connection, which finds
// nothing to read or no room to write, as after any spurious edge.

// borrow takes the loop for the calling goroutine if it sleeps in the poller's wait and
// nothing is queued for it, and reports whether it did. The caller must then runBorrowed.
func (l *Loop) borrow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.borrowLocked()
}

// borrowLocked is borrow with l.mu held (notePipe).
func (l *Loop) borrowLocked() bool {
	if !l.sleeping || l.borrowed || l.dead || len(l.tasks) > 0 || len(l.pipeNotes) > 0 {
		return false
	}
	l.borrowed = true
	return true
}

// runBorrowed runs f as one turn of the loop, on the goroutine that borrowed it, and gives
// the loop back.
func (l *Loop) runBorrowed(f func(*Loop)) {
	l.now = time.Now()
	l.heartbeat.busySince.Store(l.now.UnixNano()) // a stuck turn is stuck whoever runs it
	f(l)
	l.settle()
	// The goroutines the turn readied run wherever the scheduler puts them: this goroutine
	// holds no thread's P against them (see run).
	l.readied = false
	// The wait was planned for the timer due at sleepUntil: a timer due before it, queued
	// reads or accepts (a wait that should not block), or nothing left alive need the
	// loop's thread to look again. (Timers are compared as the loop clock has them: the
	// wait's timeout was rounded to milliseconds from an earlier clock.)
	wake := l.nextTimerAt() < l.sleepUntil || len(l.queue.reads) > 0 || len(l.queue.accepts) > 0 || !l.alive()
	l.heartbeat.busySince.Store(0)
	l.mu.Lock()
	l.borrowed = false
	if wake {
		l.wakeLocked()
	}
	l.mu.Unlock()
	l.handedBack.Signal()
}
