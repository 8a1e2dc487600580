package tests

import (
	"context"
	"os/exec"
	"testing"
)

// TestStaticcheck runs staticcheck over the whole module; any finding fails the test. .ci/run
// installs the staticcheck release it pins, so CI checks every commit with the same rules.
func TestStaticcheck(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "staticcheck", "honnef.co/go/tools/cmd/staticcheck with go install, at the version .ci/run pins")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "./...")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("staticcheck ./... in %s: %v\n%s", repoRoot, err, out)
	}
}
