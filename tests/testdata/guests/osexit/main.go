// Command osexit calls os.Exit(5) (WASI proc_exit) in its top-level code; ABI.md §3 says
// proc_exit ends the process with the given code, like exit.
package main

import (
	"os"

	_ "github.com/wasmloop/wasmloop/guest-sdk/go" // the ABI exports
)

func main() {
	os.Exit(5)
}
