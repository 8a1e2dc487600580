//go:build wasip1

// Command badexport exports the ABI's marker and callbacks, one of them with the wrong
// signature: the host must refuse it (exit 2) before running any of its code.
package main

//go:wasmexport wasmloop_abi_v1
func marker() int32 { return 1 }

//go:wasmexport wasmloop_on_start
func onStart() int32 { return 0 }

// ABI v1 wants (listener i64, req i64, size i32) -> i32.
//
//go:wasmexport wasmloop_on_request
func onRequest(req int32) int32 { return req }

func main() {}
