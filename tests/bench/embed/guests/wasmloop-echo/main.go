//go:build wasip1

// Command wasmloop-echo answers the embedding service's call "echo" with its payload, through
// wasmloop's Go SDK (HandleCall): the guest of BenchmarkWasmloopCall1KiB.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o wasmloop-echo.wasm .
package main

import "github.com/wasmloop/wasmloop/guest-sdk/go"

func main() {
	wasmloop.HandleCall("echo", func(c *wasmloop.CallRequest) { c.Return(c.Payload()) })
}
