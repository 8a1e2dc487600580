package tests

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startEcho runs samples/tcpecho on a free port and returns its address.
func startEcho(t *testing.T, workers int, flags ...string) (*proc, string) {
	t.Helper()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"run", "--cache-dir", cacheDir, "--workers", strconv.Itoa(workers), "--env", "PORT=" + strconv.Itoa(port)}, flags...)
	p := startProc(t, nil, "", append(args, wasm["tcpecho"])...)
	p.awaitStdout(t, "Server running at tcp://"+addr+"/\n", startTimeout)
	return p, addr
}

// echoOnce sends n bytes of the pattern on a new connection, half-closes, and checks that
// exactly those bytes come back before the server closes.
func echoOnce(addr string, n int64) error {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, io.LimitReader(&patternReader{}, n))
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		sent <- err
	}()
	got, sum := checksum(c) // to the server's end
	if err := <-sent; err != nil {
		return err
	}
	if want := patternSum(n); got != n || !bytes.Equal(sum, want[:]) {
		return &echoError{n, got}
	}
	return nil
}

type echoError struct{ sent, got int64 }

func (e *echoError) Error() string {
	return "sent " + strconv.FormatInt(e.sent, 10) + " bytes, got " + strconv.FormatInt(e.got, 10) + " back (or other bytes)"
}

// samples/tcpecho with 1,000 connections, 1 MiB each way, each ended by a half-close that
// the echo answers with its own end after the last byte; opens and closes are logged.
func TestTCPEcho(t *testing.T) {
	_, addr := startEcho(t, 2, "--env", "TCPECHO_QUIET=1")
	const conns, size, parallel = 1000, 1 << 20, 100
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	sem := make(chan struct{}, parallel)
	for range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := echoOnce(addr, size); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d connections failed", failed, conns)
	}
	// Small and empty messages, and a peer that closes without reading.
	for _, n := range []int64{0, 1, 65535, 65537} {
		if err := echoOnce(addr, n); err != nil {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Write(bytes.Repeat([]byte("x"), 1<<20))
		c.Close()
	}
	if err := echoOnce(addr, 100); err != nil {
		t.Errorf("after a peer that left: %v", err)
	}
}

// The open and close of a connection are logged, and curl's telnet client gets its line back.
func TestTCPEchoCurl(t *testing.T) {
	curl := requireTool(t, "curl", "curl")
	p, addr := startEcho(t, 1)
	cmd := exec.Command(curl, "-s", "-N", "--max-time", "60", "telnet://"+addr)
	cmd.Stdin = strings.NewReader("hello from curl\n")
	out := &syncBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	select {
	case <-out.appears("hello from curl\n"):
	case <-time.After(ioTimeout):
		t.Fatalf("curl got %q back", out.String())
	}
	cmd.Process.Kill()
	cmd.Wait()
	p.awaitStdout(t, "open 127.0.0.1:", ioTimeout)
	p.awaitStdout(t, "close 127.0.0.1:", ioTimeout)
}

// SIGTERM with raw TCP connections open: each gets what was echoed, then the end, and the
// process exits without waiting for the shutdown timeout (a raw connection has no request to
// finish).
func TestTCPEchoSIGTERM(t *testing.T) {
	p, addr := startEcho(t, 2, "--env", "TCPECHO_QUIET=1", "--shutdown-timeout", "60s")
	var conns []net.Conn
	for range 4 {
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q, %v", buf, err)
		}
		conns = append(conns, c)
	}
	p.signal(t, syscall.SIGTERM)
	for i, c := range conns {
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection %d: read %d bytes after SIGTERM, want the end", i, n)
		}
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// An instance that crashes with a TCP connection open has it closed: the peer sees the
// bytes written before the crash, then the end of the connection.
func TestTCPClosedWithItsInstance(t *testing.T) {
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	s := startServer(t, serverOpts{Module: "reach", Workers: 1, Flags: []string{"--allow-connect", peer.Addr().String()}})
	go func() { // answered 500, or not at all
		if resp, err := client(nil).Get(s.URL("/connect-crash?addr=" + q(peer.Addr().String()))); err == nil {
			resp.Body.Close()
		}
	}()
	c, err := peer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	got, err := io.ReadAll(c)
	if string(got) != "hi" {
		t.Errorf("the peer read %q, %v; want \"hi\", then the end", got, err)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the connection did not end: %v", err)
	}
}

// The stream functions' answers on a TCP connection, called directly (the SDK never makes
// these mistakes): one read at a time, no read of 0 bytes, no write after the end, the end
// only once the written bytes are out, the data, the peer's end, and nothing after a close.
// Each answer comes after the callback that asked, in the order the operations finished.
func TestTCPStreamOperations(t *testing.T) {
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	got := make(chan string, 1)
	go func() {
		c, err := peer.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		b, err := io.ReadAll(c) // to the guest's end
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b)
		c.Write([]byte("hello"))
	}()
	s := startServer(t, serverOpts{Module: "reach", Workers: 1, Flags: []string{"--allow-connect", peer.Addr().String()}})
	answer := guestGet(t, s, "/streamops?addr="+q(peer.Addr().String()))
	want := `second read: EBUSY
read of 0: EINVAL
write: ""
write after end: ECLOSED
end: ""
read: "hello"
read to the end: ""
read after close: EBADID
`
	if answer != want {
		t.Errorf("the answers:\n%s\nwant:\n%s", answer, want)
	}
	if b := <-got; b != "abc" {
		t.Errorf("the peer read %q, want \"abc\" then the end", b)
	}
}

// A guest that starts stream operations in a loop within one callback is refused past the
// host's bound (ELIMIT), and the worker goes on serving once their answers are delivered.
func TestStreamOperationsBounded(t *testing.T) {
	s := startServer(t, serverOpts{Module: "reach", Workers: 1})
	if got, want := guestGet(t, s, "/opflood"), "32768 started, 7232 ELIMIT"; got != want {
		t.Errorf("GET /opflood: %q, want %q", got, want)
	}
	if got, want := guestGet(t, s, "/opflood"), "32768 started, 7232 ELIMIT"; got != want {
		t.Errorf("GET /opflood again: %q, want %q (the first 32,768 were delivered)", got, want)
	}
}
