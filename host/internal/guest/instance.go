package guest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmloop/wasmloop/abi"
)

// InstanceConfig is what one instance sees of the world through WASI, and how long its calls
// may run.
type InstanceConfig struct {
	Args           []string
	Env            []string // "K=V"
	Stdout, Stderr io.Writer
	// StartBudget bounds each start-up call (_initialize, wasmloop_on_start) and CallBudget
	// every later one; a call past its budget is stopped and fails with a BudgetError. 0 means
	// no bound. They take effect only in a Runtime made with Interruptible.
	StartBudget, CallBudget time.Duration
	// Preopens are directories the guest sees through WASI, read-only.
	Preopens []Preopen
	// OnCall, if set, is told how long each call of an export took (the metrics' callback
	// durations); it runs on the calling goroutine and must not block.
	OnCall func(export string, took time.Duration)
}

// Preopen is one directory in the guest's WASI view: FS at GuestPath.
type Preopen struct {
	FS        fs.FS
	GuestPath string
}

// Instance is one running copy of a guest module, owned by one loop. It is not safe for
// concurrent use: the loop calls it from its own goroutine only.
type Instance struct {
	mod   api.Module
	mem   api.Memory
	host  Host
	ctx   context.Context
	done  <-chan struct{} // ctx.Done(): a cancelled context ends the instance's calls (tick)
	stack []uint64
	dead  bool

	// What the runtime's watchdog reads from its own goroutine (watchdog.go).
	seq                     atomic.Uint64 // calls entered + calls left: odd while inside one
	started                 atomic.Bool   // wasmloop_on_start has returned: CallBudget applies
	served                  int           // calls that returned without error after start
	stopAt                  atomic.Uint64 // the watchdog's verdict: the call whose seq this is must stop
	startBudget, callBudget time.Duration
	wd                      *watchdog // nil when nothing watches it

	onRequest, onTimer, onClose, onBody, onDrain, onMessage, start api.Function
	onWSOpen, onWSMessage, onWSClose                               api.Function
	onCall, onHostResult                                           api.Function
	// ticks counts the meter's calls of tick during the call in progress (watchdog.go).
	ticks int
	minor int32 // what the guest's wasmloop_abi_v1 returned: the minor version it speaks
	// deadlocked: the guest's stderr carried the Go runtime's "all goroutines are asleep"
	// report, so its exit is a program that blocked for ever (Deadlocked).
	deadlocked bool
	observe    func(export string, took time.Duration) // InstanceConfig.OnCall
}

// Deadlocked reports that the guest's Go runtime reported every goroutine blocked — usually
// a main that never returns (http.ListenAndServe, select {}) — before it exited.
func (i *Instance) Deadlocked() bool { return i.deadlocked }

// ExitError reports that the guest called WASI proc_exit. In the program's top-level code
// that ends the process with Code; later, a non-zero code is how the Go runtime and wasi-libc
// die (a fatal error, running out of memory), so the loop treats it as a crash.
type ExitError struct{ Code int32 }

func (e *ExitError) Error() string { return fmt.Sprintf("guest exited with code %d", e.Code) }

// TrapError reports that a callback trapped. The message carries wazero's wasm stack trace.
type TrapError struct {
	Export string
	Err    error
}

func (e *TrapError) Error() string { return fmt.Sprintf("guest trapped in %s: %v", e.Export, e.Err) }

func (e *TrapError) Unwrap() error { return e.Err }

// BudgetError reports a call that ran past its budget and was stopped. The instance is dead.
type BudgetError struct {
	Export string
	Budget time.Duration
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%s ran past its budget of %v and was stopped", e.Export, e.Budget)
}

// StoppedError reports a call ended because the context the instance was made with was
// cancelled (the host is stopping). The instance is dead.
type StoppedError struct{ Export string }

func (e *StoppedError) Error() string {
	return fmt.Sprintf("%s was stopped: the host is stopping", e.Export)
}

