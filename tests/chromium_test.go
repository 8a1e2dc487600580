package tests

// A small headless-Chromium driver over the Chrome DevTools Protocol (CDP), for tests that
// need a real browser (its WebSocket client, say):
//
//	b := startChromium(t)             // killed at the end of the test
//	p := b.open(t, "http://127.0.0.1:PORT/page.html")
//	p.waitFor(t, `window.done === true`, 10*time.Second)
//	v := p.eval(t, `window.result`)   // JSON
//
// It speaks CDP over one WebSocket per target (gobwas/ws), synchronously: each call writes
// a command and reads until its reply, handling the events that arrive meanwhile. There is
// no reader goroutine, and every read and write has a deadline. A browser and its pages
// belong to one test goroutine (they call t.Fatal).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const (
	// chromiumStartTimeout bounds the wait for Chromium's "DevTools listening" line; the
	// first start on a machine (profile creation, font cache) is slow.
	chromiumStartTimeout = 30 * time.Second
	// cdpTimeout bounds one CDP command, its reply included, and a page load.
	cdpTimeout = 20 * time.Second
)

// browser is a headless Chromium started by startChromium.
type browser struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	stderr  *devtoolsWatcher
	dataDir string
	addr    string   // host:port of the DevTools endpoint
	cdp     *cdpConn // the browser target's connection
}

// page is one tab of a browser, opened with (*browser).open.
type page struct {
	b        *browser
	targetID string
	cdp      *cdpConn
	loads    map[string]bool // loader IDs whose "load" lifecycle event has arrived
	console  []string        // console messages and uncaught exceptions, for failure logs
}

// startChromium starts headless Chromium with a fresh profile and connects to its DevTools
// endpoint. It skips the test (fails it on CI) when chromium is not installed. Chromium,
// and every process it started, is killed at the end of the test and the profile removed;
// if the test failed, the end of Chromium's stderr is logged.
func startChromium(t testing.TB) *browser {
	t.Helper()
	bin := requireTool(t, "chromium", "chromium")
	dir, err := os.MkdirTemp("", "wasmloop-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--user-data-dir="+dir,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		// Without these Chromium dials out at start-up, and this machine's closed network
		// refuses it.
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--remote-debugging-port=0",
		"about:blank")
	// Its own process group, so that cleanup can kill the zygote and renderers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b := &browser{
		cmd:     cmd,
		done:    make(chan struct{}),
		stderr:  &devtoolsWatcher{found: make(chan string, 1)},
		dataDir: dir,
	}
	cmd.Stderr = b.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting chromium: %v", err)
	}
	go func() {
		cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() { b.close(t) })

	var wsURL string
	select {
	case wsURL = <-b.stderr.found:
	case <-b.done:
		t.Fatalf("chromium exited before it listened (%v)", cmd.ProcessState)
	case <-time.After(chromiumStartTimeout):
		t.Fatalf("chromium printed no \"DevTools listening on\" line within %v", chromiumStartTimeout)
	}
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatalf("chromium's DevTools URL %q: %v", wsURL, err)
	}
	b.addr = u.Host
	if b.cdp, err = dialCDP(wsURL); err != nil {
		t.Fatalf("connecting to chromium: %v", err)
	}
	return b
}

// close ends the browser: closes the connection, kills the process group, waits for it and
// removes the profile.
func (b *browser) close(t testing.TB) {
	if b.cdp != nil {
		b.cdp.close()
	}
	select {
	case <-b.done:
	default:
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-b.done:
		case <-time.After(ioTimeout):
			t.Errorf("chromium (pid %d) did not exit within %v of SIGKILL", b.cmd.Process.Pid, ioTimeout)
		}
	}
	if t.Failed() {
		t.Logf("chromium stderr (end):\n%s", b.stderr.tail(4096))
	}
	// Children that outlived the group kill may still be writing the profile for a moment.
	var err error
	if !eventually(5*time.Second, func() bool { err = os.RemoveAll(b.dataDir); return err == nil }) {
		t.Logf("removing chromium's profile: %v", err)
	}
}

