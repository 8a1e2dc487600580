package tests

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestDeployModule runs the tests of deploy/, a module of its own (it keeps the Kubernetes API
// packages out of this go.mod), so that `go test ./...` here reaches them: the Kubernetes
// manifests decoded strictly and checked against each other (deploy/kubernetes), and the
// container image built with buildah from deploy/Dockerfile (deploy/image_test.go; buildah
// and busybox-static are Debian packages that .ci/run installs: on CI a missing one fails).
func TestDeployModule(t *testing.T) {
	t.Parallel()
	requireTool(t, "buildah", "Debian's buildah")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "./...")
	cmd.Dir = filepath.Join(repoRoot, "deploy")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test ./... in deploy/: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
