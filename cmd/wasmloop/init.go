package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/module"
)

// initFlags returns the flags of init.
func initFlags(modulePath, cacheDir *string) *flag.FlagSet {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.StringVar(modulePath, "module", "", "the module `path` of the new project (default: the directory's name)")
	fs.StringVar(cacheDir, "cache-dir", "", "the cache the project's go.work points into for the SDK (default: the user cache dir)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wasmloop init [flags] [directory]

Creates a guest project in the directory (default: the current one; created if missing):
go.mod, main.go (Node's hello world, on the port in PORT, 1337 without it), README.md and
.gitignore (README.md and .gitignore only if the directory has none), and go.work, which
points gopls, go doc and a plain go build at the guest SDK this wasmloop carries (it lives
in the cache; go.work is not committed, and wasmloop run and build rewrite it). The project
needs only Go and wasmloop: 'wasmloop run DIR' builds and serves it, 'wasmloop build DIR'
writes the module. A directory that already has go.mod, main.go or go.work is refused.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs
}

func cmdInit(args []string, stdout, stderr io.Writer) int {
	var modulePath, cacheDir string
	fs := initFlags(&modulePath, &cacheDir)
	pos, rest, code, ok := parseCommand(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 1 || len(rest) > 0 {
		return usageError(stderr, "init", "want at most one directory")
	}
	dir := "."
	if len(pos) == 1 {
		dir = pos[0]
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		fmt.Fprintf(stderr, "wasmloop init: %v\n", err)
		return exitFailure
	}
	if modulePath == "" {
		modulePath = moduleName(filepath.Base(abs))
	} else if err := module.CheckImportPath(modulePath); err != nil {
		return usageError(stderr, "init", err.Error())
	} else if modulePath == wasmloopModule || strings.HasPrefix(modulePath, wasmloopModule+"/") {
		// The project's workspace holds the SDK's module (sdk.go): a project of the same path,
		// or one inside it, could never build ("appears multiple times in workspace").
		return usageError(stderr, "init", fmt.Sprintf("%s is wasmloop's own module path (the SDK's); choose another", modulePath))
	}
	if err := writeProject(abs, modulePath, cacheDir); err != nil {
		fmt.Fprintf(stderr, "wasmloop init: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "wasmloop init: created module %s in %s; run it with 'wasmloop run %s'\n", modulePath, dir, shellWord(dir))
	return 0
}

// moduleName makes a module path of a directory's name: lower case, with what a module path
// may not hold replaced by '-'; "app" if nothing is left.
func moduleName(base string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '-', r == '_', r == '.':
			return r
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, base)
	name = strings.Trim(name, "-._")
	if name == "" || module.CheckImportPath(name) != nil {
		return "app"
	}
	return name
}

// writeProject writes a new guest project into dir.
func writeProject(dir, modulePath, cacheDir string) error {
	for _, name := range []string{"go.mod", "main.go", "go.work"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%s already has a %s", dir, name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	sdkDir, err := sdkModule(cacheDir)
	if err != nil {
		return fmt.Errorf("cannot write the guest SDK into the cache: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := filepath.Base(dir)
	files := []struct {
		name, text string
		keep       bool // leave an existing file as it is
	}{
		{"go.mod", "module " + modulePath + "\n\ngo 1.25\n", false},
		{"main.go", mainTemplate, false},
		{"go.work", workHeader + workFile("", ".", sdkDir), false},
		{"README.md", strings.ReplaceAll(readmeTemplate, "NAME", name), true},
		{".gitignore", "*.wasm\ngo.work\ngo.work.sum\n", true},
	}
	for _, f := range files {
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		w, err := os.OpenFile(filepath.Join(dir, f.name), flags, 0o644)
		if errors.Is(err, fs.ErrExist) && f.keep {
			continue
		}
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, f.text)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// mainTemplate is the program of a new project: Node's hello world, as samples/hello.
const mainTemplate = `//go:build wasip1

// A wasmloop guest: Node's hello world.
//
// main is the program's top-level code: it registers the server and returns, and the host
// then calls the handler for every request, one at a time. wasmloop runs one worker per CPU
// (--workers N to choose), and every worker runs its own copy of this program with its own
// memory: a variable a handler changes is per worker. Keep state that every request must see
// in one worker, in messages between workers, or outside (wasmloop's README, "Workers and
// state").
package main

import (
	"os"
	"strconv"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End("Hello World\n")
	}).Listen(port, "127.0.0.1")

	if wasmloop.WorkerID() == 0 { // every worker runs main; say it once
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}
`

// readmeTemplate is the README.md of a new project; NAME is the directory's name.
const readmeTemplate = "# NAME\n\n" +
	"A wasmloop guest: a Go program run as a sandboxed WebAssembly module on wasmloop's event loop.\n\n" +
	"```sh\n" +
	"wasmloop run .                   # build and serve http://127.0.0.1:1337/ (--env PORT=8080 for another port)\n" +
	"wasmloop build . -o NAME.wasm    # the module to deploy: wasmloop run NAME.wasm\n" +
	"```\n\n" +
	"Only Go and wasmloop are needed: the guest SDK (github.com/wasmloop/wasmloop/guest-sdk/go) comes\n" +
	"with wasmloop, which builds with it offline. go.work (written by `wasmloop init`, not committed)\n" +
	"shows the SDK to gopls and `go doc`; the program builds only for WebAssembly, so give your editor\n" +
	"`GOOS=wasip1 GOARCH=wasm`. By hand: `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .`\n\n" +
	"Every worker (one per CPU by default; `--workers N`) runs its own copy of the program with its own\n" +
	"memory, so in-memory state is per worker: run `--workers 1`, or see wasmloop's README, \"Workers and state\".\n"

// wasmloopModule is the module the SDK belongs to.
const wasmloopModule = "github.com/wasmloop/wasmloop"

// shellWord quotes s for a POSIX shell when it would not stay one word, so that a command
// printed for pasting works: 'My App' (a quote inside closes, escapes and reopens).
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '+' || r == ',' || r == ':' || r == '@' ||
			'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
