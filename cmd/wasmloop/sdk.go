package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"

	guestsdk "github.com/wasmloop/wasmloop/guest-sdk"
)

// A guest project outside this repository imports github.com/wasmloop/wasmloop/guest-sdk/go,
// a module that is not published. This command carries the SDK's source (package guestsdk)
// and builds such a project in a Go workspace made of the project's module and that source,
// written once into the cache: no network, no published module, nothing in the project
// changed, and the SDK always the one of the host that runs the guest. RATIONALE.md, "Guest
// projects outside the repository", says why a workspace rather than a proxy or a replace.

// workMarker begins a go.work that wasmloop init wrote into a project (for gopls, go doc and
// a plain go build). Such a go.work is not the user's: the build replaces it with its own and
// points it at the SDK of this binary. Deleting the line makes the go.work the user's.
const workMarker = "// Written by wasmloop:"

// workHeader is the first lines of a project's own go.work.
const workHeader = workMarker + " it lets gopls, go doc and go build see the guest SDK that this\n" +
	"// wasmloop carries. wasmloop run and build rewrite it (delete this line to keep it as yours).\n\n"

// cacheSubdir is the directory name takes in the cache that --cache-dir names ("" the user's
// cache directory, "-" none: a directory under the system's temporary one).
func cacheSubdir(cacheDir, name string) string {
	switch cacheDir {
	case "-":
		return filepath.Join(os.TempDir(), "wasmloop-"+name)
	case "":
		if d, err := os.UserCacheDir(); err == nil {
			return filepath.Join(d, "wasmloop", name)
		}
		return filepath.Join(os.TempDir(), "wasmloop-"+name)
	}
	return filepath.Join(cacheDir, name)
}

// sdkModule writes the SDK's module into the cache, once per content, and returns its
// directory: <cache>/sdk/<hash of the files>. The directory appears whole (written aside,
// then renamed) or not at all, so concurrent runs share it safely; its files are read-only,
// as in Go's module cache, so that an edit through an editor's jump-to-definition fails
// rather than change every guest's SDK.
func sdkModule(cacheDir string) (string, error) {
	files, err := guestsdk.Files()
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
	}
	root := cacheSubdir(cacheDir, "sdk")
	dir := filepath.Join(root, hex.EncodeToString(h.Sum(nil))[:24])
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root, ".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // left only when the rename failed
	for _, name := range names {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, files[name], 0o444); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			return dir, nil // another run wrote it first
		}
		return "", err
	}
	return dir, nil
}

// goEnv is what the go command says of a directory.
type goEnv struct {
	GOMOD  string // the go.mod of the directory's module, or os.DevNull / "" for none
	GOWORK string // the go.work in force, or "" for none
}

func readGoEnv(ctx context.Context, gobin, dir string, env []string) (goEnv, error) {
	cmd := exec.CommandContext(ctx, gobin, "env", "-json", "GOMOD", "GOWORK")
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var e goEnv
	if err := cmd.Run(); err != nil {
		return e, &buildError{fmt.Sprintf("go env in %s: %v: %s", dir, err, strings.TrimSpace(stderr.String()))}
	}
	if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
		return e, &buildError{fmt.Sprintf("go env in %s: %v", dir, err)}
	}
	return e, nil
}

// isOwnWorkFile reports whether the go.work at path is one wasmloop init wrote.
func isOwnWorkFile(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.HasPrefix(b, []byte(workMarker))
}

// needsSDK reports whether the module whose go.mod is at gomod must be given the SDK: it is
// not this repository's module and neither requires nor replaces it (a module that does
// either says for itself where the SDK comes from).
func needsSDK(gomod string) (bool, string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return false, "", err
	}
	f, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		// A statement newer than this parser knows: read what it can, and take any
		// mention of the SDK's module as a require or replace.
		if f, err = modfile.ParseLax(gomod, data, nil); err != nil {
			return false, "", err
		}
		if bytes.Contains(data, []byte(guestsdk.ModulePath)) {
			return false, "", nil
		}
	}
	if f.Module != nil && f.Module.Mod.Path == guestsdk.ModulePath {
		return false, "", nil
	}
	for _, r := range f.Require {
		if r.Mod.Path == guestsdk.ModulePath {
			return false, "", nil
		}
	}
	for _, r := range f.Replace {
		if r.Old.Path == guestsdk.ModulePath {
			return false, "", nil
		}
	}
	goVersion := ""
	if f.Go != nil {
		goVersion = f.Go.Version
	}
	return true, goVersion, nil
}

