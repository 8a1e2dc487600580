// Package host runs wasmloop guests: WebAssembly modules that speak the wasmloop ABI
// (abi/ABI.md), served by per-core edge-triggered event loops.
//
// Load compiles and checks a module once; Run starts the loops and returns when the program
// is done — when nothing referenced is left (Node's rule), when the guest exits, or after a
// graceful shutdown once ctx is cancelled.
//
//	app, err := host.Load(ctx, wasm, host.Config{Workers: 2})
//	if err != nil { ... }
//	defer app.Close(ctx)
//	code, err := app.Run(ctx)
//
// A service that embeds a program starts it and goes on instead: Start returns once the
// program has started, Addrs lists what it listens on, Shutdown ends it gracefully and Wait
// gives its exit status. Handler mounts the program's HTTP server in the service's own
// net/http server, Call calls the program's functions, Config.Functions gives the program
// the service's, and Post and Config.OnMessage carry messages both ways (abi/ABI.md §8).
//
// Swap replaces the running program with a new module without failing a request. Every
// call into the guest runs under a budget (Config.CallbackBudget, StartBudget) and each
// instance's memory is capped (Config.MemoryLimit): a guest that loops, allocates or crashes
// is stopped and replaced, and cannot stop the host or the Go program that embeds it.
//
// The machinery lives in host/internal: poll (epoll, kqueue), http1 and httpfield (the strict
// parser), websocket, guest (wazero), guestout (the guest's output) and loop.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/files"
	"github.com/wasmloop/wasmloop/host/internal/guest"
	"github.com/wasmloop/wasmloop/host/internal/guestout"
	"github.com/wasmloop/wasmloop/host/internal/http1"
	"github.com/wasmloop/wasmloop/host/internal/loop"
	"github.com/wasmloop/wasmloop/host/internal/reach"
)

