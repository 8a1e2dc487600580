// Package tests holds wasmloop's end-to-end tests. They use only real parts: the wasmloop
// binary and real guests, both built from this repository in TestMain, real sockets on
// 127.0.0.1, Go's net/http client, raw net.Conn and curl.
//
// Every test starts its own server (startServer) and talks to it with net/http, curl, or
// the one raw-socket helper (dialRaw / rawRequest). Every wait is bounded.
package tests

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths set up by TestMain.
var (
	repoRoot string // the module root (the parent of this package's directory)
	workDir  string // temporary directory for this run, removed at the end
	binPath  string // the wasmloop binary
	// raceBinPath is the wasmloop binary built with -race, when the tests run with it
	// (race_cli_test.go); "" otherwise.
	raceBinPath string
	cacheDir    string // the compile cache shared by every server of this run

	// wasm maps a guest's name to its built module.
	wasm = map[string]string{}
)

// guestBuild is one module TestMain builds.
type guestBuild struct {
	name    string // key in wasm and file name
	pkg     string // package directory, relative to the repository root
	cShared bool   // -buildmode=c-shared (a WASI reactor); false builds a WASI command
}

var guestBuilds = []guestBuild{
	{"hello", "./samples/hello", true},
	{"timers", "./samples/timers", true},
	{"whoami", "./samples/whoami", true},
	{"exit3", "./tests/testdata/guests/exit3", true},
	{"panicmain", "./tests/testdata/guests/panicmain", true},
	{"osexit", "./tests/testdata/guests/osexit", true},
	{"plain", "./tests/testdata/guests/plain", true},
	{"hostile", "./tests/testdata/guests/hostile", true},
	{"badexport", "./tests/testdata/guests/badexport", true},
	{"files", "./tests/testdata/guests/files", true},
	{"static", "./samples/static", true},
	{"reach", "./tests/testdata/guests/reach", true},
	{"tcpattack", "./tests/testdata/guests/tcpattack", true},
	{"fetchattack", "./tests/testdata/guests/fetchattack", true},
	{"proxy", "./samples/proxy", true},
	{"tcpecho", "./samples/tcpecho", true},
	{"sandboxatk", "./tests/testdata/guests/sandboxatk", true},
	// samples/hello as a WASI command (the default buildmode): it exports _start and no
	// _initialize, which the host must refuse.
	{"hello-command", "./samples/hello", false},
}

const (
	startTimeout = 30 * time.Second // a server must print its ready line within this
	ioTimeout    = 10 * time.Second // generous bound on any single network wait
	buildTimeout = 5 * time.Minute
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	workDir, err = os.MkdirTemp("", "wasmloop-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(workDir)
	binPath = filepath.Join(workDir, "wasmloop")
	if raceEnabled {
		raceBinPath = filepath.Join(workDir, "wasmloop-race")
	}
	cacheDir = filepath.Join(workDir, "cache")
	if err := buildAll(); err != nil {
		fmt.Fprintln(os.Stderr, "tests: build failed:", err)
		return 1
	}
	prewarm()
	return m.Run()
}

// prewarm runs every guest once so that wazero's compile cache (cacheDir) holds it before
// the tests start: otherwise the parallel tests would each compile the same module cold at
// the same time (0.6–3 s of CPU each), and start-up would dominate the run. Problems are
// ignored here; the tests report them.
func prewarm() {
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, g := range guestBuilds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return
			}
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			usedPorts.Store(port, true)
			out := &syncBuffer{}
			ready := out.appears("Server running")
			cmd := exec.Command(binPath, "run", "--cache-dir", cacheDir, "--workers", "1", "--env", "PORT="+strconv.Itoa(port), wasm[g.name])
			cmd.Stdout, cmd.Stderr = out, io.Discard
			cmd.WaitDelay = 5 * time.Second
			if cmd.Start() != nil {
				return
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-ready:
			case <-done:
			case <-time.After(2 * startTimeout):
			}
			cmd.Process.Kill()
			<-done
		}()
	}
	wg.Wait()
}

// buildAll builds the binary and every guest, a few at a time.
func buildAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	type job struct {
		args []string
		env  []string
	}
	jobs := []job{{args: []string{"build", "-o", binPath, "./cmd/wasmloop"}}}
	if raceBinPath != "" {
		jobs = append(jobs, job{args: []string{"build", "-race", "-o", raceBinPath, "./cmd/wasmloop"}})
	}
	for _, g := range guestBuilds {
		out := filepath.Join(workDir, g.name+".wasm")
		wasm[g.name] = out
		args := []string{"build"}
		if g.cShared {
			args = append(args, "-buildmode=c-shared")
		}
		args = append(args, "-o", out, g.pkg)
		jobs = append(jobs, job{args: args, env: []string{"GOOS=wasip1", "GOARCH=wasm"}})
	}
	sem := make(chan struct{}, min(max(runtime.NumCPU(), 2), 4))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cmd := exec.CommandContext(ctx, "go", j.args...)
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), j.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s go %s: %v\n%s", strings.Join(j.env, " "), strings.Join(j.args, " "), err, out)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and the test, which can
// wait for text to appear in it (appears).
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	pending []awaited // texts waited for and not written yet
}

