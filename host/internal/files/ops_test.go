package files

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/wasmloop/wasmloop/abi"
)

// openGrant opens dir as the writable grant /g.
func openGrant(t *testing.T, dir string) *Mounts {
	t.Helper()
	m, err := Open([]Grant{{HostPath: dir, GuestPath: "/g"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Results read and not yet delivered hold at most maxHeld bytes: a read that would pass it
// waits until a delivered result is released.
func TestResultsHeldBounded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), make([]byte, 1000), 0o644)
	m := openGrant(t, dir)
	m.held, m.heldMax = semaphore.NewWeighted(2500), 2500 // two results of 1,000 bytes (each reserves 1,001 to read)
	readFile := m.Ops()[abi.FnReadFile]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err1 := readFile(ctx, []byte("/g/f"))
	second, err2 := readFile(ctx, []byte("/g/f"))
	if err1 != nil || err2 != nil || len(first) != 1000 || len(second) != 1000 {
		t.Fatalf("two reads: %d %v, %d %v", len(first), err1, len(second), err2)
	}
	third := make(chan int, 1)
	go func() {
		out, err := readFile(ctx, []byte("/g/f"))
		if err != nil {
			t.Error(err)
		}
		third <- len(out)
	}()
	// The third read waits for bytes: the semaphore has a waiter, so it refuses even one byte.
	for m.held.TryAcquire(1) {
		m.held.Release(1)
		runtime.Gosched()
	}
	select {
	case n := <-third:
		t.Fatalf("a third result of %d bytes was read while two were held", n)
	default:
	}
	m.Release(first, false)
	if n := <-third; n != 1000 {
		t.Fatalf("third read: %d bytes", n)
	}
	m.Release(second, false)
	if !m.held.TryAcquire(2500 - 1000) {
		t.Error("more than the third result is still held")
	}
}

// A range read reserves and allocates what the file has, not what was asked.
func TestReadSizedToFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("0123456789"), 0o644)
	m := openGrant(t, dir)
	m.held, m.heldMax = semaphore.NewWeighted(100), 100
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, 4), abi.MaxRead), "/g/f"...)
	out, err := m.Ops()[abi.FnRead](ctx, in)
	if err != nil || string(out) != "456789" || cap(out) != 6 {
		t.Fatalf("read 16 MiB from 4 of a 10-byte file: %q (cap %d) %v", out, cap(out), err)
	}
	m.Release(out, false)
	past := append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, 50), 10), "/g/f"...)
	if out, err := m.Ops()[abi.FnRead](ctx, past); err != nil || len(out) != 0 {
		t.Fatalf("read past the end: %q %v", out, err)
	}
	if !m.Idle() {
		t.Error("bytes still reserved")
	}
}

// A FIFO (or any file that is not regular) in a grant is refused at once, for reading,
// writing and listing; nothing waits for a writer or a reader that never comes.
func TestNotRegularRefused(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	m := openGrant(t, dir)
	read := append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, 0), 10), "/g/fifo"...)
	for _, c := range []struct {
		fn   string
		in   []byte
		code string
	}{
		{abi.FnReadFile, []byte("/g/fifo"), abi.FileEINVAL},
		{abi.FnRead, read, abi.FileEINVAL},
		{abi.FnWriteFile, withLen("/g/fifo", "x"), abi.FileEINVAL},
		{abi.FnAppendFile, withLen("/g/fifo", "x"), abi.FileEINVAL},
		{abi.FnReadDir, []byte("/g/fifo"), abi.FileENOTDIR},
	} {
		done := make(chan error, 1)
		go func() { _, err := opOn(m, c.fn, c.in); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.HasPrefix(err.Error(), c.code+" ") {
				t.Errorf("%s on a FIFO: %v, want %s", c.fn, err, c.code)
			}
		case <-time.After(time.Minute): // a bound on a test that would otherwise hang
			t.Fatalf("%s on a FIFO blocked", c.fn)
		}
	}
}

// Every refusal has its code: a rename onto a link that leaves the grant is EACCES (os.Root
// reports it inside an *os.LinkError), a loop of links is ELOOP.
func TestClassify(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "g")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644)
	os.Symlink("..", filepath.Join(dir, "up"))
	os.Symlink("loop2", filepath.Join(dir, "loop1"))
	os.Symlink("loop1", filepath.Join(dir, "loop2"))
	m := openGrant(t, dir)
	if _, err := opOn(m, abi.FnRename, withLen("/g/a", "/g/up/stolen")); err == nil || !strings.HasPrefix(err.Error(), abi.FileEACCES+" ") {
		t.Errorf("rename out through a link: %v, want EACCES", err)
	}
	if _, err := os.Stat(filepath.Join(base, "stolen")); err == nil {
		t.Error("the file was renamed out of the grant")
	}
	if _, err := opOn(m, abi.FnReadFile, []byte("/g/loop1")); err == nil || !strings.HasPrefix(err.Error(), abi.FileELOOP+" ") {
		t.Errorf("read through a loop of links: %v, want ELOOP", err)
	}
}

// A read-only grant inside a writable one is reported: it is writable through the other.
func TestOverlaps(t *testing.T) {
	base := t.TempDir()
	pub := filepath.Join(base, "public")
	os.Mkdir(pub, 0o755)
	m, err := Open([]Grant{{HostPath: base, GuestPath: "/app"}, {HostPath: pub, GuestPath: "/www", ReadOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got := m.Overlaps()
	if len(got) != 1 || !strings.Contains(got[0], "/app/public") {
		t.Errorf("Overlaps = %q, want one line naming /app/public", got)
	}
	m2, err := Open([]Grant{{HostPath: base, GuestPath: "/app", ReadOnly: true}, {HostPath: pub, GuestPath: "/www"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := m2.Overlaps(); len(got) != 0 {
		t.Errorf("a writable grant inside a read-only one: Overlaps = %q, want none", got)
	}
}

// OpenForBody (body_file, on the loop) confines as the file functions do: links out of the
// grant are EDENIED, a FIFO or a missing file EINVAL, and a regular file reads.
func TestOpenForBody(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "g")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(base, "secret"), []byte("SECRET"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("0123456789"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Symlink("../a.txt", filepath.Join(dir, "sub", "in"))
	os.Symlink(filepath.Join(base, "secret"), filepath.Join(dir, "abs"))
	os.Symlink("../secret", filepath.Join(dir, "rel"))
	os.Symlink("..", filepath.Join(dir, "up"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	m := openGrant(t, dir)
	f, errno := m.OpenForBody("/g/sub/in")
	if errno != 0 {
		t.Fatalf("a link inside the grant: %v", errno)
	}
	buf := make([]byte, 4)
	if n, err := f.ReadAt(buf, 3); err != nil || string(buf[:n]) != "3456" {
		t.Errorf("ReadAt: %q %v", buf[:n], err)
	}
	if n, err := f.ReadAt(buf, 10); n != 0 || err == nil {
		t.Errorf("ReadAt at the end: %d %v, want 0 and EOF", n, err)
	}
	f.Close()
	for p, want := range map[string]abi.Errno{"/g/abs": abi.EDENIED, "/g/rel": abi.EDENIED, "/g/up/secret": abi.EDENIED,
		"/elsewhere/x": abi.EDENIED, "/g/missing": abi.EINVAL, "/g/fifo": abi.EINVAL, "/g/sub": abi.EINVAL, "g/a.txt": abi.EINVAL} {
		if f, errno := m.OpenForBody(p); errno != want {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenForBody(%s) = %v, want %v", p, errno, want)
		}
	}
}