// Config configures an App. The zero value is usable: in every limit, timeout and count, 0
// means the default (DefaultConfig holds them all), and Off turns off those that can be off
// — the timeouts, the ping interval and the connection cap. Load refuses any other negative
// value.
type Config struct {
	// Workers is the number of event loops, each on its own thread with its own guest
	// instance. 0 means the default, one per CPU.
	Workers int
	// Args and Env are what the guest sees through WASI; Env entries are "KEY=value".
	Args []string
	Env  []string
	// Stdout and Stderr receive the guest's output; nil means os.Stdout and os.Stderr. The
	// host writes to each from one goroutine of its own, whole lines at a time, through a
	// bounded buffer: a writer need not be safe for concurrent use, and a slow one loses
	// lines (counted in the output) rather than stalling a worker.
	Stdout, Stderr io.Writer
	// WorkerOutput, if set, gives each worker its own destinations for the guest's output,
	// instead of Stdout and Stderr (a nil one falls back to them), as above: one goroutine
	// writes to each.
	WorkerOutput func(worker int) (stdout, stderr io.Writer)
	// Logger receives the host's own messages (traps, budgets, restarts, accept errors) as
	// structured records: the worker's number is the attribute "worker", and a message about a
	// request has its handle, as the guest knows it, as "request". It takes precedence over
	// Log. Messages are rate-limited per worker (20 a second, then a count).
	Logger *slog.Logger
	// Log receives the same messages as plain lines ("worker 1: …") when Logger is nil; nil
	// means stderr, through the same bounded buffer as the guest's output.
	Log *log.Logger
	// BodyLimit caps a request body, which the host buffers before the guest sees it;
	// a larger one is answered 413. 0 means the default, 1 MiB.
	BodyLimit int64
	// MaxHeaderBytes caps the request line and headers (431 beyond). 0 means the default,
	// 16 KiB.
	MaxHeaderBytes int
	// MaxHeaderCount caps the number of header fields (431 beyond). 0 means the default, 100.
	MaxHeaderCount int
	// MaxRequestLine caps the request line (414 beyond). 0 means the default, 8 KiB.
	MaxRequestLine int
	// HeaderTimeout bounds the time from a request's first byte to the end of its head;
	// beyond it the client gets 408 and the connection closes. 0 means the default, 10s;
	// Off, no bound.
	HeaderTimeout time.Duration
	// BodyTimeout bounds the wait for more of a request body (408 beyond). 0 means the
	// default, 30s; Off, no bound.
	BodyTimeout time.Duration
	// ResponseTimeout answers 503 (and closes the connection) for a request the guest has not
	// begun to answer that long after it arrived; the guest hears on_close for it. 0 means
	// the default, Off: answering is the program's business, as in Node.
	ResponseTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long. 0 means the default, 1m;
	// Off, never.
	IdleTimeout time.Duration
	// WriteHighWater is the unsent output per connection above which a guest's writes are
	// answered "above the mark" and it waits for a drain event. Body pieces are gathered into
	// one write up to the mark (at most 256 KiB). 0 means the default, 256 KiB.
	WriteHighWater int
	// MaxOutput is the unsent output per connection beyond which the connection is closed
	// rather than memory grown. 0 means the default, 16 MiB.
	MaxOutput int
	// MaxConns caps open connections, the program's raw TCP ones included; at the cap the
	// host stops accepting (connections wait in the kernel's backlog; one a raw accept took
	// waits unserved) until some close. 0 means the default, Off: no cap but the OS's.
	MaxConns int
	// WSMaxMessage caps a WebSocket message a client sends, compressed and decompressed;
	// beyond it the connection is closed with 1009. 0 means the default, 1 MiB.
	WSMaxMessage int64
	// WSIdleTimeout closes a WebSocket (1001) whose client sent nothing, not even a pong,
	// for that long. 0 means the default, 2m; Off, never.
	WSIdleTimeout time.Duration
	// WSPingInterval is the silence after which the host pings a WebSocket client, so a
	// live one answers and stays open. 0 means the default, half of WSIdleTimeout (no pings
	// when that is Off); Off, no pings.
	WSPingInterval time.Duration
	// ShutdownTimeout bounds a graceful shutdown; past it open connections are closed and
	// Run returns 1. 0 means the default, 10s; Off, no bound.
	ShutdownTimeout time.Duration
	// CallbackBudget bounds one call into the guest for an event (a request, a body piece,
	// a timer, a message, a WebSocket event, a drain, a close). A call past it is stopped:
	// what the instance was answering gets 503 and its connections close, and a fresh
	// instance takes over, as after a trap. 0 means the default, 1s; Off, no bound. With
	// both budgets Off the guest runs without the checks that let it be stopped, a little
	// faster, and a guest that loops forever then freezes the process at the next garbage
	// collection: only for trusted code.
	CallbackBudget time.Duration
	// StartBudget bounds each of the guest's start-up calls (its _initialize, then
	// wasmloop_on_start); past it the start fails. 0 means the default, 10s; Off, no bound.
	StartBudget time.Duration
	// MemoryLimit caps the linear memory of each guest instance: an allocation past it fails
	// inside the guest (a Go guest dies of it) and the instance is replaced. It is reserved
	// as address space per instance, so Workers × MemoryLimit bounds the guests' memory. 0
	// means the default, 256 MiB; at most 4 GiB, wasm32's own limit.
	MemoryLimit int64
	// BufferBudget caps the bytes of request bodies and WebSocket messages the host holds for
	// clients while they arrive, across all workers: a request whose body would pass it is
	// answered 503, a WebSocket whose message would is closed with 1013 (try again later).
	// 0 means the default, 256 MiB.
	BufferBudget int
	// BodyDeadline bounds the whole arrival of a request body the host buffers, however
	// steadily it trickles in (408 beyond; BodyTimeout bounds each gap). 0 means the default,
	// 2m; Off, no bound.
	BodyDeadline time.Duration
	// FetchIdleTimeout bounds a fetch's wait for its server — for the answer's head once the
	// request has been sent, and for more of the body while the program reads it — as Node's
	// fetch does (its headersTimeout and bodyTimeout): past it the fetch fails ETIMEDOUT, and
	// a server that never answers holds nothing for ever. A program's own timeout for a
	// fetch bounds the whole exchange besides. With a FetchTransport of the embedder's, the
	// wait for the head is that transport's (ResponseHeaderTimeout). 0 means the default,
	// 5m; Off, no bound.
	FetchIdleTimeout time.Duration
	// SwapDrainTimeout bounds how long the old program may finish its requests and keep its
	// WebSockets after a Swap; then its WebSockets are closed (1001) and its requests'
	// connections closed. 0 means the default, 30s; Off, no bound.
	SwapDrainTimeout time.Duration
	// MaxRestarts bounds a guest that fails as it starts: each time an instance fails
	// before serving a single event, its replacement waits twice as long (from 10 ms, at most
	// 5 s), and after MaxRestarts such failures in a row the process exits 1. 0 means the
	// default, 10.
	MaxRestarts int
	// MaxTimers caps the timers a guest may have at once on each worker; beyond it starting
	// one fails (ELIMIT). 0 means the default, 65536.
	MaxTimers int
	// NoPorts makes the program's listens open no port: its servers get only the requests
	// of App.Handler, for a program mounted in a Go service's own server.
	NoPorts bool
	// KeepAlive keeps the program running when it has nothing left to wait for, until
	// Shutdown or Close, and runs it on every worker as soon as worker 0 has started, for a
	// program that a service calls (App.Call, App.Post) and that may have no server or timer
	// of its own. Without it, a program with nothing left ends, as a Node program does, and
	// the workers other than 0 start when it first listens.
	KeepAlive bool
	// Dirs are the host directories the program may read and write (see Dir); none by
	// default.
	Dirs []Dir
	// AllowConnect are the hosts the program may reach with fetch and TCP connect, as
	// HOST[:PORT] patterns: "db:5432", "api.example.com" (any port), "*.example.com:443"
	// (any name below it), "127.0.0.1:8080", "[::1]:8080", "*:443". A host is matched as the
	// program names it, before it is resolved. None by default: the program reaches nothing.
	AllowConnect []string
	// AllowListen are the addresses the program may listen on, HTTP or TCP, as patterns
	// of the same form (":8080" is every interface on port 8080). nil allows any, as before
	// there were grants: the program's own port is its to choose.
	AllowListen []string
	// FetchTransport carries the program's fetches; nil means a clone of
	// http.DefaultTransport (HTTP/2, TLS with the system's roots, proxies from the
	// environment when AllowConnect grants them) whose dials reach only granted hosts. A
	// transport given here is the embedder's: fetches to granted hosts only still, but its
	// own dials and proxies are its business.
	FetchTransport http.RoundTripper
	// Functions are the functions the program may call, by name (see Function). A name not
	// here is an error the guest can test for, so a plugin can probe for optional ones.
	Functions map[string]Function
	// OnMessage receives what the program posts to the host (the Go SDK's PostHost), with
	// the worker that sent it. It runs on that worker's event loop and must not block; data
	// is its to keep. nil refuses such posts. A panic in it is recovered and logged: it
	// does not reach the program, which carries on.
	OnMessage func(worker int, data []byte)
	// Metrics, if set, gets the App's collector (Collector) registered by Load and
	// unregistered by Close: requests by status class, request and callback durations, open
	// connections and WebSockets, bytes, traps, budget breaches, replacements, swaps,
	// messages, output queued, accept back-offs, per worker. Without it the workers keep no
	// counters (each count is then one nil check). The metrics' names are fixed: for several
	// Apps in one registry, give each its own label with
	// prometheus.WrapRegistererWith(prometheus.Labels{"app": name}, reg).
	Metrics prometheus.Registerer
	// AccessLog logs one Info record ("request") per answered request — method, path,
	// status, bytes, duration, worker, remote — to Logger (or the default log). Off, the
	// default, it costs nothing.
	AccessLog bool
	// LogFormat is the default log's format when Logger is nil: "text" ("" too), lines as
	// `wasmloop run` prints them, or "json", one JSON object per record — and then the
	// guest's output too becomes records, a line each, with its worker and stream
	// (unless WorkerOutput is set). LogLevel is the least severe level it writes.
	LogFormat string
	LogLevel  slog.Level
	// CacheDir holds compiled guests across runs. "" means the user's cache directory,
	// "-" turns the cache off.
	CacheDir string
}

