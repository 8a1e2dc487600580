//go:build wasip1

// Command timers shows Node's lifecycle: it prints a line at 100, 200 and 300 ms from an
// interval, clears it, and the process exits by itself because nothing is left to do.
package main

import (
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	start := time.Now()
	n := 0
	var tick *wasmloop.Timer
	tick = wasmloop.SetInterval(func() {
		n++
		wasmloop.Log("tick", n, "at", time.Since(start).Round(10*time.Millisecond))
		if n == 3 {
			wasmloop.ClearInterval(tick)
		}
	}, 100*time.Millisecond)
}
