// Package loop is the event loop: one Loop per worker, each on its own OS thread with its own
// poller, timer heap, connection table and guest instance, and a Group that starts them, shares
// listening addresses between them, and decides when and how the process ends.
//
// Nothing in a loop blocks except the poller's wait, and a loop calls its guest one callback at
// a time and never from inside a host function (ABI.md §1), so neither the loop nor the guest
// needs a lock. Other goroutines reach a loop only through post, which queues a function, and
// through the notices of the pipes an embedder's Handler hands in (pipe.go); either wakes the
// poller if the loop sleeps.
package loop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/defaults"
	"github.com/wasmloop/wasmloop/host/internal/guest"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

// Config is everything a Group needs besides the module. Its limits, timeouts and counts are
// host.Config's, resolved there; a zero one takes its default from package defaults here too,
// and defaults.Off turns a timeout, the ping interval or MaxConns off, as in host.Config.
type Config struct {
	Workers int  // loops
	Stats   bool // keep counters for the metrics (Loop.Stats)
	// AccessLog, if set, gets a line for every answered request (stats.go, accessLog).
	AccessLog *slog.Logger
	Limits    http1.Limits // request limits; MaxBodyBytes is the buffered body cap
	MaxOutput int          // pending output per connection before it is closed
	// WriteHighWater is the pending output above which respond and write answer AboveMark
	// and the guest waits for on_drain; body pieces are gathered into one write up to it (at
	// most coalesceMax).
	WriteHighWater  int
	ShutdownTimeout time.Duration // how long a graceful shutdown may take
	// HeaderTimeout bounds the time from a request's first byte to the end of its head (408,
	// then close: a client dribbling headers cannot hold a connection).
	HeaderTimeout time.Duration
	// BodyTimeout bounds the wait for the next bytes of a request body (408, then close).
	BodyTimeout time.Duration
	// ResponseTimeout answers 503 for a request the guest has not started answering that long
	// after it was dispatched, and tells the guest (on_close).
	ResponseTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request under way.
	IdleTimeout time.Duration
	// MaxConns caps the open connections of the process, shared evenly between the workers;
	// at the cap a worker stops accepting until one of its connections closes.
	MaxConns int
	// BufferBudget caps the bytes of request bodies and WebSocket messages held for clients,
	// across all loops (503 or 1013 beyond).
	BufferBudget int
	// BodyDeadline bounds the whole arrival of a buffered request body (408 beyond).
	BodyDeadline time.Duration
	// FetchIdleTimeout bounds a fetch's wait for its server on the loop's client: for the
	// answer's head once the request is out, for more of the body while a read is pending
	// (ETIMEDOUT beyond).
	FetchIdleTimeout time.Duration
	// SwapDrainTimeout bounds how long an instance retired by a swap may finish its requests
	// and keep its WebSockets.
	SwapDrainTimeout time.Duration
	// MaxRestarts is how many consecutive instances of a worker may fail before serving an
	// event before the process gives up (exit 1).
	MaxRestarts int
	// MaxTimers caps each loop's guest timers (timer_start answers ELIMIT beyond).
	MaxTimers int
	// WSMaxMessage caps a WebSocket message, compressed or not (1009 beyond).
	WSMaxMessage int64
	// WSIdleTimeout closes (1001) a WebSocket whose peer sent nothing that long.
	WSIdleTimeout time.Duration
	// WSPingInterval is the silence after which the host pings a WebSocket's peer, so that a
	// live peer's pong keeps it open. 0 means defaults.PingInterval(WSIdleTimeout).
	WSPingInterval time.Duration
	Instance       guest.InstanceConfig
	Log            *slog.Logger // host messages; nil means discard
	// HandoffAccept makes loop 0 accept for every loop and hand descriptors over, as on
	// systems whose SO_REUSEPORT does not balance. It is forced there; tests set it on Linux.
	HandoffAccept bool
	// NoPorts makes the program's listens open no socket: its servers get only the requests
	// an embedder hands in (ServePipe).
	NoPorts bool
	// KeepAlive keeps the loops running with nothing referenced, until a shutdown, and starts
	// every worker after worker 0's start-up, listening or not: the embedder may call in at
	// any time (Call, PostFromHost).
	KeepAlive bool
	// Output, if not empty, is each worker's own destination for the guest's output, in place
	// of Instance.Stdout and Instance.Stderr.
	Output []Output
	// Functions are the host functions the embedder defines, by name (hostfuncs.go).
	Functions map[string]HostFunc
	// AllowListen checks a listen against the program's grants; nil allows every one.
	AllowListen func(host string, port int) error
	// OpenFile opens a regular file of the granted directories for body_file (a guest
	// path), or says why not (EDENIED: not granted; EINVAL: anything else); nil: none is.
	OpenFile func(path string) (FileBody, abi.Errno)
	// OnMessage receives what the guest posts to the host (post to abi.PostHost), on the
	// loop: it must not block. nil refuses such posts (ENOTSUP).
	OnMessage func(worker int, data []byte)
}

