package host_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmloop/wasmloop/host"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// --log-level filters the host's own messages (README): the guest's output is not a log
// record of the host's and must not disappear because the level is warn. In text mode it is
// kept; in JSON mode every guest line is dropped.
func TestJSONLogLevelKeepsGuestOutput(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var stdout lockedBuf
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

// Live stays satisfied while a worker is in a guest call that is within its (configured)
// budget: the host stops it at the budget and answers 503 itself; a liveness failure there
// makes an orchestrator restart the whole process.
func TestLiveDuringBudgetedCall(t *testing.T) {
	app, url := mounted(t, hostileWasm, host.Config{Workers: 1, CallbackBudget: 4 * time.Second})
	go func() {
		resp, err := http.Get(url + "/loop")
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(2 * time.Second) // inside the call, half its budget
	if err := app.Live(); err != nil {
		t.Fatalf("Live during a call within its 4s budget: %v", err)
	}
}

// A worker whose loop has ended (here: nothing left to drain on it while another worker still
// answers a request) is not stuck.
func TestLiveAfterAWorkerFinishedDraining(t *testing.T) {
	app, url := mounted(t, greetWasm, host.Config{Workers: 2, ShutdownTimeout: 20 * time.Second})
	go func() {
		resp, err := http.Get(url + "/slow?ms=4000")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	time.Sleep(500 * time.Millisecond)
	go app.Shutdown(context.Background())
	time.Sleep(2500 * time.Millisecond) // the idle worker's loop has ended; the other drains
	if err := app.Live(); err != nil {
		t.Fatalf("Live while draining: %v", err)
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
