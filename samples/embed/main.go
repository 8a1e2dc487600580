//go:build !wasip1

// Command embed is a Go net/http service that embeds a wasmloop program as a plugin: it mounts
// the program's HTTP server at /plugin/, calls the program's render function from its own
// /render handler, and gives the program two functions of its own, lookup_user (sync: a map
// lookup on the event loop) and slow_lookup (async: a slow backend, on a goroutine).
//
//	cd samples/embed/plugin && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ../plugin.wasm .
//	cd .. && go run . -wasm plugin.wasm        # then: curl 127.0.0.1:8080/render?user=1
//	                                           #       curl 127.0.0.1:8080/plugin/hello
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// users is the service's own data, which the plugin reads through lookup_user.
var users = map[string]string{"1": "Ada Lovelace", "2": "Alan Turing"}

// functions are what the service gives the plugin.
func functions() map[string]host.Function {
	return map[string]host.Function{
		"lookup_user": {Sync: func(_ context.Context, id []byte) ([]byte, error) {
			if name, ok := users[string(id)]; ok {
				return []byte(name), nil
			}
			return nil, fmt.Errorf("no user %q", id)
		}},
		"slow_lookup": {Async: func(ctx context.Context, id []byte) ([]byte, error) {
			select { // a backend that takes its time: it runs on its own goroutine
			case <-time.After(20 * time.Millisecond):
				return []byte("profile " + string(id)), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}},
	}
}

// newService loads and starts the plugin and returns the service's handler.
func newService(ctx context.Context, wasm []byte) (http.Handler, *host.App, error) {
	app, err := host.Load(ctx, wasm, host.Config{
		Workers:   2,
		NoPorts:   true, // the plugin is reached through the service only
		KeepAlive: true, // the service calls it whenever it likes
		Functions: functions(),
		Env:       []string{"PORT=0"},
	})
	if err != nil {
		return nil, nil, err
	}
	if err := app.Start(ctx); err != nil {
		app.Close(ctx)
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/plugin/", http.StripPrefix("/plugin", app.Handler()))
	mux.HandleFunc("/render", func(w http.ResponseWriter, r *http.Request) {
		page, err := app.Call(r.Context(), "render", []byte(r.URL.Query().Get("user")))
		var ce *host.CallError
		switch {
		case errors.As(err, &ce):
			http.Error(w, ce.Message, http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			fmt.Fprintf(w, "<p>%s</p>\n", page)
		}
	})
	return mux, app, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	wasmPath := flag.String("wasm", "plugin.wasm", "the plugin (built from ./plugin)")
	flag.Parse()
	wasm, err := os.ReadFile(*wasmPath)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	handler, app, err := newService(ctx, wasm)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *addr, Handler: handler}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
		app.Close(shutdown)
	}()
	log.Printf("serving on http://%s/ (try /render?user=1 and /plugin/hello)", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
