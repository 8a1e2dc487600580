package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// WebSocket end to end: samples/wsecho and samples/chat driven by gobwas/ws's client over
// real sockets. The protocol's corner cases, case group by case group, are in
// wsconformance_test.go; Node's ws client and Chromium have their own files.

func init() {
	guestBuilds = append(guestBuilds,
		guestBuild{"wsecho", "./samples/wsecho", true},
		guestBuild{"chat", "./samples/chat", true},
		guestBuild{"wskit", "./tests/testdata/guests/wskit", true},
	)
}

// wsDial opens a WebSocket to url with gobwas/ws's client and returns the connection and the
// 101's header fields. dialer may be nil. The connection is closed when the test ends.
func wsDial(t testing.TB, url string, dialer *ws.Dialer) (net.Conn, http.Header) {
	t.Helper()
	var d ws.Dialer
	if dialer != nil {
		d = *dialer
	}
	hdr := http.Header{}
	d.Timeout = ioTimeout
	d.OnHeader = func(k, v []byte) error {
		hdr.Add(string(k), string(v))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, _, hs, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if hs.Protocol != "" { // the dialer consumes this field rather than pass it to OnHeader
		hdr.Set("Sec-WebSocket-Protocol", hs.Protocol)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	return c, hdr
}

// wsURL is the WebSocket URL of path on s.
func (s *server) wsURL(path string) string { return "ws://" + s.Addr + path }

// wsRoundTrip sends msg and checks that the same message comes back.
func wsRoundTrip(t testing.TB, c net.Conn, op ws.OpCode, msg []byte) {
	t.Helper()
	if err := wsutil.WriteClientMessage(c, op, msg); err != nil {
		t.Fatalf("send %d bytes: %v", len(msg), err)
	}
	got, gotOp, err := wsutil.ReadServerData(c)
	if err != nil {
		t.Fatalf("echo of %d bytes: %v", len(msg), err)
	}
	if gotOp != op || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes (%v): got %d bytes (%v)", len(msg), op, len(got), gotOp)
	}
}

// wsecho echoes every message as it came, whatever its size: messages larger than the guest's
// 64 KiB inbox go through body_read; the 101 names the worker.
func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wsecho"})
	c, hdr := wsDial(t, s.wsURL("/any/path?x=1"), nil)
	if hdr.Get("X-Worker") != "0" {
		t.Errorf("X-Worker = %q, want 0", hdr.Get("X-Worker"))
	}
	rnd := make([]byte, 1<<20)
	for i := range rnd {
		rnd[i] = byte(i*7 + i>>9)
	}
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 64<<10 + 1, 300_000, 1 << 20} {
		wsRoundTrip(t, c, ws.OpBinary, rnd[:n])
		wsRoundTrip(t, c, ws.OpText, bytes.Repeat([]byte("héllo ✓ "), n/11))
	}
	// Plain HTTP on the same listener.
	resp, body := httpGet(t, client(nil), s.URL("/"))
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("wsecho")) {
		t.Errorf("GET /: %d %q", resp.StatusCode, body)
	}
	// A closing handshake from the client: the same code comes back, then the server closes.
	if err := ws.WriteFrame(c, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(4000, "bye")))); err != nil {
		t.Fatal(err)
	}
	f, err := ws.ReadFrame(c)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("close answer: %v %v", f.Header, err)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != 4000 {
		t.Errorf("close code %d, want 4000 echoed", code)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("after the close frame: read %d, %v; want EOF", n, err)
	}
}

// wsText sends a text message and returns the text answer.
func wsText(t testing.TB, c net.Conn, msg string) string {
	t.Helper()
	if err := wsutil.WriteClientText(c, []byte(msg)); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
	got, err := wsutil.ReadServerText(c)
	if err != nil {
		t.Fatalf("answer to %q: %v", msg, err)
	}
	return string(got)
}

