package tests

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
)

// The sandbox's walls, against the real binary: a guest that loops, allocates or recurses
// without end is stopped and replaced while the host keeps serving, and a program that cannot
// do what it was started for says so with its exit status.

// getStatus sends GET path on a new connection and returns the response's status line and
// body, or the error.
func getStatus(addr, path string, d time.Duration) (int, string, error) {
	c, err := dialRaw(addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	if err := c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		return 0, "", err
	}
	resp, body, err := c.readResponse("GET", d)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(body), nil
}

// A request handler that never returns is stopped once it passes --callback-budget: its
// client gets 503, the log names the callback, the budget and the worker, the instance is
// replaced, and the server goes on serving — with one worker after the stop, with two
// during it as well. A timer and a message handler that never return are stopped the same way.
func TestCallbackBudgetStopsLoopingGuest(t *testing.T) {
	t.Parallel()
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			t.Parallel()
			const budget = 300 * time.Millisecond
			s := startServer(t, serverOpts{Module: "hostile", Workers: workers, Flags: []string{"--callback-budget", budget.String()}})

			spinning := s.proc.stdout.appears("spinning in /loop")
			type result struct {
				status  int
				err     error
				elapsed time.Duration
			}
			looped := make(chan result, 1)
			go func() {
				start := time.Now()
				status, _, err := getStatus(s.Addr, "/loop", 30*time.Second)
				looped <- result{status, err, time.Since(start)}
			}()
			select {
			case <-spinning:
			case <-time.After(ioTimeout):
				t.Fatalf("the guest did not start spinning\nstderr:\n%s", s.proc.stderr)
			}
			// While it spins (two workers) or once it is stopped (one), every other request is
			// answered.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, body, err := getStatus(s.Addr, "/ok", 30*time.Second)
					if err == nil && (status != 200 || !strings.HasPrefix(body, "ok from worker")) {
						err = fmt.Errorf("GET /ok: %d %q", status, body)
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			r := <-looped
			if r.err != nil || r.status != 503 {
				t.Fatalf("GET /loop: status %d, %v", r.status, r.err)
			}
			if r.elapsed < budget {
				t.Errorf("the looping request was stopped after %v, before its budget of %v", r.elapsed, budget)
			}
			logged := "wasmloop_on_request ran past its budget of 300ms and was stopped; replacing the instance"
			select {
			case <-s.proc.stderr.appears(logged):
			case <-time.After(ioTimeout):
				t.Fatalf("no %q in the log:\n%s", logged, s.proc.stderr)
			}
			if !strings.Contains(s.proc.stderr.String(), "worker ") {
				t.Errorf("the log does not name the worker:\n%s", s.proc.stderr)
			}

			// A timer that spins: the request that set it is answered, then the timer is
			// stopped in turn.
			stopped := s.proc.stderr.appears("wasmloop_on_timer ran past its budget of 300ms")
			if status, _, err := getStatus(s.Addr, "/timer-loop", ioTimeout); err != nil || status != 200 {
				t.Fatalf("GET /timer-loop: %d, %v", status, err)
			}
			select {
			case <-stopped:
			case <-time.After(ioTimeout):
				t.Fatalf("the spinning timer was not stopped:\n%s", s.proc.stderr)
			}
			if status, _, err := getStatus(s.Addr, "/ok", ioTimeout); err != nil || status != 200 {
				t.Fatalf("GET /ok after the timer was stopped: %d, %v", status, err)
			}

			// A message handler that spins, likewise.
			stopped = s.proc.stderr.appears("wasmloop_on_message ran past its budget of 300ms")
			if status, _, err := getStatus(s.Addr, "/message-loop", ioTimeout); err != nil || status != 200 {
				t.Fatalf("GET /message-loop: %d, %v", status, err)
			}
			select {
			case <-stopped:
			case <-time.After(ioTimeout):
				t.Fatalf("the spinning message handler was not stopped:\n%s", s.proc.stderr)
			}
			if status, _, err := getStatus(s.Addr, "/ok", ioTimeout); err != nil || status != 200 {
				t.Fatalf("GET /ok after the message handler was stopped: %d, %v", status, err)
			}
		})
	}
}

