package files

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A preopen refuses a FIFO at once, with EINVAL: its open(2) waited for a writer for ever, and
// the guest's worker with it. Regular files and directories open as before, and a link out of
// the grant is refused with fs.ErrPermission.
func TestPreopenOpensWithoutWaiting(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	m, err := Open([]Grant{{HostPath: dir, GuestPath: "/d", ReadOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fsys := m.List()[0].FS()

	done := make(chan error, 1)
	go func() {
		f, err := fsys.Open("fifo")
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Open of a FIFO = %v, want EINVAL", err)
		}
	case <-time.After(5 * time.Second):
		// A writer ends the blocked open, so that the goroutine does not outlive the test.
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			defer w.Close()
		}
		t.Fatal("Open of a FIFO still waits after 5 s")
	}

	if b, err := fs.ReadFile(fsys, "f"); err != nil || string(b) != "hi" {
		t.Errorf("ReadFile of a regular file = %q, %v", b, err)
	}
	if ents, err := fs.ReadDir(fsys, "."); err != nil || len(ents) != 3 {
		t.Errorf("ReadDir of the grant = %v, %v; want its 3 entries", ents, err)
	}
	var pe *fs.PathError
	if _, err := fsys.Open("out/x"); !errors.As(err, &pe) || pe.Err != fs.ErrPermission {
		t.Errorf("Open through a link out of the grant = %v, want fs.ErrPermission", err)
	}
	if _, err := fsys.Open("../x"); err == nil {
		t.Error("Open of ../x succeeded")
	}
}