// open creates a new tab, connects to it and navigates it to rawURL, returning once the
// page's load event has fired. The tab is closed at the end of the test.
func (b *browser) open(t testing.TB, rawURL string) *page {
	t.Helper()
	res, err := b.cdp.call("Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		t.Fatal(err)
	}
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := json.Unmarshal(res, &target); err != nil || target.TargetID == "" {
		t.Fatalf("Target.createTarget: unexpected reply %s (%v)", res, err)
	}
	p := &page{b: b, targetID: target.TargetID, loads: map[string]bool{}}
	if p.cdp, err = dialCDP("ws://" + b.addr + "/devtools/page/" + target.TargetID); err != nil {
		t.Fatalf("connecting to the new page: %v", err)
	}
	p.cdp.onEvent = p.event
	t.Cleanup(func() {
		p.cdp.close()
		b.cdp.call("Target.closeTarget", map[string]any{"targetId": p.targetID})
		if t.Failed() && len(p.console) > 0 {
			t.Logf("console of %s:\n%s", rawURL, strings.Join(p.console, "\n"))
		}
	})
	for _, method := range []string{"Page.enable", "Runtime.enable"} {
		if _, err := p.cdp.call(method, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.cdp.call("Page.setLifecycleEventsEnabled", map[string]any{"enabled": true}); err != nil {
		t.Fatal(err)
	}
	res, err = p.cdp.call("Page.navigate", map[string]any{"url": rawURL})
	if err != nil {
		t.Fatal(err)
	}
	var nav struct {
		LoaderID  string `json:"loaderId"`
		ErrorText string `json:"errorText"`
	}
	if err := json.Unmarshal(res, &nav); err != nil {
		t.Fatalf("Page.navigate: unexpected reply %s (%v)", res, err)
	}
	if nav.ErrorText != "" {
		t.Fatalf("navigating to %s: %s", rawURL, nav.ErrorText)
	}
	if nav.LoaderID == "" { // a same-document navigation: nothing loads
		return p
	}
	if err := p.cdp.until(time.Now().Add(cdpTimeout), func() bool { return p.loads[nav.LoaderID] }); err != nil {
		t.Fatalf("waiting for %s to load: %v", rawURL, err)
	}
	return p
}

// event records the page events the driver uses.
func (p *page) event(method string, params json.RawMessage) {
	switch method {
	case "Page.lifecycleEvent":
		var e struct{ Name, LoaderID string }
		if json.Unmarshal(params, &e) == nil && e.Name == "load" {
			p.loads[e.LoaderID] = true
		}
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string
			Args []struct {
				Value       json.RawMessage
				Description string
			}
		}
		if json.Unmarshal(params, &e) == nil && len(p.console) < 200 {
			parts := []string{"console." + e.Type + ":"}
			for _, a := range e.Args {
				if a.Value != nil {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			p.console = append(p.console, strings.Join(parts, " "))
		}
	case "Runtime.exceptionThrown":
		var e struct{ ExceptionDetails exceptionDetails }
		if json.Unmarshal(params, &e) == nil && len(p.console) < 200 {
			p.console = append(p.console, "uncaught: "+e.ExceptionDetails.String())
		}
	}
}

// eval evaluates the JavaScript expression js in the page (awaiting it if it is a promise)
// and returns its value as JSON ("null" for undefined). An exception fails the test with
// its text.
func (p *page) eval(t testing.TB, js string) json.RawMessage {
	t.Helper()
	v, err := p.evaluate(js)
	if err != nil {
		t.Fatalf("eval %s: %v", truncate(js, 200), err)
	}
	return v
}

// waitFor evaluates the boolean expression js every 50 ms until it is true, failing the
// test with its last value if it is not within d (or if it throws).
func (p *page) waitFor(t testing.TB, js string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := p.eval(t, js)
		if string(v) == "true" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: last value %s", d, truncate(js, 200), truncate(string(v), 500))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// evaluate is eval returning errors.
func (p *page) evaluate(js string) (json.RawMessage, error) {
	res, err := p.cdp.call("Runtime.evaluate", map[string]any{
		"expression":    js,
		"returnByValue": true,
		"awaitPromise":  true,
	})
	if err != nil {
		return nil, err
	}
	var r struct {
		Result struct {
			Type        string
			Value       json.RawMessage
			Description string
		}
		ExceptionDetails *exceptionDetails
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, fmt.Errorf("Runtime.evaluate: unexpected reply %s: %v", truncate(string(res), 500), err)
	}
	if r.ExceptionDetails != nil {
		return nil, fmt.Errorf("exception: %s", r.ExceptionDetails)
	}
	if r.Result.Value == nil {
		return json.RawMessage("null"), nil
	}
	return r.Result.Value, nil
}

// exceptionDetails is CDP's Runtime.ExceptionDetails, the parts worth reporting.
type exceptionDetails struct {
	Text       string
	LineNumber int
	Exception  *struct{ Description string }
}

func (e exceptionDetails) String() string {
	if e.Exception != nil && e.Exception.Description != "" {
		return e.Text + " " + e.Exception.Description
	}
	return fmt.Sprintf("%s (line %d)", e.Text, e.LineNumber)
}

// cdpConn is a CDP connection to one target: commands and their replies, in turn.
type cdpConn struct {
	conn    net.Conn
	rw      io.ReadWriter // conn, after any bytes the handshake read ahead
	nextID  int64
	onEvent func(method string, params json.RawMessage) // nil: events are dropped
}

// cdpMessage is a reply (ID set) or an event (Method set).
type cdpMessage struct {
	ID     int64           `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data"`
	} `json:"error"`
}

func dialCDP(wsURL string) (*cdpConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	conn, br, _, err := ws.Dialer{Timeout: ioTimeout}.Dial(ctx, wsURL)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", wsURL, err)
	}
	c := &cdpConn{conn: conn, rw: conn}
	if br != nil {
		c.rw = struct {
			io.Reader
			io.Writer
		}{io.MultiReader(br, conn), conn}
	}
	return c, nil
}

func (c *cdpConn) close() { c.conn.Close() }

// call sends one command and returns its result, bounded by cdpTimeout.
func (c *cdpConn) call(method string, params any) (json.RawMessage, error) {
	c.nextID++
	id := c.nextID
	req, err := json.Marshal(struct {
		ID     int64  `json:"id"`
		Method string `json:"method"`
		Params any    `json:"params,omitempty"`
	}{id, method, params})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	deadline := time.Now().Add(cdpTimeout)
	c.conn.SetWriteDeadline(deadline)
	if err := wsutil.WriteClientText(c.rw, req); err != nil {
		return nil, fmt.Errorf("%s: sending: %w", method, err)
	}
	var reply *cdpMessage
	err = c.until(deadline, func() bool { return reply != nil }, func(m *cdpMessage) {
		if m.ID == id {
			reply = m
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%s: waiting for the reply: %w", method, err)
	}
	if reply.Error != nil {
		return nil, fmt.Errorf("%s: %s (code %d) %s", method, reply.Error.Message, reply.Error.Code, reply.Error.Data)
	}
	return reply.Result, nil
}

// until reads messages, passing events to onEvent and replies to the optional onReply,
// until done() holds or deadline passes.
func (c *cdpConn) until(deadline time.Time, done func() bool, onReply ...func(*cdpMessage)) error {
	c.conn.SetReadDeadline(deadline)
	for !done() {
		data, err := wsutil.ReadServerText(c.rw)
		if err != nil {
			return err
		}
		var m cdpMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("bad CDP message %q: %w", truncate(string(data), 200), err)
		}
		switch {
		case m.Method != "":
			if c.onEvent != nil {
				c.onEvent(m.Method, m.Params)
			}
		default:
			for _, f := range onReply {
				f(&m)
			}
		}
	}
	return nil
}

// devtoolsWatcher is Chromium's stderr: it keeps the last 64 KiB for failure logs and
// sends the DevTools URL on found once the "DevTools listening on ws://..." line is in.
type devtoolsWatcher struct {
	mu    sync.Mutex
	buf   []byte
	found chan string
	seen  bool
}

func (w *devtoolsWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if !w.seen {
		const marker = "DevTools listening on "
		if i := bytes.Index(w.buf, []byte(marker)); i >= 0 {
			rest := w.buf[i+len(marker):]
			if j := bytes.IndexByte(rest, '\n'); j >= 0 {
				w.seen = true
				w.found <- strings.TrimSpace(string(rest[:j]))
			}
		}
	}
	if w.seen && len(w.buf) > 64<<10 {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-32<<10:]...)
	}
	return len(p), nil
}

// tail returns the last n bytes written.
func (w *devtoolsWatcher) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf[max(0, len(w.buf)-n):])
}