// Output is where one worker's guest output goes.
type Output struct{ Stdout, Stderr io.Writer }

// Group runs the loops of one process.
type Group struct {
	cfg    Config
	module *guest.Module

	wg        sync.WaitGroup
	loops     []*Loop
	othersRun sync.Once

	mu        sync.Mutex
	ports     map[listenKey]int // bound ports by listen key, shared by the workers
	exitCode  atomic.Int32
	abandoned atomic.Bool // Run returned with a loop still inside a guest call
	// Warm spares being made off the loops (instance.go): Run waits for them, after
	// cancelling their start, so that nothing runs on the runtime once it returns.
	spares sync.WaitGroup
	// callCtx is the context every instance is made with. Cancelling it (stopCalls) ends any
	// guest call in progress at its next tick, when the budget checks are on: Run does when
	// the loops did not stop by the shutdown deadline, and to stop the spares being made.
	callCtx   context.Context
	stopCalls context.CancelFunc
	// What is held of clients' bodies and messages (buffers.go).
	buffered, bufferedPeak, freedAt atomic.Int64
	listened                        atomic.Bool // a listen succeeded
	listenErr                       error       // the first listen that failed, under mu
	firstStartErr                   error       // the first start-up that failed, under mu
	exiting                         atomic.Bool
	draining                        atomic.Bool
	done                            chan struct{}
	startErr                        chan error
	startOnce                       sync.Once

	// Start-up (Ready): the workers whose top-level code has not finished yet. Worker 0
	// counts from the start; the others are added when it first listens (startOthers), which
	// happens inside its own start-up, so the count reaches zero only once all are done.
	starting  atomic.Int32
	ready     chan struct{}
	readyOnce sync.Once
	// Connections handed in (ServePipe): round robin, over worker 0 alone until the others
	// have started.
	othersStarted atomic.Bool
	nextConn      atomic.Uint64
	// What the program listens on (Addrs), under mu: each address in the order first bound,
	// and how many workers' sockets are open on it.
	bound []boundAddr
}

// boundAddr is an address the program has listened on and how many sockets hold it.
type boundAddr struct {
	key     listenKey
	addr    netip.AddrPort
	sockets int
}

type listenKey struct {
	addr    netip.Addr
	port    int
	ordinal int // the nth port-0 listen of a worker, so each gets the same port on every worker
}

// stopGrace is how long Run waits for the loops after telling them to stop.
const stopGrace = 5 * time.Second

// ErrShutdownTimeout means the graceful shutdown deadline passed with connections still open.
var ErrShutdownTimeout = errors.New("shutdown timed out; open connections were closed")

