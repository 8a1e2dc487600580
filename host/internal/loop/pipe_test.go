package loop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
)

// newTestPipe is a pipe attached to a loop that never runs: the test plays the loop's part,
// and the loop's notices are counted rather than served.
func newTestPipe() (*Pipe, *Loop) {
	l := &Loop{}
	p := &Pipe{l: l, c: &Conn{}}
	p.cond.L = &p.mu
	return p, l
}

// notices takes the notices queued for l.
func notices(l *Loop) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.pipeNotes)
	for _, p := range l.pipeNotes {
		p.mu.Lock()
		p.noted = false
		p.mu.Unlock()
	}
	l.pipeNotes = nil
	return n
}

// The outside's writes wait while the window toward the loop is full, arrive in order, and
// raise a notice only when the loop asked for one (it found nothing to read).
func TestPipeToLoop(t *testing.T) {
	p, l := newTestPipe()
	buf := make([]byte, 64<<10)
	if n, err := p.read(buf); n != 0 || err != unix.EAGAIN {
		t.Fatalf("read of an empty pipe = %d, %v; want EAGAIN", n, err)
	}
	want := make([]byte, 3*pipeWindow+123)
	for i := range want {
		want[i] = byte(i * 7)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := p.Write(want)
		wrote <- err
	}()
	var got []byte
	for len(got) < len(want) {
		p.mu.Lock()
		for len(p.toLoop)-p.toOff == 0 { // wait as the loop would, for the notice
			p.mu.Unlock()
			<-waitNotice(l)
			p.mu.Lock()
		}
		if held := len(p.toLoop) - p.toOff; held > pipeWindow {
			t.Fatalf("the window holds %d bytes, more than %d", held, pipeWindow)
		}
		p.mu.Unlock()
		n, err := p.read(buf)
		if err != nil && err != unix.EAGAIN {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the loop read other bytes than were written")
	}
	if err := p.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if !p.outsideShut || !p.peekEOF() {
		t.Error("after CloseWrite the loop sees no hang-up or no EOF")
	}
	if n, err := p.read(buf); n != 0 || err != nil {
		t.Errorf("read after CloseWrite = %d, %v; want the end (0, nil)", n, err)
	}
}

// waitNotice returns a channel closed once a notice is queued for l (polled: the loop's
// wake-up is the poller's, which a test loop does not have), or after 10 s.
func waitNotice(l *Loop) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		until(func() bool { return notices(l) > 0 })
		close(done)
	}()
	return done
}

// until yields until cond holds, for at most 10 s.
func until(cond func() bool) bool {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); runtime.Gosched() {
		if cond() {
			return true
		}
	}
	return false
}

// The loop's writes stop at the window with EAGAIN, and the outside's reads raise a notice
// once they brought it under half the window.
func TestPipeFromLoop(t *testing.T) {
	p, l := newTestPipe()
	chunk := bytes.Repeat([]byte("abcdefgh"), 4096) // 32 KiB
	total := 0
	for {
		n, err := p.writev([][]byte{chunk, chunk[:100]})
		total += n
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != pipeWindow {
		t.Fatalf("the loop wrote %d bytes before EAGAIN, want the window (%d)", total, pipeWindow)
	}
	out := make([]byte, 16<<10)
	read := 0
	for read < pipeWindow/2-len(out) {
		n, err := p.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		read += n
		if notices(l) != 0 {
			t.Fatalf("a notice after %d bytes read: before the pipe fell to half the window", read)
		}
	}
	for notices(l) == 0 {
		n, err := p.Read(out)
		if err != nil || n == 0 {
			t.Fatalf("read %d, %v without a notice", n, err)
		}
		read += n
	}
	if left := pipeWindow - read; left > pipeWindow/2 {
		t.Errorf("notice with %d bytes left, want at most half the window", left)
	}
}

// Either end's close: the other reads what was written, then the end, and its writes fail;
// a goroutine waiting in Read returns.
func TestPipeClose(t *testing.T) {
	p, _ := newTestPipe()
	p.write([]byte("last words"))
	p.close()
	got, err := io.ReadAll(p)
	if err != nil || string(got) != "last words" {
		t.Errorf("after the loop closed: read %q, %v", got, err)
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Errorf("write after the loop closed: %v, want EPIPE", err)
	}

	p, l := newTestPipe()
	read := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 10))
		read <- err
	}()
	if !until(func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.waiting > 0 }) {
		t.Fatal("the Read never waited")
	}
	p.Write([]byte("request"))
	p.Close()
	if err := <-read; err == nil {
		t.Error("a Read waiting when the outside closed returned no error")
	}
	if notices(l) == 0 {
		t.Error("the outside closed without a notice to the loop")
	}
	buf := make([]byte, 64)
	if n, _ := p.read(buf); string(buf[:n]) != "request" {
		t.Errorf("the loop read %q, want what was written before the close", buf[:n])
	}
	if n, err := p.read(buf); n != 0 || err != nil {
		t.Errorf("then %d, %v; want the end", n, err)
	}
	if _, err := p.write([]byte("answer")); err != unix.EPIPE {
		t.Errorf("the loop's write after the outside closed: %v, want EPIPE", err)
	}
	if p.Close() != nil {
		t.Error("a second Close failed")
	}
}