// TestChromiumDriver checks the driver against a page served on loopback whose script sets
// a global from a timer and talks to a WebSocket echo endpoint on the same server (text and
// binary): so Chromium reaches loopback WebSockets, and eval and waitFor see the results.
func TestChromiumDriver(t *testing.T) {
	t.Parallel()
	echo := &wsEcho{}
	mux := http.NewServeMux()
	mux.Handle("/echo", echo)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, chromiumTestPage)
	})
	base := startLoopbackServer(t, mux, echo)

	b := startChromium(t)
	p := b.open(t, base+"/")
	if got := string(p.eval(t, `document.title`)); got != `"driver test"` {
		t.Errorf("document.title = %s, want \"driver test\"", got)
	}
	p.waitFor(t, `window.timerFired === true`, 10*time.Second)
	p.waitFor(t, `window.wsLog.length >= 4`, 10*time.Second)
	var log []string
	if err := json.Unmarshal(p.eval(t, `window.wsLog`), &log); err != nil {
		t.Fatal(err)
	}
	want := []string{"open", "text:héllo wörld ✓ 𝄞", "binary:0,1,2,127,128,255", "close:1000"}
	if strings.Join(log, "|") != strings.Join(want, "|") {
		t.Errorf("the page's WebSocket log = %q, want %q", log, want)
	}
	if n := echo.messages.Load(); n != 2 {
		t.Errorf("the echo endpoint echoed %d messages, want 2", n)
	}

	// Promises are awaited; values come back as JSON; undefined is null.
	if got := string(p.eval(t, `new Promise(r => setTimeout(() => r({n: 6 * 7}), 10))`)); got != `{"n":42}` {
		t.Errorf("awaited promise = %s, want {\"n\":42}", got)
	}
	if got := string(p.eval(t, `undefined`)); got != "null" {
		t.Errorf("undefined = %s, want null", got)
	}
	// An exception is an error that says what was thrown.
	if _, err := p.evaluate(`(() => { throw new Error("boom") })()`); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a throwing expression: err = %v, want one mentioning boom", err)
	}
	if _, err := p.evaluate(`Promise.reject(new Error("rejected"))`); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Errorf("a rejected promise: err = %v, want one mentioning rejected", err)
	}
	// A second tab works independently.
	p2 := b.open(t, base+"/")
	p2.waitFor(t, `window.wsLog.length >= 4`, 10*time.Second)
}

