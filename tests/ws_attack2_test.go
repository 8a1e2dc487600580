package tests

// Attacks on the WebSocket feature from the guest's side (testdata/guests/wsatk): a guest
// that pauses a socket and then closes it, a shutdown while a socket is paused, a swap
// (SIGHUP) while sockets are open, and the SDK's OnDrain and Send on a closed socket. The
// guest logs every open and close with a per-instance token on stdout.

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"wsatk", "./tests/testdata/guests/wsatk", true})
}

// wsa2Cmd sends a text command.
func wsa2Cmd(t *testing.T, c net.Conn, cmd string) {
	t.Helper()
	if err := wsutil.WriteClientMessage(c, ws.OpText, []byte(cmd)); err != nil {
		t.Fatalf("send %q: %v", cmd, err)
	}
}

// wsa2Text reads the next text message.
func wsa2Text(t *testing.T, c net.Conn) string {
	t.Helper()
	b, op, err := wsutil.ReadServerData(c)
	if err != nil || op != ws.OpText {
		t.Fatalf("reading a text message: op %v err %v", op, err)
	}
	return string(b)
}

// wsa2ReadClose reads frames until the server's close frame and returns its code.
func wsa2ReadClose(t *testing.T, c net.Conn) ws.StatusCode {
	t.Helper()
	for i := 0; i < 100; i++ {
		f, err := ws.ReadFrame(c)
		if err != nil {
			t.Fatalf("waiting for the server's close frame: %v", err)
		}
		if f.Header.OpCode == ws.OpClose {
			if len(f.Payload) < 2 {
				return ws.StatusNoStatusRcvd
			}
			return ws.StatusCode(binary.BigEndian.Uint16(f.Payload))
		}
	}
	t.Fatal("no close frame among 100 frames")
	return 0
}

// wsa2AnswerClose sends the client's close frame with code.
func wsa2AnswerClose(t *testing.T, c net.Conn, code ws.StatusCode) {
	t.Helper()
	f := ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
	if err := ws.WriteFrame(c, f); err != nil {
		t.Fatalf("answering the close: %v", err)
	}
}

// wsa2GuestClose waits for the guest's "wsatk: close CODE" line and returns CODE (with the
// token after it). It waits past the host's 5 s closing-handshake timeout, so a close the
// host gave up on shows as 1006.
func wsa2GuestClose(t *testing.T, s *server, n int) string {
	t.Helper()
	select {
	case <-s.stdout.appearsN("wsatk: close ", n):
	case <-time.After(10 * time.Second):
		t.Fatalf("the guest heard no close\nstdout:\n%s\nstderr:\n%s", s.stdout, s.stderr)
	}
	lines := []string{}
	for _, l := range strings.Split(s.stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, "wsatk: close "); ok {
			lines = append(lines, rest)
		}
	}
	return lines[n-1]
}

// A guest that pauses a socket and then starts the closing handshake must hear the peer's
// answer (its code), not a 1006 after the host's 5 s wait: the host must read the answer
// although the socket is paused. Node's ws resumes a paused socket when it closes.
func TestWSAttack2PausedThenClosedSocketHearsThePeersAnswer(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wsatk"})
	c, _ := wsDial(t, s.wsURL("/"), nil)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	wsa2Cmd(t, c, "pauseclose 4001")
	if code := wsa2ReadClose(t, c); code != 4001 {
		t.Fatalf("server's close frame: code %d, want 4001", code)
	}
	start := time.Now()
	wsa2AnswerClose(t, c, 4001)
	got := wsa2GuestClose(t, s, 1)
	if !strings.HasPrefix(got, "4001 ") {
		t.Fatalf("the guest heard close %q %v after the client answered its close with 4001; want 4001 (the answer was never read while paused)", got, time.Since(start).Round(time.Millisecond))
	}
}

