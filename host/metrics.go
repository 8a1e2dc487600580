package host

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// Observability: Config.Metrics registers the App's collector, whose counters each worker keeps
// without a lock or an allocation (host/internal/loop/stats.go) and which are read only when
// Prometheus scrapes; Live and Ready are the health checks; AdminHandler serves all three.

// Collector returns the App's metrics as a Prometheus collector, for an embedder's own
// registry (Config.Metrics registers it for you). The workers count only when the App was
// loaded with Config.Metrics set or Config.Stats true; otherwise it collects nothing.
func (a *App) Collector() prometheus.Collector { return collector{a} }

// metric descriptions, one per family.
var (
	descRequests        = prometheus.NewDesc("wasmloop_requests_total", "Requests answered, by worker and status class (1xx … 5xx, other).", []string{"worker", "code"}, nil)
	descRequestDuration = prometheus.NewDesc("wasmloop_request_duration_seconds", "Time from a request's arrival to the end of its response.", []string{"worker"}, nil)
	descCallbacks       = prometheus.NewDesc("wasmloop_guest_callback_duration_seconds", "Duration of calls into the guest, by kind of event.", []string{"worker", "kind"}, nil)
	descConns           = prometheus.NewDesc("wasmloop_connections_open", "Open connections (sockets and handed-in requests).", []string{"worker"}, nil)
	descWebSockets      = prometheus.NewDesc("wasmloop_websockets_open", "Open WebSockets.", []string{"worker"}, nil)
	descBytesIn         = prometheus.NewDesc("wasmloop_received_bytes_total", "Bytes read from connections.", []string{"worker"}, nil)
	descBytesOut        = prometheus.NewDesc("wasmloop_sent_bytes_total", "Bytes written to connections.", []string{"worker"}, nil)
	descOutputQueued    = prometheus.NewDesc("wasmloop_output_queued_bytes", "Output waiting for slow clients, as of the worker's last sweep (at most a second old).", []string{"worker"}, nil)
	descTraps           = prometheus.NewDesc("wasmloop_guest_traps_total", "Calls into the guest that trapped or exited (the instance is replaced).", []string{"worker"}, nil)
	descBudget          = prometheus.NewDesc("wasmloop_guest_budget_breaches_total", "Calls into the guest stopped past their budget.", []string{"worker"}, nil)
	descReplacements    = prometheus.NewDesc("wasmloop_instance_replacements_total", "Guest instances replaced after a failure.", []string{"worker"}, nil)
	descSwaps           = prometheus.NewDesc("wasmloop_module_swaps_total", "Modules swapped in without a restart.", []string{"worker"}, nil)
	descPosted          = prometheus.NewDesc("wasmloop_messages_posted_total", "Messages queued for another worker.", []string{"worker"}, nil)
	descRefused         = prometheus.NewDesc("wasmloop_messages_refused_total", "Messages another worker refused (full, ended, too long for it).", []string{"worker"}, nil)
	descBackoffs        = prometheus.NewDesc("wasmloop_accept_backoffs_total", "Accepts that failed for lack of descriptors (accepting backs off).", []string{"worker"}, nil)
	descBusy            = prometheus.NewDesc("wasmloop_loop_busy_seconds", "How long the worker's event loop has been in its current turn (0 while it waits for work).", []string{"worker"}, nil)
	descUp              = prometheus.NewDesc("wasmloop_up", "1 while the program runs.", nil, nil)
)

