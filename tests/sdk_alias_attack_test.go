package tests

// Attacks on what the Go guest SDK hands a program and keeps for it while it reuses its
// buffers and objects (the inbox, hostOut, pooled request exchanges): the guest
// testdata/guests/sdkalias keeps requests, responses, sockets and fetch responses across
// callbacks and reports what it sees later.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"sdkalias", "./tests/testdata/guests/sdkalias", true})
}

// saStart starts the sdkalias guest with its wasmloop server on the server's port, its
// wasmhttp server on the returned address, and flags.
func saStart(t *testing.T, flags ...string) (*server, string) {
	t.Helper()
	hp := freePort(t)
	flags = append([]string{"--env", "HTTPPORT=" + strconv.Itoa(hp)}, flags...)
	s := startServer(t, serverOpts{Module: "sdkalias", Flags: flags})
	addr := "127.0.0.1:" + strconv.Itoa(hp)
	if !eventually(ioTimeout, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("the wasmhttp server on %s does not accept connections", addr)
	}
	return s, addr
}

// saBody does one GET on a connection of its own and returns the body of its 200.
func saBody(t *testing.T, addr, path string) string {
	t.Helper()
	resp, body := httpGet(t, client(&http.Transport{DisableKeepAlives: true}), "http://"+addr+path)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d, body %q", path, resp.StatusCode, body)
	}
	return string(body)
}

