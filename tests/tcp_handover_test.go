package tests

// The hand-over of raw TCP listening sockets across a swap (host/internal/reach/listeners.go):
// the new instance's listens take over the old one's sockets, one goroutine per socket (pump)
// accepts for both, and a connection taken for an instance retired meanwhile goes to the next
// accept. Found by an adversarial review of the hand-over; TestTCPSwapKeepsTheBacklog
// (tcp_attack_test.go) is the first case. The guest is tcpattack.

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// goroutinesWith reports whether the host has a goroutine whose stack names fn (the
// admin listener's /debug/pprof, served with --pprof).
func goroutinesWith(admin, fn string) bool {
	resp, err := client(&http.Transport{DisableKeepAlives: true}).Get(admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), fn)
}

// readGreeting reads tcpattack's greeting line ("W INSTANCE") from c.
func readGreeting(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// A connection that arrives while a swap is pending (posted to the busy worker) is taken by
// the pump for the old instance's accept, which is still waiting. Its result reaches the loop
// after the swap, when the old instance has been retired or closed: the connection must go to
// the new instance, not be adopted by the retired one (served by the old program, cut at
// --swap-drain-timeout) or by a closed one (closed unserved).
func TestTCPSwapPendingConnectionsReachTheNewInstance(t *testing.T) {
	s, admin := attackServer(t, 1, []string{"--env", "TCPATTACK_LISTEN=1", "--pprof", "--callback-budget", "20s"})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := strings.TrimPrefix(getNK(t, s.URL("/info")), "worker 0 tcp ")
	c0, old := greet(t, addr)
	c0.Close()

	spun := asyncGet(s.URL("/spin?n=3000"))
	s.awaitStdout(t, "spinning", ioTimeout)
	reloaded := s.stderr.appears("wasmloop: reloaded")
	s.signal(t, syscall.SIGHUP)
	// The reloader has posted the swap to the busy worker once it waits in runSwap.
	if !eventually(10*time.Second, func() bool { return goroutinesWith(admin, "loop.(*Loop).runSwap") }) {
		t.Fatal("the swap was never posted to the worker")
	}
	select {
	case <-reloaded:
		t.Fatal("the swap ran before the connections were made: the spin ended too early")
	default:
	}
	conns := dialAll(t, addr, 3)
	if got := await(t, spun, 20*time.Second, "the spin"); got != "spun" {
		t.Fatalf("spin: %q (the worker must stay busy until the swap ran)", got)
	}
	select {
	case <-reloaded:
	case <-time.After(20 * time.Second):
		t.Fatalf("no reload\nstderr:\n%s", s.stderr)
	}
	for i, c := range conns {
		g, err := readGreeting(c)
		switch {
		case err != nil:
			t.Errorf("connection %d, made while the swap was pending: accepted and closed unserved (greeting %q, %v)", i, g, err)
		case strings.HasSuffix(g, " "+strings.Fields(old)[1]):
			t.Errorf("connection %d, made while the swap was pending, was handed to the retired instance (greeting %q, the old instance's)", i, g)
		}
	}
	noHostPanic(t, s.proc)
}

// A descriptor limit reached between the accept (which takes the last descriptor) and the dup
// that detaches the connection from Go's net (EMFILE) used to fail the guest's accept, and
// the Go SDK closed its server on any accept error: once the descriptors were free again,
// connections were refused. The pump now waits for descriptors there too, and the SDK
// accepts again after an error that is not the listener's end.
func TestTCPListenerOutlivesDescriptorExhaustion(t *testing.T) {
	s := startServer(t, serverOpts{Module: "tcpattack", Prefix: []string{"prlimit", "--nofile=64:64", "--"},
		Flags: []string{"--env", "TCPATTACK_LISTEN=1"}})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := regexp.MustCompile(`tcp worker 0 at (\S+)`).FindStringSubmatch(s.stdout.String())[1]
	pid := s.cmd.Process.Pid
	base := fdCount(t, pid)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	failed := false
	for i := 0; i < 100 && !failed; i++ {
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			failed = true
			t.Logf("connection %d: %v", i, err)
			break
		}
		if g, err := readGreeting(c); err != nil {
			failed = true
			t.Logf("connection %d (%d descriptors open): greeting %q, %v", i, fdCount(t, pid), g, err)
			c.Close()
			break
		}
		held = append(held, c)
	}
	if !failed {
		t.Fatalf("the descriptor limit was never reached (%d connections held)", len(held))
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	fdsBackTo(t, pid, base, "after the connections closed")
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("with the descriptors free again, the worker no longer listens: %v\nstdout:\n%s", err, s.stdout)
	}
	defer c.Close()
	if g, err := readGreeting(c); err != nil {
		t.Fatalf("with the descriptors free again, a connection is not served: %q, %v\nstdout:\n%s", g, err, s.stdout)
	}
}