type collector struct{ a *App }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descRequestDuration, descCallbacks, descConns, descWebSockets,
		descBytesIn, descBytesOut, descOutputQueued, descTraps, descBudget, descReplacements, descSwaps, descPosted,
		descRefused, descBackoffs, descBusy, descUp} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	g := c.a.group()
	if g == nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	now := time.Now()
	for i, l := range g.Loops() {
		w := strconv.Itoa(i)
		ch <- prometheus.MustNewConstMetric(descBusy, prometheus.GaugeValue, l.Heartbeat().Busy(now).Seconds(), w)
		s := l.Stats()
		if s == nil {
			continue
		}
		for class := range s.Requests {
			code := "other"
			if class > 0 {
				code = strconv.Itoa(class) + "xx"
			}
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(s.Requests[class].Load()), w, code)
		}
		ch <- histogram(descRequestDuration, &s.RequestDuration, w)
		for k := range s.Callbacks {
			ch <- histogram(descCallbacks, &s.Callbacks[k], w, loop.CallbackKinds[k])
		}
		for _, m := range []struct {
			d *prometheus.Desc
			t prometheus.ValueType
			v float64
		}{
			{descConns, prometheus.GaugeValue, float64(s.ConnsOpen.Load())},
			{descWebSockets, prometheus.GaugeValue, float64(s.WebSocketsOpen.Load())},
			{descBytesIn, prometheus.CounterValue, float64(s.BytesIn.Load())},
			{descBytesOut, prometheus.CounterValue, float64(s.BytesOut.Load())},
			{descOutputQueued, prometheus.GaugeValue, float64(s.OutputQueued.Load())},
			{descTraps, prometheus.CounterValue, float64(s.Traps.Load())},
			{descBudget, prometheus.CounterValue, float64(s.BudgetBreaches.Load())},
			{descReplacements, prometheus.CounterValue, float64(s.Replacements.Load())},
			{descSwaps, prometheus.CounterValue, float64(s.Swaps.Load())},
			{descPosted, prometheus.CounterValue, float64(s.MessagesPosted.Load())},
			{descRefused, prometheus.CounterValue, float64(s.MessagesRefused.Load())},
			{descBackoffs, prometheus.CounterValue, float64(s.AcceptBackoffs.Load())},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v, w)
		}
	}
}

// histogram turns a worker's histogram into Prometheus's cumulative form. The counts are read
// one by one while the worker may add to them, so a scrape can be a few observations apart
// from itself; the next one catches up.
func histogram(d *prometheus.Desc, h *loop.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i].Load()
		buckets[b.Seconds()] = cum
	}
	cum += h.Counts[len(h.Bounds)].Load()
	return prometheus.MustNewConstHistogram(d, cum, time.Duration(h.Sum.Load()).Seconds(), buckets, labels...)
}

// group is the running program's loops, or nil.
func (a *App) group() *loop.Group {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running == nil {
		return nil
	}
	return a.running.g
}

// StuckAfter is how long past the callback budget (the start budget while the program starts)
// a worker may stay in one turn of its event loop before Live reports it stuck: a turn is a few
// callbacks and system calls, normally microseconds, and a guest call is stopped at its
// budget, so a live worker is never that long in one.
const StuckAfter = time.Second

// Live reports whether the program's workers are turning: nil when each is waiting for work, has
// ended, or has been in its current turn less than its budget plus StuckAfter, an error naming
// the stuck ones otherwise
// (and ErrNotRunning when no program runs). It is the liveness check (/healthz).
func (a *App) Live() error {
	g := a.group()
	if g == nil {
		return ErrNotRunning
	}
	now := time.Now()
	// A guest call may legitimately run up to its budget (the host stops it there and answers
	// 503 itself), and a start-up call up to the start budget: only past those is a worker
	// stuck.
	limit := StuckAfter
	if b := a.cfg.CallbackBudget; b > 0 {
		limit += b
	}
	select {
	case <-g.Ready():
	default:
		if b := a.cfg.StartBudget; b > 0 {
			limit = StuckAfter + b
		}
	}
	var stuck []error
	for i, l := range g.Loops() {
		if d := l.Heartbeat().Busy(now); d > limit {
			stuck = append(stuck, fmt.Errorf("worker %d has been in one turn of its loop for %v", i, d.Round(time.Millisecond)))
		}
	}
	return errors.Join(stuck...)
}

// Ready reports whether the program serves: nil once every worker's start-up (wasmloop_on_start)
// has finished, until a graceful shutdown begins; an error saying which otherwise. It is the
// readiness check (/readyz).
func (a *App) Ready() error {
	g := a.group()
	if g == nil {
		return ErrNotRunning
	}
	select {
	case <-g.Ready():
	default:
		return errors.New("host: the program is starting")
	}
	if err := g.StartErr(); err != nil {
		return err
	}
	if g.Draining() {
		return errors.New("host: the program is shutting down")
	}
	return nil
}

// AdminHandler serves the App's operational endpoints: /metrics (Prometheus, from reg, or from
// a registry of the App's collector alone when reg is nil), /healthz (Live: 200 or 503 with the
// reason) and /readyz (Ready). `wasmloop run --admin ADDR` serves it.
func (a *App) AdminHandler(reg prometheus.Gatherer) http.Handler {
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(a.Collector())
		reg = r
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { check(w, a.Live()) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { check(w, a.Ready()) })
	return mux
}

func check(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ok")
}
