package loop

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Stats are one loop's counters, for the metrics an operator scrapes (host/metrics.go). The
// loop is their only writer and pays an atomic add for each — no lock, no allocation — and a
// scrape reads them from its own goroutine. A loop keeps them only when Config.Stats asks
// (Loop.stats is nil otherwise, and every count is one nil check).
type Stats struct {
	// Requests counts answered requests by status class: [1] 1xx … [5] 5xx, [0] any other.
	Requests        [6]atomic.Uint64
	RequestDuration Histogram // from the request's arrival to its response's end
	// Callbacks are the calls into the guest by kind (CallbackKinds), with their duration.
	Callbacks       [len(CallbackKinds)]Histogram
	ConnsOpen       atomic.Int64 // sockets and pipes
	WebSocketsOpen  atomic.Int64
	BytesIn         atomic.Uint64 // read from connections
	BytesOut        atomic.Uint64 // written to connections
	OutputQueued    atomic.Int64  // unsent output over all connections, as of the last sweep
	Traps           atomic.Uint64 // guest calls that trapped or exited
	BudgetBreaches  atomic.Uint64 // guest calls stopped past their budget
	Replacements    atomic.Uint64 // instances replaced after a failure
	Swaps           atomic.Uint64 // modules swapped in (App.Swap, --watch, SIGHUP)
	MessagesPosted  atomic.Uint64 // messages this worker queued for another
	MessagesRefused atomic.Uint64 // messages a receiver refused (ELIMIT, ECLOSED, ENOTSUP)
	AcceptBackoffs  atomic.Uint64 // accepts that failed for lack of descriptors
}

// CallbackKinds names the guest's callbacks as the metrics label them; observeCallback maps an
// export to its index.
var CallbackKinds = [...]string{"start", "request", "body", "drain", "timer", "close", "message",
	"ws_open", "ws_message", "ws_close", "call", "host_result", "other"}

// callbackKind is the index in CallbackKinds of the export named export.
func callbackKind(export string) int {
	switch export {
	case "wasmloop_on_start":
		return 0
	case "wasmloop_on_request":
		return 1
	case "wasmloop_on_body":
		return 2
	case "wasmloop_on_drain":
		return 3
	case "wasmloop_on_timer":
		return 4
	case "wasmloop_on_close":
		return 5
	case "wasmloop_on_message":
		return 6
	case "wasmloop_on_ws_open":
		return 7
	case "wasmloop_on_ws_message":
		return 8
	case "wasmloop_on_ws_close":
		return 9
	case "wasmloop_on_call":
		return 10
	case "wasmloop_on_host_result":
		return 11
	}
	return len(CallbackKinds) - 1
}

// Histogram counts observations in fixed buckets; Bounds gives each bucket's upper bound.
type Histogram struct {
	Bounds []time.Duration
	Counts [maxBuckets + 1]atomic.Uint64 // [len(Bounds)]: above the last bound
	Sum    atomic.Int64                  // ns
}

const maxBuckets = 16

// RequestBounds and CallbackBounds are the buckets of the two histograms: a request takes
// from tens of microseconds (a hello world) to seconds (a long poll), a callback from about a
// microsecond to its budget.
var (
	RequestBounds = []time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
		time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
		50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
		2500 * time.Millisecond, 5 * time.Second, 10 * time.Second}
	CallbackBounds = []time.Duration{time.Microsecond, 2500 * time.Nanosecond, 5 * time.Microsecond, 10 * time.Microsecond,
		25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
		500 * time.Microsecond, time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second}
)

// Observe counts one observation of d.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(h.Bounds) && d > h.Bounds[i] {
		i++
	}
	h.Counts[i].Add(1)
	h.Sum.Add(int64(d))
}

func newStats() *Stats {
	s := &Stats{}
	s.RequestDuration.Bounds = RequestBounds
	for i := range s.Callbacks {
		s.Callbacks[i].Bounds = CallbackBounds
	}
	return s
}

// Stats returns the loop's counters, or nil when Config.Stats is off.
func (l *Loop) Stats() *Stats { return l.stats }

// countResponse counts a response of status that took d from the request's arrival.
func (s *Stats) countResponse(status int, d time.Duration) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	s.Requests[class].Add(1)
	s.RequestDuration.Observe(d)
}

// observeCallback is the guest's hook for every call into it (guest.InstanceConfig.OnCall).
func (s *Stats) observeCallback(export string, d time.Duration) {
	s.Callbacks[callbackKind(export)].Observe(d)
}

// Heartbeat is what liveness reads: the loop marks when it leaves the poller's wait and when
// it enters it again, so a loop that is busy for long — a guest call that does not return, a
// bug — shows, while one that waits for work does not (App.Live).
type Heartbeat struct {
	busySince atomic.Int64 // unix ns when the current turn began; 0 while waiting
}

// Busy reports how long the loop has been in its current turn (0 while it waits).
func (h *Heartbeat) Busy(now time.Time) time.Duration {
	if b := h.busySince.Load(); b != 0 {
		return now.Sub(time.Unix(0, b))
	}
	return 0
}

// Heartbeat returns the loop's liveness marks.
func (l *Loop) Heartbeat() *Heartbeat { return &l.heartbeat }

// answered counts a response of status to a request that arrived at the loop clock's at, and
// writes its access-log line (Config.AccessLog). ex is the request's exchange, nil for an
// error the host answered before there was one.
func (l *Loop) answered(status int, at int64, ex *exchange, c *Conn) {
	if l.stats == nil && l.cfg.AccessLog == nil {
		return
	}
	d := time.Duration(int64(time.Since(l.epoch)) - at)
	if l.stats != nil {
		l.stats.countResponse(status, d)
	}
	if l.cfg.AccessLog != nil {
		l.accessLog(status, d, ex, c)
	}
}

// accessLog writes one request's line: method, path, status, bytes sent for it, duration,
// worker and the client's address. It runs only with an access log (the line costs
// allocations and, for a socket, a getpeername).
func (l *Loop) accessLog(status int, d time.Duration, ex *exchange, c *Conn) {
	method, path, sent := "-", "-", int64(0)
	if ex != nil {
		method, path = ex.method, ex.target
		if c != nil {
			sent = c.produced() - ex.sentBefore
		}
	}
	remote := "-"
	if c != nil && c.pipe == nil {
		if sa, err := unix.Getpeername(c.fd); err == nil {
			remote = sockaddrString(sa)
		}
	} else if c != nil {
		remote = "embedder"
	}
	l.cfg.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("method", method), slog.String("path", path), slog.Int("status", status),
		slog.Int64("bytes", sent), slog.Duration("duration", d), slog.Int("worker", l.id),
		slog.String("remote", remote))
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return "unix:" + a.Name
	}
	return "-"
}

// produced is what c has sent and has queued to send: a response's bytes are the difference
// across it, whether or not they have left yet.
func (c *Conn) produced() int64 { return c.sent + int64(c.outLen()) }

// countSent counts n bytes written to c.
func (l *Loop) countSent(c *Conn, n int) {
	if l.stats != nil {
		l.stats.BytesOut.Add(uint64(n))
	}
	c.sent += int64(n)
}

// noteSockets updates the open-WebSocket gauge after a socket handle came or went.
func (l *Loop) noteSockets() {
	if l.stats != nil {
		l.stats.WebSocketsOpen.Store(int64(l.sockets.len()))
	}
}
