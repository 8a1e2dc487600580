package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wasmloop/wasmloop/host"
)

// Flags go before or after the module, as with Go's tools; "--" ends them, and what follows
// is the guest's.
func TestParseArgsFlagsAnywhere(t *testing.T) {
	tests := []struct {
		args      []string
		pos, rest []string
		workers   int
		watch     bool
		cache     string
		env       []string
	}{
		{args: []string{"./app", "--workers", "1"}, pos: []string{"./app"}, workers: 1},
		{args: []string{"--workers", "2", "./app"}, pos: []string{"./app"}, workers: 2},
		{args: []string{"--watch", "./app", "-workers=3"}, pos: []string{"./app"}, workers: 3, watch: true},
		{args: []string{"./app", "--watch", "--env", "A=1", "--env=B=2"}, pos: []string{"./app"}, watch: true, env: []string{"A=1", "B=2"}},
		{args: []string{"./app", "--workers", "1", "--", "--port", "8", "x"}, pos: []string{"./app"}, rest: []string{"--port", "8", "x"}, workers: 1},
		{args: []string{"--", "./app"}, rest: []string{"./app"}},
		{args: []string{"./app", "--"}, pos: []string{"./app"}, rest: []string{}},
		// A "--" that is a flag's value is that value, not the end of the flags.
		{args: []string{"./app", "--cache-dir", "--", "--workers", "4"}, pos: []string{"./app"}, workers: 4, cache: "--"},
		{args: []string{"a", "b", "--workers", "1"}, pos: []string{"a", "b"}, workers: 1},
		{args: []string{"-", "--workers", "1"}, pos: []string{"-"}, workers: 1},
	}
	for _, tc := range tests {
		var o runOptions
		fs := runFlags(&o, io.Discard)
		pos, rest, err := parseArgs(fs, tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if tc.workers == 0 {
			tc.workers = host.DefaultConfig().Workers
		}
		if !slices.Equal(pos, tc.pos) || !slices.Equal(rest, tc.rest) || o.cfg.Workers != tc.workers ||
			o.watch != tc.watch || o.cfg.CacheDir != tc.cache || !slices.Equal(o.cfg.Env, tc.env) {
			t.Errorf("%q: positional %q, rest %q, workers %d, watch %v, cache %q, env %q; want %q, %q, %d, %v, %q, %q",
				tc.args, pos, rest, o.cfg.Workers, o.watch, o.cfg.CacheDir, o.cfg.Env, tc.pos, tc.rest, tc.workers, tc.watch, tc.cache, tc.env)
		}
	}
}

// A bad or mistyped flag, or a wrong number of arguments, is one line that says what is
// wrong and one that says where the usage is: not the whole usage. Nothing goes to stdout.
func TestBadUsageIsTwoLines(t *testing.T) {
	tests := []struct {
		args  []string
		first string
	}{
		{[]string{"run", "./app", "--wrkers", "1"}, "wasmloop run: flag provided but not defined: -wrkers"},
		{[]string{"run", "--workers", "many", "./app"}, `wasmloop run: invalid value "many" for flag -workers: want a number, or 0 for the default`},
		{[]string{"run", "./app", "--workers"}, "wasmloop run: flag needs an argument: -workers"},
		{[]string{"run"}, "wasmloop run: want exactly one module or directory"},
		{[]string{"run", "a.wasm", "b.wasm"}, "wasmloop run: want exactly one module or directory"},
		{[]string{"build", ".", "--out", "x.wasm"}, "wasmloop build: flag provided but not defined: -out"},
		{[]string{"build"}, "wasmloop build: want exactly one directory"},
		{[]string{"build", ".", "--", "x"}, "wasmloop build: want exactly one directory"},
		{[]string{"init", "--modul", "x"}, "wasmloop init: flag provided but not defined: -modul"},
		{[]string{"init", "a", "b"}, "wasmloop init: want at most one directory"},
		{[]string{"init", "--module", "Bad Path!", "x"}, `wasmloop init: malformed import path "Bad Path!": invalid char ' '`},
		{[]string{"version", "--verbose"}, "wasmloop version: flag provided but not defined: -verbose"},
	}
	for _, tc := range tests {
		var stdout, stderr strings.Builder
		code := run(tc.args, &stdout, &stderr)
		cmd := tc.args[0]
		want := tc.first + "\nRun 'wasmloop help " + cmd + "' for usage.\n"
		if code != exitUsage || stderr.String() != want || stdout.Len() != 0 {
			t.Errorf("%q: exit status %d, stdout %q, stderr\n%s\nwant exit status %d and stderr\n%s", tc.args, code, stdout.String(), stderr.String(), exitUsage, want)
		}
	}
}

// help COMMAND and COMMAND -h print the command's usage to stdout and exit 0.
func TestHelpCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"wasmloop run [flags]", "wasmloop build [-o file]", "wasmloop init [--module path]", "Flags may come before or after"}},
		{[]string{"help", "run"}, []string{"Usage: wasmloop run", "-workers", "what follows \"--\" is the guest's os.Args[1:]"}},
		{[]string{"run", "-h"}, []string{"Usage: wasmloop run", "-workers"}},
		{[]string{"run", "./app", "--help"}, []string{"Usage: wasmloop run"}},
		{[]string{"help", "build"}, []string{"Usage: wasmloop build [-o file] <Go package directory>", "-o file", "-cache-dir"}},
		{[]string{"build", "-h"}, []string{"Usage: wasmloop build"}},
		{[]string{"help", "init"}, []string{"Usage: wasmloop init [flags] [directory]", "-module path", "go.work"}},
		{[]string{"init", "-h"}, []string{"Usage: wasmloop init"}},
		{[]string{"help", "version"}, []string{"Usage: wasmloop version"}},
		{[]string{"help", "help"}, []string{"wasmloop run [flags]", "Run 'wasmloop help <command>'"}},
	} {
		var stdout, stderr strings.Builder
		code := run(tc.args, &stdout, &stderr)
		for _, want := range tc.want {
			if code != 0 || !strings.Contains(stdout.String(), want) {
				t.Errorf("%q: exit status %d, stdout lacks %q:\n%s%s", tc.args, code, want, stdout.String(), stderr.String())
			}
		}
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"hello": "hello", "My App": "my-app", "app.v2": "app.v2", "--x--": "x", "日本": "app", "": "app", ".": "app",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}

