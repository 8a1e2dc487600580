package tests

// More attacks on raw TCP (guest-sdk/go tcp.go and stream.go; host/internal/loop/tcpstream.go;
// host/internal/reach/tcp.go), driven by tests/testdata/guests/tcpatk2: Pause with a read
// pending, writers that obey Write/OnDrain after the socket ended or closed, writes from
// OnEnd, connect by name and the grants' letter, the 8,192-stream cap and its descriptors, a
// listener closed under live connections, a 1 MiB write then End.

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"tcpatk2", "./tests/testdata/guests/tcpatk2", true})
}

// atk2Server starts the tcpatk2 guest with the given flags.
func atk2Server(t *testing.T, flags ...string) *server {
	t.Helper()
	return startServer(t, serverOpts{Module: "tcpatk2", Flags: flags})
}

// acceptAsync accepts one connection on ln in the background.
func acceptAsync(t *testing.T, ln net.Listener) <-chan *net.TCPConn {
	t.Helper()
	ch := make(chan *net.TCPConn, 1)
	go func() {
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c.(*net.TCPConn)
	}()
	return ch
}

func gotConn(t *testing.T, ch <-chan *net.TCPConn) *net.TCPConn {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("the guest never connected")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("the guest never connected")
		return nil
	}
}

// atk2Connected starts the guest with a granted peer, GETs route with the peer's address
// appended (addr=…) on a goroutine, and returns the connection the guest made to the peer,
// its deadline d away, and the GET's answer to come.
func atk2Connected(t *testing.T, route string, d time.Duration) (*server, *net.TCPConn, <-chan string) {
	t.Helper()
	ln := peer(t)
	s := atk2Server(t, "--allow-connect", ln.Addr().String())
	acc := acceptAsync(t, ln)
	answer := asyncGet(s.URL(route + "addr=" + q(ln.Addr().String())))
	c := gotConn(t, acc)
	c.SetDeadline(time.Now().Add(d))
	return s, c, answer
}

