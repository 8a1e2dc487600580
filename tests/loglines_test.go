package tests

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"startfail", "./tests/testdata/guests/startfail", true})
}

// Every line the host prints is printed once, and a guest's status is told as what it is.

// assertOnce fails unless stderr holds text exactly once.
func assertOnce(t *testing.T, stderr, text string) {
	t.Helper()
	if n := strings.Count(stderr, text); n != 1 {
		t.Errorf("%q is printed %d times, want once:\n%s", text, n, stderr)
	}
}

// A shutdown that times out says so once (the host logged it and the command printed the
// error Run returned: twice).
func TestLogShutdownTimeoutOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--shutdown-timeout", "300ms"}})
	startInFlight(t, s, "/later?ms=5000")
	s.signal(t, syscall.SIGTERM)
	if code := s.wait(t, 10*time.Second); code != 1 {
		t.Errorf("exit status %d after the shutdown timed out, want 1", code)
	}
	assertOnce(t, s.stderr.String(), "shutdown timed out; open connections were closed")
}

// A program that could not listen ends with one line saying it had nothing to serve.
func TestLogNothingToServeOnce(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	r := runWasmloop(t, "", 30*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1", "--env", "PORT="+port, wasm["hello"])
	if r.code != 1 {
		t.Errorf("exit status %d, want 1", r.code)
	}
	assertOnce(t, r.stderr, "the program ended with nothing to serve")
}

// wasmloop_on_start returning 1 is the program's failure status, not "wasmloop errno 1".
func TestLogStartStatus(t *testing.T) {
	t.Parallel()
	r := runWasmloop(t, "", 30*time.Second, "run", "--cache-dir", cacheDir, wasm["startfail"])
	if r.code != 1 {
		t.Errorf("exit status %d, want 1", r.code)
	}
	assertOnce(t, r.stderr, "wasmloop_on_start failed with status 1 (the program's start-up failed)")
	if strings.Contains(r.stderr, "errno") {
		t.Errorf("a raw errno in the output:\n%s", r.stderr)
	}
	assertOnce(t, r.stderr, "wasmloop_on_start")
}
