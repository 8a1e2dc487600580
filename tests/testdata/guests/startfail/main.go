//go:build wasip1

// Command startfail is a guest whose top-level code fails with the program's own status 1
// (wasmloop_on_start returns 1, as a C program's main might): the host exits 1 and says so,
// once, as a status and not as an error code of the ABI.
package main

//go:wasmexport wasmloop_abi_v1
func marker() int32 { return 7 }

//go:wasmexport wasmloop_on_start
func onStart() int32 { return 1 }

func main() {}
