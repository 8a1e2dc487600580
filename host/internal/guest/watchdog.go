package guest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmloop/wasmloop/host/internal/wasmbin"
)

// A guest call that runs past its budget is stopped by a watchdog, not by a deadline per call.
// Compiled with the meter's checks (RuntimeConfig.Interruptible), guest code calls tick every
// ticksPerCheck loop iterations or function entries; the watchdog marks a call that has been
// in progress for longer than its budget, and the call's next tick ends it. The loop's side of
// a call is two atomic adds (the instance's call counter); a context.WithTimeout per call
// would cost a timer each, and wazero's own context watching a goroutine per call.

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
					inst.interrupt(seq)
				}
			}
		}
		w.mu.Unlock()
	}
}

// ticksPerCheck is how many loop iterations and function entries a guest runs between two
// calls of tick: every few microseconds in a tight loop, each a chance for the Go scheduler
// to stop the goroutine (a garbage collection) and for the watchdog's verdict to end the call.
const ticksPerCheck = 4096

// errStopped is the panic tick ends a call with; the call's error is then a BudgetError.
var errStopped = errors.New("stopped by the watchdog")

// maxDebt bounds the debt tick carries (what a bulk operation's charge overdrew), so that the
// countdown stays far from overflow.
const maxDebt = 1 << 20

// tick is the host function the meter's checks call (wasmbin.Meter), with the countdown they
// left: zero, or less when a charge overdrew it. It returns the next count, less that debt.
func tick(ctx context.Context, _ api.Module, stack []uint64) {
	i := ctx.Value(instanceKey{}).(*Instance)
	i.stopIfMarked()
	i.ticks++
	debt := min(0, max(int32(uint32(stack[0])), -maxDebt))
	stack[0] = uint64(uint32(ticksPerCheck + debt))
}

// stopIfMarked ends the call in progress, from inside a host function, when the watchdog has
// marked it or the instance's context has ended: what tick does, for host functions that can
// take long on the guest's say-so.
func (i *Instance) stopIfMarked() {
	if s := i.stopAt.Load(); s != 0 && s == i.seq.Load() {
		panic(errStopped)
	}
	if i.done != nil {
		select {
		case <-i.done:
			panic(context.Canceled)
		default:
		}
	}
}

// ioChunk is how much a WASI read or write moves between two looks at the watchdog's verdict.
const ioChunk = 1 << 20

// stoppableReader is the instance's random source: random_get of its whole memory (256 MiB
// took 700 ms) is filled a chunk at a time, and a call past its budget ends between chunks.
type stoppableReader struct {
	r io.Reader
	i *Instance
}

func (s stoppableReader) Read(p []byte) (int, error) {
	s.i.stopIfMarked()
	return s.r.Read(p[:min(len(p), ioChunk)])
}

// stoppableWriter is the instance's stdout or stderr: fd_write hands it one iovec at a time,
// and thousands of iovecs can name the same large buffer (2,000 of 32 MiB took 3.2 s), so it
// looks at the watchdog's verdict before each, and writes a large one a chunk at a time.
type stoppableWriter struct {
	w      io.Writer
	i      *Instance
	stderr bool // watch for the Go runtime's deadlock report (Instance.Deadlocked)
}

// goDeadlock is what the Go runtime prints, as a write of its own (its print writes each
// argument separately: "fatal error: ", this, "\n"), when every goroutine is blocked. Only a
// write that is exactly that, or that whole line, counts: a program that merely logs the
// words is not taken for a deadlocked one.
var (
	goDeadlock     = []byte("all goroutines are asleep - deadlock!")
	goDeadlockLine = []byte("fatal error: all goroutines are asleep - deadlock!")
)