// saHold sends a /hold request on a connection of its own and waits until the guest holds it
// (logLine on stdout).
func saHold(t *testing.T, s *server, addr, id, extra, logLine string) *rawConn {
	t.Helper()
	c, err := dialRaw(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.send("GET /hold?id=" + id + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n"); err != nil {
		t.Fatalf("sending /hold?id=%s: %v", id, err)
	}
	s.awaitStdout(t, logLine, ioTimeout)
	return c
}

// saAnswer reads the held request's answer from c: its body, or what went wrong.
func saAnswer(c *rawConn) string {
	resp, body, err := c.readResponse("GET", 5*time.Second)
	if err != nil {
		return "no answer: " + err.Error()
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}

// saHoldTwo holds two requests (ids a and b) on connections of their own, releases a, then
// b, and returns what each connection was answered. Both are held at once, so each has an
// exchange of its own — unless the SDK's pool hands one out twice.
func saHoldTwo(t *testing.T, s *server, addr, a, b string, http bool) (gotA, gotB string) {
	t.Helper()
	prefix := "sdkalias: held "
	if http {
		prefix = "sdkalias: http held "
	}
	ca := saHold(t, s, addr, a, "X-Tag: tag-"+a+"\r\n", prefix+a+"\n")
	cb := saHold(t, s, addr, b, "X-Tag: tag-"+b+"\r\n", prefix+b+"\n")
	t.Logf("release %s: %s", a, saBody(t, addr, "/release?id="+a))
	t.Logf("release %s: %s", b, saBody(t, addr, "/release?id="+b))
	gotA, gotB = saAnswer(ca), saAnswer(cb)
	ca.Close() // a connection left unanswered is given up on, as a client would
	cb.Close()
	return gotA, gotB
}

// TestSDKAliasAbortInOnCloseKeepsRequestsApart: a response aborted from its own OnClose
// function (the client left; the program drops the response) is finished by doOnClose and by
// Abort in one callback. Before exchange.finished acted once, the exchange went into the
// retired list twice, was recycled twice and sat twice in the free pool: the next two
// requests shared one exchange, the first's Request read the second's URL, its Response
// answered the second's connection, and the first was never answered.
func TestSDKAliasAbortInOnCloseKeepsRequestsApart(t *testing.T) {
	s, _ := saStart(t)

	// Control: two held requests are kept apart.
	gotA, gotB := saHoldTwo(t, s, s.Addr, "c1", "c2", false)
	wantA := "200 id=c1 url=/hold?id=c1 tag=tag-c1 headers=x-tag:tag-c1 body="
	wantB := "200 id=c2 url=/hold?id=c2 tag=tag-c2 headers=x-tag:tag-c2 body="
	if gotA != wantA || gotB != wantB {
		t.Fatalf("control (before any abort): c1 got %q, want %q; c2 got %q, want %q", gotA, wantA, gotB, wantB)
	}

	// The trigger: a request whose OnClose aborts its response, and a client that leaves.
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(get("/abortonclose")); err != nil {
		t.Fatal(err)
	}
	s.awaitStdout(t, "sdkalias: abortonclose waiting\n", ioTimeout)
	c.Close()
	s.awaitStdout(t, "sdkalias: aborted on close\n", ioTimeout)

	gotA, gotB = saHoldTwo(t, s, s.Addr, "a1", "a2", false)
	wantA = "200 id=a1 url=/hold?id=a1 tag=tag-a1 headers=x-tag:tag-a1 body="
	wantB = "200 id=a2 url=/hold?id=a2 tag=tag-a2 headers=x-tag:tag-a2 body="
	if gotA != wantA || gotB != wantB {
		t.Errorf("after a response aborted in its OnClose, two requests held at once:\n"+
			"  a1's connection got %q\n      want %q\n  a2's connection got %q\n      want %q",
			gotA, wantA, gotB, wantB)
	}
}

// TestSDKAliasHTTPAbortHandlerKeepsRequestsApart is the same through wasmhttp, with nothing
// but net/http idiom: a handler that panics with http.ErrAbortHandler once the client has
// gone (httputil.ReverseProxy does when its copy to the client fails). The panic runs on the
// handler's goroutine inside the on_close callback, and wasmhttp's recovery calls
// res.Abort() on a response the close already finished. Before the fix the next two requests
// shared one exchange, and when the unanswered client gave up, its on_close found the
// recycled exchange and called a nil OnClose function: the instance crashed, taking every
// request it held with it.
func TestSDKAliasHTTPAbortHandlerKeepsRequestsApart(t *testing.T) {
	s, haddr := saStart(t)

	gotA, gotB := saHoldTwo(t, s, haddr, "c1", "c2", true)
	if gotA != "200 id=c1 url=/hold?id=c1" || gotB != "200 id=c2 url=/hold?id=c2" {
		t.Fatalf("control (before any abort): c1 got %q, c2 got %q", gotA, gotB)
	}

	c, err := dialRaw(haddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(get("/abort")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := c.br.Peek(1); err != nil { // the head and "x" are out: the handler waits
		t.Fatalf("reading /abort's first bytes: %v", err)
	}
	c.Close()
	s.awaitStdout(t, "sdkalias: http abort\n", ioTimeout)

	gotA, gotB = saHoldTwo(t, s, haddr, "a1", "a2", true)
	if gotA != "200 id=a1 url=/hold?id=a1" || gotB != "200 id=a2 url=/hold?id=a2" {
		t.Errorf("after a handler panicked with http.ErrAbortHandler for a client that left, two requests held at once:\n"+
			"  a1's connection got %q (want its own answer)\n  a2's connection got %q (want its own answer)", gotA, gotB)
	}
	// a1's connection has closed (saAnswer gave up on it): the server must survive that.
	if !eventually(2*time.Second, func() bool { return strings.Contains(s.stderr.String(), "panic") }) {
		return
	}
	t.Errorf("the instance crashed after the abort:\n%s", truncate(s.stderr.String(), 1500))
}

// TestSDKAliasSocketSwitchToOnDataCopies: OnData promises "data is fn's to keep", and a read
// asked for while OnDataView was the handler (a read is always pending while data flows)
// arrives as a view of the inbox. Before the fix it was delivered as that view to the OnData
// set meanwhile, and the next event overwrote what the program kept; stream.gotRead now
// copies it.
func TestSDKAliasSocketSwitchToOnDataCopies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, _ := saStart(t, "--allow-connect", ln.Addr().String())

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	if got := saBody(t, s.Addr, "/tcpstart?addr="+ln.Addr().String()); got != "connected" {
		t.Fatalf("/tcpstart: %q", got)
	}
	var peer net.Conn
	select {
	case peer = <-accepted:
	case <-time.After(ioTimeout):
		t.Fatal("the guest's connection never arrived")
	}
	defer peer.Close()

	if got := saBody(t, s.Addr, "/tcpswitch"); got != "switched" {
		t.Fatalf("/tcpswitch: %q", got)
	}
	const data = "data-the-program-keeps"
	peer.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(peer, data); err != nil {
		t.Fatal(err)
	}
	var report string
	if !eventually(ioTimeout, func() bool { report = saBody(t, s.Addr, "/tcpreport"); return report != "none" }) {
		t.Fatal("the guest never received the data")
	}
	if report != "same "+data {
		t.Errorf("data OnData handed the program to keep changed after its callback: %s", report)
	}
}

// TestSDKAliasKeptValuesHold checks what held up: a Request kept past its callback (answered
// from a later request) still reads its own URL, header, Headers() taken while it was held and
// body after other requests reused the inbox and the pool; a fetch's response head kept in a
// later callback, after another fetch, still reads its own fields.
func TestSDKAliasKeptValuesHold(t *testing.T) {
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Tag", r.URL.Query().Get("tag")+"-"+strings.Repeat("v", 40))
		io.WriteString(w, "body of "+r.URL.Query().Get("tag"))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)
	defer up.Close()
	s, _ := saStart(t, "--allow-connect", ln.Addr().String())

	// A held POST with a body and several fields, then traffic, then its answer.
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := strings.Repeat("b", 300)
	if err := c.send("POST /hold?id=p1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Tag: kept-tag\r\nX-Other: other-value\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body); err != nil {
		t.Fatal(err)
	}
	s.awaitStdout(t, "sdkalias: held p1\n", ioTimeout)
	for i := range 20 {
		saBody(t, s.Addr, "/release?id=none-"+strconv.Itoa(i)+"-"+strings.Repeat("z", 200))
	}
	saBody(t, s.Addr, "/release?id=p1")
	want := "200 id=p1 url=/hold?id=p1 tag=kept-tag headers=x-tag:kept-tag,x-other:other-value body=" + body
	if got := saAnswer(c); got != want {
		t.Errorf("a kept request read later:\n got %q\nwant %q", got, want)
	}

	got := saBody(t, s.Addr, "/fetchkeep?u="+url.QueryEscape("http://"+ln.Addr().String()+"/t"))
	v := strings.Repeat("v", 40)
	if want := "one=one-" + v + " two=two-" + v; got != want {
		t.Errorf("fetch heads read in a later callback: got %q, want %q", got, want)
	}
}