// SIGTERM while a handler spins: the spinning call is stopped by its budget, its client gets
// 503, and the process drains and exits 0 within the shutdown timeout.
func TestSignalWhileGuestSpins(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "hostile", Workers: 2, Flags: []string{"--callback-budget", "1s", "--shutdown-timeout", "5s"}})
	spinning := s.proc.stdout.appears("spinning in /loop")
	looped := make(chan int, 1)
	go func() {
		status, _, _ := getStatus(s.Addr, "/loop", 30*time.Second)
		looped <- status
	}()
	select {
	case <-spinning:
	case <-time.After(ioTimeout):
		t.Fatalf("the guest did not start spinning\nstderr:\n%s", s.proc.stderr)
	}
	s.proc.signal(t, syscall.SIGTERM)
	if code := s.proc.wait(t, 5*time.Second+ioTimeout); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0\nstderr:\n%s", code, s.proc.stderr)
	}
	if status := <-looped; status != 503 {
		t.Errorf("the spinning request got %d, want 503", status)
	}
}

// A guest that spins in any kind of callback is stopped by its budget and replaced: a body
// piece, a close, a drain, a WebSocket's open, message and close (the request, the timer and
// the message are in TestCallbackBudgetStopsLoopingGuest, start-up in TestStartBudget).
func TestEveryCallbackKindIsStopped(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "hostile", Workers: 1, Flags: []string{"--callback-budget", "300ms"}})
	holding := func(t *testing.T, path string) {
		t.Helper()
		select {
		case <-s.proc.stdout.appears("holding " + path):
		case <-time.After(ioTimeout):
			t.Fatalf("the guest did not take %s\nstderr:\n%s", path, s.proc.stderr)
		}
	}
	for _, c := range []struct {
		export  string
		trigger func(t *testing.T)
	}{
		{"wasmloop_on_body", func(t *testing.T) {
			c, err := dialRaw(s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.send("POST /body-loop HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			holding(t, "/body-loop")
			if err := c.send(strings.Repeat("x", 100)); err != nil {
				t.Fatal(err)
			}
			c.readResponse("POST", ioTimeout) // the 503, once the piece's call is stopped
		}},
		{"wasmloop_on_close", func(t *testing.T) {
			c, err := dialRaw(s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.send(get("/close-loop")); err != nil {
				t.Fatal(err)
			}
			holding(t, "/close-loop")
			c.Close()
		}},
		{"wasmloop_on_drain", func(t *testing.T) {
			c, err := dialRaw(s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.send(get("/drain-loop")); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			io.Copy(io.Discard, c) // reading drains it; the stop closes the connection
		}},
		{"wasmloop_on_ws_open", func(t *testing.T) {
			wsDial(t, "ws://"+s.Addr+"/ws-open-loop", nil)
		}},
		{"wasmloop_on_ws_message", func(t *testing.T) {
			c, _ := wsDial(t, "ws://"+s.Addr+"/ws-message-loop", nil)
			if err := wsutil.WriteClientText(c, []byte("spin")); err != nil {
				t.Fatal(err)
			}
		}},
		{"wasmloop_on_ws_close", func(t *testing.T) {
			c, _ := wsDial(t, "ws://"+s.Addr+"/ws-close-loop", nil)
			c.Close()
		}},
	} {
		t.Run(c.export, func(t *testing.T) {
			stopped := s.proc.stderr.appears(c.export + " ran past its budget of 300ms")
			c.trigger(t)
			select {
			case <-stopped:
			case <-time.After(ioTimeout):
				t.Fatalf("%s was not stopped\nstderr:\n%s", c.export, s.proc.stderr)
			}
			if status, _, err := getStatus(s.Addr, "/ok", ioTimeout); err != nil || status != 200 {
				t.Fatalf("GET /ok after %s was stopped: %d, %v\nstderr:\n%s", c.export, status, err, s.proc.stderr)
			}
		})
	}
}

// Every host function given what no well-behaved guest passes — pointers and lengths past
// memory, negative values, forged, stale and wrong-kind handles (the hostile guest's /abuse,
// which calls them directly) — answers with the ABI's error code: EFAULT for memory, EINVAL
// for a bad value, EBADHANDLE for a handle. Nothing traps, the instance is not replaced, and
// another client is served throughout, with one worker and with two.
func TestHostFunctionsRefuseBadArguments(t *testing.T) {
	t.Parallel()
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverOpts{Module: "hostile", Workers: workers})
			stop := make(chan struct{})
			served := make(chan error, 1)
			go func() { // the other client: requests one after another until told to stop
				n := 0
				for {
					select {
					case <-stop:
						if n == 0 {
							served <- fmt.Errorf("no request served")
						} else {
							served <- nil
						}
						return
					default:
					}
					status, body, err := getStatus(s.Addr, "/ok", ioTimeout)
					if err != nil || status != 200 || !strings.HasPrefix(body, "ok from worker") {
						served <- fmt.Errorf("GET /ok during the abuse: %d %q %v", status, body, err)
						return
					}
					n++
				}
			}()
			for range 4 { // with two workers, both are likely to be abused
				status, body, err := getStatus(s.Addr, "/abuse", ioTimeout)
				if err != nil || status != 200 {
					t.Fatalf("GET /abuse: %d, %v\nstderr:\n%s", status, err, s.proc.stderr)
				}
				lines := strings.Split(strings.TrimSpace(body), "\n")
				if len(lines) < 42 {
					t.Fatalf("GET /abuse answered %d calls, want every host function's:\n%s", len(lines), body)
				}
				for _, line := range lines {
					name, got, _ := strings.Cut(line, " ")
					want := "-1" // EBADHANDLE
					switch {
					case strings.Contains(name, "past-memory"):
						want = "-2" // EFAULT
					case strings.Contains(name, "port") || strings.Contains(name, "address") || strings.Contains(name, "worker"):
						want = "-3" // EINVAL
					}
					if got != want {
						t.Errorf("%s returned %s, want %s", name, got, want)
					}
				}
			}
			close(stop)
			if err := <-served; err != nil {
				t.Error(err)
			}
			if log := s.proc.stderr.String(); strings.Contains(log, "replac") || strings.Contains(log, "trapped") {
				t.Errorf("an instance failed:\n%s", log)
			}
			s.proc.signal(t, syscall.SIGTERM)
			if code := s.proc.wait(t, ioTimeout); code != 0 {
				t.Errorf("exit status %d after SIGTERM, want 0\nstderr:\n%s", code, s.proc.stderr)
			}
		})
	}
}

