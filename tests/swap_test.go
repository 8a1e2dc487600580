package tests

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Swapping the module under load (SIGHUP, --watch) fails no request: keep-alive clients
// hammer the server across 20 swaps between two programs and every answer is a 200 from one
// of them; after each swap the new program answers.

// installModule puts the module at src in place at dst atomically (a rename), as a deploy
// would, so that a reload never reads half a file.
func installModule(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// load is keep-alive clients sending GET / until stopped, counting what comes back.
type load struct {
	stop           chan struct{}
	wg             sync.WaitGroup
	hello, whoami  atomic.Int64
	failed, non200 atomic.Int64
	mu             sync.Mutex
	firstErr       error
	waiting        atomic.Bool
	waiters        []loadWaiter
}

// loadWaiter waits for a program's count of answers to reach n.
type loadWaiter struct {
	count *atomic.Int64
	n     int64
	ch    chan struct{}
}

// await returns a channel closed once module has answered n more times.
func (ld *load) await(module string, n int64) <-chan struct{} {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	c := ld.counter(module)
	w := loadWaiter{c, c.Load() + n, make(chan struct{})}
	ld.waiters = append(ld.waiters, w)
	ld.waiting.Store(true)
	return w.ch
}

// answered wakes the waiters whose count is reached.
func (ld *load) answered() {
	if !ld.waiting.Load() {
		return
	}
	ld.mu.Lock()
	defer ld.mu.Unlock()
	kept := ld.waiters[:0]
	for _, w := range ld.waiters {
		if w.count.Load() >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	ld.waiters = kept
	ld.waiting.Store(len(kept) > 0)
}

func startLoad(addr string, clients int) *load {
	ld := &load{stop: make(chan struct{})}
	for range clients {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-ld.stop:
					return
				default:
				}
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					ld.failed.Add(1)
					ld.mu.Lock()
					if ld.firstErr == nil {
						ld.firstErr = err
					}
					ld.mu.Unlock()
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					ld.failed.Add(1)
				case resp.StatusCode != 200:
					ld.non200.Add(1)
				case strings.HasPrefix(string(body), "Hello World"):
					ld.hello.Add(1)
					ld.answered()
				case strings.HasPrefix(string(body), "worker "):
					ld.whoami.Add(1)
					ld.answered()
				default:
					ld.non200.Add(1)
				}
			}
		}()
	}
	return ld
}

func (ld *load) end() {
	close(ld.stop)
	ld.wg.Wait()
}

// counter returns the count of the program a module answers for.
func (ld *load) counter(module string) *atomic.Int64 {
	if module == "hello" {
		return &ld.hello
	}
	return &ld.whoami
}

func TestSwapUnderLoadFailsNoRequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.wasm")
	installModule(t, wasm["hello"], app)
	s := startServer(t, serverOpts{Module: app, Workers: 2})
	ld := startLoad(s.Addr, 8)
	defer ld.end()

	const swaps = 20
	current := "hello"
	for i := 1; i <= swaps; i++ {
		next := map[string]string{"hello": "whoami", "whoami": "hello"}[current]
		installModule(t, wasm[next], app)
		reloaded := s.proc.stderr.appearsN("wasmloop: reloaded", i)
		s.proc.signal(t, syscall.SIGHUP)
		select {
		case <-reloaded:
		case <-time.After(30 * time.Second):
			t.Fatalf("swap %d: no reload\nstderr:\n%s", i, s.proc.stderr)
		}
		// The new program answers from now on.
		select {
		case <-ld.await(next, 16):
		case <-time.After(30 * time.Second):
			t.Fatalf("swap %d: %s never answered", i, next)
		}
		current = next
	}
	ld.end()
	ld.stop = make(chan struct{}) // end ran: the deferred end has nothing left to stop
	if f, n := ld.failed.Load(), ld.non200.Load(); f != 0 || n != 0 {
		t.Fatalf("%d failed requests, %d answers that were not 200 from either program (first error: %v)", f, n, ld.firstErr)
	}
	t.Logf("%d swaps; %d answers from hello, %d from whoami, none failed", swaps, ld.hello.Load(), ld.whoami.Load())
}

// A module that is refused, or whose start-up fails, leaves the running program serving; the
// log says why.
func TestSwapToABadModuleKeepsServing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.wasm")
	installModule(t, wasm["hello"], app)
	s := startServer(t, serverOpts{Module: app, Workers: 2})
	for i, bad := range []string{"hello-command", "panicmain"} {
		installModule(t, wasm[bad], app)
		failed := s.proc.stderr.appearsN("the running program keeps serving", i+1)
		s.proc.signal(t, syscall.SIGHUP)
		select {
		case <-failed:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the failed reload was not reported\nstderr:\n%s", bad, s.proc.stderr)
		}
		if status, body, err := getStatus(s.Addr, "/", ioTimeout); err != nil || status != 200 || body != "Hello World\n" {
			t.Fatalf("after a reload to %s: %d %q, %v", bad, status, body, err)
		}
	}
}

// --watch swaps when the module file changes.
func TestWatchSwapsOnChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.wasm")
	installModule(t, wasm["hello"], app)
	s := startServer(t, serverOpts{Module: app, Flags: []string{"--watch"}})
	reloaded := s.proc.stderr.appears("wasmloop: reloaded " + app + " (changed)")
	installModule(t, wasm["whoami"], app)
	select {
	case <-reloaded:
	case <-time.After(30 * time.Second):
		t.Fatalf("no reload after the file changed\nstderr:\n%s", s.proc.stderr)
	}
	if status, body, err := getStatus(s.Addr, "/", ioTimeout); err != nil || status != 200 || !strings.HasPrefix(body, "worker 0 of 1") {
		t.Fatalf("after the change: %d %q, %v", status, body, err)
	}
}
