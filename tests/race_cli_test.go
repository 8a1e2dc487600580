package tests

// The wasmloop binary itself under Go's race detector. Package host's tests run with -race,
// but the CLI's own goroutines — the workers of a group and the accept hand-off between
// them, dials and file operations completing from goroutines, signals (a swap, a graceful
// shutdown), the admin endpoints reading the workers' counters — meet only in a running
// process under traffic. Building every e2e server with -race would cost the tests package
// about three times its time (18 minutes instead of 6, measured 2026-12-06, with no race
// found) and make its timing-bound tests miss; this one test runs a race-built binary
// through all of those at once instead.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// raceStartTimeout bounds a race-built server's start: its host code runs several times
// slower, and it compiles its guest cold (the shared compile cache is the other binary's).
const raceStartTimeout = 2 * time.Minute

func TestRaceBuiltCLIUnderTraffic(t *testing.T) {
	if raceBinPath == "" {
		t.Skip("the tests run without -race, so no race-built wasmloop was made (go test -race, as CI runs them)")
	}
	t.Parallel()
	t.Run("proxy", raceProxy)
	t.Run("files", raceFiles)
}

// raceProxy: samples/proxy on two workers in front of a Go upstream, with the admin
// endpoints scraped, two swaps (SIGHUP) under load and a graceful shutdown (SIGTERM) at
// the end.
func raceProxy(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, n)
	}))
	defer up.Close()
	upAddr := up.Listener.Addr().String()
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s := startServer(t, serverOpts{Module: "proxy", Workers: 2, Binary: raceBinPath, StartTimeout: raceStartTimeout,
		Flags: []string{"--env", "UPSTREAM=http://" + upAddr, "--allow-connect", upAddr, "--admin", adminAddr, "--access-log"}})

	const clients, requests = 6, 40
	body := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB: streamed both ways
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := client(&http.Transport{DisableKeepAlives: c%2 == 0}) // new connections: the workers' accepts
			for i := range requests {
				path := fmt.Sprintf("/c%d/r%d", c, i)
				var resp *http.Response
				var err error
				want := "GET " + path + " 0"
				if i%2 == 1 {
					resp, err = hc.Post(s.URL(path), "application/octet-stream", bytes.NewReader(body))
					want = "POST " + path + " " + strconv.Itoa(len(body))
				} else {
					resp, err = hc.Get(s.URL(path))
				}
				if err != nil {
					fail("%s: %v", path, err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(got) != want {
					fail("%s: %d %q %v, want 200 %q", path, resp.StatusCode, got, err, want)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the admin endpoints read what the workers count, meanwhile
		defer wg.Done()
		hc := client(nil)
		for range 20 {
			for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
				resp, err := hc.Get("http://" + adminAddr + path)
				if err != nil {
					fail("admin %s: %v", path, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	for range 2 { // swaps under load: each worker's instance replaced while requests flow
		reloaded := s.stderr.appears("wasmloop: reloaded")
		s.signal(t, syscall.SIGHUP)
		select {
		case <-reloaded:
		case <-time.After(raceStartTimeout):
			t.Fatalf("no reload\nstderr:\n%s", s.stderr)
		}
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	raceEnd(t, s)
}

// raceFiles: the files guest's script of file operations (each completes from the host's
// pool of goroutines, one in the callback of the one before) on fresh connections, so on
// both workers, while other clients ask for refused ones; then a graceful shutdown.
func raceFiles(t *testing.T) {
	data, ro := t.TempDir(), t.TempDir()
	write(t, filepath.Join(data, "config.txt"), "answer=42")
	write(t, filepath.Join(ro, "readme.txt"), "read me")
	s := startServer(t, serverOpts{Module: "files", Workers: 2, Binary: raceBinPath, StartTimeout: raceStartTimeout,
		Flags: []string{"--dir", data + ":/data", "--dir", ro + ":/ro:ro"}})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := client(&http.Transport{DisableKeepAlives: true})
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := hc.Get(s.URL("/ro"))
				if err != nil {
					t.Errorf("/ro: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	hc := client(&http.Transport{DisableKeepAlives: true})
	for i := range 6 { // one at a time: the script works in one directory
		_, body := httpGet(t, hc, s.URL("/run"))
		if !strings.Contains(string(body), "6: ok hello, world") || strings.Contains(string(body), "inside") {
			t.Errorf("/run %d: %q", i, body)
		}
	}
	close(stop)
	wg.Wait()
	raceEnd(t, s)
}

// raceEnd shuts s down gracefully and fails the test if its race detector spoke: it prints
// "WARNING: DATA RACE" and makes the exit status 66.
func raceEnd(t *testing.T, s *server) {
	t.Helper()
	s.signal(t, syscall.SIGTERM)
	code := s.wait(t, raceStartTimeout)
	if strings.Contains(s.stderr.String(), "WARNING: DATA RACE") || code != 0 {
		t.Errorf("the race-built wasmloop exited %d; stderr:\n%s", code, s.stderr)
	}
}
