package loop

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
)

var extraEnv = strings.Fields(os.Getenv("WASMLOOP_TEST_GUEST_ENV"))

var built struct {
	sync.Once
	dir string
	err error
}

// buildSample builds samples/<name> as a guest, once per test binary.
func buildSample(t testing.TB, name string) []byte {
	return buildGuest(t, "../../../samples/"+name)
}

// buildGuest builds the Go package at dir as a guest, once per test binary.
func buildGuest(t testing.TB, dir string) []byte {
	t.Helper()
	built.Do(func() { built.dir, built.err = os.MkdirTemp("", "wasmloop-loop-test") })
	if built.err != nil {
		t.Fatal(built.err)
	}
	out := filepath.Join(built.dir, strings.ReplaceAll(filepath.Clean(dir), string(filepath.Separator), "_")+".wasm")
	if _, err := os.Stat(out); err != nil {
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./"+dir)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", dir, err, msg)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// guestLoop is a loop with a started guest instance and no goroutine: the test drives it.
func guestLoop(t testing.TB, wasm []byte) *Loop { return guestLoopBudget(t, wasm, 0) }

// guestLoopBudget is guestLoop with every call under budget (0: none, and the module loaded
// without the budget checks, wasmbin.Meter).
func guestLoopBudget(t testing.TB, wasm []byte, budget time.Duration) *Loop {
	t.Helper()
	return newGuestLoop(t, wasm, Config{Instance: guest.InstanceConfig{StartBudget: budget, CallBudget: budget}})
}

// newGuestLoop is one worker of a group made with cfg (Workers 1, the guest's PORT=0 and its
// output discarded added), its instance started; a budget in cfg loads the module with the
// budget checks.
func newGuestLoop(t testing.TB, wasm []byte, cfg Config) *Loop {
	t.Helper()
	ctx := context.Background()
	budget := cfg.Instance.StartBudget > 0 || cfg.Instance.CallBudget > 0
	rt, err := guest.NewRuntime(ctx, guest.RuntimeConfig{CacheDir: filepath.Join(os.TempDir(), "wasmloop-test-cache"), Interruptible: budget})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Workers = 1
	cfg.Instance.Env = append([]string{"PORT=0"}, extraEnv...)
	cfg.Instance.Stdout, cfg.Instance.Stderr = io.Discard, io.Discard
	g := NewGroup(mod, cfg)
	l := g.loops[0]
	if err := l.init(); err != nil {
		t.Fatal(err)
	}
	if err := l.startInstance(l.g.module); err != nil {
		t.Fatal(err)
	}
	l.afterCallback()
	t.Cleanup(func() {
		l.teardown()
		g.stopSpares() // a spare still being made runs on the runtime, as Run would wait for it
		rt.Close(ctx)
	})
	return l
}

func listenerOf(t testing.TB, l *Loop) *listener {
	var found *listener
	l.listeners.each(func(_ abi.Handle, ln *listener) { found = ln })
	if found == nil {
		t.Fatal("the guest did not listen")
	}
	return found
}

const benchRequest = "GET / HTTP/1.1\r\nHost: 127.0.0.1:1337\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"

// serveOnce runs one request through parse → inbox → guest → response bytes, as a readable
// event would, minus the socket.
func serveOnce(l *Loop, c *Conn, req []byte) int {
	c.serving = true
	n := c.proto.serve(req)
	c.serving = false
	return n
}

func resetOutput(l *Loop, c *Conn) {
	c.out, c.outOff, c.queued = c.out[:0], 0, 0
	l.queue.flushes = l.queue.flushes[:0]
}

func TestDispatchHello(t *testing.T) {
	l := guestLoop(t, buildSample(t, "hello"))
	c := testConn(l, listenerOf(t, l))
	// Two pipelined requests in one read are both answered, in order.
	req := []byte(benchRequest + benchRequest)
	if n := serveOnce(l, c, req); n != len(req) {
		t.Fatalf("consumed %d of %d", n, len(req))
	}
	if got := bytes.Count(c.out, []byte("HTTP/1.1 200 OK\r\n")); got != 2 {
		t.Fatalf("%d responses in %q", got, c.out)
	}
	body, err := readResponse(string(c.out), benchRequest)
	if err != nil || body != "Hello World\n" {
		t.Fatalf("body %q, err %v", body, err)
	}
	if l.exchanges.len() != 0 || httpOf(c).ex != nil {
		t.Fatal("an exchange outlived its response")
	}
}

// buildC builds a C guest from testdata with clang and wasi-libc (installed by .ci/run). Without
// them the test fails in CI and skips elsewhere.
func buildC(t testing.TB, src string) []byte {
	t.Helper()
	clang, err := exec.LookPath("clang")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("clang is missing: .ci/run installs clang, lld and wasi-libc")
		}
		t.Skip("needs clang, lld and wasi-libc (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
	}
	built.Do(func() { built.dir, built.err = os.MkdirTemp("", "wasmloop-loop-test") })
	out := filepath.Join(built.dir, filepath.Base(src)+".wasm")
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-mbulk-memory", "-o", out, src)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang %s: %v\n%s", src, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// guests are the hello worlds the dispatch path is measured with: the Go SDK's, and a C guest
// written straight against the ABI, which shows what the host itself costs.
var guests = []struct {
	name  string
	build func(testing.TB) []byte
}{
	{"go", func(t testing.TB) []byte { return buildSample(t, "hello") }},
	{"c", func(t testing.TB) []byte { return buildC(t, "testdata/chello/hello.c") }},
	// The same hello world as Go's net/http code (wasmhttp.ListenAndServe): what an
	// http.Handler costs over the SDK's own handler.
	{"go-nethttp", func(t testing.TB) []byte { return buildGuest(t, "testdata/nethello") }},
}

// dispatchOnce runs an already parsed request through the guest to response bytes: the path
// the issue names (no socket, no parse).
func dispatchOnce(l *Loop, c *Conn) {
	c.serving = true
	httpOf(c).dispatch(&l.httpScratch.req, l.packHead(&l.httpScratch.req), nil, false)
	c.serving = false
	httpOf(c).parser.Reset()
}

func parsed(t testing.TB, l *Loop, c *Conn) {
	if n, err := httpOf(c).parser.Parse([]byte(benchRequest), &l.httpScratch.req); err != nil || n != len(benchRequest) {
		t.Fatalf("parse: %d %v", n, err)
	}
}

// TestDispatchAllocations holds the per-request budget of the issue: at most 2 host
// allocations from a parsed request to response bytes (and from raw bytes, parse included).
func TestDispatchAllocations(t *testing.T) {
	for _, g := range guests {
		t.Run(g.name, func(t *testing.T) {
			l := guestLoop(t, g.build(t))
			c := testConn(l, listenerOf(t, l))
			parsed(t, l, c)
			dispatchOnce(l, c)
			if body, err := readResponse(string(c.out), benchRequest); err != nil || body != "Hello World\n" {
				t.Fatalf("response %q: %v", c.out, err)
			}
			resetOutput(l, c)
			if a := testing.AllocsPerRun(1000, func() { dispatchOnce(l, c); resetOutput(l, c) }); a > 2 {
				t.Fatalf("%v allocations per dispatch, want at most 2", a)
			}
			req := []byte(benchRequest)
			if a := testing.AllocsPerRun(1000, func() { serveOnce(l, c, req); resetOutput(l, c) }); a > 2 {
				t.Fatalf("%v allocations per request with parsing, want at most 2", a)
			}
		})
	}
}

// budgets are the ways a guest can run: without the budget checks (budget off), and with
// them and a budget on every call, which is what it costs to be able to stop a guest.
var budgets = []struct {
	name   string
	budget time.Duration
}{{"", 0}, {"-budget", time.Second}}

// BenchmarkDispatch is the in-process request path the issue names: parsed request → packed
// head in the inbox → guest → response bytes.
func BenchmarkDispatch(b *testing.B) {
	for _, g := range guests {
		for _, bu := range budgets {
			b.Run(g.name+bu.name, func(b *testing.B) { benchDispatch(b, g.build(b), bu.budget) })
		}
	}
}

func benchDispatch(b *testing.B, wasm []byte, budget time.Duration) {
	l := guestLoopBudget(b, wasm, budget)
	c := testConn(l, listenerOf(b, l))
	parsed(b, l, c)
	b.ReportAllocs()
	for b.Loop() {
		dispatchOnce(l, c)
		resetOutput(l, c)
	}
}

// BenchmarkServe adds the strict parse: raw request bytes → response bytes.
func BenchmarkServe(b *testing.B) {
	for _, g := range guests {
		for _, bu := range budgets {
			b.Run(g.name+bu.name, func(b *testing.B) { benchServe(b, g.build(b), bu.budget) })
		}
	}
}

func benchServe(b *testing.B, wasm []byte, budget time.Duration) {
	l := guestLoopBudget(b, wasm, budget)
	c := testConn(l, listenerOf(b, l))
	req := []byte(benchRequest)
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(l, c, req)
		resetOutput(l, c)
	}
}

