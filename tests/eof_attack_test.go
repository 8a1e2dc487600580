package tests

// Attacks on commit dd4f2e5: a response's file kept open between body_file calls
// (host/internal/loop/bodyfile.go exchange.file) and an EOF that no longer cuts a response
// with bytes in flight (httpconn.go peerEOF, hc.last).

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// traceServer starts samples/static under strace (close, openat2, accept4 of every thread),
// writing the trace to a file it returns.
func traceServer(t *testing.T, files map[string][]byte) (*server, string) {
	t.Helper()
	www := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(www, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	trace := filepath.Join(t.TempDir(), "trace")
	strace := requireTool(t, "strace", "strace")
	s := startServer(t, serverOpts{Module: "static", Workers: 1,
		Prefix: []string{strace, "-f", "-qq", "-e", "trace=close,openat2,accept4,sendfile,recvfrom,read,writev,write,epoll_pwait,epoll_wait", "-o", trace, "--"},
		Flags:  []string{"--dir", www + ":/www:ro"}, StartTimeout: 60 * time.Second})
	// strace's tracee outlives a killed strace (it is detached): end it first (cleanups run
	// last registered first).
	t.Cleanup(func() { killChildren(s.cmd.Process.Pid) })
	return s, trace
}

// killChildren kills the children of process pid.
func killChildren(pid int) {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(c); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
	}
}

var (
	reOpenat2 = regexp.MustCompile(`openat2\(.*\)\s+= (\d+)$`)
	reClose   = regexp.MustCompile(`close\((\d+)\)\s+= (.*)$`)
	reAccept  = regexp.MustCompile(`accept4\(.*\)\s+= (\d+)$`)
	reFull    = regexp.MustCompile(`sendfile\(.*= -1 EAGAIN`)
)

// traceLines reads strace's output as one line per system call. With -f, a call that
// another thread's call interrupts is written in two parts, "PID name(args <unfinished ...>"
// and later "PID <... name resumed>rest"; the parts are joined where the call returned, so
// that every pattern above sees a whole call (and a close is not missed: the test flaked).
func traceLines(trace string) ([]string, error) {
	b, err := os.ReadFile(trace)
	if err != nil {
		return nil, err
	}
	const unfinished, resumed = " <unfinished ...>", " resumed>"
	started := map[string]string{} // pid -> the first part of its unfinished call
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		pid, rest, _ := strings.Cut(line, " ")
		switch {
		case strings.HasSuffix(line, unfinished):
			started[pid] = strings.TrimSuffix(rest, unfinished)
		case strings.HasPrefix(rest, "<... "):
			if _, after, ok := strings.Cut(rest, resumed); ok {
				lines = append(lines, pid+" "+started[pid]+after)
				delete(started, pid)
			}
		default:
			lines = append(lines, line)
		}
	}
	return lines, nil
}

// fileCloses reads the trace: how often each file descriptor openat2 returned was closed
// before the next open that returned it, the EBADF closes, and the number of accepted
// sockets still open.
func fileCloses(t *testing.T, trace string) (doubles []string, ebadf []string, socketsOpen int) {
	lines, err := traceLines(trace)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int{}    // fd -> closes since its openat2
	sockets := map[string]bool{} // accepted, not closed
	for _, line := range lines {
		if m := reOpenat2.FindStringSubmatch(line); m != nil {
			files[m[1]] = 0
			continue
		}
		if m := reAccept.FindStringSubmatch(line); m != nil {
			sockets[m[1]] = true
			delete(files, m[1])
			continue
		}
		m := reClose.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if strings.HasPrefix(m[2], "-1 EBADF") {
			ebadf = append(ebadf, line)
		}
		if sockets[m[1]] && strings.HasPrefix(m[2], "0") {
			delete(sockets, m[1])
			continue
		}
		if n, ok := files[m[1]]; ok {
			files[m[1]] = n + 1
			if n+1 == 2 {
				doubles = append(doubles, line)
			}
		}
	}
	return doubles, ebadf, len(sockets)
}