// A program that listens twice on one address (two accept loops; SO_REUSEPORT gives each
// socket part of the connections): the new instance's n-th listen takes the old instance's
// n-th socket, so neither closes under its backlog at the swap.
func TestTCPSwapHandsOverEveryListenOfAnAddress(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s, _ := attackServer(t, 1, []string{"--env", "TCPATTACK_LISTEN=2", "--env", "TCPATTACK_LISTEN_ADDR=" + addr})
	s.awaitStdout(t, "tcp worker 0 at "+addr+" (listen 2)", ioTimeout)
	swapWithBacklog(t, s, addr)
	noHostPanic(t, s.proc)
}

// swapWithBacklog keeps s's worker busy, makes 30 connections to addr meanwhile (they wait in
// the backlog), swaps the module (SIGHUP) and checks that every connection is greeted and
// echoed afterwards.
func swapWithBacklog(t *testing.T, s *server, addr string) {
	t.Helper()
	spun := asyncGet(s.URL("/spin?n=500"))
	s.awaitStdout(t, "spinning", ioTimeout)
	conns := dialAll(t, addr, 30)
	reloaded := s.stderr.appears("wasmloop: reloaded")
	s.signal(t, syscall.SIGHUP)
	if got := await(t, spun, 20*time.Second, "the spin"); got != "spun" {
		t.Fatalf("spin: %q", got)
	}
	select {
	case <-reloaded:
	case <-time.After(20 * time.Second):
		t.Fatalf("no reload\nstderr:\n%s", s.stderr)
	}
	failed := 0
	for i, c := range conns {
		greeting, back, err := greetAndEcho(c)
		if err != nil || back != "echo\n" {
			failed++
			t.Errorf("connection %d (greeting %q): echo %q, %v", i, greeting, back, err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d connections waiting in the backlogs across the swap failed", failed, len(conns))
	}
}

// greetAndEcho reads a tcpattack connection's greeting, sends a line and reads its echo.
func greetAndEcho(c net.Conn) (greeting, back string, err error) {
	c.SetDeadline(time.Now().Add(ioTimeout))
	r := bufio.NewReader(c)
	if greeting, err = r.ReadString('\n'); err == nil {
		if _, err = c.Write([]byte("echo\n")); err == nil {
			back, err = r.ReadString('\n')
		}
	}
	return greeting, back, err
}

// dialAll makes n connections to addr, closed when the test ends.
func dialAll(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// A trap replaces the worker's instance with a new one. The listening socket stays open for
// the replacement (reach's listenGrace) instead of closing with the trapped instance, so the
// connections waiting in its backlog when it trapped are served by the new instance, not
// reset.
func TestTCPCrashKeepsTheBacklog(t *testing.T) {
	s, _ := attackServer(t, 1, []string{"--env", "TCPATTACK_LISTEN=1"})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := regexp.MustCompile(`tcp worker 0 at (\S+)`).FindStringSubmatch(s.stdout.String())[1]
	_, old := greet(t, addr)
	crashed := asyncGet(s.URL("/spincrash?n=500"))
	s.awaitStdout(t, "spinning", ioTimeout)
	conns := dialAll(t, addr, 30) // into the backlog: the worker is busy until it traps
	await(t, crashed, 20*time.Second, "the crashing request")
	failed := 0
	for i, c := range conns {
		greeting, back, err := greetAndEcho(c)
		if err != nil || back != "echo\n" || strings.TrimSuffix(greeting, "\n") == old {
			failed++
			t.Errorf("connection %d: greeting %q (the trapped instance was %q), echo %q, %v", i, greeting, old, back, err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d connections waiting in the backlog across the trap failed\nstderr:\n%s", failed, len(conns), s.stderr)
	}
	noHostPanic(t, s.proc)
}
