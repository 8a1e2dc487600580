package guestout_test

import (
	"context"
	"fmt"
	"os"

	"github.com/wasmloop/wasmloop/host/internal/guestout"
)

// A guest's output goes through a Writer. A line that cannot be buffered (here, one longer
// than a 16-byte limit) is dropped, and a report takes its place in the output.
func ExampleWriter() {
	out := guestout.New(os.Stdout, 16)
	fmt.Fprintln(out, "short line")
	fmt.Fprintln(out, "a line longer than the limit")
	out.Close(context.Background())
	// Output:
	// short line
	// wasmloop: 1 line of guest output dropped (more than 16 bytes were waiting to be written)
}
