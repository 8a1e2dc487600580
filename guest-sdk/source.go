//go:build !wasip1

// Package guestsdk carries the source of the Go guest SDK — packages
// github.com/wasmloop/wasmloop/guest-sdk/go (with its subpackages) and
// github.com/wasmloop/wasmloop/abi — inside the wasmloop command, which writes it out as a
// module so that a guest project anywhere builds against the SDK of the wasmloop that runs
// it, without the network and without a published module (RATIONALE.md, "Guest projects
// outside the repository"). Guests never import it.
package guestsdk

import (
	"embed"
	"io/fs"
	"path"
	"strings"

	"github.com/wasmloop/wasmloop/abi"
)

// ModulePath is the module the SDK's packages belong to.
const ModulePath = "github.com/wasmloop/wasmloop"

// GoMod is the go.mod of the module Files makes: the SDK needs only the standard library.
const GoMod = "module " + ModulePath + "\n\ngo 1.25\n"

// The embed directive cannot reach abi from here (no ..), so abi embeds its own files
// (abi.Source).
//
//go:embed go/*.go go/wasmhttp/*.go
var sdk embed.FS

// Files returns the module a guest builds against, by slash-separated path relative to the
// module root: go.mod, abi/*.go and guest-sdk/go/**/*.go, without tests and without the
// embedding files themselves.
func Files() (map[string][]byte, error) {
	files := map[string][]byte{"go.mod": []byte(GoMod)}
	add := func(fsys fs.FS, prefix string) error {
		return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !isSource(p) {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			files[path.Join(prefix, p)] = b
			return nil
		})
	}
	if err := add(abi.Source, "abi"); err != nil {
		return nil, err
	}
	if err := add(sdk, "guest-sdk"); err != nil {
		return nil, err
	}
	delete(files, "abi/source.go") // the embedding file: host-only, and it would embed nothing
	return files, nil
}

// isSource reports whether a file is part of a package's build (a non-test Go file).
func isSource(p string) bool {
	return strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go")
}
