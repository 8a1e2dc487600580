package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildRecipe names how guests are built; changing the build command must change it.
const buildRecipe = "go build -buildmode=c-shared GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0"

// buildError is a failed go build: the program, not the module, is at fault (exit 1).
type buildError struct{ msg string }

func (e *buildError) Error() string { return e.msg }

// buildGuest builds a Go package directory as a wasmloop guest and returns the module's path.
//
// The result is cached under a key made from the Go version and the content of every
// non-standard source file the package depends on, the module files included, so an
// unchanged program starts without running the linker (a guest relink costs ~1 s) and any
// change to it or its dependencies rebuilds it.
func buildGuest(ctx context.Context, dir, cacheDir string, stderr io.Writer) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", &buildError{"building a directory needs the go command on PATH: " + err.Error()}
	}
	env := append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if env, err = guestEnv(ctx, gobin, dir, cacheDir, env); err != nil {
		return "", err
	}
	key, err := sourceKey(ctx, gobin, dir, env)
	if err != nil {
		return "", err
	}
	root := buildCacheDir(cacheDir)
	out := filepath.Join(root, key+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", &buildError{"cannot create the build cache: " + err.Error()}
	}
	tmp := out + fmt.Sprintf(".tmp%d", os.Getpid())
	cmd := exec.CommandContext(ctx, gobin, "build", "-buildmode=c-shared", "-o", tmp, ".")
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", &buildError{fmt.Sprintf("building %s for wasip1 failed: %v", dir, err)}
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", &buildError{err.Error()}
	}
	return out, nil
}

func buildCacheDir(cacheDir string) string { return cacheSubdir(cacheDir, "build") }

// sourceKey hashes what a build depends on: the go version, the build environment, and
// every file of every non-standard package in the build (with the module's go.mod/go.sum).
// A guest built in a workspace with the SDK this command carries (guestEnv) lists the SDK's
// files under their cache directory, whose name is their content's hash: another SDK is
// another key.
func sourceKey(ctx context.Context, gobin, dir string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, gobin, "list", "-deps", "-f",
		`{{if not .Standard}}{{.Dir}}{{"\t"}}{{join .GoFiles "\t"}}{{"\t"}}{{join .EmbedFiles "\t"}}{{"\t"}}{{join .SFiles "\t"}}{{if .Module}}{{"\n"}}{{.Module.Dir}}{{"\t"}}go.mod{{"\t"}}go.sum{{end}}{{"\n"}}{{end}}`, ".")
	cmd.Dir = dir
	cmd.Env = env
	var stdout, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &errb
	if err := cmd.Run(); err != nil {
		return "", &buildError{fmt.Sprintf("%s is not a Go package that builds for wasip1: %s", dir, strings.TrimSpace(errb.String()))}
	}
	h := sha256.New()
	// What else changes the module the same sources build to: flags, the wasm features, the
	// experiments — asked in the project's directory, whose go.mod may name a toolchain.
	goenv := exec.CommandContext(ctx, gobin, "env", "GOVERSION", "GOFLAGS", "GOWASM", "GOEXPERIMENT")
	goenv.Dir = dir
	goenv.Env = env
	ver, _ := goenv.Output()
	h.Write(ver)
	fmt.Fprintf(h, "%s\x00", buildRecipe)
	seen := map[string]bool{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		fields := strings.Split(line, "\t")
		if len(fields) < 2 {
			continue
		}
		for _, name := range fields[1:] {
			if name == "" {
				continue
			}
			p := filepath.Join(fields[0], name)
			if seen[p] {
				continue
			}
			seen[p] = true
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				return "", &buildError{err.Error()}
			}
			fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// buildFlags returns the flags of build.
func buildFlags(out, cacheDir *string) *flag.FlagSet {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.StringVar(out, "o", "", "write the module to `file` (default: the directory's name with .wasm, in the current directory; into it if it is a directory)")
	fs.StringVar(cacheDir, "cache-dir", "", "the build cache, shared with run (default: the user cache dir; - for none)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wasmloop build [-o file] <Go package directory>

Builds a Go guest into a WebAssembly module to deploy, exactly as 'wasmloop run' builds it
(GOOS=wasip1 GOARCH=wasm -buildmode=c-shared, cached by content; a directory outside the
wasmloop repository builds against the guest SDK this wasmloop carries, offline), and
writes it to the -o file. 'wasmloop run file.wasm' runs it. Flags may come before or after
the directory.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs
}

func cmdBuild(args []string, stdout, stderr io.Writer) int {
	var out, cacheDir string
	fs := buildFlags(&out, &cacheDir)
	pos, rest, code, ok := parseCommand(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 || len(rest) > 0 {
		return usageError(stderr, "build", "want exactly one directory")
	}
	dir := pos[0]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if err == nil {
			err = fmt.Errorf("%s is not a directory", dir)
		}
		fmt.Fprintf(stderr, "wasmloop build: %v\n", err)
		return exitUsage
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		fmt.Fprintf(stderr, "wasmloop build: %v\n", err)
		return exitFailure
	}
	name := filepath.Base(abs) + ".wasm"
	if out == "" {
		out = name
	} else if st, err := os.Stat(out); err == nil && st.IsDir() {
		out = filepath.Join(out, name)
	}
	built, err := buildGuest(context.Background(), dir, cacheDir, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "wasmloop build: %v\n", err)
		return exitFailure
	}
	wasm, err := os.ReadFile(built)
	if err == nil {
		err = writeModule(out, wasm)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wasmloop build: %v\n", err)
		return exitFailure
	}
	return 0
}

// writeModule writes wasm to out, as go build writes its output: never over a file that is
// not a module already (a mistyped -o main.go replaced the program's source), and through a
// temporary file renamed into place, so a reader never sees half a module.
func writeModule(out string, wasm []byte) error {
	if f, err := os.Open(out); err == nil {
		var magic [4]byte
		n, _ := io.ReadFull(f, magic[:])
		f.Close()
		if n > 0 && string(magic[:n]) != "\x00asm" {
			return fmt.Errorf("-o %s: the file exists and is not a WebAssembly module: not overwritten", out)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".wasmloop-build-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(wasm)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
