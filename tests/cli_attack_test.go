package tests

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Attacks on the CLI outside the happy path: init/build/run of a guest project, exit
// statuses, --admin, --access-log and --log-format json.

// initProject runs 'wasmloop init' into dir (offline) and fails the test unless it succeeds.
func initProject(t *testing.T, cwd, dir string, extra ...string) runResult {
	t.Helper()
	r := runOffline(t, cwd, append([]string{"init", dir, "--cache-dir", cacheDir}, extra...)...)
	if r.code != 0 {
		t.Fatalf("init %s: exit status %d\n%s%s", dir, r.code, r.stdout, r.stderr)
	}
	return r
}

// Fixed with this test (a bug): 'wasmloop build DIR -o main.go' (a slip of the fingers)
// overwrites the program's own source with the module; go build refuses to overwrite a file
// that is not an object file ("build output ... already exists and is not an object file").
// cmd/wasmloop/build.go:173 writes -o with os.WriteFile whatever is there.
func TestCLIAttackBuildDoesNotOverwriteSource(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	proj := filepath.Join(tmp, "app")
	initProject(t, tmp, proj)
	src, _ := os.ReadFile(filepath.Join(proj, "main.go"))
	r := runOffline(t, proj, "build", ".", "-o", "main.go", "--cache-dir", cacheDir)
	after, _ := os.ReadFile(filepath.Join(proj, "main.go"))
	if !bytes.Equal(src, after) {
		t.Errorf("build -o main.go (exit %d) replaced the program's source with %d bytes starting %q; want a refusal and the source kept\n%s",
			r.code, len(after), after[:min(len(after), 8)], r.stderr)
	}
}

// Fixed with this test (a bug): the build cache key (cmd/wasmloop/build.go:85, `go env
// GOVERSION GOFLAGS`) leaves out the environment that changes the code go build makes for wasm
// — GOWASM (and GOEXPERIMENT): a build with GOWASM=satconv,signext gets the module cached by
// the plain build, byte for byte.
func TestCLIAttackBuildCacheKeyHasGOWASM(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	proj := filepath.Join(tmp, "app")
	initProject(t, tmp, proj)
	cache := filepath.Join(tmp, "cache") // a cache of its own: the key is what is attacked
	plain := filepath.Join(tmp, "plain.wasm")
	if r := runOffline(t, tmp, "build", proj, "-o", plain, "--cache-dir", cache); r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	sat := filepath.Join(tmp, "sat.wasm")
	env := append(offline[:len(offline):len(offline)], "GOWASM=satconv,signext")
	if r := runWithEnv(t, env, tmp, "build", proj, "-o", sat, "--cache-dir", cache); r.code != 0 {
		t.Fatalf("build with GOWASM: exit %d\n%s", r.code, r.stderr)
	}
	a, _ := os.ReadFile(plain)
	b, _ := os.ReadFile(sat)
	if len(a) == 0 || bytes.Equal(a, b) {
		t.Errorf("the GOWASM=satconv,signext build is the cached plain build (%d bytes, identical); GOWASM is not in the cache key", len(a))
	}
}

// Fixed with this test (a bug): init accepts --module github.com/wasmloop/wasmloop, the SDK's
// own module path, and writes a go.work that uses the project and the SDK: two modules of one
// path, so the project init made never builds ("module ... appears multiple times in
// workspace"). cmd/wasmloop/init.go:60 checks only module.CheckImportPath; it should refuse the
// SDK's path (and paths under it), as a usage error.
func TestCLIAttackInitRefusesSDKModulePath(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	proj := filepath.Join(tmp, "app")
	env := append(offline[:len(offline):len(offline)], "GOFLAGS=") // the go command's error, not -mod's
	r := runWithEnv(t, env, tmp, "init", proj, "--module", "github.com/wasmloop/wasmloop", "--cache-dir", cacheDir)
	if r.code != 0 {
		if r.code != 2 {
			t.Errorf("init refused the SDK's module path with exit %d, want 2:\n%s", r.code, r.stderr)
		}
		return
	}
	b := runWithEnv(t, env, tmp, "build", proj, "-o", filepath.Join(tmp, "app.wasm"), "--cache-dir", cacheDir)
	if b.code != 0 {
		t.Errorf("init accepted --module github.com/wasmloop/wasmloop, and the project it made does not build (exit %d):\n%s", b.code, b.stderr)
	}
}

