package loop

import (
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

const (
	readBufSize   = 64 << 10  // one read(2) at most; shared by all of a loop's connections
	readPerWake   = 256 << 10 // bytes one connection may take per wake-up before others get a turn
	acceptPerWake = 128       // connections accepted per wake-up before others get a turn
)

// Loop is one worker: a poller, a guest instance and everything the instance's handles name.
// It is the reactor (this file, conn.go, output.go, listener.go, deferred.go, timeouts.go,
// and borrow.go, where a caller runs a turn of a sleeping loop's);
// the protocols that run on its connections are httpconn.go, websocket.go and tcpstream.go
// (the program's raw TCP, whose operations are Ops: op.go), and the guest
// reaches it through hostCalls (abi_*.go).
type Loop struct {
	id    int
	g     *Group
	cfg   *Config
	poll  *poll.Poller
	epoch time.Time
	now   time.Time // refreshed after every wait; the Date header and timers use it

	cur       *instance   // gets new requests, messages and listeners (instance.go)
	retired   []*instance // retired by a swap, finishing what they hold (swap.go)
	spare     *instance   // instantiated ahead of a replacement (instance.go)
	spareBusy bool        // a goroutine is making the spare

	conns    []*Conn // sockets, by descriptor
	pipes    []*Conn // in-memory connections handed in (pipe.go), by Conn.slot
	nconns   int     // sockets and pipes
	rawConns int     // of which the program's raw TCP connections (tcpstream.go)
	// roomWaiters are accepted raw connections waiting for this worker to hold fewer than
	// its share of Config.MaxConns (Op.WhenBelowConnCap), oldest first.
	roomWaiters []func()
	listeners   table[*listener]
	// kept are the connections to servers the program's fetches left open, by address,
	// idle until the next fetch there (clientconn.go)
	kept      map[string][]*clientConn
	headBuf   []byte      // an answer's head is parsed into it (clientconn.go, headScratch)
	chunkLine [24]byte    // a streamed upload's chunk-size line (fetch.go)
	orphans   []*listener // kept across an instance replacement until the new one listens again
	handovers []handover  // the current instance's listeners, during a swap (swap.go)
	// swapping: a swap's new instance is starting (swap.go); its first listen on worker 0
	// starts the other workers only once it is current (startOthersLater).
	swapping, startOthersLater bool

	exchanges table[*exchange]
	sockets   table[*wsConn]
	timers    table[*timer]
	calls     table[*inboundCall] // calls from the embedder the guest holds (calls.go)
	// async host function calls whose results have not come back (hostfuncs.go)
	fileBuf           []byte // body_file's scratch (bodyfile.go)
	pendingAsync      int
	pendingAsyncBytes int  // of their inputs (hostfuncs.go)
	pendingOps        int  // loop operations not finished and delivered (op.go)
	readied           bool // a goroutine outside the loops was readied this turn (see run)
	lastHostFunc      struct {
		name string
		f    HostFunc
	} // the embedder's function found last (hostFunc)
	heap          timerHeap
	timersRefused bool // a timer past MaxTimers was refused, and logged (once a worker)
	refs          int  // referenced listeners and timers
	ordinal       int  // port-0 listens so far, see Group.portFor

	queue    deferred // work waiting for the end of the callback or the top of the turn
	logLimit logLimit // logf's rate limit

	stats     *Stats    // counters for the metrics, nil unless Config.Stats (stats.go)
	heartbeat Heartbeat // when the current turn began, for liveness (stats.go)

	events  []poll.Event
	readBuf []byte
	bufs    [][]byte // free buffers of capacity pooledBuf
	bigBufs [][]byte // free larger buffers, for connections with much unsent output
	iov     [][]byte // writeThrough's vector, reused

	httpScratch httpShared
	wsScratch   wsShared

	mu         sync.Mutex
	dead       bool      // the loop has ended: its poller is closed, posts are refused
	sleeping   bool      // the loop is in (or about to enter) the poller's wait: wake it
	borrowed   bool      // a caller runs a turn of the loop's while it sleeps (borrow.go)
	handedBack sync.Cond // on mu: the caller has given the loop back
	sleepUntil int64     // when the timer the wait is for is due (math.MaxInt64: none); borrow.go
	in         inbound   // messages from other workers
	tasks      []task
	doneTasks  []task  // the other task slice, reused
	pipeNotes  []*Pipe // pipes to attach or serve (pipe.go)
	donePipes  []*Pipe // the other notice slice, reused

	draining   bool
	stopped    bool
	restarting bool // a failed instance's replacement waits for its delay (instance.go)
	// heldMessages came while restarting: the replacement's, delivered once it has started
	// (messages.go).
	heldMessages []heldMessage
	failures     int   // consecutive instances that failed before serving an event
	bodyAt       int64 // loop clock of the last streamed body bytes received (see wait)
}

func newLoop(g *Group, id int) *Loop {
	l := &Loop{
		id: id, g: g, cfg: &g.cfg,
		listeners: newTable[*listener](abi.KindListener),
		exchanges: newTable[*exchange](abi.KindRequest),
		sockets:   newTable[*wsConn](abi.KindSocket),
		timers:    newTable[*timer](abi.KindTimer),
		calls:     newTable[*inboundCall](abi.KindCall),
	}
	l.handedBack.L = &l.mu
	if g.cfg.Stats {
		l.stats = newStats()
	}
	return l
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

// A task is work another goroutine queued for the loop.
type task struct {
	run func(*Loop)
	// dropped, if set, runs instead of run when the loop never runs it: at once if the loop
	// had ended, or when it ends (stopped) with the task still queued. Whoever waits on the
	// task (a Call, a Swap) is answered that way, and what it carries (a descriptor handed
	// over, an instance made for the loop) is released, not leaked.
	dropped func()
}

// post queues run to run on the loop's goroutine and wakes it, and reports whether it did: a
// loop that has ended takes nothing (its poller's descriptors may belong to others by now),
// and dropped (if not nil) runs instead, now or as the loop ends. Safe from any goroutine;
// dropped runs on the caller's goroutine or the loop's, never under the loop's lock.
func (l *Loop) post(run func(*Loop), dropped func()) bool {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		if dropped != nil {
			dropped()
		}
		return false
	}
	l.tasks = append(l.tasks, task{run, dropped})
	l.wakeLocked()
	l.mu.Unlock()
	return true
}

// wakeLocked wakes the loop if it sleeps in the poller's wait. A busy loop finds what was
// queued at the top of its next turn, so the wake-up (a write to the poller's eventfd, and a
// wait that returns for it) is paid only by a loop that sleeps: under load, posts batch.
// l.mu is held.
func (l *Loop) wakeLocked() {
	if l.sleeping {
		l.sleeping = false
		l.poll.Wake()
	}
}

// runTasks runs what other goroutines queued: posted tasks, then pipe notices.
func (l *Loop) runTasks() {
	l.mu.Lock()
	tasks, notes := l.tasks, l.pipeNotes
	l.tasks, l.pipeNotes = l.doneTasks[:0], l.donePipes[:0]
	l.mu.Unlock()
	for i, t := range tasks {
		t.run(l)
		tasks[i] = task{}
	}
	l.doneTasks = tasks
	l.runPipeNotes(notes)
	l.donePipes = notes[:0]
}

// sleep tells posters that the loop is about to wait, unless something was queued since the
// turn began: then it reports false and the loop must not block. Either way the loop is idle
// for the heartbeat from here to the wait's end; marked under the lock, so that a caller who
// borrows the loop (borrow.go) marks its turn busy after, not before.
func (l *Loop) sleep() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.heartbeat.busySince.Store(0)
	if len(l.tasks) > 0 || len(l.pipeNotes) > 0 {
		return false
	}
	l.sleeping = true
	return true
}

