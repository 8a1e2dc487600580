package wasmloop_test

import (
	"os"
	"os/exec"
	"testing"
)

// TestVetsForWasip1 checks the SDK, the ABI package and every sample the way guests are
// built: they only build for GOOS=wasip1, so a plain `go vet ./...` does not see them.
func TestVetsForWasip1(t *testing.T) {
	cmd := exec.Command("go", "vet", "github.com/wasmloop/wasmloop/abi", "github.com/wasmloop/wasmloop/guest-sdk/...", "github.com/wasmloop/wasmloop/samples/...")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=wasip1 go vet: %v\n%s", err, out)
	}
}