// Instantiate creates an instance bound to host and runs _initialize. It does not run
// wasmloop_on_start: the loop calls Start when it is ready to receive the guest's calls.
// Cancelling ctx ends any call of the instance in progress at its next tick (in a Runtime
// made with Interruptible), with a StoppedError.
func (m *Module) Instantiate(ctx context.Context, cfg InstanceConfig, host Host) (*Instance, error) {
	inst := &Instance{host: host, stack: make([]uint64, 8), observe: cfg.OnCall}
	if m.rt.interruptible && (cfg.StartBudget > 0 || cfg.CallBudget > 0) {
		inst.startBudget, inst.callBudget = cfg.StartBudget, cfg.CallBudget
		inst.wd = &m.rt.wd
	}
	inst.ctx, inst.done = context.WithValue(ctx, instanceKey{}, inst), ctx.Done()
	mem, err := m.reserveMemory()
	if err != nil {
		inst.Close()
		return nil, err
	}
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithSysNanotime().WithSysWalltime().WithNanosleep(inst.sleep).
		WithRandSource(stoppableReader{rand.Reader, inst}).
		WithArgs(cfg.Args...)
	if cfg.Stdout != nil {
		mc = mc.WithStdout(stoppableWriter{cfg.Stdout, inst, false})
	}
	if cfg.Stderr != nil {
		mc = mc.WithStderr(stoppableWriter{cfg.Stderr, inst, true})
	}
	if len(cfg.Preopens) > 0 {
		fsc := wazero.NewFSConfig()
		for _, p := range cfg.Preopens {
			// Its files' reads and writes end with the call (watchdog.go, stoppableFS).
			fsc = fsc.WithFSMount(stoppableFS{p.FS, inst}, p.GuestPath)
		}
		mc = mc.WithFSConfig(fsc)
	}
	for _, kv := range cfg.Env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				mc = mc.WithEnv(kv[:i], kv[i+1:])
				break
			}
		}
	}
	actx := experimental.WithMemoryAllocator(inst.ctx, mem)
	if inst.wd != nil {
		inst.wd.watch(inst)
	}
	// Instantiation runs the module's start function, if it has one: a start-up call too.
	seq := inst.seq.Add(1)
	mod, err := m.rt.r.InstantiateModule(actx, m.compiled, mc)
	inst.seq.Add(1)
	if err != nil {
		if inst.stopAt.Load() == seq {
			err = &BudgetError{Export: "the module's start function", Budget: inst.startBudget}
		}
		inst.Close()
		mem.release()
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	mem.release() // a memory the module imports rather than defines leaves it unused
	inst.mod = mod
	inst.mem = mod.Memory()
	inst.start = mod.ExportedFunction(abi.ExportStart)
	inst.onRequest = mod.ExportedFunction(abi.ExportOnRequest)
	inst.onTimer = mod.ExportedFunction(abi.ExportOnTimer)
	inst.onClose = mod.ExportedFunction(abi.ExportOnClose)
	inst.onBody = mod.ExportedFunction(abi.ExportOnBody)
	inst.onDrain = mod.ExportedFunction(abi.ExportOnDrain)
	inst.onMessage = mod.ExportedFunction(abi.ExportOnMessage)
	inst.onWSOpen = mod.ExportedFunction(abi.ExportOnWSOpen)
	inst.onWSMessage = mod.ExportedFunction(abi.ExportOnWSMessage)
	inst.onWSClose = mod.ExportedFunction(abi.ExportOnWSClose)
	inst.onCall = mod.ExportedFunction(abi.ExportOnCall)
	inst.onHostResult = mod.ExportedFunction(abi.ExportOnHostResult)
	if m.hasInit {
		if _, err := inst.call(abi.ExportInit, mod.ExportedFunction(abi.ExportInit)); err != nil {
			inst.Close()
			return nil, err
		}
	}
	// The minor version the guest speaks decides what it is given where versions differ
	// (messages longer than abi.MaxShortMessage: 1.7). Asked once, after initialisation (a
	// Go guest's exports need its runtime), under the start-up budget.
	if inst.minor, err = inst.call(abi.ExportMarker, mod.ExportedFunction(abi.ExportMarker)); err != nil {
		inst.Close()
		return nil, err
	}
	return inst, nil
}

// Minor is the minor ABI version the guest was built against (its wasmloop_abi_v1).
func (i *Instance) Minor() int32 { return i.minor }

// SetHost makes h the Host the instance's host function calls reach: an instance made on one
// goroutine and used on another changes hands this way. Only between calls, and with a
// happens-before edge to the calls that follow (a channel, a mutex).
func (i *Instance) SetHost(h Host) { i.host = h }

// Memory is the instance's linear memory. Views of it are invalid after any guest call.
func (i *Instance) Memory() api.Memory { return i.mem }

// Dead reports whether the instance trapped or exited and must not be called again.
func (i *Instance) Dead() bool { return i.dead }

// Close releases the instance. It must not run while a call is in progress.
func (i *Instance) Close() {
	i.dead = true
	if i.wd != nil {
		i.wd.unwatch(i)
		i.wd = nil
	}
	if i.mod != nil {
		i.mod.Close(context.Background())
	}
}