func (s stoppableWriter) Write(p []byte) (int, error) {
	if s.stderr && !s.i.deadlocked && (bytes.Equal(p, goDeadlock) || bytes.HasPrefix(p, goDeadlockLine)) {
		s.i.deadlocked = true
	}
	written := 0
	for len(p) > 0 {
		s.i.stopIfMarked()
		chunk := p[:min(len(p), ioChunk)]
		n, err := s.w.Write(chunk)
		if n < 0 || n > len(chunk) {
			return written, io.ErrShortWrite // a writer that breaks io.Writer's contract
		}
		written += n
		if err == nil && n < len(chunk) {
			err = io.ErrShortWrite // the same: it must not loop us
		}
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// stoppableFS is a WASI preopen as one instance sees it: its files read and write a chunk at
// a time, looking at the watchdog's verdict before each. wazero's fd_read hands a file one
// iovec at a time, whole, and hundreds of iovecs can name the same large buffer: one fd_read
// of 256 iovecs of 8 MiB over a 2 GiB file ran 3.6 s past a 200 ms budget, and the request
// was answered as if nothing had happened.
type stoppableFS struct {
	fs fs.FS
	i  *Instance
}

func (s stoppableFS) Open(name string) (fs.File, error) {
	f, err := s.fs.Open(name)
	if of, ok := f.(osFile); ok && err == nil {
		return stoppableFile{of, s.i}, nil
	}
	return f, err
}

// osFile is what wazero looks for in an open file beyond fs.File, each by a type assertion,
// with a fallback of its own for each one missing: all of it an *os.File has, and all a
// wrapper must keep for wazero to treat it the same. A file that lacks any (an in-memory
// fs.FS's, whose reads are copies) is handed over as it is.
type osFile interface {
	fs.ReadDirFile
	io.ReaderAt
	io.Seeker
	io.Writer
	io.WriterAt
	Readdir(n int) ([]fs.FileInfo, error)
	Fd() uintptr // wazero's stat on Windows
}

// stoppableFile moves at most ioChunk per call of the file's own. A read of that much or
// less, the common one, costs one look at the verdict more: ~10 ns measured, against ~2 µs
// for a 4 KiB pread from the page cache (BenchmarkPreopenSmallRead), and no allocation.
type stoppableFile struct {
	osFile
	i *Instance
}

func (s stoppableFile) Read(p []byte) (int, error) {
	return chunked(s.i, p, func(b []byte, _ int) (int, error) { return s.osFile.Read(b) })
}

func (s stoppableFile) ReadAt(p []byte, off int64) (int, error) {
	return chunked(s.i, p, func(b []byte, done int) (int, error) { return s.osFile.ReadAt(b, off+int64(done)) })
}

func (s stoppableFile) Write(p []byte) (int, error) {
	return chunked(s.i, p, func(b []byte, _ int) (int, error) { return s.osFile.Write(b) })
}

func (s stoppableFile) WriteAt(p []byte, off int64) (int, error) {
	return chunked(s.i, p, func(b []byte, done int) (int, error) { return s.osFile.WriteAt(b, off+int64(done)) })
}

var errBadCount = errors.New("the file reported more bytes than it was given, or fewer than none")

// chunked moves p through op, ioChunk at a time, each after a look at the watchdog's verdict;
// op is handed the chunk and how much went before it. It stops where one call of the whole
// would have: at an error, or at a short count (the end of the file, which wazero's readv
// takes for the end of the whole read).
func chunked(i *Instance, p []byte, op func(b []byte, done int) (int, error)) (int, error) {
	done := 0
	for {
		i.stopIfMarked()
		chunk := p[done:min(len(p), done+ioChunk)]
		n, err := op(chunk, done)
		if n < 0 || n > len(chunk) {
			return done, errBadCount // a file that breaks io's contract: it must not loop us
		}
		done += n
		if err != nil || n < len(chunk) || done == len(p) {
			return done, err
		}
	}
}

// sleep is the instance's WASI nanosleep (poll_oneoff with a clock): a guest asleep is still
// inside its call, so the sleep ends, as a tick would end the call, when the watchdog stops
// the call or the instance's context ends. A plain time.Sleep let a 3 s poll_oneoff run past
// a 100 ms budget and past cancellation, and return as if nothing had happened.
func (i *Instance) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	check := time.NewTicker(sleepCheck)
	defer check.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-i.done:
			panic(context.Canceled)
		case <-check.C:
			i.stopIfMarked()
		}
	}
}

// sleepCheck is how often a sleeping guest looks for the watchdog's verdict.
const sleepCheck = 5 * time.Millisecond

func instantiateMeterModule(ctx context.Context, r wazero.Runtime) error {
	_, err := r.NewHostModuleBuilder(wasmbin.MeterModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(tick), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		Export(wasmbin.MeterFunc).Instantiate(ctx)
	return err
}
