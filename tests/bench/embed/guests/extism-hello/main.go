//go:build wasip1

// Command extism-hello is the hello world as an Extism plug-in, written with the Extism
// Go PDK (github.com/extism/go-pdk) and built with the standard Go compiler as a WASI
// reactor, as the PDK's README describes for go:wasmexport:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o extism-hello.wasm .
//
// It exports two plug-in functions:
//
//	hello  ignores its input and outputs "Hello World\n" (the HTTP benchmark, -mode=extism)
//	echo   outputs its input unchanged (BenchmarkExtismCall1KiB)
package main

import "github.com/extism/go-pdk"

var hello = []byte("Hello World\n")

//go:wasmexport hello
func helloFn() int32 {
	pdk.Output(hello)
	return 0
}

//go:wasmexport echo
func echoFn() int32 {
	pdk.Output(pdk.Input())
	return 0
}

// main is not run in a reactor (c-shared) build; the package needs one all the same.
func main() {}
