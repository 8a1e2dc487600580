// Command panicmain panics in its top-level code: start-up fails and the process must exit
// non-zero with the panic message on stderr.
package main

import (
	_ "github.com/wasmloop/wasmloop/guest-sdk/go" // the ABI exports; main itself only panics
)

func main() {
	panic("top-level boom from panicmain")
}