// awake undoes sleep once the wait has returned, after a caller that borrowed the loop
// meanwhile has given it back.
func (l *Loop) awake() {
	l.mu.Lock()
	for l.borrowed {
		l.handedBack.Wait()
	}
	l.sleeping = false
	l.mu.Unlock()
}

// retire marks a loop with nothing left to do as ended, unless a task (a message from another
// worker) arrived meanwhile: deciding under the task lock means a post either lands before
// the decision, and is delivered, or is refused and its sender told (ECLOSED).
func (l *Loop) retire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tasks) > 0 || len(l.pipeNotes) > 0 {
		return false
	}
	l.dead = true
	return true
}

// clock is the loop's monotonic time in ns.
func (l *Loop) clock() int64 { return int64(l.now.Sub(l.epoch)) }

// alive reports whether anything can still produce a callback: Node's rule for staying in
// the loop. While draining, only open connections and the embedder's calls in progress
// count, and not the program's raw TCP connections: they have no request to finish, and stay
// open for the requests that do. (A call is answered as a request is: Shutdown waits for
// both, up to its timeout.)
func (l *Loop) alive() bool {
	if l.stopped {
		return false
	}
	if l.draining {
		return l.nconns-l.rawConns > 0 || l.calls.len() > 0
	}
	return l.refs > 0 || l.nconns > 0 || l.exchanges.len() > 0 || l.restarting ||
		l.calls.len() > 0 || l.pendingAsync > 0 || l.pendingOps > 0 || l.cfg.KeepAlive
}

