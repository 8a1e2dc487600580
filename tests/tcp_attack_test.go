package tests

// Attacks on raw TCP served by the loop's reactor (host/internal/loop/tcpstream.go,
// host/internal/reach/tcp.go): resets, half-closes, back-pressure, closes and crashes with
// operations pending, drains, swaps, descriptor leaks. The guest is
// tests/testdata/guests/tcpattack; samples/tcpecho serves the echo tests.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fdCount is the number of open descriptors of process pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatalf("counting descriptors: %v", err)
	}
	return len(ents)
}

// fdsBackTo waits until pid has at most base descriptors open.
func fdsBackTo(t *testing.T, pid, base int, what string) {
	t.Helper()
	n := 0
	if !eventually(10*time.Second, func() bool { n = fdCount(t, pid); return n <= base }) {
		t.Errorf("%s: %d descriptors open, %d before: a leak", what, n, base)
	}
}

// asyncGet GETs url on its own connection (no keep-alive) and delivers the body, or the error.
func asyncGet(url string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			ch <- "GET failed: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			ch <- "body failed: " + err.Error()
			return
		}
		ch <- string(b)
	}()
	return ch
}

func await(t *testing.T, ch <-chan string, d time.Duration, what string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(d):
		t.Fatalf("%s: no answer within %v", what, d)
		return ""
	}
}

// getNK GETs url on a connection of its own that closes after the answer (so that the
// server's descriptor count is not disturbed by idle keep-alive connections).
func getNK(t *testing.T, url string) string {
	t.Helper()
	_, body := httpGet(t, client(&http.Transport{DisableKeepAlives: true}), url)
	return string(body)
}

// peer is a listener on 127.0.0.1 the guest connects to.
func peer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func acceptWithin(t *testing.T, ln net.Listener, d time.Duration) *net.TCPConn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(d))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// reset closes c with a RST (SO_LINGER 0).
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// attackServer starts the tcpattack guest granted to connect to the given peers, with an
// admin endpoint for its metrics. It returns the server and the admin URL.
func attackServer(t *testing.T, workers int, extra []string, peers ...net.Listener) (*server, string) {
	t.Helper()
	admin := "127.0.0.1:" + strconv.Itoa(freePort(t))
	flags := []string{"--admin", admin}
	for _, p := range peers {
		flags = append(flags, "--allow-connect", p.Addr().String())
	}
	flags = append(flags, extra...)
	s := startServer(t, serverOpts{Module: "tcpattack", Workers: workers, Flags: flags})
	return s, "http://" + admin
}

