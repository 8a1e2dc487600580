// Command plain is an ordinary Go program without the wasmloop SDK. Built as a reactor
// (-buildmode=c-shared) it is valid WebAssembly but does not export wasmloop_abi_v1, so the
// host must refuse it.
package main

import "fmt"

func main() { fmt.Println("plain Go, no wasmloop SDK") }