func (l *Loop) run() {
	// One loop, one thread: the guest's callbacks and the poller never migrate, and a slow
	// callback on one loop does not delay the others.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.teardown()
	defer l.heartbeat.busySince.Store(0) // ended: not in a turn (a finished worker is not stuck)

	l.heartbeat.busySince.Store(time.Now().UnixNano()) // busy until the first wait
	err := l.startInstance(l.g.currentModule())
	if err != nil {
		l.g.startFailed(l.id, err)
	} else if l.id == 0 && l.cfg.KeepAlive {
		// A program the embedder calls into runs on every worker whether or not it listens.
		l.g.startOthers()
	}
	l.g.started()
	if err != nil {
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
		timeout := l.waitTimeout()
		if l.readied {
			// A goroutine of the embedder's was readied this turn (a call's caller). Go puts
			// it on this thread's P, which the thread keeps while it blocks in the poller
			// until the scheduler takes it back: yield it first, or the caller waits for
			// that (App.Call went from 125 to 40 µs; RATIONALE.md, "Embedding").
			l.readied = false
			runtime.Gosched()
		}
		// What the wait needs of the loop's state is read before sleep, and the loop's thread
		// writes nothing of it until awake: from sleep on, a caller may borrow the loop
		// (borrow.go).
		spin := l.spinFirst(timeout)
		l.planWait()
		if timeout != 0 && !l.sleep() {
			timeout, spin = 0, false // posted to since the turn began: look, but do not block
		}
		n, err := l.wait(timeout, spin)
		if timeout != 0 {
			l.awake()
		}
		if err != nil {
			l.logf("poll: %v", err)
			return
		}
		l.now = time.Now()
		l.heartbeat.busySince.Store(l.now.UnixNano())
		for i := 0; i < n; i++ {
			l.handleEvent(&l.events[i])
		}
		l.readPending()
		l.fireTimers()
		l.settle()
	}
}

// planWait records the timer the coming wait is for, which a borrowed turn compares its own
// timers against (borrow.go).
func (l *Loop) planWait() { l.sleepUntil = l.nextTimerAt() }

// nextTimerAt is the loop clock at which the next timer is due (math.MaxInt64: none).
func (l *Loop) nextTimerAt() int64 {
	if t := l.heap.next(); t != nil {
		return t.when
	}
	return math.MaxInt64
}