// A callback that panics (proc_exit 2 from the Go runtime) or calls fail poisons the instance:
// the request gets a 500 and its connection closes, a new instance takes over the same
// listening socket, and the next request is served by it.
func TestCrashReplacesInstance(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/crash"))
	l.cfg.Instance.Stderr = io.Discard
	fd := listenerOf(t, l).fd
	for _, path := range []string{"/panic", "/fail"} {
		before := l.cur
		idle := testConn(l, listenerOf(t, l))
		if body := serveGET(t, l, idle, "/"); !strings.HasPrefix(body, "ok ") {
			t.Fatalf("before %s: %q", path, body)
		}
		c := testConn(l, listenerOf(t, l))
		serveOnce(l, c, []byte("GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n"))
		if !bytes.HasPrefix(c.out, []byte("HTTP/1.1 500 ")) || c.phase == connOpen {
			t.Fatalf("%s: answered %q, closeAfter %v", path, c.out, (c.phase != connOpen))
		}
		if l.cur == before || !l.cur.live() {
			t.Fatalf("%s: the instance was not replaced", path)
		}
		now := listenerOf(t, l)
		if now.fd != fd || len(l.orphans) != 0 || idle.ln != now {
			t.Fatalf("%s: the listening socket was not taken over (fd %d, was %d)", path, now.fd, fd)
		}
		// The replacement counts from 1 again: it is a fresh instance.
		if body := serveGET(t, l, idle, "/"); body != "ok 1" {
			t.Fatalf("after %s on a connection that was open before: %q", path, body)
		}
	}
}