// Start-up code that never returns is stopped by --start-budget: the process exits 1 and
// says which call ran too long.
func TestStartBudget(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ hostile, export string }{
		{"init", "_initialize"},
		{"start", "wasmloop_on_start"},
	} {
		t.Run(tt.hostile, func(t *testing.T) {
			t.Parallel()
			r := runWasmloop(t, "", 30*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1",
				"--start-budget", "300ms", "--env", "HOSTILE="+tt.hostile, wasm["hostile"])
			want := tt.export + " ran past its budget of 300ms and was stopped"
			if r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("exit status %d, want 1, and %q in stderr:\n%s", r.code, want, r.stderr)
			}
		})
	}
}

// A guest that allocates without end hits --memory-limit: its allocation fails inside the
// guest (a Go guest dies of it), the request gets 500, and a fresh instance serves the next.
// A guest that recurses without end dies of it (or of its budget) the same way. The callback
// budget is raised from 1 s: filling 64 MiB in Go's wasm code, garbage collections included,
// took longer than that once under the whole suite's load (503, the budget's answer, instead
// of running out of memory).
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "hostile", Flags: []string{"--memory-limit", "64m", "--callback-budget", "20s"}})
	if status, _, err := getStatus(s.Addr, "/alloc", 30*time.Second); err != nil || status != 500 {
		t.Fatalf("GET /alloc: %d, %v\nstderr:\n%s", status, err, s.proc.stderr)
	}
	if !strings.Contains(s.proc.stderr.String(), "out of memory") {
		t.Errorf("the guest did not run out of memory:\n%s", s.proc.stderr)
	}
	for _, path := range []string{"/recurse", "/ok"} {
		status, _, err := getStatus(s.Addr, path, 30*time.Second)
		if want := map[string]int{"/recurse": 500, "/ok": 200}[path]; err != nil || status != want && !(path == "/recurse" && status == 503) {
			t.Fatalf("GET %s: %d, %v; want %d\nstderr:\n%s", path, status, err, want, s.proc.stderr)
		}
	}
}

