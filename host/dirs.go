package host

import (
	"github.com/wasmloop/wasmloop/host/internal/files"
)

// Dir grants the guest a directory of the host: HostPath appears at GuestPath in the guest's
// view (its own absolute path when GuestPath is empty), writable unless ReadOnly. Nothing
// outside a granted directory is visible: every path is resolved inside it (os.Root), so
// "..", absolute symbolic links and links that climb out are refused.
//
// The guest reaches a granted directory two ways: the host's file functions (the Go SDK's
// wasmloop.ReadFile, Stat, WriteFile and the rest; ABI.md §9), which run off the event loop
// and answer as events, and WASI, where every grant is a read-only preopen, so that a
// program's os.ReadFile works for its start-up configuration — blocking the worker while it
// reads, as Node's readFileSync does.
type Dir struct {
	HostPath  string
	GuestPath string
	ReadOnly  bool
}

// ParseDir reads the command line's form of a grant, HOST_PATH[:GUEST_PATH][:ro], as
// wasmloop run --dir takes it.
func ParseDir(s string) (Dir, error) {
	g, err := files.ParseGrant(s)
	if err != nil {
		return Dir{}, err
	}
	return Dir(g), nil
}

// openDirs opens the grants of cfg.Dirs.
func openDirs(dirs []Dir) (*files.Mounts, error) {
	grants := make([]files.Grant, len(dirs))
	for i, d := range dirs {
		grants[i] = files.Grant(d)
	}
	return files.Open(grants)
}