// chromiumTestPage is TestChromiumDriver's page: a timer sets window.timerFired, and a
// WebSocket to /echo on the same host sends a text and a binary message, records the echoes
// in window.wsLog and closes with 1000.
const chromiumTestPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>driver test</title></head><body>
<script>
window.timerFired = false;
setTimeout(() => { window.timerFired = true; }, 100);
window.wsLog = [];
const ws = new WebSocket("ws://" + location.host + "/echo");
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  wsLog.push("open");
  ws.send("héllo wörld ✓ 𝄞");
  ws.send(new Uint8Array([0, 1, 2, 127, 128, 255]));
};
ws.onmessage = (ev) => {
  if (typeof ev.data === "string") wsLog.push("text:" + ev.data);
  else wsLog.push("binary:" + Array.from(new Uint8Array(ev.data)).join(","));
  if (wsLog.length === 3) ws.close(1000, "done");
};
ws.onerror = () => wsLog.push("error");
ws.onclose = (ev) => wsLog.push("close:" + ev.code);
</script></body></html>
`

// startLoopbackServer serves h on a fresh 127.0.0.1 port and returns its base URL
// (http://127.0.0.1:PORT). At the end of the test the server is closed and then echo (if
// any) closes the WebSockets it holds and waits for their handlers.
func startLoopbackServer(t testing.TB, h http.Handler, echo *wsEcho) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if echo != nil {
			echo.closeAll()
		}
	})
	return srv.URL
}