// init writes a project, keeps a README.md and .gitignore it finds, and refuses a directory
// that has a project already.
func TestInitWritesProject(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "hello")
	cache := t.TempDir()
	var stdout, stderr strings.Builder
	if code := run([]string{"init", dir, "--cache-dir", cache}, &stdout, &stderr); code != 0 {
		t.Fatalf("init: exit status %d\n%s", code, stderr.String())
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "wasmloop run "+dir) {
		t.Errorf("init said %q on stdout and %q on stderr", stdout.String(), stderr.String())
	}
	sdkDir, err := sdkModule(cache)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"go.mod":     "module hello\n\ngo 1.25\n",
		"main.go":    mainTemplate,
		".gitignore": "*.wasm\ngo.work\ngo.work.sum\n",
		"go.work":    workHeader + "go 1.25\n\nuse (\n\t.\n\t" + sdkDir + "\n)\n",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %v\n%s\nwant\n%s", name, err, b, want)
		}
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	for _, want := range []string{"# hello\n", "wasmloop run .", "wasmloop build . -o hello.wasm", "its own\nmemory, so in-memory state is per worker"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md lacks %q:\n%s", want, readme)
		}
	}
	// The worker model is visible from the first file a newcomer opens.
	if !strings.Contains(mainTemplate, "every worker runs its own copy of this program with its own\n// memory") {
		t.Errorf("main.go does not say that workers do not share memory:\n%s", mainTemplate)
	}

	// Again: refused, and nothing is changed.
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644)
	stderr.Reset()
	if code := run([]string{"init", dir, "--cache-dir", cache}, &stdout, &stderr); code != exitFailure || !strings.Contains(stderr.String(), "already has a go.mod") {
		t.Errorf("init over a project: exit status %d, %q", code, stderr.String())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "main.go")); string(b) != "package main\n" {
		t.Errorf("a refused init changed main.go")
	}

	// A directory with its own README.md and .gitignore keeps them; --module names the module.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "README.md"), []byte("mine\n"), 0o644)
	os.WriteFile(filepath.Join(dir2, ".gitignore"), []byte("mine\n"), 0o644)
	if code := run([]string{"init", "--module", "example.com/svc", dir2, "--cache-dir", cache}, &stdout, &stderr); code != 0 {
		t.Fatalf("init: exit status %d\n%s", code, stderr.String())
	}
	for _, name := range []string{"README.md", ".gitignore"} {
		if b, _ := os.ReadFile(filepath.Join(dir2, name)); string(b) != "mine\n" {
			t.Errorf("%s was overwritten: %q", name, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, "go.mod")); !strings.HasPrefix(string(b), "module example.com/svc\n") {
		t.Errorf("go.mod with --module: %q", b)
	}
}

// Arguments after "--" reach the guest's os.Args, after the module's name.
func TestGuestArgs(t *testing.T) {
	var o runOptions
	pos, rest, err := parseArgs(runFlags(&o, io.Discard), []string{"dir/app.wasm", "--workers", "1", "--", "-v", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := guestArgv(pos[0], rest); !reflect.DeepEqual(got, []string{"app.wasm", "-v", "x"}) {
		t.Errorf("guest argv %q", got)
	}
}
