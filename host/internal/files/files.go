// Package files is what a guest may reach of the host's file system: the directories the
// command line (--dir) or host.Config.Dirs granted, each opened once as an os.Root, so that no
// path — "..", an absolute symbolic link, a link that climbs out — resolves outside its grant.
// The guest reaches them two ways: the host's async file functions (ops.go, ABI.md §9), run on
// a bounded number of goroutines and answered as events, and WASI preopens (FS), read-only,
// for a program's blocking reads at start-up (Node's readFileSync).
package files

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/semaphore"
)

// Grant is one directory given to the guest: HostPath on the host appears at GuestPath in
// the guest's view, writable unless ReadOnly.
type Grant struct {
	HostPath  string
	GuestPath string
	ReadOnly  bool
}

// ParseGrant reads the command line's form, HOST_PATH[:GUEST_PATH][:ro]; without a guest
// path the directory appears at its own absolute path.
func ParseGrant(s string) (Grant, error) {
	var g Grant
	parts := strings.Split(s, ":")
	if n := len(parts); n > 1 && parts[n-1] == "ro" {
		g.ReadOnly = true
		parts = parts[:n-1]
	}
	switch len(parts) {
	case 1:
		g.HostPath = parts[0]
	case 2:
		g.HostPath, g.GuestPath = parts[0], parts[1]
	default:
		return g, fmt.Errorf("%q: want HOST_PATH[:GUEST_PATH][:ro]", s)
	}
	if g.HostPath == "" {
		return g, fmt.Errorf("%q: the host path is empty", s)
	}
	return g, nil
}

// Mount is a grant opened: its root and its place in the guest's view.
type Mount struct {
	Grant
	root  *os.Root
	dirFD int // the directory for openat2 (body_linux.go), or -1
}

// Mounts are the grants of one program, opened. Safe for concurrent use.
type Mounts struct {
	list []*Mount // longest guest path first, so the deepest grant wins

	slots   chan struct{}       // one per file operation running (ops.go)
	held    *semaphore.Weighted // bytes of results not yet delivered (ops.go)
	heldMax int64               // its size: maxHeld

	refusedOnce sync.Map // kinds of refusal already logged
	log         atomic.Pointer[slog.Logger]
}

// Open checks and opens grants. A guest path must be absolute and clean and may appear once;
// a host path must be a directory.
func Open(grants []Grant) (*Mounts, error) {
	m := &Mounts{slots: make(chan struct{}, maxConcurrent), held: semaphore.NewWeighted(maxHeld), heldMax: maxHeld}
	seen := map[string]bool{}
	for _, g := range grants {
		abs, err := filepath.Abs(g.HostPath)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("dir %s: %v", g.HostPath, err)
		}
		if g.GuestPath == "" {
			g.GuestPath = filepath.ToSlash(abs)
		}
		if !path.IsAbs(g.GuestPath) || path.Clean(g.GuestPath) != g.GuestPath {
			m.Close()
			return nil, fmt.Errorf("dir %s: the guest path %q must be absolute and clean, such as /www", g.HostPath, g.GuestPath)
		}
		if seen[g.GuestPath] {
			m.Close()
			return nil, fmt.Errorf("dir %s: the guest path %s is granted twice", g.HostPath, g.GuestPath)
		}
		seen[g.GuestPath] = true
		root, err := os.OpenRoot(abs)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("dir %s: %v", g.HostPath, err)
		}
		g.HostPath = abs
		m.list = append(m.list, &Mount{Grant: g, root: root, dirFD: openDirFD(abs)})
	}
	// Deepest first: /www/private granted apart from /www is found before it.
	for i := 1; i < len(m.list); i++ {
		for j := i; j > 0 && len(m.list[j].GuestPath) > len(m.list[j-1].GuestPath); j-- {
			m.list[j], m.list[j-1] = m.list[j-1], m.list[j]
		}
	}
	return m, nil
}

// Overlaps says where a read-only grant's host directory lies inside a writable grant's: it
// is writable through the other's guest path, which is seldom what was meant. Load logs each
// line as a warning.
func (m *Mounts) Overlaps() []string {
	var out []string
	for _, a := range m.List() {
		for _, b := range m.List() {
			if !a.ReadOnly || b.ReadOnly || !within(a.HostPath, b.HostPath) {
				continue
			}
			out = append(out, fmt.Sprintf("dir %s is granted read-only at %s, but it is writable through %s (granted from %s)",
				a.HostPath, a.GuestPath, path.Join(b.GuestPath, filepath.ToSlash(strings.TrimPrefix(a.HostPath, b.HostPath))), b.HostPath))
		}
	}
	return out
}