// holdGroup runs testdata/hold (GET /hold is answered only on GET /release) on one worker
// with no port of its own, as a Handler's program runs.
func holdGroup(t *testing.T) *Group {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := guest.NewRuntime(ctx, guest.RuntimeConfig{CacheDir: filepath.Join(os.TempDir(), "wasmloop-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Compile(ctx, buildGuest(t, "testdata/hold"))
	if err != nil {
		t.Fatal(err)
	}
	g := NewGroup(mod, Config{Workers: 1, NoPorts: true, ShutdownTimeout: 2 * time.Second,
		Instance: guest.InstanceConfig{Env: []string{"PORT=0"}, Stdout: io.Discard, Stderr: io.Discard}})
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() {
		g.Stop()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the group did not end")
		}
		cancel()
		rt.Close(context.Background())
	})
	select {
	case <-g.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the program did not start")
	}
	return g
}

// loopState asks the loop for its open connections and the requests its guest holds, once
// it has served every pipe notice queued before the call. A batch runs its tasks before its
// notices, so the answer comes from the second of two round trips: the first may share a
// batch with those notices, the second cannot.
func loopState(t *testing.T, l *Loop) (conns, exchanges int) {
	t.Helper()
	var s [2]int
	for range 2 {
		got := make(chan [2]int, 1)
		if !l.post(func(l *Loop) { got <- [2]int{l.nconns, l.exchanges.len()} }, nil) {
			t.Fatal("the loop has ended")
		}
		select {
		case s = <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("the loop did not answer")
		}
	}
	return s[0], s[1]
}

const holdRequest = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"

// A client that leaves (the outside end closes) ends its connection and the request the guest
// holds (on_close), whether the loop had attached the pipe before the close or not.
func TestPipeClientLeaves(t *testing.T) {
	g := holdGroup(t)
	l := g.loops[0]

	p := g.ServePipe()
	p.Write([]byte(holdRequest))
	if n, ex := loopState(t, l); n != 1 || ex != 1 {
		t.Fatalf("a held request: %d connections, %d requests; want 1, 1", n, ex)
	}
	p.Close()
	if n, ex := loopState(t, l); n != 0 || ex != 0 {
		t.Errorf("after the client left: %d connections, %d requests; want 0, 0", n, ex)
	}

	// The loop is busy while the request arrives and the client leaves: when it attaches the
	// pipe, the request is not served for nobody.
	gate := make(chan struct{})
	l.post(func(*Loop) { <-gate }, nil)
	p = g.ServePipe()
	p.Write([]byte(holdRequest))
	p.Close()
	close(gate)
	if n, ex := loopState(t, l); n != 0 || ex != 0 {
		t.Errorf("a client that left before the attachment: %d connections, %d requests; want 0, 0", n, ex)
	}
}

// A stopped loop reads nothing more from its pipes: a request that arrives in the same batch
// of tasks as the stop never reaches the guest, and the outside reads the end.
func TestPipeNotServedAfterStop(t *testing.T) {
	g := holdGroup(t)
	l := g.loops[0]
	p := g.ServePipe()
	p.Write([]byte("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"))
	buf := make([]byte, 4096)
	if n, err := p.Read(buf); err != nil || !bytes.Contains(buf[:n], []byte("path=/first")) {
		t.Fatalf("first answer: %q, %v", buf[:n], err)
	}
	gate := make(chan struct{})
	l.post(func(*Loop) { <-gate }, nil)
	l.post(func(l *Loop) { l.stop() }, nil)
	p.Write([]byte("GET /after-stop HTTP/1.1\r\nHost: x\r\n\r\n"))
	close(gate)
	rest, err := io.ReadAll(p)
	if err != nil || bytes.Contains(rest, []byte("after-stop")) {
		t.Errorf("after the stop the outside read %q, %v; want nothing, then the end", rest, err)
	}
}

// eachConn visits every pipe once while the visit closes some of them (each close moves the
// last pipe into the closed one's slot).
func TestEachConnWhileClosing(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/hold"))
	for name, closeIt := range map[string]func(int) bool{
		"all":        func(int) bool { return true },
		"even":       func(i int) bool { return i%2 == 0 },
		"two thirds": func(i int) bool { return i%3 != 1 },
		"the last":   func(i int) bool { return i == 9 },
	} {
		ids := map[*Conn]int{}
		for i := range 10 {
			p := &Pipe{l: l}
			p.cond.L = &p.mu
			l.servePipe(p)
			ids[p.c] = i
		}
		seen := map[int]int{}
		l.eachConn(func(c *Conn) {
			seen[ids[c]]++
			if closeIt(ids[c]) {
				l.closeConn(c, abi.CloseHost)
			}
		})
		for i := range 10 {
			if seen[i] != 1 {
				t.Errorf("%s: pipe %d visited %d times", name, i, seen[i])
			}
		}
		l.eachConn(func(c *Conn) { l.closeConn(c, abi.CloseHost) })
		if len(l.pipes) != 0 || l.nconns != 0 {
			t.Errorf("%s: %d pipes left, nconns %d", name, len(l.pipes), l.nconns)
		}
	}
}
