package guest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// One fd_read of many iovecs over one large buffer, on a large file of a preopen, is stopped
// by the budget between two chunks: wazero read each iovec whole, 2 GiB in one host call.
func TestPreopenReadIsStopped(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 2<<30); err != nil { // sparse: no disk is used
		t.Skipf("a sparse file of 2 GiB: %v", err)
	}
	ctx := context.Background()
	m := validGuest()
	const pathOpen, fdRead = 1, 2 // the imports' function indices, after validGuest's one
	m.imports = append(m.imports,
		wimport{"wasi_snapshot_preview1", "path_open", []byte{tI32, tI32, tI32, tI32, tI32, tI64, tI64, tI32, tI32}, []byte{tI32}},
		wimport{"wasi_snapshot_preview1", "fd_read", []byte{tI32, tI32, tI32, tI32}, []byte{tI32}})
	i32 := func(v int64) []byte { return append([]byte{0x41}, sleb(v)...) }
	store := func(addr, v int64) []byte { // i32.store addr <- v
		return append(append(i32(addr), i32(v)...), 0x36, 2, 0)
	}
	// memory.grow 256 pages (16 MiB, the buffer from 64 KiB on); "big" at 0; 128 iovecs at
	// 1024, each the whole buffer; path_open(3, 0, 0, 3, 0, 0, 0, 0, 100); fd_read(the opened
	// fd, 1024, 128, 104).
	const iovecs, bufLen = 128, 16 << 20
	start := append(i32(256), 0x40, 0, 0x1a)
	start = append(start, store(0, 'b'|'i'<<8|'g'<<16)...)
	for k := range int64(iovecs) {
		start = append(start, store(1024+8*k, 64<<10)...)
		start = append(start, store(1024+8*k+4, bufLen)...)
	}
	for _, v := range []int64{3, 0, 0, 3, 0} {
		start = append(start, i32(v)...)
	}
	start = append(start, 0x42, 0, 0x42, 0)
	start = append(append(start, i32(0)...), i32(100)...)
	start = append(start, 0x10, pathOpen, 0x1a)
	start = append(append(start, i32(100)...), 0x28, 2, 0) // i32.load 100: the opened fd
	start = append(append(append(append(start, i32(1024)...), i32(iovecs)...), i32(104)...), 0x10, fdRead, 0x1a, 0x0b)
	m.start = start
	mod := compiledInterruptible(t, m)
	began := time.Now()
	_, err := mod.Instantiate(ctx, InstanceConfig{StartBudget: 50 * time.Millisecond,
		Preopens: []Preopen{{FS: os.DirFS(dir), GuestPath: "/d"}}}, nil)
	var be *BudgetError
	if !errors.As(err, &be) {
		t.Fatalf("Instantiate = %v after %v, want the budget to end the fd_read of 2 GiB", err, time.Since(began))
	}
}

// chunkRecorder is a file that records what each call is given. Its call number short (1
// on) returns half of it and io.EOF; mark, if set, is marked by the watchdog at the first call.
type chunkRecorder struct {
	osFile
	calls [][2]int64 // each call's length and offset (-1: none)
	short int
	mark  *Instance
}

func (c *chunkRecorder) op(b []byte, off int64) (int, error) {
	c.calls = append(c.calls, [2]int64{int64(len(b)), off})
	if c.mark != nil {
		c.mark.seq.Store(1)
		c.mark.stopAt.Store(1)
	}
	if len(c.calls) == c.short {
		return len(b) / 2, io.EOF
	}
	return len(b), nil
}

func (c *chunkRecorder) Read(b []byte) (int, error)               { return c.op(b, -1) }
func (c *chunkRecorder) ReadAt(b []byte, off int64) (int, error)  { return c.op(b, off) }
func (c *chunkRecorder) Write(b []byte) (int, error)              { return c.op(b, -1) }
func (c *chunkRecorder) WriteAt(b []byte, off int64) (int, error) { return c.op(b, off) }

// A preopen's file moves at most ioChunk per call of the file's own, looks at the watchdog's
// verdict before each, and stops where one call would (a short count, an error).
func TestStoppableFileChunks(t *testing.T) {
	const size = 3*ioChunk + 5
	p := make([]byte, size)
	ops := map[string]func(f stoppableFile) (int, error){
		"Read":    func(f stoppableFile) (int, error) { return f.Read(p) },
		"ReadAt":  func(f stoppableFile) (int, error) { return f.ReadAt(p, 7) },
		"Write":   func(f stoppableFile) (int, error) { return f.Write(p) },
		"WriteAt": func(f stoppableFile) (int, error) { return f.WriteAt(p, 7) },
	}
	for name, op := range ops {
		at := func(k int64) int64 { // the offset of the k-th chunk
			if name == "Read" || name == "Write" {
				return -1
			}
			return 7 + k*ioChunk
		}
		rec := &chunkRecorder{}
		n, err := op(stoppableFile{rec, &Instance{}})
		want := [][2]int64{{ioChunk, at(0)}, {ioChunk, at(1)}, {ioChunk, at(2)}, {5, at(3)}}
		if n != size || err != nil || !slices.Equal(rec.calls, want) {
			t.Errorf("%s of %d bytes: %d, %v, calls %v; want %d, nil, calls %v", name, size, n, err, rec.calls, size, want)
		}
		rec = &chunkRecorder{short: 2}
		n, err = op(stoppableFile{rec, &Instance{}})
		if n != ioChunk+ioChunk/2 || err != io.EOF || len(rec.calls) != 2 {
			t.Errorf("%s that ends in the second chunk: %d, %v after %d calls; want %d, EOF after 2", name, n, err, len(rec.calls), ioChunk+ioChunk/2)
		}
		inst := &Instance{}
		rec = &chunkRecorder{mark: inst}
		func() {
			defer func() {
				if r := recover(); r != errStopped {
					t.Errorf("%s marked during its first chunk: %v, want the watchdog's stop", name, r)
				}
			}()
			op(stoppableFile{rec, inst})
		}()
		if len(rec.calls) != 1 {
			t.Errorf("%s marked during its first chunk made %d calls, want 1", name, len(rec.calls))
		}
	}
}

// The cost of the wrapper on the common read: 4 KiB at an offset, from the page cache.
func BenchmarkPreopenSmallRead(b *testing.B) {
	f, err := os.CreateTemp(b.TempDir(), "f")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 64<<10)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4<<10)
	for _, c := range []struct {
		name string
		r    io.ReaderAt
	}{{"bare", f}, {"stoppable", stoppableFile{f, &Instance{}}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for k := 0; b.Loop(); k++ {
				if _, err := c.r.ReadAt(buf, int64(k%16)<<12); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
