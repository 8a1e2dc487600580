package host_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// greetWasm is testdata/greet built as a guest by TestMain, for the examples.
var greetWasm string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wasmloop-host-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	greetWasm = filepath.Join(dir, "greet.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", greetWasm, "./testdata/greet")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "host: building testdata/greet: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
