package tests

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTrapRecovery panics the only instance and checks that a fresh one replaces it.
func TestTrapRecovery(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "whoami"})

	// A: an idle keep-alive connection opened before the crash.
	a, resp, body := rawRequest(t, s.Addr, get("/"))
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "worker 0 of 1, request 1 ") {
		t.Fatalf("A before the panic: status %d body %q", resp.StatusCode, body)
	}

	// B: the request that panics gets a 500, and B is closed.
	b, resp, _ := rawRequest(t, s.Addr, get("/panic"))
	if resp.StatusCode != 500 {
		t.Errorf("GET /panic: status %d, want 500", resp.StatusCode)
	}
	if err := b.expectEOF(ioTimeout); err != nil {
		t.Errorf("B after the 500: %v", err)
	}

	// A new connection is served by a fresh instance: whoami's per-instance counter
	// starts again at 1.
	_, resp, body = rawRequest(t, s.Addr, get("/"))
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "worker 0 of 1, request 1 ") {
		t.Errorf("new connection after the panic: status %d body %q, want the first request of a fresh instance", resp.StatusCode, body)
	}

	// ABI.md §2: only the requests the dead instance was handling are failed; an idle
	// keep-alive connection is not one of them, and the new instance takes over the
	// listener, so A must still be served (by the new instance: its second request).
	resp, body, err := a.roundTrip(get("/"))
	switch {
	case err != nil:
		t.Errorf("HOST BUG? idle keep-alive connection A after the instance was replaced: %v", err)
	case resp.StatusCode != 200 || !strings.HasPrefix(string(body), "worker 0 of 1, request 2 "):
		t.Errorf("HOST BUG: idle keep-alive connection A after the instance was replaced: status %d body %q, "+
			"want 200 from the new instance (ABI.md §2: idle connections survive a replacement)", resp.StatusCode, body)
	}

	// The host's log goes out through a buffer of its own: wait for the lines, bounded.
	for _, want := range []string{"panic: asked to panic", "replaced"} {
		select {
		case <-s.stderr.appears(want):
		case <-time.After(ioTimeout):
			t.Errorf("stderr does not mention %q:\n%s", want, s.stderr.String())
		}
	}
}

// TestExitWhenIdle: samples/timers prints three ticks and exits 0 by itself.
func TestExitWhenIdle(t *testing.T) {
	t.Parallel()
	r := runWasmloop(t, "", 20*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1", wasm["timers"])
	if r.code != 0 {
		t.Errorf("exit status %d, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Errorf("stdout has %d lines, want 3:\n%s", len(lines), r.stdout)
	}
	for i, l := range lines {
		if want := "tick " + string(rune('1'+i)) + " at "; !strings.HasPrefix(l, want) {
			t.Errorf("line %d is %q, want prefix %q", i+1, l, want)
		}
	}
	if r.elapsed < 300*time.Millisecond {
		t.Errorf("exited after %v: three 100 ms ticks take at least 300 ms", r.elapsed)
	}
	if r.elapsed >= 20*time.Second {
		t.Errorf("exited after %v", r.elapsed)
	}
}

// TestGracefulShutdown sends SIGTERM with a request in flight.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()

	t.Run("in-flight response finishes", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--shutdown-timeout", "10s"}})
		idle, inflight := startInFlight(t, s, "/later?ms=1500")
		s.signal(t, syscall.SIGTERM)

		// The idle keep-alive connection is closed at once.
		if err := idle.expectEOF(ioTimeout); err != nil {
			t.Errorf("idle keep-alive connection at SIGTERM: %v", err)
		}
		// Its close shows the drain has begun (and the one worker's listener is closed):
		// a new connection must be refused or get no response.
		if c, err := dialRaw(s.Addr); err != nil {
			t.Logf("a new connection after SIGTERM: %v", err)
		} else {
			resp, _, err := c.roundTrip(get("/"))
			c.Close()
			if err == nil {
				t.Errorf("a new connection after SIGTERM was answered %d, want refused or no response", resp.StatusCode)
			} else {
				t.Logf("a new connection after SIGTERM was accepted but not answered: %v", err)
			}
		}

		resp, body, err := inflight.readResponse("GET", ioTimeout)
		if err != nil {
			t.Fatalf("in-flight response: %v", err)
		}
		if resp.StatusCode != 200 || string(body) != "worker 0 later\n" {
			t.Errorf("in-flight response: status %d body %q", resp.StatusCode, body)
		}
		if code := s.wait(t, 15*time.Second); code != 0 {
			t.Errorf("exit status %d after a graceful shutdown, want 0", code)
		}
	})

	t.Run("shutdown timeout", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--shutdown-timeout", "500ms"}})
		_, inflight := startInFlight(t, s, "/later?ms=5000")
		s.signal(t, syscall.SIGTERM)
		sent := time.Now()
		code := s.wait(t, 5*time.Second)
		if code == 0 {
			t.Errorf("exit status 0 after the shutdown timed out, want non-zero (ABI.md §6: 1)")
		}
		t.Logf("exited %d after %v", code, time.Since(sent).Round(time.Millisecond))
		if resp, _, err := inflight.readResponse("GET", ioTimeout); err == nil {
			t.Errorf("the abandoned request got a complete %d response", resp.StatusCode)
		}
	})
}

