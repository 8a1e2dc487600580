package host_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// greetWasm is testdata/greet built as a guest by TestMain, for the examples; hostileWasm
// is the sandbox tests' misbehaving guest (tests/testdata/guests/hostile).
// attackWasm and attack2Wasm are the guests of the attacks on the embedder's API
// (embed_attack_test.go) and on the Handler (handler_attack_test.go); attack3Wasm, of the
// third (embed_attack3_test.go); msgatkWasm and review40Wasm are tests/testdata/guests/
// msgatk and review40 (msg_attack_test.go, review40_test.go).
var greetWasm, hostileWasm, whoamiWasm, streamWasm, wsechoWasm, pluginWasm, attackWasm, attack2Wasm, attack3Wasm string
var msgatkWasm, review40Wasm string

// cacheDir is the compilation cache the tests share: under -race, compiling a Go guest takes
// ~10 s, loading it from the cache a fraction of that.
var cacheDir string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wasmloop-host-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	greetWasm = filepath.Join(dir, "greet.wasm")
	hostileWasm = filepath.Join(dir, "hostile.wasm")
	whoamiWasm = filepath.Join(dir, "whoami.wasm")
	streamWasm = filepath.Join(dir, "stream.wasm")
	wsechoWasm = filepath.Join(dir, "wsecho.wasm")
	pluginWasm = filepath.Join(dir, "plugin.wasm")
	attackWasm = filepath.Join(dir, "attack.wasm")
	attack2Wasm = filepath.Join(dir, "attack2.wasm")
	attack3Wasm = filepath.Join(dir, "attack3.wasm")
	msgatkWasm = filepath.Join(dir, "msgatk.wasm")
	review40Wasm = filepath.Join(dir, "review40.wasm")
	cacheDir = filepath.Join(dir, "cache")
	for out, pkg := range map[string]string{greetWasm: "./testdata/greet", hostileWasm: "../tests/testdata/guests/hostile", whoamiWasm: "../samples/whoami",
		streamWasm: "../samples/stream", wsechoWasm: "../samples/wsecho",
		pluginWasm: "./testdata/plugin", attackWasm: "./testdata/attack", attack2Wasm: "./testdata/attack2", attack3Wasm: "./testdata/attack3",
		msgatkWasm: "../tests/testdata/guests/msgatk", review40Wasm: "../tests/testdata/guests/review40"} {
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "host: building %s: %v\n%s", pkg, err, msg)
			return 1
		}
	}
	return m.Run()
}