func serveGET(t *testing.T, l *Loop, c *Conn, path string) string {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n"
	serveOnce(l, c, []byte(req))
	body, err := readResponse(string(c.out), req)
	if err != nil {
		t.Fatalf("GET %s: %v in %q", path, err, c.out)
	}
	resetOutput(l, c)
	return body
}

// Closing a listener (Node's server.close()) closes its idle connections at once, and lets
// a connection that is part-way through a request finish that request — answered by the
// guest, with Connection: close — and nothing more.
func TestCloseListenerSparesRequestInProgress(t *testing.T) {
	l := guestLoop(t, buildSample(t, "hello"))
	ln := listenerOf(t, l)
	pair := func() *Conn { c, _ := socketConn(t, l, ln); return c }
	idle, busy := pair(), pair()
	part := []byte("GET / HTTP/1.1\r\nHost: a\r\n")
	l.consume(busy, part, true)
	if len(busy.in) != len(part) {
		t.Fatalf("partial request not kept: %q", busy.in)
	}
	if rc := l.cur.calls.Close(ln.handle); rc != 0 || l.refs != 0 {
		t.Fatalf("Close = %d, refs %d", rc, l.refs)
	}
	if !idle.closed() || busy.closed() || !httpOf(busy).last {
		t.Fatalf("idle closed %v; busy closed %v noMore %v", idle.closed(), busy.closed(), httpOf(busy).last)
	}
	rest := append(busy.in, "\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n"...)
	busy.serving = true
	n := busy.proto.serve(rest)
	busy.serving = false
	if n != len(part)+2 || busy.phase == connOpen {
		t.Fatalf("consumed %d, closeAfter %v", n, (busy.phase != connOpen))
	}
	if !bytes.HasPrefix(busy.out, []byte("HTTP/1.1 200 OK\r\n")) || !bytes.Contains(busy.out, []byte("Connection: close\r\n")) ||
		bytes.Count(busy.out, []byte("HTTP/1.1")) != 1 {
		t.Fatalf("response %q", busy.out)
	}
}

// Once an instance has failed, the next replacement is made ahead of time off the loop (a warm
// spare), and the next failure is replaced by it.
func TestWarmSpareReplacesTheNextFailure(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/crash"))
	l.cfg.Instance.Stderr = io.Discard
	crash := func() {
		c := testConn(l, listenerOf(t, l))
		serveOnce(l, c, []byte("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n"))
		if !bytes.HasPrefix(c.out, []byte("HTTP/1.1 500 ")) {
			t.Fatalf("answered %q", c.out)
		}
	}
	crash()
	if l.spare != nil || !l.spareBusy {
		t.Fatal("no spare is being made after a failure")
	}
	// The spare's goroutine posts it to the loop, which wakes the poller.
	for l.spare == nil {
		if _, err := l.wait(10_000, false); err != nil {
			t.Fatal(err)
		}
		l.runTasks()
	}
	spare := l.spare
	crash()
	if l.cur != spare || !spare.live() {
		t.Fatal("the spare did not replace the failed instance")
	}
	if body := serveGET(t, l, testConn(l, listenerOf(t, l)), "/"); body != "ok 1" {
		t.Fatalf("the spare's first request: %q", body)
	}
}

// A non-zero result of a callback that concerns no request is logged by name (ABI.md §2):
// here on_timer's ECLOSED.
func TestTimerResultLogged(t *testing.T) {
	l := guestLoop(t, buildC(t, "testdata/results/results.c"))
	var out strings.Builder
	l.cfg.Log = slog.New(slog.NewTextHandler(&out, nil))
	l.now = l.now.Add(time.Millisecond) // the timer set in on_start is due
	l.fireTimers()
	if !strings.Contains(out.String(), "wasmloop_on_timer returned ECLOSED (-5)") {
		t.Fatalf("on_timer's result was not logged:\n%s", out.String())
	}
	if !l.cur.live() {
		t.Fatal("a non-zero result replaced the instance")
	}
}

// A net/http handler's goroutine finishes inside the callback that started it, also when it
// starts a garbage collection, whose start yields back (with a single Gosched the 57th request
// here went unanswered until a wake-up timer).
func TestNetHTTPAnsweredInItsCallback(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/nethello"))
	c := testConn(l, listenerOf(t, l))
	req := []byte(benchRequest)
	for i := range 3000 {
		serveOnce(l, c, req)
		if body, err := readResponse(string(c.out), benchRequest); err != nil || body != "Hello World\n" {
			t.Fatalf("request %d: %v in %q", i, err, c.out)
		}
		resetOutput(l, c)
	}
}