// RefusedError means the module is not a wasmloop guest; the message says why.
type RefusedError = guest.RefusedError

// IsRefused reports whether err means the module was refused rather than failing to run.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// App is a loaded guest, ready to run.
type App struct {
	cfg Config // resolved: Config.WithDefaults
	rt  *guest.Runtime

	mu      sync.Mutex
	mod     *guest.Module   // what Run starts, and what a swap replaced last
	old     []*guest.Module // swapped out; instances may still run them until Close
	running *run            // the run in progress, which Swap swaps
	last    *run            // the latest run, in progress or ended (Wait, Shutdown)
	res     *resources
}

// resources is what an App holds outside the Go heap — the runtime, its compiled code and
// memory reservations. Close releases them; so does the garbage collector for an App dropped
// without Close (released), since nothing else refers to them.
type resources struct {
	rt    *guest.Runtime
	dirs  *files.Mounts // the granted directories, open
	reach *reach.Reach  // the network the program may reach, and its open streams
	// stuck says a run returned with a worker still inside a guest call (budgets off): what
	// that call runs on must never be released.
	stuck  atomic.Bool
	closed atomic.Bool
}

// forgottenHook, if set, runs after the collector released a forgotten App (tests).
var forgottenHook func()

// released releases the resources of an App that became unreachable without Close. A running
// program keeps its App reachable, so this happens only once it has ended.
func (r *resources) released() {
	if r.closed.Load() || r.stuck.Load() {
		return
	}
	r.rt.Close(context.Background())
	r.dirs.Close()
	r.reach.Close()
	if forgottenHook != nil {
		forgottenHook()
	}
}

