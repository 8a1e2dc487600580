package host_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
