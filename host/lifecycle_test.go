package host_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

func load(t *testing.T, path string, cfg host.Config) *host.App {
	t.Helper()
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CacheDir = cacheDir
	app, err := host.Load(context.Background(), wasm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// settleGoroutines fails the test unless the goroutine count comes back to at most
// base+slack within 20 s: what an App started must end with it.
func settleGoroutines(t *testing.T, base, slack int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > base+slack && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > base+slack {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", base, n, buf[:runtime.Stack(buf, true)])
	}
}

// Start returns when every worker has started, Addrs gives the port the kernel chose for a
// listen on port 0, Shutdown ends the program gracefully, and the App can start it again.
func TestStartAddrsShutdown(t *testing.T) {
	ctx := context.Background()
	app := load(t, whoamiWasm, host.Config{Workers: 2, Env: []string{"PORT=0"}, Stdout: io.Discard, Stderr: io.Discard})
	defer app.Close(ctx)
	if _, err := app.Wait(); !errors.Is(err, host.ErrNotRunning) {
		t.Errorf("Wait before Start = %v, want ErrNotRunning", err)
	}
	for run := range 2 {
		if err := app.Start(ctx); err != nil {
			t.Fatalf("run %d: Start: %v", run, err)
		}
		if err := app.Start(ctx); !errors.Is(err, host.ErrRunning) {
			t.Errorf("run %d: a second Start = %v, want ErrRunning", run, err)
		}
		addrs := app.Addrs()
		if len(addrs) != 1 {
			t.Fatalf("run %d: Addrs = %v, want one address", run, addrs)
		}
		a := addrs[0].(*net.TCPAddr)
		if !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port == 0 {
			t.Fatalf("run %d: Addrs = %v, want 127.0.0.1 and the port the kernel chose", run, a)
		}
		// Every worker has started: each answers on the one port (SO_REUSEPORT, or the
		// handoff), so over enough connections both are seen.
		seen := map[string]bool{}
		for i := 0; i < 64 && len(seen) < 2; i++ {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get("http://" + a.String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			seen[resp.Header.Get("X-Worker")] = true
			resp.Body.Close()
		}
		if len(seen) != 2 {
			t.Errorf("run %d: workers seen over 64 connections: %v, want both", run, seen)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := app.Shutdown(sctx); err != nil {
			t.Fatalf("run %d: Shutdown: %v", run, err)
		}
		cancel()
		if code, err := app.Wait(); code != 0 || err != nil {
			t.Errorf("run %d: Wait after Shutdown = %d, %v; want 0, nil", run, code, err)
		}
		if addrs := app.Addrs(); len(addrs) != 0 {
			t.Errorf("run %d: Addrs after Shutdown = %v", run, addrs)
		}
		if _, err := net.Dial("tcp", a.String()); err == nil {
			t.Errorf("run %d: %v still accepts after Shutdown", run, a)
		}
	}
}

// A start-up that fails makes Start fail, with the program stopped.
func TestStartFails(t *testing.T) {
	ctx := context.Background()
	app := load(t, hostileWasm, host.Config{Workers: 1, Env: []string{"HOSTILE=start", "PORT=0"},
		StartBudget: 100 * time.Millisecond, Stdout: io.Discard, Stderr: io.Discard})
	defer app.Close(ctx)
	err := app.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("Start = %v, want the start-up budget's error", err)
	}
	if code, _ := app.Wait(); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if len(app.Addrs()) != 0 {
		t.Errorf("Addrs after a failed start: %v", app.Addrs())
	}
}

// Start's context bounds the wait for the start-up: when it ends first, the program is stopped.
func TestStartContextEnds(t *testing.T) {
	ctx := context.Background()
	app := load(t, hostileWasm, host.Config{Workers: 1, Env: []string{"HOSTILE=start", "PORT=0"},
		StartBudget: time.Hour, Stdout: io.Discard, Stderr: io.Discard})
	defer app.Close(ctx)
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := app.Start(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want context.DeadlineExceeded", err)
	}
	// The program is over: Shutdown returns at once.
	if err := app.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown after the stopped start = %v", err)
	}
}

// A program that ends by itself during start-up (a script) makes Start return nil; Wait
// gives its exit status.
func TestStartOfAScript(t *testing.T) {
	ctx := context.Background()
	app := load(t, greetWasm, host.Config{Workers: 1, Env: []string{"NAME=script"}, Stdout: io.Discard})
	defer app.Close(ctx)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if code, err := app.Wait(); code != 0 || err != nil {
		t.Errorf("Wait = %d, %v; want 0, nil", code, err)
	}
}

// Close while a program serves shuts it down, answering the request in progress.
func TestCloseWhileServing(t *testing.T) {
	ctx := context.Background()
	logs, stdout := io.Pipe()
	lines := bufio.NewScanner(logs)
	app := load(t, greetWasm, host.Config{Workers: 1, Env: []string{"PORT=0", "NAME=closing"}, Stdout: stdout})
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	url := "http://" + app.Addrs()[0].String() + "/later?ms=200"
	answered := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			answered <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- string(b)
	}()
	for lines.Scan() && lines.Text() != "request /later" { // the guest has the request
	}
	go io.Copy(io.Discard, logs)
	if err := app.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-answered; got != "hello, closing\n" {
		t.Errorf("the request in flight at Close got %q, want its answer", got)
	}
}

// Each worker's output can go to a destination of its own.
func TestWorkerOutput(t *testing.T) {
	ctx := context.Background()
	var lines [2]*bufio.Scanner
	var writers [2]*io.PipeWriter
	for w := range 2 {
		r, wr := io.Pipe()
		lines[w], writers[w] = bufio.NewScanner(r), wr
	}
	app := load(t, greetWasm, host.Config{Workers: 2, KeepAlive: true, Env: []string{"NAME=worker"},
		WorkerOutput: func(worker int) (io.Writer, io.Writer) { return writers[worker], nil }})
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Every worker runs the program (KeepAlive), whose timer greets on its own output.
	for w := range 2 {
		if !lines[w].Scan() || lines[w].Text() != "hello, worker" {
			t.Errorf("worker %d's output: %q, %v", w, lines[w].Text(), lines[w].Err())
		}
	}
	for w := range 2 { // Close flushes the output: keep reading what may follow
		go func() {
			for lines[w].Scan() {
			}
		}()
	}
	app.Close(ctx)
	for _, w := range writers {
		w.Close()
	}
}

// An App dropped without Close, its program ended, leaks nothing but itself: the collector
// releases its runtime.
func TestForgottenAppIsReleased(t *testing.T) {
	released := make(chan struct{}, 1)
	host.OnForgottenRelease(func() { released <- struct{}{} })
	defer host.OnForgottenRelease(nil)
	func() {
		app := load(t, greetWasm, host.Config{Workers: 1, Env: []string{"NAME=forgotten"}, Stdout: io.Discard})
		code, err := app.Run(context.Background())
		if code != 0 || err != nil {
			t.Fatalf("Run = %d, %v", code, err)
		}
	}()
	for range 100 { // each collection may find it; the cleanup runs after one has
		runtime.GC()
		select {
		case <-released:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("the collector never released the forgotten App's runtime")
}

// recordHandler hands every record's attributes to a channel.
type recordHandler struct{ records chan map[string]string }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recordHandler) WithGroup(string) slog.Handler            { return h }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	select {
	case h.records <- attrs:
	default:
	}
	return nil
}

// Config.Logger gets the host's messages as records: a guest that crashes while answering a
// request is logged with the worker and the request.
func TestLoggerRecords(t *testing.T) {
	records := make(chan map[string]string, 16)
	_, url := mounted(t, whoamiWasm, host.Config{Workers: 1, Logger: slog.New(recordHandler{records})})
	resp, err := http.Get(url + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("GET /panic = %d, want 500", resp.StatusCode)
	}
	deadline := time.After(30 * time.Second) // a bound on a failure, not a synchronisation
	for {
		select {
		case rec := <-records:
			if rec["request"] == "" {
				continue
			}
			if rec["worker"] != "0" || !strings.Contains(rec["msg"], "panic") && !strings.Contains(rec["msg"], "died") {
				t.Errorf("the crash's record: %v", rec)
			}
			return
		case <-deadline:
			t.Fatal("no record of the crash with its request")
		}
	}
}