// startInFlight opens an idle keep-alive connection, then sends GET path on a second one,
// and returns once the guest has taken that request (so it is in flight, not merely in a
// socket buffer). No event says so from outside: the idle connection polls GET / on whoami,
// which counts requests per instance, until the count shows one request more than its own.
func startInFlight(t *testing.T, s *server, path string) (idle, inflight *rawConn) {
	t.Helper()
	idle, resp, _ := rawRequest(t, s.Addr, get("/"))
	if resp.StatusCode != 200 {
		t.Fatalf("idle connection's first request: %d", resp.StatusCode)
	}
	inflight, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inflight.Close() })
	if err := inflight.send(get(path)); err != nil {
		t.Fatal(err)
	}
	mine := 1 // the idle connection's requests so far
	if !eventually(ioTimeout, func() bool {
		mine++
		resp, body, err := idle.roundTrip(get("/"))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("polling on the idle connection: %v", err)
		}
		// "worker 0 of 1, request N on this instance": N counts the in-flight request too
		// once the guest has it.
		return strings.Contains(string(body), fmt.Sprintf(", request %d ", mine+1))
	}) {
		t.Fatalf("the guest never took %s", path)
	}
	return idle, inflight
}

// TestRefusedModules: a file that is not a wasmloop guest is refused with status 2 and a
// one-line reason.
func TestRefusedModules(t *testing.T) {
	t.Parallel()
	text := filepath.Join(t.TempDir(), "notes.wasm")
	if err := os.WriteFile(text, []byte("this is a text file, not WebAssembly\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// 30 bytes declaring 2^32-16 locals: wazero would allocate 64 GiB for them and the process
	// would die of it.
	bomb := filepath.Join(t.TempDir(), "bomb.wasm")
	if err := os.WriteFile(bomb, []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0,
		10, 10, 1, 8, 1, 0xf0, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b}, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		module string
		code   int      // -1: any non-zero
		want   []string // in the message
	}{
		{"export with the wrong signature", wasm["badexport"], 2, []string{"wasmloop_on_request", "wrong signature"}},
		{"allocation bomb", bomb, 2, []string{"invalid WebAssembly module", "locals"}},
		{"text file", text, 2, []string{"not a WebAssembly module"}},
		{"Go reactor without the SDK", wasm["plain"], 2, []string{"wasmloop_abi_v1"}},
		{"WASI command", wasm["hello-command"], 2, []string{"command", "c-shared"}},
		{"nonexistent path", filepath.Join(t.TempDir(), "missing.wasm"), -1, []string{"missing.wasm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runWasmloop(t, "", 30*time.Second, "run", "--cache-dir", cacheDir, tt.module)
			if tt.code >= 0 && r.code != tt.code || tt.code < 0 && r.code == 0 {
				t.Errorf("exit status %d, want %d (-1: non-zero)", r.code, tt.code)
			}
			msg := strings.TrimSuffix(r.stderr, "\n")
			if msg == "" || strings.Contains(msg, "\n") {
				t.Errorf("want a one-line message on stderr, got %q", r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not mention %q", msg, w)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

// TestCLI checks usage, help and version.
func TestCLI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		want *regexp.Regexp // matched against stdout+stderr
	}{
		{"no arguments", nil, 2, regexp.MustCompile(`Usage:\s+wasmloop run`)},
		{"help", []string{"help"}, 0, regexp.MustCompile(`Usage:\s+wasmloop run`)},
		{"-h", []string{"-h"}, 0, regexp.MustCompile(`Usage:\s+wasmloop run`)},
		{"--help", []string{"--help"}, 0, regexp.MustCompile(`Usage:\s+wasmloop run`)},
		{"help run", []string{"help", "run"}, 0, regexp.MustCompile(`(?s)Usage: wasmloop run.*-workers`)},
		{"run -h", []string{"run", "-h"}, 0, regexp.MustCompile(`(?s)Usage: wasmloop run.*-shutdown-timeout.*-workers`)},
		{"version", []string{"version"}, 0, regexp.MustCompile(`^wasmloop \S+ \(ABI v1\.\d+, go\S+ \w+/\w+\)\n$`)},
		{"unknown command", []string{"frobnicate"}, 2, regexp.MustCompile(`unknown command "frobnicate"`)},
		{"run without a module", []string{"run"}, 2, regexp.MustCompile(`want exactly one module`)},
		{"run --workers -1", []string{"run", "--workers", "-1", "x.wasm"}, 2, regexp.MustCompile(`invalid value "-1" for flag -workers`)},
		{"run with an unknown flag", []string{"run", "--no-such-flag", "x.wasm"}, 2, regexp.MustCompile(`no-such-flag`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runWasmloop(t, "", 10*time.Second, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit status %d, want %d", r.code, tt.code)
			}
			if out := r.stdout + r.stderr; !tt.want.MatchString(out) {
				t.Errorf("output does not match %v:\n%s", tt.want, out)
			}
		})
	}
}

// TestRunDirectory: 'wasmloop run ./samples/hello' builds the package like go run, and a
// second start reuses the cached build.
func TestRunDirectory(t *testing.T) {
	t.Parallel()
	c2 := filepath.Join(t.TempDir(), "c2")
	builtModules := func() []string {
		var found []string
		filepath.WalkDir(c2, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".wasm") {
				found = append(found, path)
			}
			return nil
		})
		return found
	}
	var firstMod time.Time
	for run := 1; run <= 2; run++ {
		// The ready line comes after go list, go build and a cold compile (c2 is a fresh
		// cache), so this start gets more than the usual 30 s on a loaded machine.
		s := startServer(t, serverOpts{Module: "./samples/hello", Dir: repoRoot, Flags: []string{"--cache-dir", c2}, StartTimeout: 90 * time.Second})
		_, resp, body := rawRequest(t, s.Addr, get("/"))
		if resp.StatusCode != 200 || string(body) != helloBody {
			t.Errorf("run %d: status %d body %q", run, resp.StatusCode, body)
		}
		s.signal(t, syscall.SIGTERM)
		if code := s.wait(t, 15*time.Second); code != 0 {
			t.Errorf("run %d: exit status %d after SIGTERM, want 0", run, code)
		}
		mods := builtModules()
		if len(mods) != 1 {
			t.Fatalf("after run %d the cache holds %d built modules, want 1: %v", run, len(mods), mods)
		}
		st, err := os.Stat(mods[0])
		if err != nil {
			t.Fatal(err)
		}
		if run == 1 {
			firstMod = st.ModTime()
		} else if !st.ModTime().Equal(firstMod) {
			t.Errorf("the second run rebuilt the module (modified %v, first built %v)", st.ModTime(), firstMod)
		}
	}
}

// TestGuestExitCodes: a guest's own exit status reaches the shell, and a panic in its
// top-level code fails the process.
func TestGuestExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		guest  string
		code   int // -1: any non-zero
		stderr string
	}{
		{"exit3", 3, ""},
		{"osexit", 5, ""},
		{"panicmain", -1, "top-level boom from panicmain"},
	}
	for _, tt := range tests {
		t.Run(tt.guest, func(t *testing.T) {
			t.Parallel()
			r := runWasmloop(t, "", 30*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1", wasm[tt.guest])
			if tt.code >= 0 && r.code != tt.code || tt.code < 0 && r.code <= 0 {
				t.Errorf("exit status %d, want %d (-1: non-zero)\nstderr:\n%s", r.code, tt.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, r.stderr)
			}
		})
	}
}

// TestAcceptBackoff runs whoami with 64 descriptors: once accept fails with EMFILE the
// host must keep serving the connections it has and recover when descriptors free up.
func TestAcceptBackoff(t *testing.T) {
	t.Parallel()
	prlimit := requireTool(t, "prlimit", "util-linux")
	s := startServer(t, serverOpts{Module: "whoami", Prefix: []string{prlimit, "--nofile=64:64", "--"}})

	var served []*rawConn
	var stuck *rawConn
	defer func() {
		for _, c := range served {
			c.Close()
		}
		if stuck != nil {
			stuck.Close()
		}
	}()
	for i := 0; i < 100 && stuck == nil; i++ {
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if err := c.send(get("/")); err != nil {
			c.Close()
			t.Fatalf("conn %d: %v", i, err)
		}
		resp, _, err := c.readResponse("GET", 1500*time.Millisecond)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			// Either the host is out of descriptors (the kernel accepted the connection
			// but the host cannot), or the machine is merely slow: the host says which.
			if eventually(3*time.Second, func() bool { return strings.Contains(s.stderr.String(), "backing off") }) {
				stuck = c
				break
			}
			resp, _, err = c.readResponse("GET", ioTimeout)
		}
		if err != nil || resp.StatusCode != 200 {
			c.Close()
			t.Fatalf("conn %d: %v (status %v)", i, err, resp)
		}
		served = append(served, c)
	}
	if stuck == nil {
		t.Fatalf("100 connections were all served under a 64-descriptor limit: EMFILE never happened")
	}
	if len(served) == 0 {
		t.Fatalf("no connection was served at all")
	}
	t.Logf("%d connections served before accept ran out of descriptors", len(served))

	// Established connections are still served.
	for _, i := range []int{0, len(served) - 1} {
		resp, body, err := served[i].roundTrip(get("/"))
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("established connection %d while out of descriptors: %v %q", i, err, body)
		}
	}
	if !eventually(5*time.Second, func() bool { return strings.Contains(s.stderr.String(), "backing off") }) {
		t.Errorf("stderr does not mention accept backing off:\n%s", s.stderr)
	}

	// Free some descriptors: the listener must recover. The stuck connection's request is
	// answered too once it is accepted.
	for _, c := range served[len(served)-5:] {
		c.Close()
	}
	served = served[:len(served)-5]
	resp, body, err := stuck.readResponse("GET", ioTimeout)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("the waiting connection after descriptors were freed: %v %q", err, body)
	}
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatalf("new connection after recovery: %v", err)
	}
	defer c.Close()
	resp, body, err = c.roundTrip(get("/"))
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("new connection after descriptors were freed: %v %q", err, body)
	}
}