// waitTimeout is how long the poller's wait may block, in ms: 0 when work is queued or a
// timer is due, -1 when no timer is set.
func (l *Loop) waitTimeout() int {
	if len(l.queue.reads) > 0 || len(l.queue.accepts) > 0 {
		return 0
	}
	t := l.heap.next()
	if t == nil {
		return -1
	}
	d := t.when - l.clock()
	if d <= 0 {
		return 0
	}
	return int(min((d+999_999)/1_000_000, math.MaxInt32)) // round up: never wake early
}

func (l *Loop) handleEvent(ev *poll.Event) {
	fd := int(ev.Fd)
	if fd < len(l.conns) {
		if c := l.conns[fd]; c != nil {
			if ev.Writable && (c.outLen() > 0 || c.sockFull) {
				c.sockFull = false
				l.flush(c)
			}
			if ev.Hangup {
				c.hangup = true
			}
			switch {
			case !ev.Readable || c.closed():
			case c.eof:
				l.checkReset(c)
			default:
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

// drain starts this loop's part of a graceful shutdown.
func (l *Loop) drain() {
	if l.draining {
		return
	}
	l.draining = true
	l.listeners.each(func(h abi.Handle, ln *listener) { l.closeListener(h, ln) })
	l.eachConn(func(c *Conn) { // what outlives its listener (WebSockets), or had none left
		if c.phase == connOpen {
			c.proto.shutdown()
		}
	})
}

// stop ends the loop at once, closing everything.
func (l *Loop) stop() { l.stopped = true }

func (l *Loop) teardown() {
	l.stopped = true
	l.eachConn(func(c *Conn) {
		if c.phase == connOpen && c.outLen() > 0 {
			l.flush(c) // what the kernel takes now still goes out (a raw connection's last bytes)
		}
		l.closeConn(c, abi.CloseHost)
	})
	for _, f := range l.roomWaiters {
		f() // stopped: each closes its connection and fails its accept
	}
	l.roomWaiters = nil
	l.listeners.each(func(h abi.Handle, ln *listener) { l.closeListener(h, ln) })
	l.dropOrphans()
	l.failCalls(nil, ErrProgramEnded)
	l.dropResults()
	for _, in := range append(l.retired, l.cur, l.spare) {
		if in != nil {
			in.close()
		}
	}
	l.mu.Lock()
	l.dead = true
	tasks, notes := l.tasks, l.pipeNotes
	l.tasks, l.pipeNotes = nil, nil
	l.poll.Close()
	l.mu.Unlock()
	for _, t := range tasks { // queued as the loop was stopped: never run
		if t.dropped != nil {
			t.dropped()
		}
	}
	for _, p := range notes { // handed in as the loop ended: never attached
		p.close()
	}
}

const (
	streamSpin   = 50 * time.Microsecond // see wait
	streamRecent = int64(time.Millisecond)
)

// wait is the poller's wait, except that with spin (spinFirst: a loop that received streamed
// body bytes within the last millisecond) it first polls without blocking, for up to
// streamSpin, before it sleeps. A client streaming a body over loopback otherwise pays for
// waking the loop after nearly every send (the wake-up runs in its send): a 100 MiB upload
// made 4–13 waits per MiB. Polling for 50 µs took uploads from 1.04× net/http's throughput to
// 1.19× (Go's scheduler spins before it parks, too), for ~0.16 s more host CPU per GiB
// (RATIONALE.md). Idle loops and requests without a streamed body never spin. It reads
// nothing of the loop's state: a caller may have borrowed the loop meanwhile (borrow.go).
func (l *Loop) wait(timeout int, spin bool) (int, error) {
	if spin {
		for start := time.Now(); time.Since(start) < streamSpin; {
			if n, woken, err := l.poll.Wait(l.events, 0); n > 0 || woken || err != nil {
				return n, err
			}
		}
	}
	n, _, err := l.poll.Wait(l.events, timeout)
	return n, err
}

// spinFirst reports whether a wait of timeout ms should poll for streamSpin first (see wait).
func (l *Loop) spinFirst(timeout int) bool {
	return timeout != 0 && l.bodyAt > 0 && l.clock()-l.bodyAt < streamRecent
}