// NewGroup prepares the loops; Run starts them.
func NewGroup(m *guest.Module, cfg Config) *Group {
	cfg.Workers = cmp.Or(cfg.Workers, defaults.Workers())
	cfg.MaxOutput = cmp.Or(cfg.MaxOutput, defaults.MaxOutput)
	cfg.WriteHighWater = min(cmp.Or(cfg.WriteHighWater, defaults.WriteHighWater), cfg.MaxOutput)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, defaults.MaxConns) // Off: atConnCap takes a cap <= 0 for none
	cfg.WSMaxMessage = cmp.Or(cfg.WSMaxMessage, defaults.WSMaxMessage)
	cfg.MaxTimers = cmp.Or(cfg.MaxTimers, defaults.MaxTimers)
	cfg.MaxRestarts = cmp.Or(cfg.MaxRestarts, defaults.MaxRestarts)
	cfg.SwapDrainTimeout = cmp.Or(cfg.SwapDrainTimeout, defaults.SwapDrainTimeout)
	cfg.BufferBudget = cmp.Or(cfg.BufferBudget, defaults.BufferBudget)
	cfg.BodyDeadline = cmp.Or(cfg.BodyDeadline, defaults.BodyDeadline)
	cfg.FetchIdleTimeout = cmp.Or(cfg.FetchIdleTimeout, defaults.FetchIdleTimeout)
	cfg.HeaderTimeout = cmp.Or(cfg.HeaderTimeout, defaults.HeaderTimeout)
	cfg.BodyTimeout = cmp.Or(cfg.BodyTimeout, defaults.BodyTimeout)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, defaults.IdleTimeout)
	cfg.WSIdleTimeout = cmp.Or(cfg.WSIdleTimeout, defaults.WSIdleTimeout)
	cfg.WSPingInterval = cmp.Or(cfg.WSPingInterval, defaults.PingInterval(cfg.WSIdleTimeout))
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, defaults.ShutdownTimeout)
	cfg.ResponseTimeout = cmp.Or(cfg.ResponseTimeout, defaults.ResponseTimeout)
	// The loop compares how long a connection waited with these: a timeout that is off is
	// one that no wait exceeds.
	for _, d := range []*time.Duration{&cfg.HeaderTimeout, &cfg.BodyTimeout, &cfg.IdleTimeout, &cfg.WSIdleTimeout, &cfg.WSPingInterval, &cfg.ShutdownTimeout, &cfg.ResponseTimeout, &cfg.SwapDrainTimeout, &cfg.BodyDeadline, &cfg.FetchIdleTimeout} {
		if *d == defaults.Off {
			*d = math.MaxInt64
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if !poll.ReusePortBalances {
		cfg.HandoffAccept = true
	}
	g := &Group{cfg: cfg, module: m, ports: map[listenKey]int{}, done: make(chan struct{}), startErr: make(chan error, 1), ready: make(chan struct{})}
	g.starting.Store(1)
	g.callCtx, g.stopCalls = context.WithCancel(context.Background())
	g.loops = make([]*Loop, cfg.Workers)
	for i := range g.loops {
		g.loops[i] = newLoop(g, i)
	}
	return g
}

// Run starts worker 0 and runs until the program is done: every loop has nothing referenced
// left, the guest exits, or ctx is cancelled, which starts a graceful shutdown. It returns
// the process exit status, and why it failed (a start-up that failed, the shutdown deadline,
// nothing to serve): that error is for the caller to report, and is not logged.
//
// Worker 0 runs the program's top-level code alone. The other workers start when it first
// listens: a program that never serves (a script with timers) runs once, as under Node, and
// a server gets a copy of itself on every worker, as under Node's cluster.
func (g *Group) Run(ctx context.Context) (int, error) {
	for _, l := range g.loops {
		if err := l.init(); err != nil {
			return 1, err
		}
	}
	g.startLoop(g.loops[0])
	go func() { g.wg.Wait(); close(g.done) }()
	var runErr error
	select {
	case <-g.done:
	case <-ctx.Done():
		g.Shutdown()
		select {
		case <-g.done:
		case <-time.After(g.cfg.ShutdownTimeout):
			// Not logged: Run returns it, and whoever called Run reports it (the command
			// prints it; logging it too printed the line twice).
			g.setExit(1)
			g.stopAll()
			g.stopCalls() // a loop inside a guest call comes back at the call's next tick
			runErr = ErrShutdownTimeout
			select {
			case <-g.done:
			case <-time.After(stopGrace):
				// A loop stuck in a guest callback cannot be stopped from outside without
				// the budget checks: give up on it, and leave the runtime it runs in
				// alone (Abandoned).
				g.cfg.Log.Error(fmt.Sprintf("a worker did not stop within %v; exiting anyway", stopGrace))
				g.abandoned.Store(true)
			}
		}
	}
	g.stopSpares()
	select {
	case err := <-g.startErr:
		if runErr == nil {
			runErr = err
		} else if err != nil {
			g.cfg.Log.Error(err.Error()) // said here, since Run returns the other (giveUp)
		}
	default:
	}
	if err := g.unservable(); err != nil && runErr == nil && ctx.Err() == nil && !g.exiting.Load() {
		// It ended by itself, having nothing to serve because it could not listen: that is a
		// failure, not the quiet end of a script. Returned, not logged (as above).
		g.setExit(1)
		runErr = err
	}
	return int(g.exitCode.Load()), runErr
}

// stopSpares stops the warm spares still being made and waits for them, within stopGrace
// (a spare's _initialize stops at its next loop when the budgets are on; without them it runs
// to its end); one that does not end in time is abandoned like a stuck worker.
func (g *Group) stopSpares() {
	g.stopCalls()
	done := make(chan struct{})
	go func() {
		g.spares.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopGrace):
		g.cfg.Log.Error(fmt.Sprintf("a spare instance did not stop within %v; exiting anyway", stopGrace))
		g.abandoned.Store(true)
	}
}

// listenFailed records a listen the guest asked for and the OS refused.
func (g *Group) listenFailed(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.listenErr == nil {
		g.listenErr = err
	}
}

// unservable says why a program that ended by itself had nothing to serve: a listen failed
// and none ever succeeded.
func (g *Group) unservable() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.listenErr == nil || g.listened.Load() {
		return nil
	}
	return fmt.Errorf("the program ended with nothing to serve: %w", g.listenErr)
}

// Abandoned reports that Run returned while a loop was still inside a guest call (its budget
// off): the runtime, the module and that instance's memory must then outlive the Group, or
// the call would run on freed memory. The process should exit without releasing them.
func (g *Group) Abandoned() bool { return g.abandoned.Load() }

func (g *Group) startLoop(l *Loop) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		l.run()
	}()
}

