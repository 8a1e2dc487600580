package tests

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// nodeWSTimeout bounds one run of tests/node/wsclient.js (which gives up by itself after 30 s).
const nodeWSTimeout = 60 * time.Second

// runNodeWSClient runs tests/node/wsclient.js (Node's ws package) against the WebSocket
// echo server at url (ws://...) with args (--deflate, --count N, --max-size B, --seed S)
// and returns its stdout, the one-line JSON summary. A non-zero exit fails the test with the
// client's output. It skips the test (fails it on CI) when node or tests/node_modules/ws is
// missing.
func runNodeWSClient(t testing.TB, url string, args ...string) string {
	t.Helper()
	stdout, stderr, err := execNodeWSClient(t, url, args...)
	if err != nil {
		t.Fatalf("node wsclient.js %s %s: %v\n--- stdout ---\n%s--- stderr ---\n%s", url, strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// execNodeWSClient is runNodeWSClient reporting a failed run instead of failing the test.
func execNodeWSClient(t testing.TB, url string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	node := requireTool(t, "node", "nodejs")
	testsDir := filepath.Join(repoRoot, "tests")
	if _, err := os.Stat(filepath.Join(testsDir, "node_modules", "ws", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Node's ws package is not installed (%v): run `npm ci --prefix tests`", err)
		}
		t.Skipf("Node's ws package is not installed (%v): run `npm ci --prefix tests` to run this test; on CI (CI=true) this is a failure", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWSTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(testsDir, "node", "wsclient.js"), url}, args...)...)
	cmd.Dir = testsDir
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return out.String(), errOut.String(), err
}

// wsEcho is a WebSocket echo endpoint (an http.Handler) built on gobwas/ws: every message
// goes back as it came, text as text, binary as binary; pings are answered and a close is
// echoed. It does not negotiate permessage-deflate. closeAll ends its connections.
type wsEcho struct {
	mu       sync.Mutex
	conns    map[net.Conn]bool
	closed   bool
	wg       sync.WaitGroup
	messages atomic.Int64 // messages received (and echoed, unless the write failed)
}

func (e *wsEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return // UpgradeHTTP answered with an error status
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		conn.Close()
		return
	}
	if e.conns == nil {
		e.conns = map[net.Conn]bool{}
	}
	e.conns[conn] = true
	e.wg.Add(1)
	e.mu.Unlock()
	defer func() {
		conn.Close()
		e.mu.Lock()
		delete(e.conns, conn)
		e.mu.Unlock()
		e.wg.Done()
	}()
	for {
		conn.SetDeadline(time.Now().Add(ioTimeout))
		msg, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return // a close (already answered by wsutil), a timeout or a broken connection
		}
		e.messages.Add(1)
		if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
			return
		}
	}
}

// closeAll closes every connection and waits for their handlers to return.
func (e *wsEcho) closeAll() {
	e.mu.Lock()
	e.closed = true
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// TestNodeWSClientAgainstGobwasEcho checks tests/node/wsclient.js against an echo server
// known to be right (gobwas/ws), so that its failures elsewhere are the server's.
func TestNodeWSClientAgainstGobwasEcho(t *testing.T) {
	t.Parallel()
	echo := &wsEcho{}
	base := startLoopbackServer(t, echo, echo)
	url := "ws" + strings.TrimPrefix(base, "http") + "/echo"

	out := runNodeWSClient(t, url)
	if !strings.Contains(out, `"ok":true`) || !strings.Contains(out, `"messages":200`) {
		t.Errorf("the client's summary = %q, want ok and 200 messages", out)
	}
	if n := echo.messages.Load(); n != 200 {
		t.Errorf("the server echoed %d messages, want 200", n)
	}

	// The client must notice a server that does not take permessage-deflate when asked to.
	_, stderr, err := execNodeWSClient(t, url, "--deflate", "--count", "3")
	if err == nil || !strings.Contains(stderr, "did not accept permessage-deflate") {
		t.Errorf("--deflate against a server without deflate: err %v, stderr %q; want a failure saying so", err, stderr)
	}
}
