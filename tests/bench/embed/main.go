// Command embed is the server of the embedding benchmark (run.sh): one Go net/http server on
// 127.0.0.1 whose handler runs a WebAssembly hello world in one of three ways, or answers in
// Go for reference.
//
//	-mode=wasmloop  wasmloop's host.App.Handler() in front of samples/hello, loaded with
//	                host.Load(Config{Workers: -workers, NoPorts: true, Env: PORT=0})
//	-mode=extism    an Extism plug-in (guests/extism-hello): a sync.Pool of *extism.Plugin
//	                instances of one extism.CompiledPlugin; each request takes an instance,
//	                calls its "hello" function and writes the output
//	-mode=httpwasm  http-wasm-host-go's net/http middleware (guests/httpwasm-hello), which keeps
//	                its own sync.Pool of guest instances
//	-mode=native    no WebAssembly: a Go handler writes the answer itself (-wasm is not read).
//	                The ceiling: what net/http and wrk leave for any guest on this machine
//
// Every mode answers every request with 200, Content-Type text/plain and "Hello World\n".
// The server listens on -addr, which must be 127.0.0.1:PORT (loopback only). SIGTERM or
// SIGINT shut it down (bounded); it then prints how many guest instances it created.
//
//	embed -mode=extism -wasm=extism-hello.wasm -addr=127.0.0.1:1337
//	embed -mode=httpwasm -wasm=httpwasm-hello.wasm -check   # one in-process request, then exit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	extism "github.com/extism/go-sdk"
	httpwasm "github.com/http-wasm/http-wasm-host-go/handler"
	httpwasmnet "github.com/http-wasm/http-wasm-host-go/handler/nethttp"
	"github.com/tetratelabs/wazero"

	"github.com/wasmloop/wasmloop/host"
)

// shutdownTimeout bounds the graceful shutdown of the server and of the guest runtime.
const shutdownTimeout = 5 * time.Second

func main() {
	mode := flag.String("mode", "", "wasmloop, extism, httpwasm or native")
	addr := flag.String("addr", "127.0.0.1:1337", "where to listen: 127.0.0.1:PORT only")
	wasmPath := flag.String("wasm", "", "the guest: samples/hello (wasmloop), guests/extism-hello (extism), guests/httpwasm-hello (httpwasm)")
	workers := flag.Int("workers", 2, "wasmloop: event loops (host.Config.Workers)")
	check := flag.Bool("check", false, "serve one request in-process, print the answer and exit (no socket)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the serving (from listen to shutdown) to this file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("embed: ")

	if err := loopbackOnly(*addr); err != nil {
		log.Fatal(err)
	}
	var wasm []byte
	var err error
	if *mode != "native" {
		if wasm, err = os.ReadFile(*wasmPath); err != nil {
			log.Fatalf("-wasm: %v", err)
		}
	}
	ctx := context.Background()
	var s *server
	switch *mode {
	case "wasmloop":
		s, err = newWasmloop(ctx, wasm, *workers, os.Stderr)
	case "extism":
		s, err = newExtism(ctx, wasm)
	case "httpwasm":
		s, err = newHTTPWasm(ctx, wasm)
	case "native":
		s = newNative()
	default:
		log.Fatalf("-mode must be wasmloop, extism, httpwasm or native, not %q", *mode)
	}
	if err != nil {
		log.Fatalf("%s: %v", *mode, err)
	}
	if *check {
		os.Exit(checkOnce(s))
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		s.close()
		log.Fatal(err)
	}
	stopProfile := func() {}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(pf)
		}
		if err != nil {
			s.close()
			log.Fatalf("-cpuprofile: %v", err)
		}
		stopProfile = func() { pprof.StopCPUProfile(); pf.Close() }
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("%s serving on http://%s/ (GOMAXPROCS=%d)\n", *mode, ln.Addr(), runtime.GOMAXPROCS(0))

	code := 0
	select {
	case <-sig:
	case err := <-served:
		log.Printf("serve: %v", err)
		code = 1
	}
	sctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Printf("shutdown: %v", err)
		srv.Close()
	}
	stopProfile()
	s.close()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if s.instances != nil {
		fmt.Printf("%s: guest instances created: %d; garbage collections: %d\n", *mode, s.instances.Load(), ms.NumGC)
	} else {
		fmt.Printf("%s: garbage collections: %d\n", *mode, ms.NumGC)
	}
	os.Exit(code)
}

// loopbackOnly refuses any address but 127.0.0.1:PORT.
func loopbackOnly(addr string) error {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr: %v", err)
	}
	if h != "127.0.0.1" {
		return fmt.Errorf("-addr must be 127.0.0.1:PORT (loopback only), not %q", addr)
	}
	return nil
}

// server is one mode: its handler, what closes it, and (for the pooled peers) how many guest
// instances it created.
type server struct {
	handler   http.Handler
	close     func()
	instances *atomic.Int64
}