// outputQueued is the host's output waiting for slow peers (the admin metric, refreshed by
// the worker's sweep).
func outputQueued(t *testing.T, admin string) float64 {
	t.Helper()
	resp, err := client(&http.Transport{DisableKeepAlives: true}).Get(admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return metricSum(t, string(b), "wasmloop_output_queued_bytes")
}

// awaitBacklog waits until the host holds more than the high-water mark (256 KiB) of output
// for a peer that does not read: the guest's write is then pending, waiting for a drain.
func awaitBacklog(t *testing.T, admin string) {
	t.Helper()
	if !eventually(20*time.Second, func() bool { return outputQueued(t, admin) > 256<<10 }) {
		t.Fatalf("the host never held more than 256 KiB of output for the peer that does not read (%v)", outputQueued(t, admin))
	}
}

// noHostPanic fails the test if the host's stderr shows a Go panic.
func noHostPanic(t *testing.T, p *proc) {
	t.Helper()
	if s := p.stderr.String(); strings.Contains(s, "host/internal/") || strings.Contains(s, "created by ") {
		t.Errorf("the host panicked:\n%s", s)
	}
}

// A peer resets its connection (SO_LINGER 0) while the guest's write waits for the output
// to drain: the guest hears ECONNRESET (the socket closes), with or without a read pending,
// and the descriptor is closed.
func TestTCPAttackResetWhileWriteWaits(t *testing.T) {
	for _, read := range []string{"1", "0"} {
		t.Run("read="+read, func(t *testing.T) {
			ln := peer(t)
			s, admin := attackServer(t, 1, nil, ln)
			base := fdCount(t, s.cmd.Process.Pid)
			answer := asyncGet(s.URL("/hold?n=0&read=" + read + "&addr=" + q(ln.Addr().String())))
			c := acceptWithin(t, ln, ioTimeout)
			c.SetReadBuffer(4096)
			awaitBacklog(t, admin)
			reset(c)
			got := await(t, answer, ioTimeout, "the guest's close")
			if !strings.HasPrefix(got, "close ECONNRESET") {
				t.Errorf("the guest heard %q, want close ECONNRESET", got)
			}
			fdsBackTo(t, s.cmd.Process.Pid, base, "after the reset")
			noHostPanic(t, s.proc)
		})
	}
}

// A peer resets while the guest's read is pending (nothing to write).
func TestTCPAttackResetWhileReadPending(t *testing.T) {
	ln := peer(t)
	s, _ := attackServer(t, 1, nil, ln)
	base := fdCount(t, s.cmd.Process.Pid)
	answer := asyncGet(s.URL("/hold?n=1&addr=" + q(ln.Addr().String())))
	c := acceptWithin(t, ln, ioTimeout)
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	reset(c)
	if got := await(t, answer, ioTimeout, "the guest's close"); !strings.HasPrefix(got, "close ECONNRESET") {
		t.Errorf("the guest heard %q, want close ECONNRESET", got)
	}
	fdsBackTo(t, s.cmd.Process.Pid, base, "after the reset")
}

// A peer that does not read the guest's output, so that the host's output for it is above
// the mark and the guest's write waits for a drain, sends a byte: the guest's pending read
// must get it (Node reads a socket whatever its write queue holds; the program's pause is the
// only thing that stops reading, tcpstream.go). The guest closes the socket on the byte.
func TestTCPAttackReadStarvedByWriteBacklog(t *testing.T) {
	ln := peer(t)
	s, admin := attackServer(t, 1, nil, ln)
	answer := asyncGet(s.URL("/closeonbyte?n=0&addr=" + q(ln.Addr().String())))
	c := acceptWithin(t, ln, ioTimeout)
	awaitBacklog(t, admin)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := await(t, answer, ioTimeout, "the guest's read of the byte (read starved while the output is above the mark?)"); got != "closed" {
		t.Errorf("the guest answered %q, want closed", got)
	}
}

// The guest closes a connection whose write waits for a drain and whose read is pending: the
// ops fail quietly, the peer sees the end, no data reaches the closed socket, and the
// descriptor goes.
func TestTCPAttackCloseWithOpsPending(t *testing.T) {
	ln := peer(t)
	s, admin := attackServer(t, 1, nil, ln)
	base := fdCount(t, s.cmd.Process.Pid)
	if got := getNK(t, s.URL("/hold?n=0&answer=now&addr="+q(ln.Addr().String()))); got != "started" {
		t.Fatalf("hold: %q", got)
	}
	c := acceptWithin(t, ln, ioTimeout)
	awaitBacklog(t, admin)
	c.Write([]byte("some bytes for the pending read"))
	if got := getNK(t, s.URL("/closeheld")); got != "closed 1" {
		t.Errorf("closeheld: %q", got)
	}
	// The peer reads what came and then the end (or a reset: a close drops the host's
	// queued output and the unread input).
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the peer's connection did not end: %v", err)
	}
	fdsBackTo(t, s.cmd.Process.Pid, base, "after the guest's close")
	if strings.Contains(s.stdout.String(), "data after Close") {
		t.Error("OnData ran after Close")
	}
	noHostPanic(t, s.proc)
}

