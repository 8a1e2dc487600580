package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// offline is the environment prefix of every command in these tests: the module proxy is
// off, and -mod=mod would let the go command fetch whatever a build lacks, so a build that
// needed the network fails instead of passing by downloading. GOWORK is unset (a go.work of
// the test's own is not the user's), and the toolchain is the local one.
var offline = []string{"env", "-u", "GOWORK", "GOPROXY=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local"}

// initBuildTimeout bounds a command that builds a guest from cold (the SDK's packages
// compile for wasip1 the first time) on a loaded two-core machine.
const initBuildTimeout = 3 * time.Minute

// runOffline runs the binary to completion in dir with the offline environment.
func runOffline(t *testing.T, dir string, args ...string) runResult {
	t.Helper()
	return runWithEnv(t, offline, dir, args...)
}

// runWithEnv runs the binary to completion in dir under an env(1) prefix.
func runWithEnv(t *testing.T, prefix []string, dir string, args ...string) runResult {
	t.Helper()
	p := startProc(t, prefix, dir, args...)
	code := p.wait(t, initBuildTimeout)
	return runResult{code: code, stdout: p.stdout.String(), stderr: p.stderr.String()}
}

// TestInitBuildRun is a guest author's first hour, outside the repository and offline:
// 'wasmloop init' makes a project in a temporary directory, 'wasmloop build -o' writes a
// module that serves Hello World, and 'wasmloop run DIR' (flags after the directory) builds
// and serves it too. The SDK comes from the binary; no module is downloaded.
func TestInitBuildRun(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	proj := filepath.Join(tmp, "My App") // a space: the generated go.work must quote it

	r := runOffline(t, tmp, "init", proj, "--cache-dir", cacheDir)
	if r.code != 0 {
		t.Fatalf("init: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for name, want := range map[string]string{
		"go.mod":     "module my-app\n\ngo 1.25\n",
		"main.go":    `res.End("Hello World\n")`,
		"README.md":  "wasmloop run .",
		".gitignore": "go.work\n",
		"go.work":    "// Written by wasmloop:",
	} {
		b, err := os.ReadFile(filepath.Join(proj, name))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v; want it to contain %q, it holds:\n%s", name, err, want, b)
		}
	}
	if r := runOffline(t, tmp, "init", proj, "--cache-dir", cacheDir); r.code == 0 || !strings.Contains(r.stderr, "already has a go.mod") {
		t.Errorf("a second init in the same directory: exit status %d, stderr %q; want a refusal", r.code, r.stderr)
	}

	// The project's go.work is wasmloop's (its first line says so): a build points it at the
	// SDK again when it points elsewhere, here at a directory that does not exist.
	work := filepath.Join(proj, "go.work")
	orig, _ := os.ReadFile(work)
	sdkDir := regexp.MustCompile(`(?m)^\t(/.*sdk/[0-9a-f]+)$`).FindSubmatch(orig)
	if sdkDir == nil {
		t.Fatalf("go.work uses no SDK directory in the cache:\n%s", orig)
	}
	stale := strings.Replace(string(orig), string(sdkDir[1]), filepath.Join(tmp, "gone"), 1)
	if err := os.WriteFile(work, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}

	// build, with its flag after the directory.
	module := filepath.Join(tmp, "app.wasm")
	if r := runOffline(t, tmp, "build", proj, "-o", module, "--cache-dir", cacheDir); r.code != 0 {
		t.Fatalf("build: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, err := os.ReadFile(module); err != nil || !strings.HasPrefix(string(b), "\x00asm") {
		t.Fatalf("build -o wrote no WebAssembly module: %v", err)
	}
	if b, _ := os.ReadFile(work); string(b) != string(orig) {
		t.Errorf("the build left the project's go.work pointing elsewhere:\n%s\nwant\n%s", b, orig)
	}
	// With that go.work, the go command sees the SDK by itself (as gopls and go doc do).
	list := exec.Command("go", "list", "-deps", ".")
	list.Dir = proj
	list.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=", "GOTOOLCHAIN=local", "GOOS=wasip1", "GOARCH=wasm")
	if out, err := list.CombinedOutput(); err != nil || !strings.Contains(string(out), "github.com/wasmloop/wasmloop/guest-sdk/go\n") {
		t.Errorf("go list -deps in the project: %v\n%s", err, out)
	}

	s := startServer(t, serverOpts{Module: module, Dir: tmp})
	if _, resp, body := rawRequest(t, s.Addr, get("/")); resp.StatusCode != 200 || string(body) != helloBody {
		t.Errorf("the built module answers %d %q", resp.StatusCode, body)
	}
	s.kill()

	// run DIR, offline, its flags after the directory and the guest's arguments after "--".
	// The program changed, to print its arguments: the build must see the edit.
	mainGo := filepath.Join(proj, "main.go")
	src, _ := os.ReadFile(mainGo)
	edited := strings.Replace(string(src), "\t\"os\"\n", "\t\"os\"\n\t\"strings\"\n", 1)
	edited = strings.Replace(edited, "\tif wasmloop.WorkerID() == 0 {", "\twasmloop.Log(\"args: \" + strings.Join(os.Args, \"|\"))\n\tif wasmloop.WorkerID() == 0 {", 1)
	if err := os.WriteFile(mainGo, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	p := startProc(t, offline, tmp, "run", proj, "--workers", "1", "--env", "PORT="+strconv.Itoa(port), "--cache-dir", cacheDir, "--", "one", "--two")
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p.awaitStdout(t, "Server running at http://"+addr+"/\n", initBuildTimeout)
	if !strings.Contains(p.stdout.String(), "args: My App|one|--two\n") {
		t.Errorf("the guest's os.Args are not the directory's name and the arguments after --:\n%s", p.stdout)
	}
	if _, resp, body := rawRequest(t, addr, get("/")); resp.StatusCode != 200 || string(body) != helloBody {
		t.Errorf("wasmloop run DIR answers %d %q", resp.StatusCode, body)
	}
}

// TestBuildKnownModulesAsTheyAre: a project that says where the SDK comes from is built as
// it is, without the SDK the binary carries: one whose go.mod requires the module (offline,
// the go command cannot fetch it), and one under a go.work of the user's that lacks it.
// Both fail, and the failure is the go command's.
func TestBuildKnownModulesAsTheyAre(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(repoRoot, "samples", "hello", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, gomod, gowork string
		env                 []string // after offline's
		want                *regexp.Regexp
	}{
		{"requires", "module app\n\ngo 1.25\n\nrequire github.com/wasmloop/wasmloop v0.1.0\n", "", nil,
			regexp.MustCompile(`module lookup disabled by GOPROXY=off`)},
		// A workspace takes no -mod=mod: the user's go.work is in force.
		{"user go.work and -mod=mod", "module app\n\ngo 1.25\n", "go 1.25\n\nuse .\n", nil,
			regexp.MustCompile(`-mod may only be set to readonly or vendor when in workspace mode`)},
		{"user go.work", "module app\n\ngo 1.25\n", "go 1.25\n\nuse .\n", []string{"GOFLAGS="},
			regexp.MustCompile(`no required module provides package github.com/wasmloop/wasmloop/guest-sdk/go`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "go.mod"), []byte(tc.gomod), 0o644)
			os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644)
			if tc.gowork != "" {
				os.WriteFile(filepath.Join(dir, "go.work"), []byte(tc.gowork), 0o644)
			}
			r := runWithEnv(t, append(offline[:len(offline):len(offline)], tc.env...), dir, "build", ".", "-o", "app.wasm", "--cache-dir", cacheDir)
			if r.code != 1 || !tc.want.MatchString(r.stderr) {
				t.Errorf("exit status %d, want 1 with output matching %v:\n%s", r.code, tc.want, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "app.wasm")); err == nil {
				t.Errorf("a failed build wrote a module")
			}
		})
	}
}
