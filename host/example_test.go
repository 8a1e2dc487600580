package host_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/wasmloop/wasmloop/host"
)

// Run a guest the way `wasmloop run` does: load it once, run it until it is done, and shut
// it down gracefully on Ctrl-C.
func Example() {
	wasm, err := os.ReadFile("app.wasm") // GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm ./samples/hello
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	app, err := host.Load(ctx, wasm, host.Config{Workers: 2, Env: []string{"PORT=8080"}})
	if err != nil {
		fmt.Println(err) // host.IsRefused(err) when the file is not a wasmloop guest
		return
	}
	defer app.Close(context.Background())
	code, err := app.Run(ctx)
	fmt.Println("exit status", code, err)
}