// The instance crashes with a write waiting for a drain and a read pending: its connection
// closes, the worker serves on with a new instance, and nothing leaks.
func TestTCPAttackCrashWithOpsPending(t *testing.T) {
	ln := peer(t)
	s, admin := attackServer(t, 1, nil, ln)
	base := fdCount(t, s.cmd.Process.Pid)
	if got := getNK(t, s.URL("/hold?n=0&answer=now&addr="+q(ln.Addr().String()))); got != "started" {
		t.Fatalf("hold: %q", got)
	}
	c := acceptWithin(t, ln, ioTimeout)
	awaitBacklog(t, admin)
	if resp, err := client(&http.Transport{DisableKeepAlives: true}).Get(s.URL("/crash")); err == nil {
		resp.Body.Close()
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the peer's connection did not end after the crash: %v", err)
	}
	if got := getNK(t, s.URL("/info")); !strings.HasPrefix(got, "worker 0") {
		t.Errorf("after the crash: %q", got)
	}
	fdsBackTo(t, s.cmd.Process.Pid, base, "after the crash")
	noHostPanic(t, s.proc)
}

// readPattern reads r to its end and reports how many bytes came and whether they were the
// pattern and ended cleanly (EOF).
func readPattern(r io.Reader) (int64, bool) {
	n, match, err := readPatternErr(r)
	return n, match && err == nil
}

// readPatternErr is readPattern that tells a bad byte (match false) from the way the stream
// ended (nil for EOF).
func readPatternErr(r io.Reader) (int64, bool, error) {
	var pos int64
	buf := make([]byte, 64<<10)
	match := true
	for {
		k, err := r.Read(buf)
		for i := 0; i < k; i++ {
			if buf[i] != byte((pos+int64(i))%251) {
				match = false
			}
		}
		pos += int64(k)
		if err == io.EOF {
			return pos, match, nil
		}
		if err != nil {
			return pos, match, err
		}
	}
}

// Half-close in both orders: the guest ends first and reads on to the peer's end; the peer
// ends first while the guest still writes (KeepOpen). Every byte arrives both ways.
func TestTCPAttackHalfClose(t *testing.T) {
	const n, m = 3<<20 + 5, 2<<20 + 11
	_, mSum := checksum(io.LimitReader(&patternReader{}, m))
	ln := peer(t)
	s, _ := attackServer(t, 1, nil, ln)
	want := fmt.Sprintf("read %d %s close nil ended true", m, hex.EncodeToString(mSum))
	for _, peerFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("peerEndsFirst=%v", peerFirst), func(t *testing.T) {
			answer := asyncGet(s.URL("/halfclose?n=" + strconv.Itoa(n) + "&addr=" + q(ln.Addr().String())))
			c := acceptWithin(t, ln, ioTimeout)
			c.SetDeadline(time.Now().Add(30 * time.Second))
			send := func() error {
				if _, err := io.Copy(c, io.LimitReader(&patternReader{}, m)); err != nil {
					return err
				}
				return c.CloseWrite()
			}
			if peerFirst {
				sent := make(chan error, 1)
				go func() { sent <- send() }()
				got, ok := readPattern(c)
				if err := <-sent; err != nil {
					t.Fatalf("sending: %v", err)
				}
				if got != n || !ok {
					t.Errorf("the peer read %d bytes (pattern %v), want %d", got, ok, n)
				}
			} else {
				got, ok := readPattern(c) // to the guest's end, before sending anything
				if got != n || !ok {
					t.Errorf("the peer read %d bytes (pattern %v), want %d", got, ok, n)
				}
				if err := send(); err != nil {
					t.Fatalf("sending after the guest's end: %v", err)
				}
			}
			if got := await(t, answer, 30*time.Second, "the guest's account"); got != want {
				t.Errorf("the guest: %q\nwant %q", got, want)
			}
		})
	}
}