// Fixed with this test (a bug): init's closing hint for a directory with a space, "run it with
// 'wasmloop run My App'", is a command that does not work when pasted (two arguments).
// cmd/wasmloop/init.go:67 prints dir as is; it should quote it when a shell would split it.
func TestCLIAttackInitHintQuotesPath(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	r := initProject(t, tmp, "My App")
	m := regexp.MustCompile(`run it with '(.*)'`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no hint in %q", r.stderr)
	}
	if strings.Contains(m[1], "run My App") {
		t.Errorf("the hint %q splits into 4 words in a shell; want the directory quoted", m[1])
	}
}

// Fixed with this test (a bug): with --log-format json, a module run refuses (or a directory
// that does not build) is reported in a plain-text line, so the JSON log is no longer JSON.
// cmd/wasmloop/main.go:320 and :346 write with fmt.Fprintf instead of sayErr (noticeAt), which
// the rest of run uses "so that a JSON log stays JSON".
func TestCLIAttackJSONLogLoadErrorIsJSON(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.wasm")
	os.WriteFile(bad, []byte("hello\n"), 0o644)
	r := runWasmloop(t, tmp, ioTimeout, "run", "--log-format", "json", "--cache-dir", cacheDir, bad)
	if r.code != 2 {
		t.Errorf("exit %d, want 2", r.code)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line %q is not JSON under --log-format json", line)
		}
	}
}

// Guard: what is not a wasmloop guest is refused with exit status 2 and one line that says
// what is wrong, as README's "Exit status" says.
func TestCLIAttackNotAGuest(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	hello, err := os.ReadFile(wasm["hello"])
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"text.wasm":      []byte("not wasm\n"),
		"empty.wasm":     nil,
		"magic.wasm":     hello[:4],
		"truncated.wasm": hello[:1000],
	}
	for name, b := range files {
		os.WriteFile(filepath.Join(tmp, name), b, 0o644)
	}
	cases := map[string]string{
		"text.wasm": "not a WebAssembly module", "empty.wasm": "not a WebAssembly module",
		"magic.wasm": "invalid WebAssembly module", "truncated.wasm": "invalid WebAssembly module",
		wasm["hello-command"]: "WASI command",
	}
	for target, want := range cases {
		r := runWasmloop(t, tmp, ioTimeout, "run", "--cache-dir", cacheDir, target)
		if r.code != 2 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want 2 and one line with %q", filepath.Base(target), r.code, r.stderr, want)
		}
	}
}

// Guard: an --admin address in use fails the command at once, exit 1, naming --admin.
func TestCLIAttackAdminPortInUse(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r := runWasmloop(t, "", 30*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1", "--env", "PORT=0",
		"--admin", taken.Addr().String(), wasm["hello"])
	if r.code != 1 || !strings.Contains(r.stderr, "--admin: listen tcp "+taken.Addr().String()) || strings.Contains(r.stdout, "Server running") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
}

// Guard: /readyz turns 503 as soon as SIGTERM starts the drain, while a request is still in
// flight and the admin listener still answers; the in-flight request is finished.
func TestCLIAttackReadyzFlipsBeforeListenerCloses(t *testing.T) {
	t.Parallel()
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--admin", adminAddr}})
	c := client(&http.Transport{DisableKeepAlives: true})
	resp, _ := httpGet(t, c, "http://"+adminAddr+"/readyz")
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d before shutdown", resp.StatusCode)
	}
	_, inflight := startInFlight(t, s, "/later?ms=1000")
	s.signal(t, syscall.SIGTERM)
	var last string
	if !eventually(ioTimeout, func() bool {
		r, err := c.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			last = err.Error()
			return false
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		last = strconv.Itoa(r.StatusCode) + " " + string(b)
		return r.StatusCode == 503 && strings.Contains(string(b), "shutting down")
	}) {
		t.Fatalf("readyz never said 503 shutting down during the drain; last: %s", last)
	}
	if s.exited() {
		t.Fatalf("the process had exited when readyz flipped")
	}
	resp2, body, err := inflight.readResponse("GET", ioTimeout)
	if err != nil || resp2.StatusCode != 200 || !strings.Contains(string(body), "later") {
		t.Errorf("in-flight request during drain: %v %v %q", err, resp2, body)
	}
	if code := s.wait(t, ioTimeout); code != 0 {
		t.Errorf("exit %d after drain", code)
	}
}