// Pause is called while the read OnData asked for is pending (OnData, then Pause, in the
// same callback — or from any other callback: a timer, another socket's drain). The godoc:
// "Pause stops the flow of data". No OnData may run between Pause and Resume; the bytes the
// peer sends meanwhile come after Resume.
func TestTCPAttack2NoOnDataBetweenPauseAndResume(t *testing.T) {
	ln := peer(t)
	s := atk2Server(t, "--allow-connect", ln.Addr().String())
	acc := acceptAsync(t, ln)
	if got := getNK(t, s.URL("/pause?addr="+q(ln.Addr().String()))); got != "ready" {
		t.Fatalf("/pause: %q", got)
	}
	c := gotConn(t, acc)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "paused\n" {
		t.Fatalf("the guest's line: %q, %v", line, err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// The bug shows at once (the pending read takes the bytes); give it a bounded while.
	select {
	case <-s.stdout.appears("tcpatk2: data while paused"):
		t.Errorf("OnData ran while the socket was paused")
	case <-time.After(2 * time.Second):
	}
	got := getNK(t, s.URL("/resume"))
	if want := `data "hello" paused=false`; got != want {
		t.Errorf("the events: %q, want %q", got, want)
	}
}

// A writer that obeys the godoc ("Write … when false, wait for OnDrain before writing more";
// "OnDrain runs fn once the queue is below the mark: now, if it is") on a socket that was
// closed or ended: Write says false although nothing is queued, and OnDrain runs the writer
// at once — again and again. It must not spin: either Write does not say "wait" when there is
// nothing to wait for, or OnDrain does not promise a drain that will never be.
func TestTCPAttack2WriterAfterCloseOrEndDoesNotSpin(t *testing.T) {
	ln := peer(t)
	s := atk2Server(t, "--allow-connect", ln.Addr().String())
	for _, mode := range []string{"close", "end"} {
		t.Run(mode, func(t *testing.T) {
			acc := acceptAsync(t, ln)
			got := getNK(t, s.URL("/spin?mode="+mode+"&addr="+q(ln.Addr().String())))
			gotConn(t, acc)
			if strings.Contains(got, "write false spins=1000") {
				t.Errorf("after %s the writer spun: Write said false and OnDrain ran it at once, 1000 times (%q)", mode, got)
			} else if !strings.HasSuffix(got, "writable=false spins=0") {
				t.Errorf("the answer: %q (Writable must say false once the socket is %s)", got, mode)
			}
		})
	}
}

// The common shape of a streaming server: a writer paced by Write/OnDrain, and a peer that
// half-closes (FIN) while it keeps reading. The SDK ends this side for it (allowHalfOpen
// false); the writer then must not be run in a loop by OnDrain, and the socket closes cleanly:
// the peer reads to its EOF, the guest hears OnClose(nil).
func TestTCPAttack2PeerHalfCloseStopsPacedWriterWithoutSpinning(t *testing.T) {
	s, c, answer := atk2Connected(t, "/spin?mode=peerend&", 30*time.Second)
	if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
		t.Fatalf("reading the first MiB: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Errorf("reading to the guest's end after %d more bytes: %v", n, err)
	}
	got := await(t, answer, 30*time.Second, "the writer's account")
	if got != "close nil spins=0" {
		t.Errorf("the guest: %q, want %q", got, "close nil spins=0")
	}
	if strings.Contains(s.stdout.String(), "the writer spun") {
		t.Errorf("the paced writer spun after the peer's FIN")
	}
}

// Node's order: OnEnd, then (allowHalfOpen false) this side ends once its writes are out —
// so a write made inside OnEnd reaches the peer before the FIN; OnClose(nil) comes once, and
// a write inside OnClose is refused (false) without breaking anything.
func TestTCPAttack2WriteInOnEndReachesPeerBeforeFIN(t *testing.T) {
	s, c, answer := atk2Connected(t, "/onend?", 20*time.Second)
	c.Write([]byte("abc"))
	c.CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "bye 3\n" {
		t.Errorf("the peer read %q, %v; want %q then EOF", b, err, "bye 3\n")
	}
	want := "end\nwrite in OnEnd true\nclose nil\nwrite in OnClose false"
	if got := await(t, answer, 20*time.Second, "the events"); got != want {
		t.Errorf("the events:\n%s\nwant:\n%s", got, want)
	}
	noHostPanic(t, s.proc)
}

// Grants match the host as written: a grant of localhost:P lets "localhost:P" connect (the
// name resolved off the loop; the record's addresses are ip:port) but not 127.0.0.1:P, and a
// grant of 127.0.0.1:Q not "localhost:Q"; the refusal's message names the flag to add; a
// granted name that does not resolve is ENOTFOUND; a lookup only of granted names.
func TestTCPAttack2ConnectByNameMatchesGrantAsWritten(t *testing.T) {
	ln1, ln2 := peer(t), peer(t)
	for _, ln := range []net.Listener{ln1, ln2} {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	p1 := strconv.Itoa(ln1.Addr().(*net.TCPAddr).Port)
	p2 := strconv.Itoa(ln2.Addr().(*net.TCPAddr).Port)
	s := atk2Server(t, "--allow-connect", "localhost:"+p1, "--allow-connect", "127.0.0.1:"+p2,
		"--allow-connect", "nothing-here.invalid:80")
	got := getNK(t, s.URL("/connect?addr="+q("localhost:"+p1)))
	if f := strings.Fields(got); len(f) != 3 || f[0] != "ok" || f[2] != "127.0.0.1:"+p1 || !strings.HasPrefix(f[1], "127.0.0.1:") {
		t.Errorf("connect localhost:%s: %q, want ok 127.0.0.1:N 127.0.0.1:%s", p1, got, p1)
	}
	for _, c := range []struct{ addr, want string }{
		{"127.0.0.1:" + p1, "ERR EACCES connect to 127.0.0.1:" + p1 + " not granted; add --allow-connect 127.0.0.1:" + p1},
		{"localhost:" + p2, "ERR EACCES connect to localhost:" + p2 + " not granted; add --allow-connect localhost:" + p2},
		{"LOCALHOST:" + p1, "ok"},
		{"127.0.0.1:" + p2, "ok"},
		{"[::ffff:127.0.0.1]:" + p2, "ok"},
	} {
		got := getNK(t, s.URL("/connect?addr="+q(c.addr)))
		if c.want == "ok" {
			if !strings.HasPrefix(got, "ok ") {
				t.Errorf("connect %s: %q, want ok", c.addr, got)
			}
		} else if got != c.want {
			t.Errorf("connect %s: %q\nwant %q", c.addr, got, c.want)
		}
	}
	if got := getNK(t, s.URL("/connect?addr="+q("nothing-here.invalid:80"))); !strings.HasPrefix(got, "ERR ENOTFOUND ") {
		t.Errorf("connect to a granted name that does not resolve: %q, want ENOTFOUND", got)
	}
	if got := getNK(t, s.URL("/lookup?name=localhost")); !strings.Contains(got, "127.0.0.1") {
		t.Errorf("lookup localhost: %q", got)
	}
	if got := getNK(t, s.URL("/lookup?name=example.org")); !strings.HasPrefix(got, "ERR EACCES ") {
		t.Errorf("lookup of a name not granted: %q, want EACCES", got)
	}
	if got := getNK(t, s.URL("/lookup?name=nothing-here.invalid")); !strings.HasPrefix(got, "ERR ENOTFOUND ") {
		t.Errorf("lookup of a granted name that does not resolve: %q, want ENOTFOUND", got)
	}
}

// 8,200 connects at once: 8,192 streams (ABI §10's cap) connect, the rest fail EMFILE, every
// descriptor dialled past the cap is closed, and closing the rest brings the process back to
// the descriptors it had.
func TestTCPAttack2ConnectsAboveStreamCapFailEMFILEAndCloseTheirSockets(t *testing.T) {
	ln := peer(t)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	s := atk2Server(t, "--allow-connect", ln.Addr().String())
	pid := s.cmd.Process.Pid
	base := fdCount(t, pid)
	answer := asyncGet(s.URL("/many?n=8200&addr=" + q(ln.Addr().String())))
	got := await(t, answer, 60*time.Second, "8,200 connects")
	if !strings.HasPrefix(got, "ok 8192 emfile 8 other 0") {
		t.Errorf("8,200 connects: %q, want ok 8192 emfile 8 other 0", got)
	}
	if n := fdCount(t, pid); n > base+8192+8 {
		t.Errorf("%d descriptors open with 8,192 connections (base %d): sockets past the cap kept", n, base)
	}
	if got := getNK(t, s.URL("/closemany")); !strings.HasPrefix(got, "closed ") {
		t.Errorf("/closemany: %q", got)
	}
	fdsBackTo(t, pid, base, "after closing 8,192 connections")
}

// A TCP server's Close stops listening; open connections stay open (godoc) and keep working;
// an accepted socket's LocalAddr is the listener's address and RemoteAddr the peer's.
func TestTCPAttack2ListenerCloseKeepsLiveConnectionsAndAddressesAreRight(t *testing.T) {
	s := atk2Server(t)
	addr := getNK(t, s.URL("/listen"))
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("/listen: %q", addr)
	}
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if want := addr + " " + c.LocalAddr().String() + "\n"; line != want || err != nil {
		t.Errorf("the accepted socket's addresses: %q, %v; want %q", line, err, want)
	}
	echo := func(msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("writing %q: %v", msg, err)
		}
		b := make([]byte, len(msg))
		if _, err := io.ReadFull(br, b); err != nil || string(b) != msg {
			t.Fatalf("echo of %q: %q, %v", msg, b, err)
		}
	}
	echo("before")
	if got := getNK(t, s.URL("/closelisten")); got != "closed" {
		t.Fatalf("/closelisten: %q", got)
	}
	echo("after the listener closed")
	if !eventually(10*time.Second, func() bool {
		c2, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c2.Close()
		return false
	}) {
		t.Errorf("%s still accepts connections after the server's Close", addr)
	}
	echo("still")
}

// One 1 MiB Write (the most one io.write takes is 1 MiB; the SDK splits it) followed at once
// by End: the peer reads every byte, in order, then the FIN; the guest's Write said false
// (above the 64 KiB mark) and OnClose comes with nil once the peer's end is read.
func TestTCPAttack2OneMiBWriteThenEndDeliversEveryByte(t *testing.T) {
	_, c, answer := atk2Connected(t, "/bigend?", 20*time.Second)
	n, ok := readPattern(c)
	if n != 1<<20 || !ok {
		t.Errorf("the peer read %d bytes (pattern and EOF: %v), want %d", n, ok, 1<<20)
	}
	c.CloseWrite()
	if got := await(t, answer, 20*time.Second, "the guest"); got != "write false close nil" {
		t.Errorf("the guest: %q", got)
	}
}

// At --max-conns a raw connection the program's accept took waits unserved (README); if the
// program closes its TCP server meanwhile, that connection must never reach the program (no
// greeting), must be closed (the peer reads an end), and its descriptor not kept.
func TestTCPAttack2ConnWaitingAtMaxConnsIsClosedWhenItsListenerCloses(t *testing.T) {
	s := atk2Server(t, "--max-conns", "3")
	pid := s.cmd.Process.Pid
	hc, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	resp, body, err := hc.roundTrip("GET /listen HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/listen: %v %v", resp, err)
	}
	addr := string(body)
	base := fdCount(t, pid)
	var live []*bufio.Reader
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatalf("greeting: %v", err)
		}
		live = append(live, br)
	}
	// The HTTP connection and two raw ones: the worker is at its cap. A third raw one waits.
	c3, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	_, body, err = hc.roundTrip("GET /closelisten HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil || string(body) != "closed" {
		t.Fatalf("/closelisten: %q %v", body, err)
	}
	hc.Close() // room: the waiting connection is looked at again
	c3.SetDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c3)
	if len(b) > 0 {
		t.Errorf("the connection that waited at the cap reached the program after its server closed: read %q", b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the connection that waited at the cap was never closed")
	}
	fdsBackTo(t, pid, base+2-1, "the waiting connection") // two live raw ones, the HTTP one gone
	_ = live
}
