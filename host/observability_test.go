package host_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmloop/wasmloop/host"
)

// --log-level filters the host's own messages (README): the guest's output is not a log
// record of the host's and must not disappear because the level is warn. In text mode it is
// kept; in JSON mode every guest line is dropped.
func TestJSONLogLevelKeepsGuestOutput(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var stdout watchedWriter
			app := load(t, greetWasm, host.Config{Workers: 1, Env: []string{"NAME=review"}, Stdout: &stdout, Stderr: io.Discard,
				LogFormat: format, LogLevel: slog.LevelWarn})
			defer app.Close(context.Background())
			if code, err := app.Run(context.Background()); code != 0 || err != nil {
				t.Fatalf("run: %d %v", code, err)
			}
			if !strings.Contains(stdout.String(), "hello, review") {
				t.Fatalf("the guest's line is gone with --log-level warn; stdout: %q", stdout.String())
			}
		})
	}
}

// liveUntil checks Live every 50 ms until done is closed, failing the test at the first error,
// and returns how long it checked.
func liveUntil(t *testing.T, app *host.App, done, shutDown <-chan struct{}) time.Duration {
	t.Helper()
	began := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return time.Since(began)
		case <-tick.C:
			err := app.Live()
			if err == nil {
				continue
			}
			// A drain that ended ends the program: the last response can be out before its
			// client has read it and said so (done). Shutdown's return confirms it.
			if errors.Is(err, host.ErrNotRunning) && shutDown != nil {
				select {
				case <-shutDown:
					return time.Since(began)
				case <-time.After(10 * time.Second):
				}
			}
			t.Fatalf("Live after %v: %v", time.Since(began).Round(time.Millisecond), err)
		}
	}
}

// Live stays satisfied while a worker is in a guest call that is within its (configured)
// budget: the host stops it at the budget and answers 503 itself; a liveness failure there
// makes an orchestrator restart the whole process.
func TestLiveDuringBudgetedCall(t *testing.T) {
	app, url := mounted(t, hostileWasm, host.Config{Workers: 1, CallbackBudget: 4 * time.Second})
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(url + "/loop")
		if err == nil {
			resp.Body.Close()
		}
	}()
	// The call loops until its budget stops it, 4 s in: well past StuckAfter.
	if d := liveUntil(t, app, done, nil); d < 2*host.StuckAfter {
		t.Fatalf("the call ended after %v, before it could look stuck", d)
	}
}

// A worker whose loop has ended (here: nothing left to drain on it while another worker still
// answers a request) is not stuck.
func TestLiveAfterAWorkerFinishedDraining(t *testing.T) {
	var stdout watchedWriter
	app, url := mounted(t, greetWasm, host.Config{Workers: 2, ShutdownTimeout: 20 * time.Second, Stdout: &stdout})
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(url + "/slow?ms=4000")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	select {
	case <-stdout.appears("request /slow"): // the guest logs each request
	case <-time.After(10 * time.Second):
		t.Fatalf("the request never reached the guest; stdout: %q", stdout.String())
	}
	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		app.Shutdown(context.Background())
	}()
	// The idle worker's loop ends at once; the other drains the 4 s request.
	if d := liveUntil(t, app, done, shutDown); d < 2*host.StuckAfter {
		t.Fatalf("the drain ended after %v, before an ended worker could look stuck", d)
	}
}

// A request stopped past its budget (503) took its budget: the request-duration histogram
// records about that, not ~0.
func TestBudget503Duration(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, url := mounted(t, hostileWasm, host.Config{Workers: 1, CallbackBudget: 500 * time.Millisecond, Metrics: reg})
	resp, err := http.Get(url + "/loop")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wasmloop_request_duration_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 1 || h.GetSampleSum() < 0.5 {
			t.Fatalf("request duration: %d samples summing to %vs, want 1 of at least 0.5s", h.GetSampleCount(), h.GetSampleSum())
		}
		return
	}
	t.Fatal("no request duration")
}
