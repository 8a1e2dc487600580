package host_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// Load a guest once and run it. This one (testdata/greet) prints a line from a timer; then
// nothing is left that could call it, so it is done and Run returns 0, as a Node script
// ends when its event loop is empty. A program that did not end would be shut down
// gracefully when ctx expires.
func Example() {
	wasm, err := os.ReadFile(greetWasm) // GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./testdata/greet
	if err != nil {
		fmt.Println(err)
		return
	}
	app, err := host.Load(context.Background(), wasm, host.Config{Workers: 1, Env: []string{"NAME=example"}, Stdout: os.Stdout})
	if err != nil {
		fmt.Println(err) // host.IsRefused(err) when the file is not a wasmloop guest
		return
	}
	defer app.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, err := app.Run(ctx)
	fmt.Println("exit status", code, err)
	if ctx.Err() != nil {
		fmt.Println("the program did not end by itself: shut down after a minute")
	}
	// Output:
	// hello, example
	// exit status 0 <nil>
}

// Serve the way `wasmloop run` does: a server runs until ctx is cancelled, here by Ctrl-C,
// and then shuts down gracefully.
func Example_server() {
	wasm, err := os.ReadFile("app.wasm") // GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm ./samples/hello
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	app, err := host.Load(ctx, wasm, host.Config{Workers: 2, Env: []string{"PORT=8080"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer app.Close(context.Background())
	code, err := app.Run(ctx)
	fmt.Println("exit status", code, err)
}

// Embed a program in a Go service: Start returns once the program has started and listens,
// Addrs says where (here, the port the kernel chose for PORT=0), and Shutdown ends it
// gracefully, answering the requests in progress.
func ExampleApp_Start() {
	wasm, err := os.ReadFile(greetWasm) // a guest that serves HTTP on PORT (testdata/greet)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	app, err := host.Load(ctx, wasm, host.Config{Workers: 2, Env: []string{"PORT=0", "NAME=service"}, Stdout: io.Discard, CacheDir: cacheDir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer app.Close(ctx)
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	addr := app.Addrs()[0]
	resp, err := http.Get("http://" + addr.String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.Status, ": ", string(body))
	shutdown, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fmt.Println("shutdown:", app.Shutdown(shutdown))
	fmt.Println(app.Wait())
	// Output:
	// 200 OK: hello, service
	// shutdown: <nil>
	// 0 <nil>
}

// Mount a program in a service's own net/http server: with NoPorts its listen opens no port,
// and the Handler is its way in.
func ExampleApp_Handler() {
	wasm, err := os.ReadFile(greetWasm) // serves "hello, NAME" (testdata/greet)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	app, err := host.Load(ctx, wasm, host.Config{NoPorts: true, Env: []string{"PORT=0", "NAME=plugin"}, Stdout: io.Discard, CacheDir: cacheDir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer app.Close(ctx)
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/plugin/", http.StripPrefix("/plugin", app.Handler()))
	srv := httptest.NewServer(mux) // the service's server, on a loopback port
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/plugin/anything")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.Status, ": ", string(body))
	fmt.Println("ports of its own:", len(app.Addrs()))
	// Output:
	// 200 OK: hello, plugin
	// ports of its own: 0
}

// Call a function of the program, which calls the service's functions in turn: lookup_user
// runs on the event loop during the guest's call (Sync), slow_lookup on a goroutine of its
// own, its result reaching the guest as an event (Async).
func ExampleApp_Call() {
	wasm, err := os.ReadFile(pluginWasm) // testdata/plugin: HandleCall("render", …)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	app, err := host.Load(ctx, wasm, host.Config{
		KeepAlive: true, // the program has nothing of its own to wait for: it waits for calls
		Functions: map[string]host.Function{
			"lookup_user": {Sync: func(_ context.Context, id []byte) ([]byte, error) {
				return []byte("Ada"), nil
			}},
			"slow_lookup": {Async: func(_ context.Context, name []byte) ([]byte, error) {
				return []byte("admin"), nil // runs on a goroutine of its own: it may block
			}},
		},
		CacheDir: cacheDir,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer app.Close(ctx)
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	page, err := app.Call(ctx, "render", []byte("user 1"))
	fmt.Println(string(page), err)
	_, err = app.Call(ctx, "fail", nil)
	var ce *host.CallError
	fmt.Println(errors.As(err, &ce), ce.Message)
	// Output:
	// user 1: Ada / admin <nil>
	// true asked to fail
}