// Reads of a few bytes at a time (the host keeps the rest of what it read for the next read):
// every byte, in order, no answer larger than asked, none inside its call.
func TestTCPAttackSmallReads(t *testing.T) {
	ln := peer(t)
	s, _ := attackServer(t, 1, nil, ln)
	for _, max := range []int{1, 7, 4095, 65537, 300000} {
		n := int64(1<<20 + 17)
		if max == 1 {
			n = 100_003
		}
		t.Run("max="+strconv.Itoa(max), func(t *testing.T) {
			answer := asyncGet(s.URL("/smallreads?max=" + strconv.Itoa(max) + "&addr=" + q(ln.Addr().String())))
			c := acceptWithin(t, ln, ioTimeout)
			c.SetDeadline(time.Now().Add(30 * time.Second))
			// Pieces of varied sizes, so reads straddle what the host buffered.
			src := io.LimitReader(&patternReader{}, n)
			sizes := []int{1, 3000, 70000, 5, 65536, 123457, 17}
			buf := make([]byte, 200000)
			for i := 0; ; i++ {
				k, _ := io.ReadFull(src, buf[:sizes[i%len(sizes)]])
				if k == 0 {
					break
				}
				if _, err := c.Write(buf[:k]); err != nil {
					t.Fatal(err)
				}
			}
			c.CloseWrite()
			_, sum := checksum(io.LimitReader(&patternReader{}, n))
			want := fmt.Sprintf("read %d %x inside=0", n, sum)
			if got := await(t, answer, 30*time.Second, "the reads"); got != want {
				t.Errorf("got %q\nwant %q", got, want)
			}
		})
	}
}

// fullBacklog is a listener whose accept queue is full: a connect to it waits for no answer.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr // the queue is full: this one timed out
		}
		t.Cleanup(func() { c.Close() })
		if i > 8 {
			t.Skip("the kernel answers connects to a full accept queue; cannot make a connect time out")
		}
	}
}