// startOthers starts workers 1…N-1, once, when worker 0 first listens.
func (g *Group) startOthers() {
	g.othersRun.Do(func() {
		g.starting.Add(int32(len(g.loops) - 1))
		for _, l := range g.loops[1:] {
			g.startLoop(l)
		}
		g.othersStarted.Store(true)
	})
}

// started records that a worker's top-level code has finished, or failed.
func (g *Group) started() {
	if g.starting.Add(-1) == 0 {
		g.readyOnce.Do(func() { close(g.ready) })
	}
}

// Ready is closed when the program's start-up is over: worker 0's top-level code has
// finished, and, if it listened meanwhile, every other worker's too (each runs its own copy of
// the program). A start-up that failed also ends it; StartErr then says why.
func (g *Group) Ready() <-chan struct{} { return g.ready }

// Draining reports that a graceful shutdown has begun.
func (g *Group) Draining() bool { return g.draining.Load() }

// Loops are the group's workers, by number (for their Stats and Heartbeat).
func (g *Group) Loops() []*Loop { return g.loops }

// StartErr is the first start-up failure of a worker, or nil.
func (g *Group) StartErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.firstStartErr
}

// Addrs lists the addresses the program listens on, in the order it first bound them, with
// the port the kernel chose where the program asked for port 0.
func (g *Group) Addrs() []netip.AddrPort {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []netip.AddrPort
	for _, b := range g.bound {
		if b.sockets > 0 {
			out = append(out, b.addr)
		}
	}
	return out
}

// socketOpened and socketClosed count a worker's listening socket on key, bound to port.
func (g *Group) socketOpened(key listenKey, port int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.bound {
		if b := &g.bound[i]; b.key == key {
			b.sockets++
			return
		}
	}
	g.bound = append(g.bound, boundAddr{key, netip.AddrPortFrom(key.addr, uint16(port)), 1})
}

func (g *Group) socketClosed(key listenKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.bound {
		if b := &g.bound[i]; b.key == key {
			b.sockets--
		}
	}
}

// Stop ends the program at once: the loops stop, closing their connections, and a guest call
// in progress ends at its next check. Run returns soon after.
func (g *Group) Stop() {
	g.stopAll()
	g.stopCalls()
}

// startFailed records that a worker's top-level code failed; the process exits 1.
func (g *Group) startFailed(worker int, err error) {
	err = fmt.Errorf("worker %d: %w", worker, err)
	g.mu.Lock()
	if g.firstStartErr == nil {
		g.firstStartErr = err
	}
	g.mu.Unlock()
	g.startOnce.Do(func() { g.startErr <- err })
	g.setExit(1)
	g.stopAll()
}

// giveUp ends the process with status 1 and err: a worker's guest keeps failing. It reports
// whether err is the one Run returns (the first error to end the group); if not, the caller
// logs it, so that it is said once either way.
func (g *Group) giveUp(err error) (returned bool) {
	g.startOnce.Do(func() {
		g.startErr <- err
		returned = true
	})
	g.setExit(1)
	g.stopAll()
	return returned
}

// setExit records the exit status once: the first reason to exit wins.
func (g *Group) setExit(code int32) {
	if g.exiting.CompareAndSwap(false, true) {
		g.exitCode.Store(code)
	}
}

// exit ends the process at once with code (the guest's exit or proc_exit). An exit status
// is 0–255 and the OS keeps only its low byte: a code outside the range ends the process with
// 255, so that 256 cannot read as success.
func (g *Group) exit(code int32) {
	if code < 0 || code > 255 {
		g.cfg.Log.Warn(fmt.Sprintf("the guest exited with code %d, outside 0–255; the process exits 255", code))
		code = 255
	}
	g.setExit(code)
	g.stopAll()
}

func (g *Group) stopAll() {
	for _, l := range g.loops {
		l.post(func(l *Loop) { l.stop() }, nil)
	}
}

// Shutdown starts a graceful shutdown: stop accepting, finish in-flight responses, close
// idle connections. Run returns when the last connection is gone (or the deadline passes).
func (g *Group) Shutdown() {
	if !g.draining.CompareAndSwap(false, true) {
		return
	}
	for _, l := range g.loops {
		l.post(func(l *Loop) { l.drain() }, nil)
	}
}

// portFor binds a worker's socket for key. The first worker to listen on a key checks that
// no other socket holds the port (or, for port 0, lets the kernel pick one); the others join
// the same port.
func (g *Group) portFor(key listenKey, bind func(port int) (int, error)) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.ports[key]; ok {
		return bind(p) // another worker of this process listens there already: join it
	}
	if key.port != 0 && poll.InUse(key.addr, key.port) {
		return 0, errInUse
	}
	p, err := bind(key.port)
	if err == nil {
		g.ports[key] = p
	}
	return p, err
}

var errInUse = errors.New("address already in use by another socket")
