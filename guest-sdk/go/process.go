//go:build wasip1

package wasmloop

import (
	"fmt"
	"os"
)

// Log writes its arguments to standard output, separated by spaces, ending with a newline
// (Node's console.log).
func Log(args ...any) { fmt.Fprintln(os.Stdout, args...) }

// Error writes to standard error (Node's console.error).
func Error(args ...any) { fmt.Fprintln(os.Stderr, args...) }

// Exit ends the process with code once the current callback returns (Node's process.exit).
// Unlike os.Exit it is an orderly request to the host, never mistaken for a crash.
func Exit(code int) { hostExit(int32(code)) }

// WorkerID is this instance's worker, 0 … WorkerCount()-1. Every worker runs the program's
// top-level code; worker 0 runs it first, the others once worker 0 listens.
func WorkerID() int { return int(hostWorkerID()) }

// WorkerCount is the number of workers in the process.
func WorkerCount() int { return int(hostWorkerCount()) }
