package tests

import (
	"bytes"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
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