// On SIGTERM a paused socket gets 1001; a client that answers at once must complete the
// closing handshake: the guest hears 1001, not 1006 after the 5 s wait.
func TestWSAttack2ShutdownCompletesTheHandshakeOfAPausedSocket(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wsatk"})
	c, _ := wsDial(t, s.wsURL("/"), nil)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	wsa2Cmd(t, c, "pause")
	if got := wsa2Text(t, c); got != "paused" {
		t.Fatalf("got %q, want paused", got)
	}
	start := time.Now()
	s.proc.signal(t, syscall.SIGTERM)
	if code := wsa2ReadClose(t, c); code != ws.StatusGoingAway {
		t.Fatalf("server's close frame on SIGTERM: code %d, want 1001", code)
	}
	wsa2AnswerClose(t, c, ws.StatusGoingAway)
	got := wsa2GuestClose(t, s, 1)
	s.proc.wait(t, 20*time.Second)
	if !strings.HasPrefix(got, "1001 ") {
		t.Fatalf("after SIGTERM the guest heard close %q (exit after %v); want 1001: the client answered at once but the paused socket never read it",
			got, time.Since(start).Round(time.Millisecond))
	}
}

// After a swap (SIGHUP) a socket the old instance accepted stays with it: its messages and
// its close reach the old instance, never the new one, and new sockets go to the new one.
func TestWSAttack2SwappedSocketsEventsStayWithTheOldInstance(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.wasm")
	installModule(t, wasm["wsatk"], app)
	s := startServer(t, serverOpts{Module: app})
	old, _ := wsDial(t, s.wsURL("/"), nil)
	wsa2Cmd(t, old, "id")
	a := strings.TrimPrefix(wsa2Text(t, old), "id ")

	installModule(t, wasm["wsatk"], app)
	reloaded := s.proc.stderr.appears("wasmloop: reloaded")
	s.proc.signal(t, syscall.SIGHUP)
	select {
	case <-reloaded:
	case <-time.After(30 * time.Second):
		t.Fatalf("no reload\nstderr:\n%s", s.proc.stderr)
	}
	fresh, _ := wsDial(t, s.wsURL("/"), nil)
	wsa2Cmd(t, fresh, "id")
	b := strings.TrimPrefix(wsa2Text(t, fresh), "id ")
	if a == b {
		t.Fatalf("a socket opened after the swap is served by the old instance %s", a)
	}
	wsa2Cmd(t, old, "id")
	if got := strings.TrimPrefix(wsa2Text(t, old), "id "); got != a {
		t.Fatalf("the old socket's message reached instance %s, want the old one %s", got, a)
	}
	wsa2AnswerClose(t, old, 4002)
	if code := wsa2ReadClose(t, old); code != 4002 {
		t.Fatalf("echoed close: %d, want 4002", code)
	}
	if got := wsa2GuestClose(t, s, 1); got != "4002 "+a {
		t.Fatalf("the old socket's close was heard as %q, want %q", got, "4002 "+a)
	}
	wsa2AnswerClose(t, fresh, 4003)
	if got := wsa2GuestClose(t, s, 2); got != "4003 "+b {
		t.Fatalf("the new socket's close was heard as %q, want %q", got, "4003 "+b)
	}
}

// WebSocket.OnDrain on a socket that has closed must not run its function at once: the
// socket takes no more sends, so a paced writer waiting for the drain would go straight back
// into a failing Send (the stream SDK's drain was fixed for exactly this; stream.go drain).
func TestWSAttack2OnDrainAfterCloseDoesNotRunAtOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wsatk"})
	c, _ := wsDial(t, s.wsURL("/"), nil)
	wsa2Cmd(t, c, "drainclose")
	if code := wsa2ReadClose(t, c); code != ws.StatusNormalClosure {
		t.Fatalf("server's close: %d, want 1000", code)
	}
	wsa2AnswerClose(t, c, ws.StatusNormalClosure)
	s.awaitStdout(t, "wsatk: drain-after-close ran=", 10*time.Second)
	if strings.Contains(s.stdout.String(), "drain-after-close ran=true") {
		t.Fatalf("OnDrain ran its function at once on a closed socket\nstdout:\n%s", s.stdout)
	}
}