// Connect's answers: refused, timed out (a full accept queue), not granted, and success,
// each in a later callback, and nothing left open.
func TestTCPAttackConnect(t *testing.T) {
	ln := peer(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	refused := "127.0.0.1:" + strconv.Itoa(freePort(t))
	slow := fullBacklog(t)
	s := startServer(t, serverOpts{Module: "tcpattack", Flags: []string{"--allow-connect", ln.Addr().String(),
		"--allow-connect", refused, "--allow-connect", slow}})
	base := fdCount(t, s.cmd.Process.Pid)
	for _, c := range []struct{ path, want string }{
		{"/connect?addr=" + q(ln.Addr().String()), "ok after"},
		{"/connect?addr=" + q(refused), "ERR ECONNREFUSED after"},
		{"/connect?timeout=400&addr=" + q(slow), "ERR ETIMEDOUT after"},
		{"/connect?addr=" + q("127.0.0.3:9"), "ERR EACCES after"},
		{"/connect?addr=" + q("no-port"), "ERR EINVAL after"},
	} {
		start := time.Now()
		if got := getNK(t, s.URL(c.path)); got != c.want {
			t.Errorf("GET %s: %q, want %q", c.path, got, c.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("GET %s took %v", c.path, d)
		}
	}
	// Many connects at once, half refused.
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := ln.Addr().String()
			if i%2 == 1 {
				addr = refused
			}
			resp, err := client(&http.Transport{DisableKeepAlives: true}).Get(s.URL("/connect?addr=" + q(addr)))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	fdsBackTo(t, s.cmd.Process.Pid, base, "after the connects")
}

// The stream functions called on the wrong kind of id fail (EINVAL, EBADID) after their
// call; a connection's own write is taken, and since the same callback closes the connection
// before the write's answer is delivered, the answer is the close's (ECLOSED: the bytes
// never went out), as Node calls a write's callback with an error after destroy().
func TestTCPAttackWrongIDs(t *testing.T) {
	ln := peer(t)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	s := startServer(t, serverOpts{Module: "tcpattack", Flags: []string{"--allow-connect", ln.Addr().String()}})
	base := fdCount(t, s.cmd.Process.Pid)
	got := getNK(t, s.URL("/badids?addr="+q(ln.Addr().String())))
	for _, want := range []string{"read listener: EINVAL", "write listener: EINVAL", "end listener: EINVAL",
		"accept connection: EINVAL", "read unknown id: EBADID", "write connection: ECLOSED", "option listener: EINVAL"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("no %q in the answers:\n%s", want, got)
		}
	}
	if strings.Contains(got, "INSIDE") {
		t.Errorf("an answer came inside its call:\n%s", got)
	}
	if !regexp.MustCompile(`(?m)^read short id: E[A-Z]+$`).MatchString(got) {
		t.Errorf("a read with a short id was not refused:\n%s", got)
	}
	fdsBackTo(t, s.cmd.Process.Pid, base, "after the wrong ids")
}

// Data that arrives for two sockets in one turn, where the first socket's data handler closes
// the second: the closed socket's handler must not run (Node emits no 'data' after
// destroy(); ABI.md §10: a close fails the pending operations).
func TestTCPAttackNoDataAfterClose(t *testing.T) {
	ln := peer(t)
	s, _ := attackServer(t, 1, nil, ln)
	answer := asyncGet(s.URL("/twosock?addr=" + q(ln.Addr().String())))
	a := acceptWithin(t, ln, ioTimeout)
	b := acceptWithin(t, ln, ioTimeout)
	// Whichever is the guest's first socket gets 16 KiB; the worker is then busy for 600 ms.
	goSeen := make(chan struct{}, 2)
	for _, c := range []*net.TCPConn{a, b} {
		go func() {
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			buf := make([]byte, 16<<10)
			if _, err := io.ReadFull(c, buf); err == nil {
				goSeen <- struct{}{}
			}
		}()
	}
	select {
	case <-goSeen:
	case <-time.After(ioTimeout):
		t.Fatal("no go from the guest")
	}
	a.Write([]byte("a"))
	b.Write([]byte("b"))
	got := await(t, answer, ioTimeout, "the events")
	if strings.Contains(got, "DATA AFTER CLOSE") {
		t.Errorf("a closed socket's OnData ran:\n%s", got)
	}
	t.Logf("events:\n%s", got)
}

// The same with one socket: a timer closes it in the turn its data was read (timers fire
// after the reads and before the results are delivered), so its OnData must not run.
func TestTCPAttackNoDataAfterCloseByTimer(t *testing.T) {
	ln := peer(t)
	s, _ := attackServer(t, 1, nil, ln)
	answer := asyncGet(s.URL("/closetimer?addr=" + q(ln.Addr().String())))
	c := acceptWithin(t, ln, ioTimeout)
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(c, make([]byte, 16<<10)); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("late"))
	got := await(t, answer, ioTimeout, "the events")
	if strings.Contains(got, "DATA AFTER CLOSE") {
		t.Errorf("a closed socket's OnData ran:\n%s", got)
	}
	t.Logf("events:\n%s", got)
}

// With 2 workers, ListenTCP on port 0 gives both the same port, and connections reach both.
func TestTCPAttackListenPort0TwoWorkers(t *testing.T) {
	s := startServer(t, serverOpts{Module: "tcpattack", Workers: 2, Flags: []string{"--env", "TCPATTACK_LISTEN=1"}})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	s.awaitStdout(t, "tcp worker 1 at ", ioTimeout)
	m := regexp.MustCompile(`tcp worker (\d) at (\S+)`).FindAllStringSubmatch(s.stdout.String(), -1)
	addrs := map[string]bool{}
	for _, x := range m {
		addrs[x[2]] = true
	}
	if len(addrs) != 1 {
		t.Fatalf("the workers listen on different addresses: %v\n%s", addrs, s.stdout)
	}
	var addr string
	for a := range addrs {
		addr = a
	}
	seen := map[byte]int{}
	for i := range 60 {
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(ioTimeout))
		msg := []byte("hello " + strconv.Itoa(i))
		c.Write(msg)
		br := bufio.NewReader(c)
		greeting, err := br.ReadString('\n')
		got := make([]byte, len(msg))
		if _, err2 := io.ReadFull(br, got); err != nil || err2 != nil || !bytes.Equal(got, msg) {
			t.Fatalf("greeting %q, echo %q, %v %v", greeting, got, err, err2)
		}
		seen[greeting[0]]++
		c.Close()
	}
	if len(seen) != 2 {
		t.Errorf("connections reached workers %v, want both", seen)
	}
}

