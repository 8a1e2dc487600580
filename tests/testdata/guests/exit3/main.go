// Command exit3 ends the process with status 3 from a timer, through the SDK's Exit
// (Node's process.exit), to show that a guest's own exit code reaches the shell. EXIT_CODE
// picks another code.
package main

import (
	"os"
	"strconv"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	code := 3
	if c, err := strconv.Atoi(os.Getenv("EXIT_CODE")); err == nil {
		code = c
	}
	wasmloop.SetTimeout(func() { wasmloop.Exit(code) }, 10*time.Millisecond)
}