// A server whose listen fails (the port is taken by another program) has nothing to serve:
// the process exits 1 and names the address, instead of ending quietly with 0.
func TestListenFailureExitsNonZero(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	r := runWasmloop(t, "", 30*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1", "--env", "PORT="+port, wasm["hello"])
	want := "listen 127.0.0.1:" + port + ": address already in use"
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit status %d, want 1, and %q in stderr:\n%s", r.code, want, r.stderr)
	}
}

// An exit code outside 0–255 ends the process with 255: the OS would keep only the low byte,
// and 256 would read as success.
func TestExitCodeOutOfRange(t *testing.T) {
	t.Parallel()
	r := runWasmloop(t, "", 30*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1", "--env", "EXIT_CODE=256", wasm["exit3"])
	if r.code != 255 || !strings.Contains(r.stderr, "outside 0–255") {
		t.Errorf("exit status %d, want 255, and a message:\n%s", r.code, r.stderr)
	}
}

// A client that leaves while its response is pending (a long poll) is noticed: the guest
// hears on_close, the connection does not sit in CLOSE-WAIT, and a shutdown does not wait
// for a response nobody will read.
func TestClientLeavingPendingResponse(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--shutdown-timeout", "3s"}})
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(get("/later?ms=600000")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Whether the host read the request before or together with the EOF, the connection must
	// go: once it has, the process has nothing left but its listener, and SIGTERM ends it at
	// once with 0 rather than after the shutdown timeout with 1.
	s.proc.signal(t, syscall.SIGTERM)
	if code := s.proc.wait(t, 3*time.Second+ioTimeout); code != 0 {
		t.Errorf("exit status %d, want 0: the shutdown waited for the abandoned request\nstderr:\n%s", code, s.proc.stderr)
	}
}

// --response-timeout answers 503 for a request the guest has not begun to answer in time;
// requests it answers at once are untouched.
func TestResponseTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--response-timeout", "300ms"}})
	start := time.Now()
	status, body, err := getStatus(s.Addr, "/later?ms=600000", 30*time.Second)
	if err != nil || status != 503 || !strings.Contains(body, "did not answer in time") {
		t.Fatalf("a request never answered: %d %q, %v", status, body, err)
	}
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Errorf("answered 503 after %v, before the timeout", elapsed)
	}
	if status, _, err := getStatus(s.Addr, "/", ioTimeout); err != nil || status != 200 {
		t.Fatalf("GET /: %d, %v", status, err)
	}
}

// A guest that dies as soon as it starts is restarted with a growing delay, not in a hot
// loop, and after --max-restarts failures in a row the process gives up with status 1.
func TestCrashLoopGivesUp(t *testing.T) {
	t.Parallel()
	r := runWasmloop(t, "", 60*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1",
		"--max-restarts", "4", "--env", "HOSTILE=crashloop", "--env", "PORT=0", wasm["hostile"])
	if r.code != 1 || !strings.Contains(r.stderr, "the guest failed 5 times in a row") {
		t.Fatalf("exit status %d, want 1 and a message:\n%s", r.code, r.stderr)
	}
	for _, d := range []string{"restarting the instance in 10ms", "in 20ms", "in 40ms"} {
		if !strings.Contains(r.stderr, d) {
			t.Errorf("no %q in the log: the restarts did not back off\n%s", d, r.stderr)
		}
	}
}