// A client resets mid-file while the socket is full of it (the guest waits for on_drain),
// plainly or after half-closing: the kept file is closed once. The reset is not read (the
// guest holds the request), the writable edge brings on_drain, the guest's next body_file
// fails in sendfile, closeConn → abandon → dropFile closes the kept file, and then BodyFile
// closes it again (bodyfile.go: `ex.file.f == f` no longer holds, so `f.Close()`): the file
// is an fdFile (a bare descriptor number), so the second close closes whatever descriptor
// another goroutine (another worker's accept, an off-loop file op) got under that number.
func TestEOFAttackKeptFileClosedTwice(t *testing.T) {
	t.Parallel()
	big := randBytes(8 << 20)
	s, trace := traceServer(t, map[string][]byte{"big.bin": big})
	for i, mode := range []string{"reset", "half-close then reset", "reset", "half-close then reset"} {
		cn := dialSmallWindow(t, s.Addr)
		cn.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		readHeadThen(t, cn, "GET", int64(64<<10+i*5000))
		// The socket is full and the guest waits for on_drain: sendfile said EAGAIN.
		if !eventually(30*time.Second, func() bool { // strace slows the server a lot under load
			lines, _ := traceLines(trace)
			full := 0
			for _, line := range lines {
				if reFull.MatchString(line) {
					full++
				}
			}
			return full > i
		}) {
			t.Fatalf("%s: the server never waited for room", mode)
		}
		if strings.HasPrefix(mode, "half-close") {
			cn.Conn.(*net.TCPConn).CloseWrite()
		}
		cn.Conn.(*net.TCPConn).SetLinger(0)
		cn.Close()
		// The server closes its socket: every accepted socket is closed again.
		if !eventually(30*time.Second, func() bool { _, _, open := fileCloses(t, trace); return open == 0 }) {
			t.Fatalf("%s: the server kept the connection", mode)
		}
	}
	doubles, ebadf, _ := fileCloses(t, trace)
	if len(doubles) > 0 || len(ebadf) > 0 {
		t.Errorf("a kept body file's descriptor was closed twice (%d times; EBADF closes: %d):\n%s\n%s",
			len(doubles), len(ebadf), strings.Join(doubles, "\n"), strings.Join(ebadf, "\n"))
	}
	resp, body := fetch(t, s, "GET", "/big.bin")
	if resp.StatusCode != 200 || len(body) != len(big) {
		t.Fatalf("after the resets: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// A long poll (whoami /later, not started) whose client half-closes still hears of it at once:
// the connection closes (on_close) well before the timer would answer.
func TestEOFAttackLongPollHalfCloseStillCloses(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "whoami"})
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.send(get("/later?ms=4000"))
	c.Conn.(*net.TCPConn).CloseWrite()
	if err := c.expectEOF(2 * time.Second); err != nil {
		t.Fatalf("a half-closed long poll: %v", err)
	}
}

// A response that began with more than the socket takes and then waits on its program: its
// client half-closes, reads what was sent, and resets. Nothing is read after the EOF and
// nothing more is written, yet the reset is noticed (Loop.checkReset) and the program hears
// on_close, instead of the dead connection waiting for a write that never comes.
func TestEOFAttackResetAfterHalfCloseIsNoticed(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "tcpattack"})
	closed := s.stdout.appears("bigthenwait closed")
	const n = 8 << 20
	c := dialSmallWindow(t, s.Addr) // the kernel cannot hold it all: the host holds the rest
	if err := c.send("GET /bigthenwait?n=" + strconv.Itoa(n) + " HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.CopyN(io.Discard, resp.Body, n); err != nil {
		t.Fatalf("the first %d bytes after the half-close: %d, %v", n, got, err)
	}
	reset(c.Conn.(*net.TCPConn))
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatalf("the reset connection was not noticed: no on_close\nstdout:\n%s\nstderr:\n%s", s.stdout, s.stderr)
	}
}