// SIGTERM while a connection is open: once the drain began (the open connection got its
// end), a connection accepted meanwhile must end too, and the process must exit promptly
// rather than wait for the shutdown timeout.
func TestTCPAttackAcceptDuringDrain(t *testing.T) {
	p, addr := startEcho(t, 1, "--shutdown-timeout", "25s")
	a, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.SetDeadline(time.Now().Add(ioTimeout))
	a.Write([]byte("ping"))
	if _, err := io.ReadFull(a, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	if n, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes after SIGTERM, want the end", n)
	}
	// The drain has begun; a (still open, not ended) keeps it going for a moment.
	b, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err == nil {
		defer b.Close()
		b.SetDeadline(time.Now().Add(8 * time.Second))
		b.Write([]byte("late"))
		got, err := io.ReadAll(b)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a connection accepted during the drain was served (%q) and never ended", got)
		}
	}
	select {
	case <-p.done:
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("the process took %v to exit after SIGTERM", d)
		}
	case <-time.After(9 * time.Second):
		t.Errorf("the process still runs %v after SIGTERM (shutdown timeout 25 s): the drain waits for a connection accepted after it began", time.Since(start))
	}
}

// SIGTERM during heavy streaming on many connections: each peer gets an unbroken prefix of
// its echo, then the end, and the process exits 0.
func TestTCPAttackSIGTERMStreaming(t *testing.T) {
	p, addr := startEcho(t, 2, "--env", "TCPECHO_QUIET=1", "--shutdown-timeout", "20s")
	const conns = 40
	var wg sync.WaitGroup
	started := make(chan struct{}, conns)
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, ioTimeout)
			if err != nil {
				errs <- err
				started <- struct{}{}
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(25 * time.Second))
			go io.Copy(c, &patternReader{}) // until the connection breaks
			var pos int64
			buf := make([]byte, 32<<10)
			once := false
			for {
				k, err := c.Read(buf)
				for j := 0; j < k; j++ {
					if buf[j] != byte((pos+int64(j))%251) {
						errs <- fmt.Errorf("connection %d: byte %d is %d, want %d", i, pos+int64(j), buf[j], (pos+int64(j))%251)
						if !once {
							started <- struct{}{}
						}
						return
					}
				}
				pos += int64(k)
				if !once && pos > 1<<20 {
					once = true
					started <- struct{}{}
				}
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						errs <- fmt.Errorf("connection %d: no end after %d bytes", i, pos)
					}
					if !once {
						started <- struct{}{}
					}
					return
				}
			}
		}()
	}
	for range conns {
		<-started
	}
	p.signal(t, syscall.SIGTERM)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if code := p.wait(t, 25*time.Second); code != 0 {
		t.Errorf("exit status %d", code)
	}
	noHostPanic(t, p)
}

// greet dials addr and returns the greeting line of tcpattack's listener ("W INSTANCE").
func greet(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("greeting: %q, %v", line, err)
		}
		if b[0] == '\n' {
			return c, string(line)
		}
		line = append(line, b[0])
	}
}

