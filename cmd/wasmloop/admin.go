package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wasmloop/wasmloop/host"
)

// adminServer is `--admin ADDR`: /metrics, /healthz and /readyz (host.App.AdminHandler), and
// /debug/pprof/ with --pprof. It listens before the program starts, so a probe gets an answer
// (503 until the program is ready) from the first moment, and a taken address fails the
// command at once.
type adminServer struct {
	srv *http.Server
	ln  net.Listener
}

// startAdmin listens on addr and serves app's endpoints from reg (the app's collector and
// the Go process's own).
func startAdmin(addr string, app *host.App, reg *prometheus.Registry, withPprof bool, say func(string)) (*adminServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--admin: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", app.AdminHandler(reg))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s := &adminServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			say("wasmloop: --admin: " + err.Error())
		}
	}()
	pp := ""
	if withPprof {
		pp = ", debug/pprof"
	}
	say(fmt.Sprintf("wasmloop: admin endpoints on http://%s/ (metrics, healthz, readyz%s)", ln.Addr(), pp))
	return s, nil
}

func (s *adminServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// newRegistry is the admin endpoint's registry: the program's metrics and the Go process's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// levelValue is --log-level: debug, info, warn or error.
type levelValue struct{ p *slog.Level }

func (v levelValue) String() string {
	if v.p == nil {
		return "info"
	}
	return strings.ToLower(v.p.String())
}

func (v levelValue) Set(s string) error { return v.p.UnmarshalText([]byte(s)) }

// formatValue is --log-format: text or json.
type formatValue struct{ p *string }

func (v formatValue) String() string {
	if v.p == nil || *v.p == "" {
		return "text"
	}
	return *v.p
}

func (v formatValue) Set(s string) error {
	if s != "text" && s != "json" {
		return fmt.Errorf("want text or json")
	}
	*v.p = s
	return nil
}

// notice returns how run says what it does (the workers line, the admin address, a reload),
// at Info; noticeAt at another level (errors). A line on stderr, or with --log-format json a
// record like the host's own, so that a JSON log stays JSON.
func notice(stderr io.Writer, format string) func(string) {
	return noticeAt(stderr, format, slog.LevelInfo)
}

func noticeAt(stderr io.Writer, format string, level slog.Level) func(string) {
	if format != "json" {
		return func(msg string) { fmt.Fprintln(stderr, msg) }
	}
	l := slog.New(slog.NewJSONHandler(stderr, nil))
	return func(msg string) { l.Log(context.Background(), level, strings.TrimPrefix(msg, "wasmloop: ")) }
}
