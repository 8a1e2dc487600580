package poll

import (
	"os"
	"os/exec"
	"testing"
)

// TestVetsForEveryOS keeps the kqueue side honest on a Linux machine: the whole module must
// build and vet for macOS and FreeBSD too, where poll_kqueue.go and sock_bsd.go are used.
func TestVetsForEveryOS(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: vets the module for other systems")
	}
	for _, goos := range []string{"darwin", "freebsd"} {
		cmd := exec.Command("go", "vet", "github.com/wasmloop/wasmloop/...")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=arm64")
		if goos == "freebsd" {
			cmd.Env = append(cmd.Env, "GOARCH=amd64")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s go vet: %v\n%s", goos, err, out)
		}
	}
}