// checkOnce serves one GET / through the handler in-process and prints the answer; 0 when it
// is 200, text/plain, "Hello World\n".
func checkOnce(s *server) int {
	defer s.close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	s.handler.ServeHTTP(rec, req)
	body := rec.Body.String()
	fmt.Printf("status %d, Content-Type %q, body %q\n", rec.Code, rec.Header().Get("Content-Type"), body)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/plain" || body != "Hello World\n" {
		return 1
	}
	return 0
}

// newWasmloop loads the wasmloop guest with its ports off and mounts app.Handler(). The guest's
// output goes to guestOut.
func newWasmloop(ctx context.Context, wasm []byte, workers int, guestOut io.Writer) (*server, error) {
	app, err := host.Load(ctx, wasm, host.Config{
		Workers: workers,
		NoPorts: true,
		Env:     []string{"PORT=0"},
		Stdout:  guestOut, // the guest's "Server running at" line is not the server's
	})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := app.Start(sctx); err != nil {
		app.Close(ctx)
		return nil, err
	}
	return &server{
		handler: app.Handler(),
		close: func() {
			c, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := app.Shutdown(c); err != nil {
				log.Printf("wasmloop shutdown: %v", err)
			}
			app.Close(c)
		},
	}, nil
}

// extismPlugin holds one pooled instance; the finalizer closes an instance that sync.Pool
// dropped (it does so at garbage collections), as http-wasm-host-go does for its guests:
// otherwise the wazero runtime would keep every dropped instance.
type extismPlugin struct{ p *extism.Plugin }

// newExtism compiles the plug-in once and serves each request with an instance from a
// sync.Pool: an instance runs one call at a time, so concurrent requests need several.
func newExtism(ctx context.Context, wasm []byte) (*server, error) {
	compiled, err := extism.NewCompiledPlugin(ctx,
		extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm}}},
		extism.PluginConfig{EnableWasi: true}, nil)
	if err != nil {
		return nil, err
	}
	var instances atomic.Int64
	var newErr atomic.Value // the last error making an instance, for the 500 answer
	pool := sync.Pool{New: func() any {
		p, err := compiled.Instance(context.Background(), extism.PluginInstanceConfig{})
		if err != nil {
			newErr.Store(err)
			return nil
		}
		instances.Add(1)
		ep := &extismPlugin{p}
		runtime.SetFinalizer(ep, func(ep *extismPlugin) { ep.p.Close(context.Background()) })
		return ep
	}}
	// Fail fast: the first instance must have "hello" (its first call also runs the guest's
	// _initialize); it then goes into the pool.
	first, _ := pool.Get().(*extismPlugin)
	if first == nil {
		compiled.Close(ctx)
		return nil, fmt.Errorf("instance: %v", newErr.Load())
	}
	if !first.p.FunctionExists("hello") {
		compiled.Close(ctx)
		return nil, errors.New(`the plug-in does not export "hello"`)
	}
	pool.Put(first)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep, _ := pool.Get().(*extismPlugin)
		if ep == nil {
			http.Error(w, fmt.Sprint("extism instance: ", newErr.Load()), http.StatusInternalServerError)
			return
		}
		rc, out, err := ep.p.CallWithContext(r.Context(), "hello", nil)
		if err != nil || rc != 0 {
			// A failed instance is not put back: its state is unknown.
			http.Error(w, fmt.Sprintf("extism call: rc %d, %v", rc, err), http.StatusInternalServerError)
			return
		}
		pool.Put(ep)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(out)
	})
	return &server{
		handler:   h,
		instances: &instances,
		close: func() {
			c, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			compiled.Close(c) // closes the runtime and with it every instance
		},
	}, nil
}

// newHTTPWasm wraps a handler that is never reached (the guest answers every request itself)
// in http-wasm-host-go's net/http middleware. The guest is a WASI reactor (built c-shared), so
// its _initialize must run when an instance starts rather than wazero's default _start.
func newHTTPWasm(ctx context.Context, wasm []byte) (*server, error) {
	mw, err := httpwasmnet.NewMiddleware(ctx, wasm,
		httpwasm.ModuleConfig(wazero.NewModuleConfig().WithStartFunctions("_initialize")),
		httpwasm.Runtime(func(ctx context.Context) (wazero.Runtime, error) {
			return wazero.NewRuntime(ctx), nil // the default (httpwasm.DefaultRuntime)
		}))
	if err != nil {
		return nil, err
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the http-wasm guest passed the request on", http.StatusInternalServerError)
	})
	return &server{
		handler: mw.NewHandler(ctx, next),
		close: func() {
			c, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			mw.Close(c)
		},
	}, nil
}

// newNative answers as the guests do, in Go: the server's ceiling on this machine.
func newNative() *server {
	hello := []byte("Hello World\n")
	return &server{
		handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(hello)
		}),
		close: func() {},
	}
}