// Start runs wasmloop_on_start; the calls after it have CallBudget.
func (i *Instance) Start() (int32, error) {
	rc, err := i.call(abi.ExportStart, i.start)
	i.started.Store(true)
	return rc, err
}

// budgetNow is the budget of the call in progress, for the watchdog.
func (i *Instance) budgetNow() time.Duration {
	if i.started.Load() {
		return i.callBudget
	}
	return i.startBudget
}

// interrupt stops the call seq, from the watchdog's goroutine: the guest's next tick (within
// ticksPerCheck loop iterations or function entries) ends it, if it is still in progress.
func (i *Instance) interrupt(seq uint64) { i.stopAt.Store(seq) }

// HasOnRequest and the like report which optional callbacks the guest exports.
func (i *Instance) HasOnRequest() bool { return i.onRequest != nil }

// HasOnTimer reports whether the guest exports wasmloop_on_timer.
func (i *Instance) HasOnTimer() bool { return i.onTimer != nil }

// OnRequest calls wasmloop_on_request.
func (i *Instance) OnRequest(listener, req abi.Handle, size uint32) (int32, error) {
	i.stack[0], i.stack[1], i.stack[2] = uint64(listener), uint64(req), uint64(size)
	return i.call(abi.ExportOnRequest, i.onRequest)
}

// OnTimer calls wasmloop_on_timer.
func (i *Instance) OnTimer(timer abi.Handle) (int32, error) {
	i.stack[0] = uint64(timer)
	return i.call(abi.ExportOnTimer, i.onTimer)
}

// OnClose calls wasmloop_on_close if the guest exports it.
func (i *Instance) OnClose(h abi.Handle, reason int32) (int32, error) {
	if i.onClose == nil {
		return 0, nil
	}
	i.stack[0], i.stack[1] = uint64(h), uint64(uint32(reason))
	return i.call(abi.ExportOnClose, i.onClose)
}

// call runs one export. Any error poisons the instance: after a trap the guest's state
// (a Go runtime half-way through a panic, say) cannot be trusted, even where wazero would
// still let us call it.
func (i *Instance) call(name string, f api.Function) (int32, error) {
	if i.dead {
		return 0, errDead
	}
	if f == nil {
		return 0, fmt.Errorf("guest: the module does not export %s", name)
	}
	i.ticks = 0
	var began time.Time
	if i.observe != nil {
		began = time.Now()
	}
	seq := i.seq.Add(1)
	err := f.CallWithStack(i.ctx, i.stack)
	i.seq.Add(1)
	if i.observe != nil {
		i.observe(name, time.Since(began))
	}
	if i.ticks >= refreshAfterTicks {
		i.refresh(name)
	}
	if err != nil {
		i.dead = true
		if i.stopAt.Load() == seq {
			return 0, &BudgetError{Export: name, Budget: i.budgetNow()}
		}
		if i.ctx.Err() != nil {
			return 0, &StoppedError{Export: name}
		}
		var exit *sys.ExitError
		if errors.As(err, &exit) {
			return 0, &ExitError{Code: int32(exit.ExitCode())}
		}
		return 0, &TrapError{Export: name, Err: err}
	}
	if i.started.Load() {
		i.served++
	}
	return int32(uint32(i.stack[0])), nil
}

// refreshAfterTicks: after a call that ticked this often, its export is looked up afresh.
// wazero grows a call's stack as deep recursion needs, up to 400 MB, and keeps it with the
// export's api.Function, outside the memory limit: a review held 81 MiB per export this way,
// ~800 MiB an instance. A fresh api.Function starts with 10 KiB. The meter charges a function
// entry for its frame (wasmbin), so a stack of S bytes took at least S/1 KiB counts: after a
// call of fewer than refreshAfterTicks ticks (4,096 counts each) the stack kept is at most a
// few MiB, and a call of more was long enough that a lookup costs it nothing.
const refreshAfterTicks = 2

// refresh looks the export name up again, leaving the old api.Function, and its stack, to the
// garbage collector.
func (i *Instance) refresh(name string) {
	if i.mod == nil {
		return // _initialize and the start function run before the lookups
	}
	f := i.mod.ExportedFunction(name)
	for _, p := range []*api.Function{&i.start, &i.onRequest, &i.onTimer, &i.onClose, &i.onBody, &i.onDrain,
		&i.onMessage, &i.onWSOpen, &i.onWSMessage, &i.onWSClose, &i.onCall, &i.onHostResult} {
		if *p != nil && slices.Contains((*p).Definition().ExportNames(), name) {
			*p = f
		}
	}
}