// A request that crashes every fresh instance is the request's problem, not a crash loop:
// repeating it more than --max-restarts times does not stop the process.
func TestCrashingRequestsDoNotStopTheProcess(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--max-restarts", "2"}})
	for i := range 6 {
		if status, _, err := getStatus(s.Addr, "/panic", ioTimeout); err != nil || status != 500 {
			t.Fatalf("GET /panic #%d: %d, %v", i, status, err)
		}
	}
	if status, _, err := getStatus(s.Addr, "/", ioTimeout); err != nil || status != 200 {
		t.Fatalf("GET / after the crashes: %d, %v\nstderr:\n%s", status, err, s.proc.stderr)
	}
}

// With the budgets off a spinning worker cannot be stopped: SIGTERM then gives up on it after
// the shutdown timeout and exits 1, without releasing the memory the spinning call runs on
// (which crashed the host with "unexpected fault address"). GOGC=off keeps a collection from
// freezing the process meanwhile, which is what running without budgets risks.
func TestStuckWorkerAtShutdown(t *testing.T) {
	t.Parallel()
	env := requireTool(t, "env", "coreutils")
	for i := range 3 {
		s := startServer(t, serverOpts{Module: "hostile", Workers: 2, Prefix: []string{env, "GOGC=off"},
			Flags: []string{"--callback-budget", "off", "--start-budget", "off", "--shutdown-timeout", "1s"}})
		spinning := s.proc.stdout.appears("spinning in /loop")
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.send(get("/loop")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-spinning:
		case <-time.After(ioTimeout):
			t.Fatalf("the guest did not start spinning\nstderr:\n%s", s.proc.stderr)
		}
		s.proc.signal(t, syscall.SIGTERM)
		code := s.proc.wait(t, 30*time.Second)
		stderr := s.proc.stderr.String()
		if code != 1 || strings.Contains(stderr, "fault") || strings.Contains(stderr, "panic") {
			t.Fatalf("run %d: exit status %d, want 1, and no fault:\n%s", i, code, stderr)
		}
	}
}

// With the budgets on, a worker spinning in a call whose budget has not run out is stopped at
// the shutdown deadline: SIGTERM ends the process 1 s after it (exit 1, the deadline passed),
// not after the grace for stuck workers, and nothing is abandoned.
func TestSpinningWorkerStoppedAtShutdownDeadline(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "hostile", Workers: 2,
		Flags: []string{"--callback-budget", "1h", "--shutdown-timeout", "1s"}})
	spinning := s.proc.stdout.appears("spinning in /loop")
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.send(get("/loop")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-spinning:
	case <-time.After(ioTimeout):
		t.Fatalf("the guest did not start spinning\nstderr:\n%s", s.proc.stderr)
	}
	s.proc.signal(t, syscall.SIGTERM)
	code := s.proc.wait(t, 30*time.Second)
	stderr := s.proc.stderr.String()
	if code != 1 || !strings.Contains(stderr, "shutdown timed out") || strings.Contains(stderr, "did not stop") {
		t.Fatalf("exit status %d, want 1 after the deadline with no worker left behind:\n%s", code, stderr)
	}
}

// A guest memory whose address space the system refuses (ulimit -v) fails the start with a
// message that says so, instead of a nil pointer inside wazero.
func TestMemoryReservationRefused(t *testing.T) {
	t.Parallel()
	prlimit := requireTool(t, "prlimit", "util-linux")
	p := startProc(t, []string{prlimit, "--as=3000000000", "--"}, "", "run", "--cache-dir", cacheDir, "--workers", "1", "--memory-limit", "4g", "--env", "PORT=0", wasm["hello"])
	code := p.wait(t, 60*time.Second)
	if stderr := p.stderr.String(); code != 1 || !strings.Contains(stderr, "reserving 4096 MiB of address space for the guest's memory") {
		t.Fatalf("exit status %d, want 1 and a message:\n%s", code, stderr)
	}
}