// workFile returns the text of a go.work that uses the module at modDir (as written) and
// the SDK at sdkDir. Its go version is the module's when that is newer than the SDK's.
func workFile(goVersion, modDir, sdkDir string) string {
	v := "1.25"
	if goVersion != "" && version.Compare("go"+goVersion, "go"+v) > 0 {
		v = goVersion
	}
	return fmt.Sprintf("go %s\n\nuse (\n\t%s\n\t%s\n)\n", v, quoteModPath(modDir), quoteModPath(sdkDir))
}

// quoteModPath quotes a path for go.work when it needs it (spaces and the like).
func quoteModPath(p string) string {
	if modfile.MustQuote(p) {
		return modfile.AutoQuote(p)
	}
	return p
}

// guestEnv returns the environment to build the package in dir with: env itself for a
// package that knows where the SDK comes from (in this repository, in a module that requires
// or replaces it, or under a go.work of the user's), or env with GOWORK set to a workspace of
// the package's module and the SDK this command carries.
func guestEnv(ctx context.Context, gobin, dir, cacheDir string, env []string) ([]string, error) {
	ge, err := readGoEnv(ctx, gobin, dir, env)
	if err != nil {
		return nil, err
	}
	own := ge.GOWORK != "" && isOwnWorkFile(ge.GOWORK)
	if ge.GOMOD == os.DevNull {
		return nil, &buildError{fmt.Sprintf("%s is in no Go module (no go.mod in it or above it): 'go mod init NAME' there makes one, and 'wasmloop init DIR' makes a whole guest project", dir)}
	}
	if ge.GOWORK != "" && ge.GOWORK != "off" && !own || ge.GOMOD == "" {
		return env, nil // a user's workspace, or GOPATH mode: the go command decides
	}
	need, goVersion, err := needsSDK(ge.GOMOD)
	if err != nil {
		return nil, &buildError{err.Error()}
	}
	if !need {
		return env, nil
	}
	sdkDir, err := sdkModule(cacheDir)
	if err != nil {
		return nil, &buildError{"cannot write the guest SDK into the cache: " + err.Error()}
	}
	modDir := filepath.Dir(ge.GOMOD)
	if own {
		// Keep the project's go.work pointing at this SDK, for gopls and go build; a
		// failure costs only that.
		text := workHeader + workFile(goVersion, ".", sdkDir)
		if b, err := os.ReadFile(ge.GOWORK); err == nil && string(b) != text && filepath.Dir(ge.GOWORK) == modDir {
			os.WriteFile(ge.GOWORK, []byte(text), 0o644)
		}
	}
	text := workFile(goVersion, modDir, sdkDir)
	sum := sha256.Sum256([]byte(text))
	work := filepath.Join(cacheSubdir(cacheDir, "work"), hex.EncodeToString(sum[:])[:24], "go.work")
	if b, err := os.ReadFile(work); err != nil || string(b) != text {
		if err := os.MkdirAll(filepath.Dir(work), 0o755); err != nil {
			return nil, &buildError{"cannot write the workspace: " + err.Error()}
		}
		if err := writeFileAtomic(work, []byte(text)); err != nil {
			return nil, &buildError{"cannot write the workspace: " + err.Error()}
		}
	}
	return workspaceEnv(env, work), nil
}

// workspaceEnv is env with GOWORK=work and without a -mod=mod in GOFLAGS, which the go
// command refuses in workspace mode (a workspace never edits go.mod; readonly is its default).
func workspaceEnv(env []string, work string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "GOWORK":
			continue
		case "GOFLAGS":
			fields := strings.Fields(v)
			fields = slices.DeleteFunc(fields, func(f string) bool {
				return f == "-mod=mod" || f == "--mod=mod"
			})
			kv = "GOFLAGS=" + strings.Join(fields, " ")
		}
		out = append(out, kv)
	}
	return append(out, "GOWORK="+work)
}

// writeFileAtomic writes a file whole or not at all: concurrent builds may share it.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