// A Send after Close is refused (ESTATE), and nothing follows the server's close frame.
func TestWSAttack2SendAfterCloseIsRefusedAndNotSent(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wsatk"})
	c, _ := wsDial(t, s.wsURL("/"), nil)
	wsa2Cmd(t, c, "sendclose")
	f, err := ws.ReadFrame(c)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("first frame after sendclose: op %v err %v, want the close frame", f.Header.OpCode, err)
	}
	wsa2AnswerClose(t, c, ws.StatusNormalClosure)
	if f, err := ws.ReadFrame(c); err == nil {
		t.Fatalf("a %v frame followed the server's close frame", f.Header.OpCode)
	}
	s.awaitStdout(t, "wsatk: send-after-close ", 10*time.Second)
	if strings.Contains(s.stdout.String(), "send-after-close nil") {
		t.Fatalf("Send after Close succeeded\nstdout:\n%s", s.stdout)
	}
}

// Messages that arrived together with the one that paused the socket are not delivered until
// Resume, and then in order: "paused", "resumed", then the echoes.
func TestWSAttack2NoMessageReachesAPausedSocket(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wsatk"})
	c, _ := wsDial(t, s.wsURL("/"), nil)
	var wire []byte
	for _, m := range []string{"pauseecho", "a", "b", "c"} {
		f := ws.MaskFrame(ws.NewTextFrame([]byte(m)))
		b, err := ws.CompileFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		wire = append(wire, b...)
	}
	if _, err := c.Write(wire); err != nil { // one write: all four in the host's buffer at once
		t.Fatal(err)
	}
	want := []string{"paused", "resumed", "a", "b", "c"}
	for i, w := range want {
		if got := wsa2Text(t, c); got != w {
			t.Fatalf("message %d: got %q, want %q (a message reached the guest while paused)", i, got, w)
		}
	}
}

// A guest may Terminate a socket inside OnOpen: the connection closes, and the server keeps
// serving (it must not dereference the connection the termination just let go of).
func TestWSAttack2TerminateInsideOnOpenKeepsTheServerUp(t *testing.T) {
	t.Parallel()
	wsa2ClosedInOnOpen(t, "/terminate-on-open")
}

// The same when the host itself closes the connection inside OnOpen: a Send there that passes
// --max-output closes it (ECLOSED), and the server keeps serving.
func TestWSAttack2OverCapSendInsideOnOpenKeepsTheServerUp(t *testing.T) {
	t.Parallel()
	wsa2ClosedInOnOpen(t, "/big-on-open", "--max-output", "1m")
}

// wsa2ClosedInOnOpen opens sockets at path, whose OnOpen closes the connection, and checks
// after each that the server still answers.
func wsa2ClosedInOnOpen(t *testing.T, path string, flags ...string) {
	s := startServer(t, serverOpts{Module: "wsatk", Flags: flags})
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		c, _, _, err := ws.Dialer{Timeout: ioTimeout}.Dial(ctx, s.wsURL(path))
		cancel()
		if err == nil { // the 101 may or may not have left before the termination
			c.SetDeadline(time.Now().Add(ioTimeout))
			if _, err := ws.ReadFrame(c); err == nil {
				t.Fatalf("connection %d: a frame came on a socket closed in OnOpen", i)
			}
			c.Close()
		}
		hc := client(nil)
		resp, err := hc.Get(s.URL("/"))
		if err != nil {
			s.proc.wait(t, 10*time.Second)
			t.Fatalf("after %s closed its connection inside OnOpen the server is gone (GET: %v)\nstderr:\n%s", path, err, s.proc.stderr)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "plain ") {
			t.Fatalf("after %s closed its connection inside OnOpen: %d %q", path, resp.StatusCode, body)
		}
	}
}