// Load checks cfg (see Config.WithDefaults), compiles wasm and checks that it is a wasmloop
// guest.
func Load(ctx context.Context, wasm []byte, cfg Config) (*App, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	connect, err := reach.ParseGrants(cfg.AllowConnect)
	if err != nil {
		return nil, fmt.Errorf("host: Config.AllowConnect: %w", err)
	}
	listen, err := reach.ParseGrants(cfg.AllowListen)
	if err != nil {
		return nil, fmt.Errorf("host: Config.AllowListen: %w", err)
	}
	if cfg.AllowListen != nil && listen == nil {
		listen = reach.Grants{} // given, and empty: no listen at all
	}
	dirs, err := openDirs(cfg.Dirs)
	if err != nil {
		return nil, fmt.Errorf("host: Config.Dirs: %w", err)
	}
	rt, err := guest.NewRuntime(ctx, guest.RuntimeConfig{
		CacheDir:      cfg.CacheDir,
		Interruptible: cfg.CallbackBudget != Off || cfg.StartBudget != Off,
		MemoryLimit:   cfg.MemoryLimit,
	})
	if err != nil {
		dirs.Close()
		return nil, err
	}
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		dirs.Close()
		return nil, err
	}
	// Compiling a guest without a warm cache leaves tens of MiB of compiler garbage that the
	// Go runtime would keep mapped for minutes: hand it back now, once, so the server's
	// resident memory is what serving needs (38 MiB rather than 72 MiB for samples/stream).
	debug.FreeOSMemory()
	net := reach.New(reach.Config{Connect: connect, Listen: listen, Transport: cfg.FetchTransport, IdleTimeout: cfg.FetchIdleTimeout})
	a := &App{cfg: cfg, rt: rt, mod: mod, res: &resources{rt: rt, dirs: dirs, reach: net}}
	runtime.AddCleanup(a, (*resources).released, a.res)
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(a.Collector()); err != nil {
			a.Close(ctx)
			return nil, fmt.Errorf("host: Config.Metrics: %w", err)
		}
	}
	return a, nil
}

// Run runs the program and returns its exit status: 0 when it finished by itself or shut
// down gracefully after ctx was cancelled, the guest's code when it exited, 1 when its
// top-level code failed or the shutdown timed out (err then says why). Run may be called
// again after it returns; each call starts the program afresh. Start, Shutdown and Wait do
// the same in steps, for a program embedded in a service.
func (a *App) Run(ctx context.Context) (int, error) {
	r, err := a.launch()
	if err != nil {
		return 1, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		r.cancel() // a graceful shutdown, bounded by ShutdownTimeout
		<-r.done
	}
	return r.code, r.err
}

