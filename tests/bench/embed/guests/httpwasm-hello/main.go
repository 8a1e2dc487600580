//go:build wasip1

// Command httpwasm-hello is the hello world as an http-wasm handler (the ABI that
// github.com/http-wasm/http-wasm-host-go serves: https://http-wasm.io/http-handler-abi/),
// written for the standard Go compiler:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o httpwasm-hello.wasm .
//
// The http-wasm guest SDK (github.com/http-wasm/http-wasm-guest-tinygo) cannot be used with
// the standard compiler (see ../../README.md), so this guest declares the few host functions it
// calls itself, with go:wasmimport, and exports the two handler functions with go:wasmexport.
// A reactor (c-shared) build keeps the Go runtime alive between calls; the host must run its
// _initialize (run the middleware with wazero's ModuleConfig.WithStartFunctions("_initialize")).
package main

import "unsafe"

// The ABI's kinds (http-wasm-host-go api/handler).
const (
	headerKindResponse = 1
	bodyKindResponse   = 1
)

//go:wasmimport http_handler set_header_value
func setHeaderValue(kind, name, nameLen, value, valueLen uint32)

//go:wasmimport http_handler write_body
func writeBody(kind, buf, bufLen uint32)

var (
	contentType = []byte("Content-Type")
	textPlain   = []byte("text/plain")
	hello       = []byte("Hello World\n")
)

// ptr is the guest-memory address of b's first byte (wasm32: it fits 32 bits). The slices above
// are package variables, so they stay put (Go's collector does not move objects).
func ptr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(&b[0]))) }

// handleRequest answers every request itself: 200 (the host's default status),
// Content-Type text/plain, "Hello World\n". It returns 0, "next=0": the host calls no next
// handler and no handle_response.
//
//go:wasmexport handle_request
func handleRequest() uint64 {
	setHeaderValue(headerKindResponse, ptr(contentType), uint32(len(contentType)), ptr(textPlain), uint32(len(textPlain)))
	writeBody(bodyKindResponse, ptr(hello), uint32(len(hello)))
	return 0
}

// handleResponse is required by the ABI; with next=0 the host never calls it.
//
//go:wasmexport handle_response
func handleResponse(reqCtx, isError uint32) {}

// main is not run in a reactor (c-shared) build; the package needs one all the same.
func main() {}