// Served is the number of event calls (after wasmloop_on_start) that returned without error.
func (i *Instance) Served() int { return i.served }

// HasOnClose reports whether the guest exports wasmloop_on_close.
func (i *Instance) HasOnClose() bool { return i.onClose != nil }

// HasOnBody reports whether the guest exports wasmloop_on_body (streamed request bodies).
func (i *Instance) HasOnBody() bool { return i.onBody != nil }

// OnBody calls wasmloop_on_body: size body bytes are at the start of the inbox.
func (i *Instance) OnBody(req abi.Handle, size uint32, end bool) (int32, error) {
	i.stack[0], i.stack[1], i.stack[2] = uint64(req), uint64(size), 0
	if end {
		i.stack[2] = 1
	}
	return i.call(abi.ExportOnBody, i.onBody)
}

// HasOnMessage reports whether the guest exports wasmloop_on_message.
func (i *Instance) HasOnMessage() bool { return i.onMessage != nil }

// OnMessage calls wasmloop_on_message: a message of size bytes from worker from is at the
// start of the inbox.
func (i *Instance) OnMessage(from int32, size uint32) (int32, error) {
	i.stack[0], i.stack[1] = uint64(uint32(from)), uint64(size)
	return i.call(abi.ExportOnMessage, i.onMessage)
}

// HasOnCall reports whether the guest exports wasmloop_on_call (calls from the embedder).
func (i *Instance) HasOnCall() bool { return i.onCall != nil }

// OnCall calls wasmloop_on_call: the inbox holds the function's name (nameLen bytes) and then
// the first size-nameLen bytes of the payload, or all of it.
func (i *Instance) OnCall(call abi.Handle, nameLen, size uint32) (int32, error) {
	i.stack[0], i.stack[1], i.stack[2] = uint64(call), uint64(nameLen), uint64(size)
	return i.call(abi.ExportOnCall, i.onCall)
}

// HasOnHostResult reports whether the guest exports wasmloop_on_host_result.
func (i *Instance) HasOnHostResult() bool { return i.onHostResult != nil }

// OnHostResult calls wasmloop_on_host_result: an async host call tagged tag finished with
// status; the inbox holds the first bytes of its result (size bytes in all).
func (i *Instance) OnHostResult(tag int64, status int32, size uint32) (int32, error) {
	i.stack[0], i.stack[1], i.stack[2] = uint64(tag), uint64(uint32(status)), uint64(size)
	return i.call(abi.ExportOnHostResult, i.onHostResult)
}

// OnDrain calls wasmloop_on_drain if the guest exports it.
func (i *Instance) OnDrain(req abi.Handle) (int32, error) {
	if i.onDrain == nil {
		return 0, nil
	}
	i.stack[0] = uint64(req)
	return i.call(abi.ExportOnDrain, i.onDrain)
}

// HasOnWSMessage reports whether the guest exports wasmloop_on_ws_message, without which it
// cannot accept WebSockets.
func (i *Instance) HasOnWSMessage() bool { return i.onWSMessage != nil }

// OnWSOpen calls wasmloop_on_ws_open if the guest exports it.
func (i *Instance) OnWSOpen(ws abi.Handle) (int32, error) {
	if i.onWSOpen == nil {
		return 0, nil
	}
	i.stack[0] = uint64(ws)
	return i.call(abi.ExportOnWSOpen, i.onWSOpen)
}

// OnWSMessage calls wasmloop_on_ws_message: the message's first bytes are at the start of the
// inbox; size is its whole length.
func (i *Instance) OnWSMessage(ws abi.Handle, size uint32, flags int32) (int32, error) {
	i.stack[0], i.stack[1], i.stack[2] = uint64(ws), uint64(size), uint64(uint32(flags))
	return i.call(abi.ExportOnWSMessage, i.onWSMessage)
}

// OnWSClose calls wasmloop_on_ws_close if the guest exports it: the close reason (size bytes)
// is at the start of the inbox.
func (i *Instance) OnWSClose(ws abi.Handle, code int32, size uint32) (int32, error) {
	if i.onWSClose == nil {
		return 0, nil
	}
	i.stack[0], i.stack[1], i.stack[2] = uint64(ws), uint64(uint32(code)), uint64(size)
	return i.call(abi.ExportOnWSClose, i.onWSClose)
}