// awaited is a text someone waits for: seen is closed once the buffer contains it n times.
type awaited struct {
	text string
	n    int
	seen chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	b.pending = slices.DeleteFunc(b.pending, func(a awaited) bool {
		if bytes.Count(b.buf.Bytes(), []byte(a.text)) >= a.n {
			close(a.seen)
			return true
		}
		return false
	})
	return n, err
}

// appears returns a channel that is closed once the buffer contains text: at once if it
// already does.
func (b *syncBuffer) appears(text string) <-chan struct{} { return b.appearsN(text, 1) }

// appearsN is appears for the n-th occurrence of text.
func (b *syncBuffer) appearsN(text string, n int) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := awaited{text, n, make(chan struct{})}
	if bytes.Count(b.buf.Bytes(), []byte(text)) >= n {
		close(a.seen)
	} else {
		b.pending = append(b.pending, a)
	}
	return a.seen
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// usedPorts keeps freePort from handing the same port to two servers of this run.
var usedPorts sync.Map

// freePort finds a free port by listening on 127.0.0.1:0 and closing.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if _, dup := usedPorts.LoadOrStore(port, true); !dup {
			return port
		}
	}
	t.Fatal("no unused free port after 20 tries")
	return 0
}

// serverOpts says how to start a server.
type serverOpts struct {
	Module  string   // a guest name from wasm, or (with Dir) a path given as is
	Workers int      // --workers; 0 means 1
	Flags   []string // more flags for 'wasmloop run', before the module
	Dir     string   // working directory; "" is the test's
	Prefix  []string // a command that execs wasmloop, e.g. prlimit ... --
	Binary  string   // the wasmloop binary; "" is binPath
	// StartTimeout bounds the wait for the ready line; 0 means startTimeout (30 s).
	StartTimeout time.Duration
}

// proc is a running wasmloop process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when the process has exited and its output is in
	waitErr        error
	started        time.Time
}

// server is a wasmloop process serving HTTP on Port.
type server struct {
	*proc
	Port int
	Addr string // 127.0.0.1:Port
}

func (s *server) URL(path string) string { return "http://" + s.Addr + path }

// startProc starts wasmloop with args (after opts.Prefix) and arranges for it to be killed
// at the end of the test, its output logged if the test failed.
func startProc(t testing.TB, prefix []string, dir string, args ...string) *proc {
	t.Helper()
	return startBinary(t, binPath, prefix, dir, args...)
}

// startBinary is startProc with another wasmloop binary (raceBinPath).
func startBinary(t testing.TB, bin string, prefix []string, dir string, args ...string) *proc {
	t.Helper()
	argv := append(append([]string{}, prefix...), bin)
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	p := &proc{
		cmd:    cmd,
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		done:   make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	p.started = time.Now()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%v\n--- stdout ---\n%s--- stderr ---\n%s", argv, p.stdout, p.stderr)
		}
	})
	return p
}

// kill ends the process if it still runs and waits (bounded) for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(ioTimeout):
	}
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v: %v", sig, err)
	}
}

