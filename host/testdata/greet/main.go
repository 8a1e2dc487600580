//go:build wasip1

// Command greet is the guest of package host's example: its top-level code sets a timer that
// greets NAME, and once the timer has fired nothing is left to wait for, so the program ends.
package main

import (
	"os"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	wasmloop.SetTimeout(func() { wasmloop.Log("hello,", os.Getenv("NAME")) }, 10*time.Millisecond)
}
