package loop

import (
	"context"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/poll"
	"github.com/wasmloop/wasmloop/host/internal/websocket"
)

const (
	readBufSize   = 64 << 10  // one read(2) at most; shared by all of a loop's connections
	readPerWake   = 256 << 10 // bytes one connection may take per wake-up before others get a turn
	acceptPerWake = 128       // connections accepted per wake-up before others get a turn
	pooledBuf     = 4 << 10   // buffers of this capacity are kept for reuse
)

// Loop is one worker: a poller, a guest instance and everything the instance's handles name.
type Loop struct {
	id    int
	g     *Group
	cfg   *Config
	poll  *poll.Poller
	epoch time.Time
	now   time.Time // refreshed after every wait; the Date header and timers use it

	inst               *guest.Instance
	inboxPtr, inboxLen uint32

	conns     []*Conn // by descriptor
	nconns    int
	listeners table[*listener]
	orphans   []*listener // kept across an instance replacement until the new one listens again
	exchanges table[*exchange]
	sockets   table[*wsConn]
	timers    table[*timer]
	heap      timerHeap
	refs      int // referenced listeners and timers

	events        []poll.Event
	readBuf       []byte
	bufs          [][]byte     // free buffers of capacity pooledBuf
	bigBufs       [][]byte     // free larger buffers, for connections with much unsent output
	iov           [][]byte     // writeThrough's vector, reused
	frame         [24]byte     // a chunk-size line
	gather        []byte       // chunked body pieces gathered for one on_body call
	freeEx        []*exchange  // exchange objects for reuse
	pending       []*Conn      // connections with bytes left unread after their per-wake-up share
	dirty         []*Conn      // connections with output to flush
	resume        []*Conn      // connections whose request ended outside their own read
	closing       []closeNote  // on_close notices to deliver after the current callback
	drains        []abi.Handle // on_drain notices, delivered after output is flushed
	pendingAccept []*listener

	wsWriter  websocket.Writer    // compresses messages; holds nothing between them
	inflater  *websocket.Inflater // shared by every socket's Reader; made on first use
	wsHeaders []websocket.Header  // checkUpgrade's view of a request's fields

	req     http1.Request
	head    abi.Head
	date    http1.DateCache
	ordinal int // port-0 listens so far, see Group.portFor

	mu    sync.Mutex
	dead  bool    // the loop has ended: its poller is closed, posts are refused
	in    inbound // messages from other workers
	tasks []func(*Loop)
	spare []func(*Loop)

	draining bool
	stopped  bool
	bodyAt   int64 // loop clock of the last streamed body bytes received (see wait)
}

// closeNote is an on_close (a request) or on_ws_close (a socket: code and text) to deliver.
type closeNote struct {
	h      abi.Handle
	reason int32
	code   int32
	text   string
}

func newLoop(g *Group, id int) *Loop {
	return &Loop{
		id: id, g: g, cfg: &g.cfg,
		listeners: newTable[*listener](abi.KindListener),
		exchanges: newTable[*exchange](abi.KindRequest),
		sockets:   newTable[*wsConn](abi.KindSocket),
		timers:    newTable[*timer](abi.KindTimer),
	}
}

// init creates the poller before any goroutine can post to the loop.
func (l *Loop) init() error {
	p, err := poll.New()
	if err != nil {
		return err
	}
	l.poll = p
	l.events = make([]poll.Event, 256)
	l.readBuf = make([]byte, readBufSize)
	l.epoch = time.Now()
	l.now = l.epoch
	return nil
}

// post queues f to run on the loop's goroutine and wakes it, and reports whether it did: a
// loop that has ended takes nothing (its poller's descriptors may belong to others by now).
// Safe from any goroutine.
func (l *Loop) post(f func(*Loop)) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return false
	}
	l.tasks = append(l.tasks, f)
	l.poll.Wake()
	return true
}

func (l *Loop) runTasks() {
	l.mu.Lock()
	tasks := l.tasks
	l.tasks = l.spare[:0]
	l.mu.Unlock()
	for i, f := range tasks {
		f(l)
		tasks[i] = nil
	}
	l.spare = tasks
}

// retire marks a loop with nothing left to do as ended, unless a task (a message from another
// worker) arrived meanwhile: deciding under the task lock means a post either lands before
// the decision, and is delivered, or is refused and its sender told (ECLOSED).
func (l *Loop) retire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tasks) > 0 {
		return false
	}
	l.dead = true
	return true
}

// clock is the loop's monotonic time in ns.
func (l *Loop) clock() int64 { return int64(l.now.Sub(l.epoch)) }