// wait waits up to d for the process to exit and returns its exit status (-1 if a signal
// ended it). It fails the test if the process is still running after d.
func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("the process did not exit within %v\nstderr:\n%s", d, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// awaitStdout waits up to d for text on the process's stdout, failing the test if the
// process exits without writing it or d passes first.
func (p *proc) awaitStdout(t testing.TB, text string, d time.Duration) {
	t.Helper()
	seen := p.stdout.appears(text)
	select {
	case <-seen:
		return
	case <-p.done: // the output is all in: it may have come with the exit
	case <-time.After(d):
		t.Fatalf("no %q within %v\nstdout:\n%s\nstderr:\n%s", text, d, p.stdout, p.stderr)
	}
	select {
	case <-seen:
	default:
		t.Fatalf("the process exited (%v) without writing %q\nstdout:\n%s\nstderr:\n%s", p.waitErr, text, p.stdout, p.stderr)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startServer starts 'wasmloop run' with --cache-dir, --workers and --env PORT on a free
// port, and returns once the guest printed "Server running at http://127.0.0.1:PORT/" and
// the port accepts connections. A port that turns out to be taken is retried.
func startServer(t testing.TB, o serverOpts) *server {
	t.Helper()
	module := o.Module
	if path, ok := wasm[o.Module]; ok && o.Dir == "" {
		module = path
	}
	workers := o.Workers
	if workers == 0 {
		workers = 1
	}
	wait := o.StartTimeout
	if wait == 0 {
		wait = startTimeout
	}
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{"run", "--cache-dir", cacheDir, "--workers", strconv.Itoa(workers), "--env", "PORT=" + strconv.Itoa(port)}
		args = append(args, o.Flags...)
		args = append(args, module)
		p := startBinary(t, cmp.Or(o.Binary, binPath), o.Prefix, o.Dir, args...)
		select {
		case <-p.stdout.appears("Server running at http://" + addr + "/\n"):
		case <-p.done:
			t.Fatalf("the server exited before it was ready (%v)\nstdout:\n%s\nstderr:\n%s", p.waitErr, p.stdout, p.stderr)
		case <-time.After(wait):
			t.Fatalf("no ready line within %v\nstdout:\n%s\nstderr:\n%s", wait, p.stdout, p.stderr)
		}
		// The sample logs its ready line even when its listen failed (the port was taken
		// meanwhile): make sure something listens before handing the server out.
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err == nil {
			c.Close()
			return &server{proc: p, Port: port, Addr: addr}
		}
		lastErr = fmt.Sprintf("dial %s: %v\nstderr:\n%s", addr, err, p.stderr)
		p.kill()
	}
	t.Fatalf("could not start a server in 3 attempts; last: %s", lastErr)
	return nil
}

// runResult is a finished wasmloop run.
type runResult struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// runWasmloop runs the binary to completion (bounded by limit) in dir.
func runWasmloop(t testing.TB, dir string, limit time.Duration, args ...string) runResult {
	t.Helper()
	p := startProc(t, nil, dir, args...)
	code := p.wait(t, limit)
	return runResult{code: code, stdout: p.stdout.String(), stderr: p.stderr.String(), elapsed: time.Since(p.started)}
}

// rawConn is a client connection written and read byte for byte.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// dialRaw opens a raw connection.
func dialRaw(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: c, br: bufio.NewReader(c)}, nil
}

// send writes s in one write.
func (c *rawConn) send(s string) error {
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := io.WriteString(c.Conn, s)
	return err
}

// readResponse reads one response to a request with method, and its whole body, within d.
func (c *rawConn) readResponse(method string, d time.Duration) (*http.Response, []byte, error) {
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp, body, fmt.Errorf("reading the body: %w", err)
	}
	return resp, body, nil
}

// roundTrip sends req (one or more requests) and reads one response within ioTimeout.
func (c *rawConn) roundTrip(req string) (*http.Response, []byte, error) {
	if err := c.send(req); err != nil {
		return nil, nil, err
	}
	return c.readResponse(methodOf(req), ioTimeout)
}

func methodOf(req string) string {
	m, _, _ := strings.Cut(req, " ")
	return m
}

// expectEOF reports nil when the peer closes the connection cleanly (read returns io.EOF
// with no further bytes) within d.
func (c *rawConn) expectEOF(d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	var buf [512]byte
	n, err := c.br.Read(buf[:])
	switch {
	case n > 0:
		return fmt.Errorf("want the connection closed, got %d more bytes: %q", n, buf[:n])
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return errors.New("want the connection closed, read returned nothing")
	default:
		return fmt.Errorf("want a clean close (EOF), got %w", err)
	}
}

// stillOpen reports nil if the connection neither closed nor sent anything within d.
func (c *rawConn) stillOpen(d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.Peek(1)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("unexpected bytes from the server")
	}
	return fmt.Errorf("the connection is no longer open: %w", err)
}

// rawRequest dials addr, sends req and reads one response; the open connection is returned
// (closed at the end of the test) for more requests or for checking that it closes.
func rawRequest(t testing.TB, addr, req string) (*rawConn, *http.Response, []byte) {
	t.Helper()
	c, err := dialRaw(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	resp, body, err := c.roundTrip(req)
	if err != nil {
		t.Fatalf("request %q: %v", truncate(req, 200), err)
	}
	return c, resp, body
}

// get is a minimal HTTP/1.1 GET in wire form.
func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// requireTool finds an external program. A missing tool fails the test on CI (CI=true)
// and skips it elsewhere, saying what to install.
func requireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not on PATH (%v); CI must provide it (package %s)", name, err, pkg)
	}
	t.Skipf("%s is not on PATH (%v): install %s to run this test; on CI (CI=true) this is a failure", name, err, pkg)
	return ""
}

// client returns an http.Client with a bounded timeout over transport tr (nil: a fresh
// default-like transport, so tests never share connections).
func client(tr *http.Transport) *http.Client {
	if tr == nil {
		tr = &http.Transport{}
	}
	return &http.Client{Transport: tr, Timeout: ioTimeout}
}

// httpGet does one GET with c and returns the response and its body.
func httpGet(t testing.TB, c *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp, body
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postBytes POSTs data to url, as Content-Length or (chunked) Transfer-Encoding: chunked, and
// returns the body of the 200 it must get.
func postBytes(t testing.TB, c *http.Client, url string, data []byte, chunked bool) []byte {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(data))
	if chunked {
		req.ContentLength = -1 // net/http then sends Transfer-Encoding: chunked
		req.Body = io.NopCloser(bytes.NewReader(data))
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, err %v, body %q", resp.StatusCode, err, truncate(string(body), 200))
	}
	return body
}
