package host_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// watchedWriter collects output and tells when a text has appeared in it.
type watchedWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	waits map[string]chan struct{}
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for text, ch := range w.waits {
		if bytes.Contains(w.buf.Bytes(), []byte(text)) {
			close(ch)
			delete(w.waits, text)
		}
	}
	return len(p), nil
}

// appears returns a channel closed once text has been written.
func (w *watchedWriter) appears(text string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if bytes.Contains(w.buf.Bytes(), []byte(text)) {
		close(ch)
		return ch
	}
	if w.waits == nil {
		w.waits = map[string]chan struct{}{}
	}
	w.waits[text] = ch
	return ch
}

func (w *watchedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// running is an App serving hostile on a port of its own, run by startHostile.
type running struct {
	app       *host.App
	port      int
	out, logs *watchedWriter
	stop      context.CancelFunc
	ran       chan int // Run's status, once it returns
}

// startHostile loads the hostile guest with cfg (its port, output and log set here), runs it
// and returns once it serves. The test's cleanup stops and closes it.
func startHostile(t testing.TB, cfg host.Config) *running {
	t.Helper()
	wasm, err := os.ReadFile(hostileWasm)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &running{port: probe.Addr().(*net.TCPAddr).Port, out: &watchedWriter{}, logs: &watchedWriter{}, ran: make(chan int, 1)}
	probe.Close()
	cfg.Env = append(cfg.Env, "PORT="+strconv.Itoa(r.port))
	cfg.Stdout, cfg.Stderr, cfg.Log, cfg.CacheDir = r.out, io.Discard, log.New(r.logs, "", 0), "-"
	if r.app, err = host.Load(context.Background(), wasm, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	t.Cleanup(func() {
		cancel()
		r.app.Close(context.Background())
	})
	go func() {
		code, _ := r.app.Run(ctx)
		r.ran <- code
	}()
	select {
	case <-r.out.appears("Server running"):
	case <-time.After(30 * time.Second):
		t.Fatalf("the guest did not start\nlog:\n%s", r.logs)
	}
	return r
}

// A Go service that embeds a guest which loops forever keeps working: while the guest spins,
// a garbage collection completes and the service's own handler answers; then the guest's call
// is stopped by its budget (503) and the guest is replaced. Without the budget checks
// the collection would wait for the spinning guest, and every goroutine with it.
func TestEmbeddedLoopingGuestDoesNotFreezeTheService(t *testing.T) {
	r := startHostile(t, host.Config{Workers: 2, CallbackBudget: 3 * time.Second})
	port, out, logs := r.port, r.out, r.logs

	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "service ok")
	}))
	defer service.Close()

	looped := make(chan int, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/loop", port))
		if err != nil {
			looped <- 0
			return
		}
		resp.Body.Close()
		looped <- resp.StatusCode
	}()
	select {
	case <-out.appears("spinning in /loop"):
	case <-time.After(30 * time.Second):
		t.Fatalf("the guest did not start spinning\nlog:\n%s", logs)
	}
	collected := make(chan struct{})
	go func() {
		runtime.GC()
		close(collected)
	}()
	select {
	case <-collected:
	case <-looped:
		t.Fatal("the garbage collection waited until the spinning guest was stopped")
	}
	resp, err := http.Get(service.URL)
	if err != nil {
		t.Fatalf("the service's own handler: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "service ok" {
		t.Fatalf("the service answered %q", body)
	}
	select {
	case status := <-looped:
		t.Fatalf("the spinning request ended (%d) before the service was checked", status)
	default:
	}
	if status := <-looped; status != http.StatusServiceUnavailable {
		t.Fatalf("the spinning request got %d, want 503\nlog:\n%s", status, logs)
	}
	<-logs.appears("wasmloop_on_request ran past its budget of 3s")
	r.stop()
	if code := <-r.ran; code != 0 {
		t.Errorf("Run returned %d after the shutdown, want 0\nlog:\n%s", code, logs)
	}
}

// App.Swap replaces a running program: the next request is the new program's; a module that
// is not a guest is refused and the running program keeps serving.
func TestAppSwap(t *testing.T) {
	whoami, err := os.ReadFile(whoamiWasm)
	if err != nil {
		t.Fatal(err)
	}
	r := startHostile(t, host.Config{Workers: 1})
	app, port := r.app, r.port
	get := func() string {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "ok from worker 0\n" {
		t.Fatalf("before the swap: %q", got)
	}
	if err := app.Swap(context.Background(), whoami); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "worker 0 of 1, request 1 on this instance\n" {
		t.Fatalf("after the swap: %q", got)
	}
	if err := app.Swap(context.Background(), []byte("not wasm")); !host.IsRefused(err) {
		t.Fatalf("a swap to a file that is not a guest: %v", err)
	}
	if got := get(); got != "worker 0 of 1, request 2 on this instance\n" {
		t.Fatalf("after the refused swap: %q", got)
	}
	r.stop()
	if code := <-r.ran; code != 0 {
		t.Errorf("Run returned %d", code)
	}
}

// BenchmarkGCWhileGuestSpins measures a garbage collection of the embedding process, and the
// longest its stop-the-world waited for the goroutines to stop, with both workers idle and with
// one spinning in guest code, in the same run. The budget checks bring the spinning guest back
// to Go every 4,096 loop iterations, where it can be stopped (RATIONALE.md, "The sandbox").
func BenchmarkGCWhileGuestSpins(b *testing.B) {
	for _, spin := range []bool{false, true} {
		b.Run(map[bool]string{false: "idle", true: "spinning"}[spin], func(b *testing.B) {
			r := startHostile(b, host.Config{Workers: 2, CallbackBudget: time.Hour})
			if spin {
				client := &http.Client{Timeout: time.Minute}
				go client.Get(fmt.Sprintf("http://127.0.0.1:%d/loop", r.port)) // ends when the app does
				select {
				case <-r.out.appears("spinning in /loop"):
				case <-time.After(30 * time.Second):
					b.Fatal("the guest did not start spinning")
				}
			}
			before := stopTheWorldWaits()
			for b.Loop() {
				runtime.GC()
			}
			after := stopTheWorldWaits()
			b.ReportMetric(quantileSince(before, after, 0.5)*1e6, "p50-stop-µs")
			b.ReportMetric(quantileSince(before, after, 0.99)*1e6, "p99-stop-µs")
			b.ReportMetric(quantileSince(before, after, 1)*1e6, "max-stop-µs")
		})
	}
}

// stopTheWorldWaits is the histogram of how long the collector's stops-the-world waited for
// every goroutine to stop.
func stopTheWorldWaits() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/pauses/stopping/gc:seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64Histogram()
}

// quantileSince is the q-quantile of what a histogram gained between two readings (the upper
// bound of the bucket it falls in), in seconds.
func quantileSince(before, after *metrics.Float64Histogram, q float64) float64 {
	var n, seen uint64
	for i := range after.Counts {
		n += after.Counts[i] - before.Counts[i]
	}
	for i := range after.Counts {
		if seen += after.Counts[i] - before.Counts[i]; n > 0 && float64(seen) >= q*float64(n) {
			return after.Buckets[i+1]
		}
	}
	return 0
}
