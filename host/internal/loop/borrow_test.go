package loop

import (
	"math"
	"strings"
	"testing"
	"time"
)

// asleep puts a test's loop where run leaves it in the poller's wait: sleeping, its wait to
// end at the loop clock until.
func asleep(l *Loop, until int64) {
	l.sleepUntil = until
	l.mu.Lock()
	l.sleeping = true
	l.mu.Unlock()
}

// woken reports whether the poller was woken (and consumes the wake-up).
func woken(t *testing.T, l *Loop) bool {
	t.Helper()
	_, w, err := l.poll.Wait(l.events, 0)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A borrowed turn wakes the loop's thread exactly when what it did changes how long the loop
// may sleep.
func TestBorrowedTurnWakesTheLoopWhenItMust(t *testing.T) {
	l := guestLoop(t, buildC(t, "testdata/chello/hello.c"))
	l.readPending() // the new listener's first accept, as the loop's first turn takes it
	for _, tc := range []struct {
		name  string
		until int64 // the wait's end
		turn  func(*Loop)
		wake  bool
	}{
		{"nothing changed", math.MaxInt64, func(*Loop) {}, false},
		{"a timer, the wait having none", math.MaxInt64, func(l *Loop) { l.addHostTimer(time.Hour, func() {}) }, true},
		{"a timer after the wait's end", l.clock() + int64(time.Minute), func(l *Loop) { l.addHostTimer(2*time.Hour, func() {}) }, false},
		{"a timer before the wait's end", l.clock() + int64(time.Minute), func(l *Loop) { l.addHostTimer(time.Millisecond, func() {}) }, true},
		{"an accept queued", math.MaxInt64, func(l *Loop) { l.queue.acceptAgain(listenerOf(t, l)) }, true},
		{"nothing left to keep the loop alive", math.MaxInt64, func(l *Loop) { l.stop() }, true},
	} {
		woken(t, l) // a wake-up from before the case
		asleep(l, tc.until)
		if !l.borrow() {
			t.Fatalf("%s: a sleeping loop was not borrowed", tc.name)
		}
		if l.borrow() {
			t.Fatalf("%s: a borrowed loop was borrowed again", tc.name)
		}
		l.runBorrowed(tc.turn)
		if got := woken(t, l); got != tc.wake {
			t.Errorf("%s: woken %v, want %v", tc.name, got, tc.wake)
		}
		l.heap = timerHeap{} // the next case starts without the timers this one set
		l.readPending()
	}
}

// A borrowed turn that arms nothing does not wake a loop that sleeps until a timer, whatever
// the loop clock reads when it ends: the wait is compared by the timer it is for, not by a
// timeout rounded to milliseconds afresh from a later clock (which woke the loop for half of
// the borrowed calls, its sweep timer being always pending). Found by a review.
func TestBorrowedTurnThatArmsNothingDoesNotWake(t *testing.T) {
	l := guestLoop(t, buildC(t, "testdata/chello/hello.c"))
	l.readPending()
	for k := range 10 {
		// The loop's turn began ago before the borrow; its sweep timer is due 1.0005 s after.
		ago := 300*time.Millisecond + time.Duration(k)*100*time.Microsecond
		woken(t, l)
		l.heap = timerHeap{}
		l.now = time.Now().Add(-ago)
		l.addHostTimer(time.Second+500*time.Microsecond, func() {})
		l.planWait() // as run does
		asleep(l, l.sleepUntil)
		if !l.borrow() {
			t.Fatal("a sleeping loop was not borrowed")
		}
		l.runBorrowed(func(*Loop) {})
		if woken(t, l) {
			t.Errorf("borrowed %v after the loop's turn began: woken for nothing", ago)
		}
	}
}

// The heartbeat shows a borrowed turn busy: sleep marks the loop idle under the lock that
// borrow takes, so the borrower's mark comes after it (a review found the loop's thread
// clearing it after sleep, over a borrowed turn already under way).
func TestBorrowedTurnIsBusy(t *testing.T) {
	l := guestLoop(t, buildC(t, "testdata/chello/hello.c"))
	l.readPending()
	l.heartbeat.busySince.Store(time.Now().UnixNano())
	if !l.sleep() {
		t.Fatal("the loop would not sleep")
	}
	if b := l.heartbeat.busySince.Load(); b != 0 {
		t.Fatalf("a sleeping loop shows busy since %d", b)
	}
	if !l.borrow() {
		t.Fatal("a sleeping loop was not borrowed")
	}
	l.runBorrowed(func(l *Loop) {
		if l.heartbeat.busySince.Load() == 0 {
			t.Error("a borrowed turn under way shows the loop idle")
		}
	})
	if b := l.heartbeat.busySince.Load(); b != 0 {
		t.Errorf("after the borrowed turn the loop shows busy since %d", b)
	}
	l.awake()
}

// A loop is borrowed only while it sleeps with nothing queued, and its thread's awake waits
// for the borrowed turn to end.
func TestBorrowOnlyASleepingLoop(t *testing.T) {
	l := guestLoop(t, buildC(t, "testdata/chello/hello.c"))
	if l.borrow() {
		t.Fatal("a loop in its turn (not sleeping) was borrowed")
	}
	asleep(l, math.MaxInt64)
	l.post(func(*Loop) {}, nil) // wakes it: it has a task to run first
	if l.borrow() {
		t.Fatal("a loop with a task queued was borrowed")
	}
	l.runTasks()
	woken(t, l)
	asleep(l, math.MaxInt64)
	if !l.borrow() {
		t.Fatal("a sleeping loop was not borrowed")
	}
	awoke := make(chan struct{})
	go func() { // the loop's thread, back from its wait
		l.awake()
		close(awoke)
	}()
	l.runBorrowed(func(l *Loop) {
		select {
		case <-awoke:
			t.Error("awake returned while the loop was borrowed")
		default:
		}
	})
	<-awoke
	if l.borrow() {
		t.Error("an awake loop was borrowed")
	}
}

// A request handed in alone while the worker sleeps is served on the caller's goroutine: its
// answer is in the pipe when Write returns, with no turn of the loop's own. One that is not
// alone is queued for the loop's thread.
func TestPipeAloneServedByTheCaller(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/hold"))
	l.readPending()
	p := l.g.ServePipe()
	l.runTasks() // the loop's thread attaches it
	l.settle()
	for _, alone := range []bool{true, false} {
		woken(t, l)
		asleep(l, math.MaxInt64)
		p.BorrowAlone(alone)
		if _, err := p.Write([]byte("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		answer := string(p.fromLoop[p.fromOff:])
		p.fromLoop, p.fromOff = p.fromLoop[:0], 0
		p.mu.Unlock()
		if served := strings.Contains(answer, "path=/first"); served != alone {
			t.Fatalf("alone %v: after Write the pipe holds %q", alone, answer)
		}
		if !alone {
			if !woken(t, l) {
				t.Fatal("a request not alone did not wake the loop's thread")
			}
			l.runTasks() // the thread's turn serves it
			l.settle()
			p.mu.Lock()
			answer = string(p.fromLoop[p.fromOff:])
			p.mu.Unlock()
			if !strings.Contains(answer, "path=/first") {
				t.Fatalf("the loop's turn did not serve the queued request: %q", answer)
			}
		}
	}
	p.Close()
}
