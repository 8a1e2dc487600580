package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	guestsdk "github.com/wasmloop/wasmloop/guest-sdk"
)

// The SDK the binary carries is the tree's: every non-test Go file of abi and guest-sdk/go
// (subpackages included), so a new file or subpackage cannot be left out by the embed
// patterns unnoticed.
func TestSDKFilesAreTheTree(t *testing.T) {
	files, err := guestsdk.Files()
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for name := range files {
		got = append(got, name)
	}
	root := filepath.Join("..", "..")
	for _, dir := range []string{"abi", filepath.Join("guest-sdk", "go")} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") && d.Name() != "source.go" {
				rel, _ := filepath.Rel(root, p)
				want = append(want, filepath.ToSlash(rel))
			}
			return nil
		})
	}
	want = append(want, "go.mod")
	slices.Sort(got)
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the embedded SDK holds\n%v\nthe tree has\n%v\n(a new subpackage of guest-sdk/go goes on the go:embed line of guest-sdk/source.go)", got, want)
	}
	b, err := os.ReadFile(filepath.Join(root, "guest-sdk", "go", "doc.go"))
	if err != nil || !bytes.Equal(files["guest-sdk/go/doc.go"], b) {
		t.Errorf("guest-sdk/go/doc.go differs from the tree's (%v)", err)
	}
}

// sdkModule writes the module once, read-only, and finds it the second time.
func TestSDKModuleWrittenOnce(t *testing.T) {
	cache := t.TempDir()
	dir, err := sdkModule(cache)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != filepath.Join(cache, "sdk") {
		t.Errorf("the SDK is at %s, want under %s", dir, filepath.Join(cache, "sdk"))
	}
	gomod := filepath.Join(dir, "go.mod")
	if b, err := os.ReadFile(gomod); err != nil || string(b) != guestsdk.GoMod {
		t.Errorf("go.mod: %q, %v", b, err)
	}
	st, err := os.Stat(filepath.Join(dir, "guest-sdk", "go", "doc.go"))
	if err != nil || st.Mode().Perm()&0o222 != 0 {
		t.Errorf("an SDK file: %v, %v; want it read-only", st.Mode(), err)
	}
	again, err := sdkModule(cache)
	if err != nil || again != dir {
		t.Errorf("second call: %s, %v; want %s", again, err, dir)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "sdk"))
	if len(entries) != 1 {
		t.Errorf("the sdk cache holds %d entries, want 1 (no temporary directory left)", len(entries))
	}
}

// guestEnv gives the SDK only to a module that does not say where it comes from.
func TestGuestEnv(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	ctx := context.Background()
	cache := t.TempDir()
	base := []string{"GOFLAGS=-mod=mod -trimpath"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "GOFLAGS" && k != "GOWORK" {
			base = append(base, kv)
		}
	}
	module := func(t *testing.T, gomod string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	gowork := func(env []string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "GOWORK="); ok {
				return v
			}
		}
		return ""
	}

	// As they are: this repository's samples, a module that requires or replaces the SDK's,
	// a module under a go.work of the user's.
	for name, dir := range map[string]string{
		"samples/hello": filepath.Join("..", "..", "samples", "hello"),
		"requires":      module(t, "module app\n\ngo 1.25\n\nrequire github.com/wasmloop/wasmloop v0.1.0\n"),
		"replaces":      module(t, "module app\n\ngo 1.25\n\nreplace github.com/wasmloop/wasmloop => ../wasmloop\n"),
		"a user's go.work": func() string {
			d := module(t, "module app\n\ngo 1.25\n")
			os.WriteFile(filepath.Join(d, "go.work"), []byte("go 1.25\n\nuse .\n"), 0o644)
			return d
		}(),
	} {
		env, err := guestEnv(ctx, gobin, dir, cache, base)
		if err != nil || !reflect.DeepEqual(env, base) {
			t.Errorf("%s: the environment changed (GOWORK=%q), %v", name, gowork(env), err)
		}
	}

	// A module of its own gets a workspace with the SDK, and loses -mod=mod, which a
	// workspace refuses. Its go version wins when it is newer.
	dir := module(t, "module app\n\ngo 1.26.1\n")
	env, err := guestEnv(ctx, gobin, dir, cache, base)
	if err != nil {
		t.Fatal(err)
	}
	work := gowork(env)
	b, err := os.ReadFile(work)
	if err != nil {
		t.Fatalf("GOWORK=%q: %v", work, err)
	}
	sdkDir, _ := sdkModule(cache)
	if want := "go 1.26.1\n\nuse (\n\t" + dir + "\n\t" + sdkDir + "\n)\n"; string(b) != want {
		t.Errorf("go.work:\n%s\nwant\n%s", b, want)
	}
	if !slices.Contains(env, "GOFLAGS=-trimpath") {
		t.Errorf("GOFLAGS not stripped of -mod=mod: %q", env)
	}

	// A go.work that wasmloop init wrote is not the user's: it is rewritten to this SDK.
	dir = module(t, "module app\n\ngo 1.25\n")
	own := filepath.Join(dir, "go.work")
	os.WriteFile(own, []byte(workHeader+"go 1.25\n\nuse (\n\t.\n\t/nowhere\n)\n"), 0o644)
	env, err = guestEnv(ctx, gobin, dir, cache, base)
	if err != nil || !strings.HasPrefix(gowork(env), filepath.Join(cache, "work")) {
		t.Fatalf("with the project's own go.work: GOWORK=%q, %v", gowork(env), err)
	}
	if b, _ := os.ReadFile(own); string(b) != workHeader+workFile("", ".", sdkDir) {
		t.Errorf("the project's go.work was not pointed at the SDK:\n%s", b)
	}
}

func TestWorkFileQuotes(t *testing.T) {
	got := workFile("1.24", "/tmp/My App", "/c/sdk/x")
	if want := "go 1.25\n\nuse (\n\t\"/tmp/My App\"\n\t/c/sdk/x\n)\n"; got != want {
		t.Errorf("workFile = %q, want %q", got, want)
	}
}

// A directory in no module is refused with a message that says how to make one.
func TestGuestEnvNoModule(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	env := append(os.Environ(), "GOWORK=", "GO111MODULE=on")
	_, err = guestEnv(context.Background(), gobin, dir, t.TempDir(), env)
	if err == nil || !strings.Contains(err.Error(), "is in no Go module") || !strings.Contains(err.Error(), "wasmloop init") {
		t.Errorf("a directory without go.mod: %v", err)
	}
}