// A swap (SIGHUP) with connections open and a write waiting for a drain: the old instance is
// retired and keeps its raw connections, as it keeps WebSockets, until the swap's drain
// timeout closes them; the new instance listens on the same port-0 address and serves, and
// nothing leaks.
func TestTCPAttackSwapWithConnsOpen(t *testing.T) {
	ln := peer(t)
	s, admin := attackServer(t, 1, []string{"--env", "TCPATTACK_LISTEN=1", "--swap-drain-timeout", "1s"}, ln)
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	before := getNK(t, s.URL("/info"))
	addr := strings.TrimPrefix(before, "worker 0 tcp ")
	base := fdCount(t, s.cmd.Process.Pid)
	in, old := greet(t, addr)
	in.SetDeadline(time.Now().Add(20 * time.Second))
	if got := getNK(t, s.URL("/hold?n=0&answer=now&addr="+q(ln.Addr().String()))); got != "started" {
		t.Fatalf("hold: %q", got)
	}
	out := acceptWithin(t, ln, ioTimeout)
	awaitBacklog(t, admin)
	reloaded := s.stderr.appears("wasmloop: reloaded")
	s.signal(t, syscall.SIGHUP)
	select {
	case <-reloaded:
	case <-time.After(20 * time.Second):
		t.Fatalf("no reload\nstderr:\n%s", s.stderr)
	}
	if _, err := io.Copy(io.Discard, in); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the old instance's accepted connection did not end with the drain timeout: %v", err)
	}
	out.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, out); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the old instance's dialled connection did not end with the drain timeout: %v", err)
	}
	if after := getNK(t, s.URL("/info")); after != before {
		t.Errorf("after the swap: %q, before %q", after, before)
	}
	for range 10 {
		c, now := greet(t, addr)
		if now == old {
			t.Errorf("a connection after the swap reached the old instance (%q)", now)
		}
		c.Close()
	}
	fdsBackTo(t, s.cmd.Process.Pid, base, "after the swap")
	noHostPanic(t, s.proc)
}

// A swap while the old instance still holds a request (so it lives on, retired, for the
// swap's drain): connections made after the swap must reach the new instance, not the
// retired one's TCP listener (HTTP listeners are handed over; a retired instance's TCP
// listeners close, and its connections stay until it goes).
func TestTCPAttackSwapRetiredListenerAccepts(t *testing.T) {
	ln := peer(t)
	s, _ := attackServer(t, 1, []string{"--env", "TCPATTACK_LISTEN=1", "--swap-drain-timeout", "20s"}, ln)
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := strings.TrimPrefix(getNK(t, s.URL("/info")), "worker 0 tcp ")
	_, old := greet(t, addr)
	// A request the old instance answers only when its connection closes: it holds the
	// instance after the swap.
	hold := asyncGet(s.URL("/hold?n=1&addr=" + q(ln.Addr().String())))
	out := acceptWithin(t, ln, ioTimeout)
	out.SetReadDeadline(time.Now().Add(ioTimeout))
	io.ReadFull(out, make([]byte, 1))
	reloaded := s.stderr.appears("wasmloop: reloaded")
	s.signal(t, syscall.SIGHUP)
	select {
	case <-reloaded:
	case <-time.After(20 * time.Second):
		t.Fatalf("no reload\nstderr:\n%s", s.stderr)
	}
	toOld := 0
	for range 40 {
		c, now := greet(t, addr)
		if now == old {
			toOld++
		}
		c.Close()
	}
	if toOld > 0 {
		t.Errorf("%d of 40 connections made after the swap reached the retired instance's listener", toOld)
	}
	out.Close()
	await(t, hold, 20*time.Second, "the held request")
}

// A swap while connections wait in the TCP listener's backlog: the new instance takes over
// the old one's socket, as HTTP listeners are handed over, so they are served; a socket of
// its own and the old one's close would have reset them (Linux resets a closed listener's
// queue).
func TestTCPSwapKeepsTheBacklog(t *testing.T) {
	s, _ := attackServer(t, 1, []string{"--env", "TCPATTACK_LISTEN=1"})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := strings.TrimPrefix(getNK(t, s.URL("/info")), "worker 0 tcp ")
	swapWithBacklog(t, s, addr)
	noHostPanic(t, s.proc)
}