// launch starts the program on a goroutine; the run it returns says when and how it ended.
func (a *App) launch() (*run, error) {
	cfg := a.cfg
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	// The guest's output (and the host's own log) never blocks a loop: it goes through a
	// bounded buffer that one goroutine per destination drains; what a reader too slow to
	// keep up misses is dropped by whole lines and counted in the output itself (guestout).
	stdout, stderr := guestout.New(cfg.Stdout, 0), guestout.New(cfg.Stderr, 0)
	outputs := []*guestout.Writer{stdout, stderr}
	cfg.Stdout, cfg.Stderr = stdout, stderr
	var perWorker []loop.Output
	var records []*recordLines // --log-format json: the guest's lines as records
	if cfg.WorkerOutput != nil {
		for w := range cfg.Workers {
			out := loop.Output{Stdout: stdout, Stderr: stderr}
			if so, se := cfg.WorkerOutput(w); so != nil || se != nil {
				if so != nil {
					out.Stdout = guestout.New(so, 0)
					outputs = append(outputs, out.Stdout.(*guestout.Writer))
				}
				if se != nil {
					out.Stderr = guestout.New(se, 0)
					outputs = append(outputs, out.Stderr.(*guestout.Writer))
				}
			}
			perWorker = append(perWorker, out)
		}
	}
	if cfg.Log == nil {
		cfg.Log = log.New(stderr, "wasmloop: ", log.LstdFlags)
	}
	logger := cfg.Logger
	switch {
	case logger != nil:
	case cfg.LogFormat == "json":
		logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
		if cfg.WorkerOutput == nil {
			// The guest's lines become records too, through the same bounded buffers. They
			// are the guest's output, not the host's messages: LogLevel does not filter them
			// (as in text mode).
			out := slog.New(slog.NewJSONHandler(stdout, nil))
			errOut := slog.New(slog.NewJSONHandler(stderr, nil))
			for w := range cfg.Workers {
				so, se := &recordLines{l: out, worker: w, stream: "stdout"}, &recordLines{l: errOut, worker: w, stream: "stderr"}
				records = append(records, so, se)
				perWorker = append(perWorker, loop.Output{
					Stdout: guestout.New(so, 0),
					Stderr: guestout.New(se, 0),
				})
				outputs = append(outputs, perWorker[w].Stdout.(*guestout.Writer), perWorker[w].Stderr.(*guestout.Writer))
			}
		}
	default:
		logger = slog.New(lineHandler{l: cfg.Log, level: cfg.LogLevel})
	}
	var accessLog *slog.Logger
	if cfg.AccessLog {
		accessLog = logger
	}
	a.res.dirs.SetLogger(logger)
	a.res.reach.SetLogger(logger)
	for _, w := range a.res.dirs.Overlaps() {
		logger.Warn(w)
	}
	if len(cfg.Args) == 0 {
		cfg.Args = []string{"app.wasm"}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running != nil {
		flushOutput(outputs...)
		return nil, ErrRunning
	}
	g := loop.NewGroup(a.mod, loop.Config{
		Workers: cfg.Workers,
		Limits: http1.Limits{
			MaxBodyBytes:   cfg.BodyLimit,
			MaxHeaderBytes: cfg.MaxHeaderBytes,
			MaxHeaderCount: cfg.MaxHeaderCount,
			MaxRequestLine: cfg.MaxRequestLine,
		},
		ShutdownTimeout:  cfg.ShutdownTimeout,
		HeaderTimeout:    cfg.HeaderTimeout,
		BodyTimeout:      cfg.BodyTimeout,
		IdleTimeout:      cfg.IdleTimeout,
		ResponseTimeout:  cfg.ResponseTimeout,
		MaxConns:         cfg.MaxConns,
		WriteHighWater:   cfg.WriteHighWater,
		MaxOutput:        cfg.MaxOutput,
		WSMaxMessage:     cfg.WSMaxMessage,
		MaxTimers:        cfg.MaxTimers,
		MaxRestarts:      cfg.MaxRestarts,
		SwapDrainTimeout: cfg.SwapDrainTimeout,
		BufferBudget:     cfg.BufferBudget,
		BodyDeadline:     cfg.BodyDeadline,
		FetchIdleTimeout: cfg.FetchIdleTimeout,
		WSIdleTimeout:    cfg.WSIdleTimeout,
		WSPingInterval:   cfg.WSPingInterval,
		Instance: guest.InstanceConfig{Args: cfg.Args, Env: cfg.Env, Stdout: cfg.Stdout, Stderr: cfg.Stderr,
			StartBudget: budget(cfg.StartBudget), CallBudget: budget(cfg.CallbackBudget),
			Preopens: preopens(a.res.dirs)},
		Log:         logger,
		NoPorts:     cfg.NoPorts,
		KeepAlive:   cfg.KeepAlive,
		Functions:   loopFunctions(cfg.Functions, a.res.dirs, a.res.reach),
		AllowListen: a.res.reach.AllowListen,
		OpenFile:    func(p string) (loop.FileBody, abi.Errno) { return a.res.dirs.OpenForBody(p) },
		OnMessage:   safeOnMessage(cfg.OnMessage, logger),
		Output:      perWorker,
		Stats:       cfg.Metrics != nil,
		AccessLog:   accessLog,
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{g: g, cancel: cancel, done: make(chan struct{})}
	r.pool.maxIdleAge = time.Duration(math.MaxInt64)
	if cfg.IdleTimeout != Off {
		r.pool.maxIdleAge = cfg.IdleTimeout / 2
	}
	a.running, a.last = r, r
	go func() {
		defer close(r.done)
		r.code, r.err = g.Run(ctx)
		cancel()
		r.pool.closeAll()
		// The guest's writers first: what they hold becomes records in stdout and stderr.
		flushOutput(outputs[2:]...)
		for _, rl := range records {
			rl.flush()
		}
		flushOutput(outputs[:2]...)
		if g.Abandoned() { // before running is cleared: a Close then must see it
			a.res.stuck.Store(true)
		}
		a.mu.Lock()
		a.running = nil
		a.mu.Unlock()
	}()
	return r, nil
}

// safeOnMessage runs the embedder's OnMessage with a panic recovered and logged. It runs
// inside the guest's post (wasmloop.PostHost), so a panic would otherwise reach wazero and trap
// the instance, which would be replaced with its state and what it was answering lost, for
// the embedder's bug: as with Config.Functions, that bug must not cost the guest. nil stays
// nil (the guest's post is refused).
func safeOnMessage(f func(worker int, data []byte), logger *slog.Logger) func(int, []byte) {
	if f == nil {
		return nil
	}
	return func(worker int, data []byte) {
		defer func() {
			if p := recover(); p != nil {
				logger.Error(fmt.Sprintf("Config.OnMessage panicked: %v", p), "worker", worker)
			}
		}()
		f(worker, data)
	}
}

// run is one run of the program, from launch to its end.
type run struct {
	g      *loop.Group
	cancel context.CancelFunc // starts a graceful shutdown
	done   chan struct{}      // closed when the program has ended; then code and err are set
	pool   connPool           // App.Handler's idle connections to the loops (handler.go)
	// handling counts the Handler's requests in progress: one alone may be served on its own
	// goroutine (handler.go, Pipe.BorrowAlone).
	handling atomic.Int32
	code     int
	err      error
}

// outputFlush bounds how long Run waits for the guest's buffered output to be written: a
// reader that never reads must not keep the program from ending.
const outputFlush = time.Second

// flushOutput writes what is buffered of the guest's output, within outputFlush.
func flushOutput(ws ...*guestout.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), outputFlush)
	defer cancel()
	for _, w := range ws {
		w.Close(ctx)
	}
}

// Swap replaces the program with the module wasm, without failing a request. The module is
// compiled and checked first, off the event loops; if it is refused, or its top-level code
// fails on worker 0, the running program keeps serving and Swap returns the error. Otherwise
// every worker starts the new program beside the old one: the new one listens again and takes
// over the listening sockets (nothing in a backlog is refused), and every connection's next
// request goes to it, while the old one finishes the requests it is answering and keeps its
// WebSockets until they close, SwapDrainTimeout passes, or a later Swap retires its successor
// (one retired program per worker keeps its memory at a time). A worker other than 0 whose new
// instance fails to start keeps the old program, and the error names it.
//
// Called while no Run is in progress, Swap sets the module the next Run starts. It is safe
// to call from any goroutine.
func (a *App) Swap(ctx context.Context, wasm []byte) error {
	mod, err := a.rt.Compile(ctx, wasm)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running != nil {
		if err := a.running.g.Swap(mod); err != nil {
			if a.running.g.UsesModule(mod) {
				a.old = append(a.old, a.mod)
				a.mod = mod
			} else {
				mod.Close(ctx)
			}
			return err
		}
	}
	a.old = append(a.old, a.mod)
	a.mod = mod
	return nil
}

// budget is a resolved budget as the guest package takes it: 0 for none.
func budget(d time.Duration) time.Duration {
	if d == Off {
		return 0
	}
	return d
}

// Close shuts down the program if it is running (Shutdown with ctx), then releases the
// compiled module and the runtime. An App dropped without Close, once its program has ended,
// is released by the garbage collector: it leaks nothing but itself. After a run that had to abandon a worker stuck in a guest
// call (possible only with both budgets Off), it releases nothing: the call still runs on
// them, and only the process's exit ends it.
func (a *App) Close(ctx context.Context) error {
	a.mu.Lock()
	running := a.running != nil
	a.mu.Unlock()
	if running {
		a.Shutdown(ctx)
	}
	if a.cfg.Metrics != nil {
		// Even from an App that cannot release its memory (stuck): the registry must not
		// keep collecting from it.
		a.cfg.Metrics.Unregister(a.Collector())
	}
	if a.res.stuck.Load() || !a.res.closed.CompareAndSwap(false, true) {
		return nil
	}
	for _, m := range a.old {
		m.Close(ctx)
	}
	a.mod.Close(ctx)
	a.res.dirs.Close()
	a.res.reach.Close()
	return a.rt.Close(ctx)
}