// wsExpectClose reads until the server's close frame, answering it as gobwas/ws's client does,
// and checks its code; then the server must close the connection.
func wsExpectClose(t testing.TB, c net.Conn, code ws.StatusCode) string {
	t.Helper()
	for {
		_, _, err := wsutil.ReadServerData(c)
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			if closed.Code != code {
				t.Errorf("close code %d (%q), want %d", closed.Code, closed.Reason, code)
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("after the close frame: read %d, %v; want EOF", n, err)
			}
			return closed.Reason
		}
		if err != nil {
			t.Fatalf("waiting for close %d: %v", code, err)
		}
	}
}

const wsHandshake = "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// The guest's side of the API: reject, a late accept, subprotocols, close codes both ways,
// terminate, the events it sees, and what the host refuses.
func TestWebSocketGuestAPI(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wskit"})

	_, resp, body := rawRequest(t, s.Addr, fmt.Sprintf(wsHandshake, "/reject"))
	if resp.StatusCode != 403 || string(body) != "no\n" {
		t.Errorf("/reject: %d %q, want 403", resp.StatusCode, body)
	}
	late, _ := wsDial(t, s.wsURL("/late"), nil)
	wsRoundTrip(t, late, ws.OpText, []byte("accepted 50 ms after the request"))

	p, hdr := wsDial(t, s.wsURL("/proto"), &ws.Dialer{Protocols: []string{"kit.v1", "kit.v2"}})
	if got := hdr.Get("Sec-WebSocket-Protocol"); got != "kit.v2" {
		t.Errorf("Sec-WebSocket-Protocol = %q, want kit.v2", got)
	}
	if got := wsText(t, p, "proto"); got != "proto kit.v2" {
		t.Errorf("proto: %q", got)
	}
	if got := wsText(t, p, "badtext"); got != "bad: EINVAL" {
		t.Errorf("sending invalid UTF-8 as text: %q, want EINVAL", got)
	}
	if got := wsText(t, p, "close 999 nope"); got != "close: EINVAL" {
		t.Errorf("close with code 999: %q, want EINVAL", got)
	}

	// The guest closes: the client sees its code and reason and answers; the guest then
	// hears the client's answer.
	a, _ := wsDial(t, s.wsURL("/"), nil)
	if err := wsutil.WriteClientText(a, []byte("close 4001 done here")); err != nil {
		t.Fatal(err)
	}
	if reason := wsExpectClose(t, a, 4001); reason != "done here" {
		t.Errorf("close reason %q", reason)
	}
	// Terminate: no close frame, just the end of the connection, and no event for it.
	b, _ := wsDial(t, s.wsURL("/"), nil)
	if err := wsutil.WriteClientText(b, []byte("terminate")); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(make([]byte, 16)); n != 0 || err == nil {
		t.Errorf("after terminate: read %d bytes, %v; want EOF", n, err)
	}
	// A client that vanishes without a close frame: the guest hears 1006.
	d, _ := wsDial(t, s.wsURL("/"), nil)
	wsRoundTrip(t, d, ws.OpText, []byte("hi"))
	d.Close()

	want := "open 5 close 4001,1006"
	var got string
	if !eventually(5*time.Second, func() bool {
		got = wsText(t, p, "events")
		return got == want
	}) {
		t.Errorf("events: %q, want %q", got, want)
	}
}

// A guest that panics in a message handler is replaced; every socket it held is closed with
// 1011 and new connections are served by the fresh instance.
func TestWebSocketGuestCrash(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wskit"})
	a, _ := wsDial(t, s.wsURL("/"), nil)
	b, _ := wsDial(t, s.wsURL("/"), nil)
	wsRoundTrip(t, b, ws.OpText, []byte("b is open"))
	if err := wsutil.WriteClientText(a, []byte("panic")); err != nil {
		t.Fatal(err)
	}
	wsExpectClose(t, a, ws.StatusInternalServerError)
	wsExpectClose(t, b, ws.StatusInternalServerError)
	c, _ := wsDial(t, s.wsURL("/"), nil)
	if got := wsText(t, c, "events"); got != "open 1 close " {
		t.Errorf("the replacement's events: %q, want a fresh instance's", got)
	}
	if !strings.Contains(s.proc.stderr.String(), "asked to") {
		t.Errorf("the panic is not in the server's stderr:\n%s", s.proc.stderr)
	}
}