// alive reports whether anything can still produce a callback: Node's rule for staying in
// the loop. While draining, only open connections count.
func (l *Loop) alive() bool {
	if l.stopped {
		return false
	}
	if l.draining {
		return l.nconns > 0
	}
	return l.refs > 0 || l.nconns > 0 || l.exchanges.len() > 0
}

func (l *Loop) run() {
	// One loop, one thread: the guest's callbacks and the poller never migrate, and a slow
	// callback on one loop does not delay the others.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.teardown()

	if err := l.startInstance(); err != nil {
		l.g.startFailed(l.id, err)
		return
	}
	l.afterCallback()
	l.settle()
	l.startSweep()
	for {
		l.runTasks()
		l.settle() // what messages started (a response ended, a body resumed) goes out now
		if !l.alive() {
			if l.retire() {
				return
			}
			continue // a message arrived as the loop was ending: deliver it first
		}
		timeout := -1
		if len(l.pending) > 0 || len(l.pendingAccept) > 0 {
			timeout = 0
		} else if t := l.heap.next(); t != nil {
			d := t.when - l.clock()
			if d <= 0 {
				timeout = 0
			} else {
				timeout = int(min((d+999_999)/1_000_000, math.MaxInt32)) // round up: never wake early
			}
		}
		n, err := l.wait(timeout)
		if err != nil {
			l.cfg.Log.Printf("worker %d: poll: %v", l.id, err)
			return
		}
		l.now = time.Now()
		for i := 0; i < n; i++ {
			l.handleEvent(&l.events[i])
		}
		l.runPending()
		l.fireTimers()
		l.settle()
	}
}

// startInstance instantiates the module and runs the program's top-level code.
func (l *Loop) startInstance() error {
	l.inst = nil // host calls made during _initialize find no instance and get ESTATE
	inst, err := l.g.module.Instantiate(context.Background(), l.cfg.Instance, l)
	if exit, ok := err.(*guest.ExitError); ok {
		l.g.exit(exit.Code) // proc_exit in initialisation ends the process with its code
		return nil
	}
	if err != nil {
		return err
	}
	l.inst = inst
	rc, err := inst.Start()
	if err != nil {
		if exit, ok := err.(*guest.ExitError); ok {
			l.g.exit(exit.Code)
			return nil
		}
		return err
	}
	if rc != 0 {
		return &startError{rc}
	}
	return nil
}

// startError is a non-zero result of wasmloop_on_start: the program's start-up failed
// (ABI.md §2). The value is the program's own; it is named only when it is one of the ABI's
// errnos, which the Go SDK returns when a host call it makes before main fails.
type startError struct{ rc int32 }

func (e *startError) Error() string {
	msg := "wasmloop_on_start returned " + strconv.Itoa(int(e.rc))
	// Errno.Error gives a known code's name (EBADHANDLE, …) and spells out any other value.
	if name := abi.Errno(e.rc).Error(); e.rc < 0 && strings.HasPrefix(name, "E") {
		msg += " = " + name
	}
	return msg + " (the program's start-up failed)"
}

// afterCallback delivers the on_close notices queued during a callback (a host function must
// never call into the guest). It may run nested inside a connection's serve, so it never
// reads or resumes connections: that waits for settle, at the top of the loop, because the
// loop's shared read buffer may hold the bytes being served.
func (l *Loop) afterCallback() {
	for len(l.closing) > 0 {
		n := l.closing[0]
		l.closing = l.closing[1:]
		if n.h.Kind() == abi.KindSocket {
			l.deliverWSClose(n)
			continue
		}
		if !l.exchanges.remove(n.h) {
			continue // the guest already let go of it
		}
		if l.inst != nil && !l.inst.Dead() {
			if _, err := l.inst.OnClose(n.h, n.reason); err != nil {
				l.guestFailed(err, nil)
			}
		}
	}
	l.closing = l.closing[:0]
}

// settle runs, at the top of the loop only, the work callbacks left: connections whose request
// ended (or whose body was resumed) outside their own read, output, and drain events, until
// none is left.
func (l *Loop) settle() {
	for {
		l.afterCallback() // notices queued outside any callback (a sweep, an EOF) too
		for len(l.resume) > 0 && !l.stopped {
			c := l.resume[0]
			l.resume = l.resume[1:]
			c.resumeQueued = false
			l.resumeConn(c)
			l.afterCallback()
		}
		l.resume = l.resume[:0]
		l.flushDirty()
		if l.stopped || len(l.drains) == 0 && len(l.closing) == 0 && len(l.resume) == 0 {
			return
		}
		l.deliverDrains()
	}
}

