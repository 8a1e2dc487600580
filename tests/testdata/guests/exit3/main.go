// Command exit3 ends the process with status 3 from a timer, through the SDK's Exit
// (Node's process.exit), to show that a guest's own exit code reaches the shell.
package main

import (
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	wasmloop.SetTimeout(func() { wasmloop.Exit(3) }, 10*time.Millisecond)
}