// Many connections of every kind — full echoes, peers that reset mid-stream, peers that leave
// without reading — and then every descriptor is closed again.
func TestTCPAttackNoDescriptorLeak(t *testing.T) {
	p, addr := startEcho(t, 2, "--env", "TCPECHO_QUIET=1")
	pid := p.cmd.Process.Pid
	base := fdCount(t, pid)
	const conns, parallel = 1500, 100
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	var failed sync.Map
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			switch i % 3 {
			case 0:
				if err := echoOnce(addr, int64(1000+i*37)); err != nil {
					failed.Store(i, err)
				}
			case 1: // reset after some of the echo came back
				c, err := net.DialTimeout("tcp", addr, ioTimeout)
				if err != nil {
					failed.Store(i, err)
					return
				}
				c.SetDeadline(time.Now().Add(ioTimeout))
				go io.Copy(c, io.LimitReader(&patternReader{}, 4<<20))
				io.ReadFull(c, make([]byte, 100000))
				reset(c.(*net.TCPConn))
			case 2: // write and leave without reading
				c, err := net.DialTimeout("tcp", addr, ioTimeout)
				if err != nil {
					failed.Store(i, err)
					return
				}
				c.SetDeadline(time.Now().Add(ioTimeout))
				io.Copy(c, io.LimitReader(&patternReader{}, 300000))
				c.Close()
			}
		}()
	}
	wg.Wait()
	n := 0
	failed.Range(func(k, v any) bool {
		if n++; n <= 5 {
			t.Errorf("connection %v: %v", k, v)
		}
		return true
	})
	fdsBackTo(t, pid, base, fmt.Sprintf("after %d connections", conns))
	if err := echoOnce(addr, 12345); err != nil {
		t.Errorf("after the storm: %v", err)
	}
	noHostPanic(t, p)
}

// A small --max-output (the cap on unsent output per connection) and a peer that sends and
// does not read: the echo obeys the back-pressure (one write at a time, each answered only
// under the mark), so the host must push back on the peer — stop reading it — rather than
// find its output beyond the cap and close the connection. (The mark is min(256 KiB, cap);
// a write is answered while the output is at or under the mark, and the next 64 KiB piece
// then takes it to 320 KiB, over a cap of 300 KiB.)
func TestTCPAttackMaxOutputWithBackPressure(t *testing.T) {
	for _, cap := range []string{"300k", "1m"} { // 1m is above 256 KiB + 64 KiB: it holds
		t.Run("max-output="+cap, func(t *testing.T) { maxOutputEcho(t, cap) })
	}
}

func maxOutputEcho(t *testing.T, cap string) {
	p, addr := startEcho(t, 1, "--max-output", cap)
	const n = 64 << 20
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	tc.SetReadBuffer(64 << 10)
	// Phase 1: send without reading until the echo stops taking bytes (1 s without
	// progress), or the connection breaks.
	src := io.LimitReader(&patternReader{}, n)
	buf := make([]byte, 64<<10)
	var sent int64
	var pendingPiece []byte
	for {
		k, _ := src.Read(buf)
		if k == 0 {
			t.Fatalf("sent all %d bytes without the echo pushing back", n)
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		w, err := c.Write(buf[:k])
		sent += int64(w)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			pendingPiece = append([]byte(nil), buf[w:k]...)
			break // pushed back, as it should be
		}
		if err != nil {
			select {
			case <-p.stdout.appears("close 127.0.0.1:"):
			case <-time.After(2 * time.Second):
			}
			t.Fatalf("the connection broke after %d bytes sent and none read: %v (the host closed it at the cap instead of pushing back)\nguest:\n%s", sent, err, p.stdout)
		}
	}
	// Phase 2: read everything back while the rest is sent.
	done := make(chan error, 1)
	go func() {
		c.SetWriteDeadline(time.Now().Add(25 * time.Second))
		if _, err := c.Write(pendingPiece); err != nil {
			done <- err
			return
		}
		if _, err := io.Copy(c, src); err != nil {
			done <- err
			return
		}
		done <- tc.CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(25 * time.Second))
	got, match, rerr := readPatternErr(bufio.NewReaderSize(c, 64<<10))
	if got != n || !match || rerr != nil {
		t.Errorf("the echo gave back %d of %d bytes (in order: %v), then %v\nguest:\n%s", got, n, match, rerr, p.stdout)
	}
	if err := <-done; err != nil {
		t.Errorf("sending: %v", err)
	}
}

var _ = sha256.New