// Request bodies held for clients count against one budget for the process: a request whose
// body would pass --buffer-budget is answered 503 at its head instead of growing the host, and
// what a finished or refused request held is let go for the next.
func TestBufferBudget(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--buffer-budget", "1m", "--body-limit", "1m"}})
	head := func(n int) string {
		return "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n"
	}
	held, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := held.send(head(700<<10) + strings.Repeat("a", 100<<10)); err != nil {
		t.Fatal(err)
	}
	// The first body holds 700 KiB of the 1 MiB budget; one more of 700 KiB cannot fit. One
	// worker reads the connections in order, so the first is held before the second asks.
	refused, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	if err := refused.send(head(700 << 10)); err != nil {
		t.Fatal(err)
	}
	resp, _, err := refused.readResponse("POST", ioTimeout)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("a body past the budget: %v, %v", resp, err)
	}
	if err := refused.expectEOF(ioTimeout); err != nil {
		t.Fatalf("the refused connection: %v", err)
	}
	// The first completes, and lets go of what it held.
	if err := held.send(strings.Repeat("a", 600<<10)); err != nil {
		t.Fatal(err)
	}
	if resp, body, err := held.readResponse("POST", ioTimeout); err != nil || resp.StatusCode != 200 || len(body) != 700<<10 {
		t.Fatalf("the held body: %v, %d bytes, %v", resp, len(body), err)
	}
	// Now the whole budget is free: a 1 MiB body fits.
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := strings.Repeat("b", 1<<20)
	if err := c.send(head(1<<20) + big); err != nil {
		t.Fatal(err)
	}
	if resp, body, err := c.readResponse("POST", ioTimeout); err != nil || resp.StatusCode != 200 || string(body) != big {
		t.Fatalf("a 1 MiB body after the others: %v, %d bytes, %v", resp, len(body), err)
	}
}

// A buffered body that keeps trickling in (each gap shorter than --body-timeout) still has to
// end within --body-deadline: 408.
func TestBodyDeadline(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--body-deadline", "500ms", "--body-timeout", "10s"}})
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	answered := make(chan int, 1)
	go func() {
		resp, _, err := c.readResponse("POST", 30*time.Second)
		if err != nil {
			answered <- 0
			return
		}
		answered <- resp.StatusCode
	}()
	tick := time.NewTicker(50 * time.Millisecond) // the trickle being tested: a byte per tick
	defer tick.Stop()
	for sent := 0; sent < 999; sent++ {
		select {
		case status := <-answered:
			if status != 408 {
				t.Fatalf("answered %d while the body trickled, want 408", status)
			}
			return
		case <-tick.C:
			c.send("x")
		}
	}
	t.Fatal("the trickled body was never cut off")
}

// A guest's output cannot stop its worker: with stdout a pipe nobody reads (`wasmloop run … |
// sleep 60`), a guest that logs a megabyte per request keeps answering, and SIGTERM ends the
// process at once.
func TestUnreadStdoutDoesNotStopTheWorker(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(binPath, "run", "--cache-dir", cacheDir, "--workers", "2", "--env", "PORT="+strconv.Itoa(port), wasm["hostile"])
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = w, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	// Read up to the ready line, then never again.
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "Server running") {
		t.Fatalf("ready line %q, %v\nstderr:\n%s", line, err, stderr)
	}
	for i := range 20 {
		if status, _, err := getStatus(addr, "/log", ioTimeout); err != nil || status != 200 {
			t.Fatalf("GET /log #%d with stdout unread: %d, %v\nstderr:\n%s", i, status, err, stderr)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("after SIGTERM: %v\nstderr:\n%s", waitErr, stderr)
		}
	case <-time.After(ioTimeout):
		t.Fatalf("SIGTERM did not end the process with its stdout unread\nstderr:\n%s", stderr)
	}
}

// A guest that starts a hundred thousand timers gets --max-timers of them; the worker stays
// as it was and keeps serving.
func TestTimerFlood(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "hostile", Workers: 2, Flags: []string{"--max-timers", "1000"}})
	for range 4 {
		if status, _, err := getStatus(s.Addr, "/timers", 30*time.Second); err != nil || status != 200 {
			t.Fatalf("GET /timers: %d, %v\nstderr:\n%s", status, err, s.proc.stderr)
		}
	}
	for range 10 {
		if status, _, err := getStatus(s.Addr, "/ok", ioTimeout); err != nil || status != 200 {
			t.Fatalf("GET /ok after the flood: %d, %v", status, err)
		}
	}
}