// A guest that sends more than the client reads is told to wait (Full, then OnDrain); nothing
// is lost and the host's memory stays bounded.
func TestWebSocketBackPressure(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wskit"})
	c, _ := wsDial(t, s.wsURL("/"), nil)
	const n = 400 // 25 MiB, more than the host's 16 MiB cap on unsent output
	if err := wsutil.WriteClientText(c, []byte(fmt.Sprint("flood ", n))); err != nil {
		t.Fatal(err)
	}
	// Read nothing until the guest has been held back: it says so when it first sees Full.
	s.proc.awaitStdout(t, "flood: waiting for drain\n", 4*ioTimeout)
	c.SetDeadline(time.Now().Add(4 * ioTimeout))
	for i := n; i > 0; i-- {
		msg, op, err := wsutil.ReadServerData(c)
		if err != nil || op != ws.OpBinary || len(msg) != 64<<10 || msg[0] != byte(i) {
			t.Fatalf("message %d: %v, %v, %d bytes", n-i, err, op, len(msg))
		}
	}
	msg, err := wsutil.ReadServerText(c)
	if err != nil || !strings.HasPrefix(string(msg), "flooded full=") || string(msg) == "flooded full=0" {
		t.Fatalf("end of the flood: %q, %v; want it to have waited for drain", msg, err)
	}
	checkPeakRSS(t, s.proc, "after a 25 MiB WebSocket flood to a slow reader")
}