func (l *Loop) handleEvent(ev *poll.Event) {
	fd := int(ev.Fd)
	if fd < len(l.conns) {
		if c := l.conns[fd]; c != nil {
			if ev.Writable && c.outLen() > 0 {
				l.flush(c)
			}
			if ev.Hangup {
				c.peerHup = true
			}
			if ev.Readable && !c.closed {
				l.readConn(c)
			}
			return
		}
	}
	l.listeners.each(func(_ abi.Handle, ln *listener) {
		if ln.fd == fd {
			l.acceptAll(ln)
		}
	})
}

func (l *Loop) runPending() {
	if len(l.pendingAccept) > 0 {
		lns := l.pendingAccept
		l.pendingAccept = nil
		for _, ln := range lns {
			if !ln.closed {
				l.acceptAll(ln)
			}
		}
	}
	if len(l.pending) == 0 {
		return
	}
	// Take the list first: a connection that uses its share again requeues itself.
	cs := l.pending
	l.pending = nil
	for _, c := range cs {
		c.readQueued = false
		if !c.closed {
			l.readConn(c)
		}
	}
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
		h := t.handle
		if t.interval > 0 {
			// Like Node: the next run is an interval after this one fired, so a loop that
			// fell behind does not fire a burst to catch up.
			t.when = addSat(now, t.interval)
			l.heap.add(t)
		} else {
			l.freeTimer(t)
		}
		if _, err := l.inst.OnTimer(h); err != nil {
			l.guestFailed(err, nil)
		}
		l.afterCallback()
	}
}

func (l *Loop) freeTimer(t *timer) {
	l.heap.remove(t)
	if l.timers.remove(t.handle) && t.ref {
		l.refs--
	}
}

// addHostTimer schedules one of the host's own callbacks; it holds no reference.
func (l *Loop) addHostTimer(after time.Duration, fn func()) {
	l.heap.add(&timer{when: l.clock() + int64(after), fn: fn})
}

// drain starts this loop's part of a graceful shutdown.
func (l *Loop) drain() {
	if l.draining {
		return
	}
	l.draining = true
	l.listeners.each(func(h abi.Handle, ln *listener) { l.closeListener(h, ln) })
	for _, c := range l.conns { // WebSockets, whichever listener they came from
		if c != nil && !c.closed && c.ws != nil && !c.ws.closeSent && !c.ws.ended {
			l.closeWS(c, c.ws, ws.StatusGoingAway, "server shutting down")
		}
	}
}

// stop ends the loop at once, closing everything.
func (l *Loop) stop() { l.stopped = true }

func (l *Loop) teardown() {
	l.stopped = true
	for _, c := range l.conns {
		if c != nil {
			l.closeConn(c, abi.CloseHost)
		}
	}
	l.listeners.each(func(h abi.Handle, ln *listener) { l.closeListener(h, ln) })
	l.dropOrphans()
	if l.inst != nil {
		l.inst.Close()
	}
	l.mu.Lock()
	l.dead = true
	l.tasks = nil
	l.poll.Close()
	l.mu.Unlock()
}

func (l *Loop) getBuf() []byte {
	if n := len(l.bufs); n > 0 {
		b := l.bufs[n-1]
		l.bufs = l.bufs[:n-1]
		return b
	}
	return make([]byte, 0, pooledBuf)
}

// getBufN returns an empty buffer with room for n bytes.
func (l *Loop) getBufN(n int) []byte {
	if n <= pooledBuf {
		return l.getBuf()
	}
	for i, b := range l.bigBufs {
		if cap(b) >= n {
			l.bigBufs[i] = l.bigBufs[len(l.bigBufs)-1]
			l.bigBufs = l.bigBufs[:len(l.bigBufs)-1]
			return b
		}
	}
	return make([]byte, 0, max(n, 64<<10))
}

const (
	maxBigBuf  = 1 << 20 // larger buffers are not kept
	maxBigBufs = 16
)

// putBuf keeps buffers for reuse: many small ones, and a few large ones for streaming
// connections; one huge response does not pin its memory for the life of the loop.
func (l *Loop) putBuf(b []byte) {
	switch {
	case cap(b) == pooledBuf && len(l.bufs) < 1024:
		l.bufs = append(l.bufs, b[:0])
	case cap(b) > pooledBuf && cap(b) <= maxBigBuf && len(l.bigBufs) < maxBigBufs:
		l.bigBufs = append(l.bigBufs, b[:0])
	}
}
