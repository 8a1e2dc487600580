package host_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wasmloop/wasmloop/host"
)

// gathered returns the value of the metric family name whose labels include want (a counter's
// value, a gauge's, or a histogram's count), summed over the matching series.
func gathered(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			found = true
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				sum += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum, found
}

// Config.Metrics: each answered request is counted once, by status class and worker, with its
// duration and the guest call that served it; bytes and connections are counted; Close
// unregisters the collector.
func TestMetricsCount(t *testing.T) {
	reg := prometheus.NewRegistry()
	app, url := mounted(t, greetWasm, host.Config{Workers: 2, Metrics: reg})
	const n = 20
	for i := range n {
		resp, err := http.Get(url + "/" + strings.Repeat("x", i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wasmloop_requests_total", nil, n},
		{"wasmloop_request_duration_seconds", nil, n},
		{"wasmloop_guest_callback_duration_seconds", map[string]string{"kind": "request"}, n},
		{"wasmloop_guest_callback_duration_seconds", map[string]string{"kind": "start"}, 2},
		{"wasmloop_guest_traps_total", nil, 0},
		{"wasmloop_up", nil, 1},
	} {
		if got, ok := gathered(t, reg, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if got, _ := gathered(t, reg, "wasmloop_sent_bytes_total", nil); got < n*20 {
		t.Errorf("sent bytes %v for %d responses", got, n)
	}
	if got, _ := gathered(t, reg, "wasmloop_received_bytes_total", nil); got < n*20 {
		t.Errorf("received bytes %v for %d requests", got, n)
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := gathered(t, reg, "wasmloop_requests_total", nil); ok {
		t.Error("the collector is still registered after Close")
	}
}

// Two Apps cannot share a registry under the same names; a label per App makes them fit.
func TestMetricsTwoApps(t *testing.T) {
	reg := prometheus.NewRegistry()
	load(t, greetWasm, host.Config{Workers: 1, Metrics: reg}).Close(context.Background())
	wasm, err := os.ReadFile(greetWasm)
	if err != nil {
		t.Fatal(err)
	}
	first := load(t, greetWasm, host.Config{Workers: 1, Metrics: reg})
	defer first.Close(context.Background())
	_, err = host.Load(context.Background(), wasm, host.Config{Workers: 1, Metrics: reg, CacheDir: cacheDir})
	if err == nil || !strings.Contains(err.Error(), "Config.Metrics") {
		t.Fatalf("a second App in the same registry: %v", err)
	}
	// A registry keeps the label names a metric was first registered with: the labelled
	// Apps go in a registry of their own.
	reg = prometheus.NewRegistry()
	for _, name := range []string{"a", "b"} {
		app := load(t, greetWasm, host.Config{Workers: 1, Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"app": name}, reg)})
		defer app.Close(context.Background())
	}
	if got, ok := gathered(t, reg, "wasmloop_up", map[string]string{"app": "b"}); !ok || got != 0 {
		t.Fatalf("wasmloop_up{app=b} = %v (found %v), want 0 before Start", got, ok)
	}
}

// Live reports a worker that stays in one turn of its loop — here in a host function the
// service made block — and is satisfied again once it turns; Ready holds from Start to the
// end.
func TestLiveAndReady(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	fns := pluginFunctions()
	entered := make(chan struct{})
	fns["noop"] = host.Function{Sync: func(ctx context.Context, in []byte) ([]byte, error) {
		once.Do(func() { close(entered) })
		<-release // a function that blocks the loop, which a service must never write
		return nil, nil
	}}
	app := load(t, pluginWasm, host.Config{Workers: 1, KeepAlive: true, Functions: fns, Stdout: io.Discard,
		Log: log.New(io.Discard, "", 0)})
	if err := app.Ready(); err == nil {
		t.Fatal("ready before Start")
	}
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if err := app.Live(); err != nil {
		t.Fatalf("live after Start: %v", err)
	}
	if err := app.Ready(); err != nil {
		t.Fatalf("ready after Start: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := app.Call(ctx, "spin", []byte("1")); done <- err }()
	<-entered
	deadline := time.Now().Add(10 * time.Second)
	for app.Live() == nil { // the worker is stuck from now on: Live must see it past StuckAfter
		if time.Now().After(deadline) {
			t.Fatal("Live never reported the stuck worker")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := app.Live(); !strings.Contains(err.Error(), "worker 0 has been in one turn of its loop for") {
		t.Fatalf("Live: %v", err)
	}
	// The admin handler says the same.
	rec := httptest.NewRecorder()
	app.AdminHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "worker 0") {
		t.Fatalf("/healthz: %d %q", rec.Code, rec.Body)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for app.Live() != nil { // the worker finishes its turn and waits again
		if time.Now().After(deadline) {
			t.Fatalf("live after the worker turned again: %v", app.Live())
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec = httptest.NewRecorder()
	app.AdminHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Fatalf("/readyz: %d %q", rec.Code, rec.Body)
	}
	if err := app.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Ready(); err == nil {
		t.Fatal("ready after Shutdown")
	}
}