// within says whether host directory dir is parent or lies under it.
func within(dir, parent string) bool {
	rel, err := filepath.Rel(parent, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// Close closes every root. Operations still running fail.
func (m *Mounts) Close() error {
	if m == nil {
		return nil
	}
	for _, mt := range m.list {
		mt.root.Close()
		closeDirFD(mt.dirFD)
	}
	return nil
}

// List is the mounts, deepest guest path first.
func (m *Mounts) List() []*Mount {
	if m == nil {
		return nil
	}
	return m.list
}

// FS is the mount's directory as a read-only fs.FS confined to it, for a WASI preopen.
func (mt *Mount) FS() fs.FS { return confinedFS{mt.root} }

// confinedFS is an os.Root as a read-only fs.FS (wazero's adapter only calls Open), with two
// differences from os.Root.FS. Its refusal of a path that leads out of the grant (a link out)
// is fs.ErrPermission: os.Root's own refusal has no errno, so wazero hands the guest EIO ("I/O
// error") for it — which sends the program's author looking at the disk — where the async
// functions say EACCES. And it opens only regular files and directories, without waiting, as
// openRegular does: a FIFO in a grant blocked open(2) until a writer came, and with it the
// worker, inside a guest call no budget can end (a host function, not guest code).
type confinedFS struct{ root *os.Root }

func (c confinedFS) Open(name string) (fs.File, error) {
	// What os.Root.FS checks: an fs.FS name, unrooted and clean (wazero hands them so).
	if !fs.ValidPath(name) || runtime.GOOS == "windows" && strings.ContainsRune(name, '\\') {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := c.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	switch {
	case err == nil:
	case escapes(err):
		// fs.ErrPermission itself: wazero compares the error with ==, not errors.Is.
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	case errors.Is(err, syscall.ENXIO): // a socket, or a device with nothing behind it
		return nil, notRegular(name)
	default:
		return nil, err
	}
	// O_NONBLOCK stays: a regular file's reads and a directory's listing ignore it.
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() && !st.IsDir() {
		f.Close()
		return nil, notRegular(name)
	}
	return f, nil
}

// notRegular refuses a preopen's file that is neither a regular file nor a directory with
// EINVAL, the code the async functions give it; the guest's os.Stat of it fails the same way,
// since wazero's stat of a path opens it.
func notRegular(name string) error {
	return &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
}

// errNotGranted is the refusal of a path outside every grant.
type errNotGranted struct{ path string }

func (e errNotGranted) Error() string {
	dir := path.Dir(e.path)
	if dir == "/" {
		dir = e.path
	}
	return fmt.Sprintf("%s is not in a granted directory; add --dir HOST_PATH:%s", e.path, dir)
}

// resolve finds the mount that holds the guest path p and p's name inside it ("." for the
// mount itself). p must be absolute; it is cleaned first, so ".." cannot climb above "/",
// and the os.Root refuses what would resolve outside the mount from there.
func (m *Mounts) resolve(p string) (*Mount, string, error) {
	if !path.IsAbs(p) {
		return nil, "", fmt.Errorf("%q: want an absolute path, such as /www/index.html", p)
	}
	// Said apart from the above: an absolute path refused as "not absolute" would send the
	// guest's author looking for the wrong mistake.
	if strings.IndexByte(p, 0) >= 0 {
		return nil, "", fmt.Errorf("%q: a path cannot contain a NUL byte", p)
	}
	// A final slash (or "/.") says the path must name a directory, as POSIX has it. Cleaned
	// away, WriteFile("/data/logs/") would create a file named logs, and Remove("/data/f/")
	// remove the file f: the slash is kept on the name, for the system to check.
	dirOnly := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
	p = path.Clean(p)
	for _, mt := range m.List() {
		g := mt.GuestPath
		name := ""
		switch {
		case p == g:
			return mt, ".", nil
		case g == "/":
			name = p[1:]
		case strings.HasPrefix(p, g) && p[len(g)] == '/':
			name = p[len(g)+1:]
		default:
			continue
		}
		if dirOnly {
			name += "/"
		}
		return mt, name, nil
	}
	m.refused("path", "%v", errNotGranted{p})
	return nil, "", errNotGranted{p}
}

// SetLogger sets where the first refusal of each kind is logged (nil: nowhere).
func (m *Mounts) SetLogger(l *slog.Logger) { m.log.Store(l) }

// refused logs the first refusal of each kind, so that an operator learns what the program
// wanted without a log line per request.
func (m *Mounts) refused(kind, format string, args ...any) {
	l := m.log.Load()
	if l == nil {
		return
	}
	if _, logged := m.refusedOnce.LoadOrStore(kind, true); !logged {
		l.Warn("refused a file operation (the first of its kind; others are not logged): " + fmt.Sprintf(format, args...))
	}
}

var errReadOnly = errors.New("the grant is read-only")