// The idle timeout closes a silent peer (1001); a peer that answers the host's pings stays.
func TestWebSocketIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 1500 * time.Millisecond
	s := startServer(t, serverOpts{Module: "wsecho", Flags: []string{"--ws-idle-timeout", idle.String(), "--ws-ping-interval", "300ms"}})
	live, _ := wsDial(t, s.wsURL("/"), nil)
	silent, _ := wsDial(t, s.wsURL("/"), nil)
	live.SetDeadline(time.Time{})
	// The live client answers every ping and reports it; anything else ends it, reported
	// with the reason.
	type ping struct {
		at  time.Time
		err error
	}
	pings := make(chan ping, 64)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			h, err := ws.ReadHeader(live)
			var p []byte
			if err == nil {
				p = make([]byte, h.Length)
				_, err = io.ReadFull(live, p)
			}
			switch {
			case err != nil:
			case h.OpCode == ws.OpPing:
				err = wsutil.WriteClientMessage(live, ws.OpPong, p)
			case h.OpCode == ws.OpClose:
				code, reason := ws.ParseCloseFrameData(p)
				err = fmt.Errorf("closed by the host with %d %q", code, reason)
			default:
				err = fmt.Errorf("an unexpected frame, opcode %d", h.OpCode)
			}
			select {
			case pings <- ping{time.Now(), err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// The silent one gets pings it never answers, then the idle close.
	sawPing := false
	for {
		h, err := ws.ReadHeader(silent)
		if err != nil {
			t.Fatalf("silent client: %v", err)
		}
		p := make([]byte, h.Length)
		io.ReadFull(silent, p)
		if h.OpCode == ws.OpPing {
			sawPing = true
			continue
		}
		if code, reason := ws.ParseCloseFrameData(p); h.OpCode != ws.OpClose || code != ws.StatusGoingAway {
			t.Fatalf("silent client: %v %d %q, want close 1001", h.OpCode, code, reason)
		}
		break
	}
	if !sawPing {
		t.Error("the silent client was never pinged")
	}
	// The live one, opened first, has been as quiet as the silent one but for its pongs. It
	// must stay open for another whole idle timeout, answering pings all along.
	closed := time.Now()
	for answered := 0; ; {
		select {
		case p := <-pings:
			if p.err != nil {
				t.Fatalf("the live client, %d pings answered: %v", answered, p.err)
			}
			answered++
			if p.at.Sub(closed) > idle {
				return
			}
		case <-time.After(ioTimeout):
			t.Fatalf("the live client got no ping for %v (after answering %d)", ioTimeout, answered)
		}
	}
}

// SIGTERM closes open WebSockets with 1001 and the process exits 0 once they answer; that
// includes sockets whose server the program had already closed (they outlive it, as in Node).
func TestWebSocketShutdown(t *testing.T) {
	t.Parallel()
	for _, unlisten := range []bool{false, true} {
		s := startServer(t, serverOpts{Module: "wskit"})
		c, _ := wsDial(t, s.wsURL("/"), nil)
		wsRoundTrip(t, c, ws.OpText, []byte("before"))
		if unlisten {
			if got := wsText(t, c, "unlisten"); got != "unlistened" {
				t.Fatalf("unlisten: %q", got)
			}
			wsRoundTrip(t, c, ws.OpText, []byte("still open"))
		}
		s.proc.signal(t, syscall.SIGTERM)
		wsExpectClose(t, c, ws.StatusGoingAway)
		if code := s.proc.wait(t, 5*time.Second); code != 0 {
			t.Errorf("unlisten %v: exit status %d, want 0\n%s", unlisten, code, s.proc.stderr)
		}
	}
}

// chatLine is what samples/chat sends.
type chatLine struct {
	Name   string `json:"name"`
	Text   string `json:"text"`
	Worker int    `json:"worker"`
	Seq    int    `json:"seq"`
	System bool   `json:"system"`
}

// samples/chat with two workers: clients pinned to both workers each send messages, and every
// client receives every message, in order per sender.
func TestChatAcrossWorkers(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "chat", Workers: 2})
	resp, page := httpGet(t, client(nil), s.URL("/"))
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("<title>wasmloop chat</title>")) {
		t.Fatalf("GET /: %d, %d bytes", resp.StatusCode, len(page))
	}
	// Connect until two clients sit on each worker (the kernel picks the worker).
	type member struct {
		name   string
		conn   net.Conn
		worker string
	}
	var members []member
	per := map[string]int{}
	for i := 0; i < 80 && (per["0"] < 2 || per["1"] < 2); i++ {
		name := fmt.Sprint("c", i)
		c, hdr := wsDial(t, s.wsURL("/ws?name="+name), nil)
		w := hdr.Get("X-Worker")
		if per[w] >= 2 {
			c.Close()
			continue
		}
		per[w]++
		members = append(members, member{name, c, w})
	}
	if per["0"] < 2 || per["1"] < 2 {
		t.Fatalf("clients per worker: %v after 80 connections", per)
	}
	const each = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(members))
	for _, m := range members {
		wg.Add(2)
		go func() { // send
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := wsutil.WriteClientText(m.conn, []byte(fmt.Sprint(m.name, " says ", i))); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() { // receive every other member's messages, in order per sender
			defer wg.Done()
			m.conn.SetDeadline(time.Now().Add(4 * ioTimeout))
			next := map[string]int{}
			got := 0
			for got < each*len(members) {
				data, err := wsutil.ReadServerText(m.conn)
				if err != nil {
					errs <- fmt.Errorf("%s (worker %s) after %d messages: %v", m.name, m.worker, got, err)
					return
				}
				var l chatLine
				if err := json.Unmarshal(data, &l); err != nil {
					errs <- fmt.Errorf("%s: %q: %v", m.name, data, err)
					return
				}
				if l.System {
					continue
				}
				if want := fmt.Sprint(l.Name, " says ", next[l.Name]); l.Text != want {
					errs <- fmt.Errorf("%s (worker %s) got %q from %s, want %q: out of order", m.name, m.worker, l.Text, l.Name, want)
					return
				}
				next[l.Name]++
				got++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Node's ws client against samples/wsecho: text and binary of every length form, fragments,
// a ping, a 1 MiB message, with and without permessage-deflate, then a clean close.
func TestWebSocketNodeClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "wsecho"})
	for _, args := range [][]string{nil, {"--deflate"}} {
		out := runNodeWSClient(t, s.wsURL("/node"), args...)
		if !strings.Contains(out, `"ok":true`) {
			t.Errorf("node ws client %v: %s", args, out)
		}
		if len(args) > 0 && !strings.Contains(out, "permessage-deflate") {
			t.Errorf("node ws client %v did not negotiate deflate: %s", args, out)
		}
	}
}

// The chat page in headless Chromium, with clients on both workers: what the page sends
// reaches both, and what they send shows up in the page.
func TestChatInChromium(t *testing.T) {
	t.Parallel()
	b := startChromium(t)
	s := startServer(t, serverOpts{Module: "chat", Workers: 2})
	peers := map[string]net.Conn{}
	for i := 0; i < 80 && len(peers) < 2; i++ {
		c, hdr := wsDial(t, s.wsURL(fmt.Sprint("/ws?name=go", i)), nil)
		if w := hdr.Get("X-Worker"); peers[w] == nil {
			peers[w] = c
		} else {
			c.Close()
		}
	}
	if len(peers) < 2 {
		t.Fatalf("could not reach both workers")
	}
	p := b.open(t, s.URL("/?name=chromium"))
	p.waitFor(t, `document.getElementById("status").textContent === "connected"`, ioTimeout)
	p.eval(t, `(() => {
		document.getElementById("msg").value = "hello from chromium ✓";
		document.getElementById("send").click();
	})()`)
	for w, c := range peers {
		c.SetDeadline(time.Now().Add(ioTimeout))
		for {
			data, err := wsutil.ReadServerText(c)
			if err != nil {
				t.Fatalf("client on worker %s: %v", w, err)
			}
			var l chatLine
			json.Unmarshal(data, &l)
			if !l.System && l.Name == "chromium" {
				if l.Text != "hello from chromium ✓" {
					t.Errorf("worker %s got %q", w, l.Text)
				}
				break
			}
		}
		if err := wsutil.WriteClientText(c, []byte("hello from worker "+w)); err != nil {
			t.Fatal(err)
		}
	}
	p.waitFor(t, `(() => {
		const texts = [...document.querySelectorAll("#log li")].map(li => li.dataset.text);
		return texts.includes("hello from worker 0") && texts.includes("hello from worker 1");
	})()`, ioTimeout)
}

// With only --ws-idle-timeout set, the host pings at half of it, so a client that answers
// pings and sends nothing else stays open past the idle timeout. (The command once passed
// its own 1-minute ping interval, and such a client was closed at the idle timeout.)
func TestWebSocketPingFollowsIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 2 * time.Second
	s := startServer(t, serverOpts{Module: "wsecho", Flags: []string{"--ws-idle-timeout", idle.String()}})
	start := time.Now()
	c, _ := wsDial(t, s.wsURL("/"), nil)
	// gobwas/ws's control handler answers each ping with its pong, and a close with 1001 as
	// a *wsutil.ClosedError.
	answer := wsutil.ControlFrameHandler(c, ws.StateClientSide)
	rd := wsutil.Reader{Source: c, State: ws.StateClientSide}
	for pings := 0; pings < 3; {
		h, err := rd.NextFrame()
		if err == nil && !h.OpCode.IsControl() {
			err = fmt.Errorf("a %v frame", h.OpCode)
		}
		if err == nil {
			err = answer(h, &rd)
		}
		if err != nil {
			t.Fatalf("after %d pings answered in %v, with a %v idle timeout: %v", pings, time.Since(start).Round(time.Millisecond), idle, err)
		}
		if h.OpCode == ws.OpPing {
			pings++
		}
	}
	// A ping goes out only after a ping interval of silence, each pong restarts it: three
	// pings took more than the idle timeout, and the socket is still open.
	if el := time.Since(start); el <= idle {
		t.Fatalf("three pings in %v, within the %v idle timeout", el, idle)
	}
	wsRoundTrip(t, c, ws.OpText, []byte("still open"))
}
