package tests

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBenchModuleBuilds vets tests/bench/embed, the module folder that keeps the peers'
// dependencies (Extism, http-wasm) out of go.mod. `go test ./...` does not enter it, so without
// this a change to the main module's requirements left its go.mod stale ("updates to go.mod
// needed") and the embedding benchmark unbuildable until someone ran it.
func TestBenchModuleBuilds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "vet", "./...")
	cmd.Dir = filepath.Join(repoRoot, "tests", "bench", "embed")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet ./... in %s: %v\n%s", cmd.Dir, err, out)
	}
}
