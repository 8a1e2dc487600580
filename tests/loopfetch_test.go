package tests

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The loop's own HTTP/1.1 client, which carries a guest's plain http:// fetch (ABI.md §10):
// kept connections, every framing of an answer, interim answers, strict refusal of a broken
// one, the retry of a request a kept connection lost, and timeouts. One worker, so that each
// fetch finds the connections the last one kept.

// startScripted starts an upstream (rawUp, loopfetch_attack_test.go) that answers each
// request on a connection with what answer gives for its request line and the connection's
// number: the bytes to write, and whether to close the connection after them; nil closes it
// without a word.
func startScripted(t *testing.T, answer func(line string, conn int) (out []byte, close bool)) *rawUp {
	t.Helper()
	return startRawUp(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			out, closeAfter := answer(req.Method+" "+req.RequestURI, n)
			if out == nil {
				return
			}
			if _, err := c.Write(out); err != nil || closeAfter {
				return
			}
		}
	})
}

// A connection is kept between fetches: ten fetches, a HEAD, a 204 and a 304 in a row open one.
func TestLoopFetchKeepsConnections(t *testing.T) {
	var opened atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	}))
	up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			opened.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", strings.TrimPrefix(up.URL, "http://")}})
	for i := range 10 {
		if got := guestGet(t, s, "/fetch?url="+q(up.URL+"/x?i="+strconv.Itoa(i))); got != "200\nhello" {
			t.Fatalf("fetch %d: %q", i, got)
		}
	}
	for path, want := range map[string]string{"/fetch?method=HEAD&url=" + q(up.URL+"/x"): "200\n",
		"/fetch?url=" + q(up.URL+"/204"): "204\n", "/fetch?url=" + q(up.URL+"/304"): "304\n"} {
		if got := guestGet(t, s, path); got != want {
			t.Errorf("GET %s: %q, want %q", path, got, want)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("13 fetches in a row opened %d connections to the upstream, want 1", n)
	}
}

// Every framing of an answer's body, interim answers before the final one, and the answers
// after which a connection is not kept (HTTP/1.0, Connection: close, a body to the close).
func TestLoopFetchFramings(t *testing.T) {
	answers := map[string]string{
		"/chunked":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"/interim":   "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/length":    "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nmade",
		"/http10":    "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold",
		"/connclose": "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"/toclose":   "HTTP/1.1 200 OK\r\n\r\nto the close",
		"/noreason":  "HTTP/1.1 202\r\nContent-Length: 0\r\n\r\n",
	}
	up := startScripted(t, func(line string, _ int) ([]byte, bool) {
		path := strings.Fields(line)[1]
		return []byte(answers[path]), path == "/toclose"
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	for _, c := range []struct {
		path, want string
		conns      int32 // connections opened after the fetch
	}{
		{"/chunked", "200\nhello world", 1},
		{"/interim", "200\nok", 1},
		{"/length", "201\nmade", 1},
		{"/noreason", "202\n", 1},
		{"/http10", "200\nold", 1}, // HTTP/1.0 without keep-alive: not kept
		{"/length", "201\nmade", 2},
		{"/connclose", "200\nok", 2}, // Connection: close: not kept
		{"/length", "201\nmade", 3},
		{"/toclose", "200\nto the close", 3}, // on the connection kept after the last
		{"/length", "201\nmade", 4},
	} {
		if got := guestGet(t, s, "/fetch?url="+q(up.url(c.path))); got != c.want {
			t.Errorf("%s: %q, want %q", c.path, got, c.want)
		}
		if n := up.conns.Load(); n != c.conns {
			t.Errorf("after %s: %d connections opened, want %d", c.path, n, c.conns)
		}
	}
}

// A broken answer fails its fetch with EIO, and the worker goes on: the next fetch is
// answered.
func TestLoopFetchRefusesBrokenAnswers(t *testing.T) {
	answers := map[string]string{
		"/bare-lf":    "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"/version":    "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/status":     "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
		"/cl-te":      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/two-cl":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
		"/te-gzip":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
		"/bad-chunk":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
		"/folded":     "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
		"/short-body": "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
		"/no-answer":  "",
		"/ok":         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	}
	up := startScripted(t, func(line string, _ int) ([]byte, bool) {
		path := strings.Fields(line)[1]
		return []byte(answers[path]), true // a broken answer is the connection's last
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	for _, path := range []string{"/bare-lf", "/version", "/status", "/cl-te", "/two-cl", "/te-gzip", "/bad-chunk", "/folded", "/short-body"} {
		if got := guestGet(t, s, "/fetch?url="+q(up.url(path))); !strings.HasPrefix(got, "ERR EIO") {
			t.Errorf("%s: %q, want ERR EIO", path, got)
		}
		if got := guestGet(t, s, "/fetch?url="+q(up.url("/ok"))); got != "200\nok" {
			t.Errorf("after %s: %q", path, got)
		}
	}
	if got := guestGet(t, s, "/fetch?url="+q(up.url("/no-answer"))); !strings.HasPrefix(got, "ERR ECONNRESET") {
		t.Errorf("a connection closed without an answer: %q, want ERR ECONNRESET", got)
	}
}

// A kept connection the server closed before answering carries a GET again on a new
// connection, once; a POST is not sent twice.
func TestLoopFetchRetriesWhatAKeptConnectionLost(t *testing.T) {
	up := startScripted(t, func(line string, conn int) ([]byte, bool) {
		if strings.HasSuffix(line, "/first") || conn > 0 && !strings.HasSuffix(line, "/lost") {
			return []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsent"), false
		}
		return nil, true // the kept connection's next request: closed unanswered
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	if got := guestGet(t, s, "/fetch?url="+q(up.url("/first"))); got != "200\nsent" {
		t.Fatalf("first: %q", got)
	}
	if got := guestGet(t, s, "/fetch?url="+q(up.url("/again"))); got != "200\nsent" {
		t.Errorf("a GET on a connection lost before its answer: %q, want it sent again", got)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the kept one, then the retry's)", n)
	}
	// The retry's connection is kept; the server closes it at this POST, unanswered.
	if got := guestGet(t, s, "/fetch?method=POST&url="+q(up.url("/lost"))); !strings.HasPrefix(got, "ERR ECONNRESET") {
		t.Errorf("a POST on a connection lost before its answer: %q, want ERR ECONNRESET", got)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("%d connections after the POST, want 2: a POST is not sent again", n)
	}
}

// A fetch's timeout covers the whole exchange: an answer that never comes, and a body that
// stops.
func TestLoopFetchTimeout(t *testing.T) {
	hold := make(chan struct{})
	up := startScripted(t, func(line string, _ int) ([]byte, bool) {
		if strings.HasSuffix(line, "/half") {
			return []byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"), false
		}
		<-hold
		return nil, true
	})
	t.Cleanup(func() { close(hold) }) // before the upstream's cleanup, which waits for its handlers
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	for _, path := range []string{"/never", "/half"} {
		if got := guestGet(t, s, "/fetch?timeout=200&url="+q(up.url(path))); !strings.HasPrefix(got, "ERR ETIMEDOUT") {
			t.Errorf("%s: %q, want ERR ETIMEDOUT", path, got)
		}
	}
}

// A server that restarted has closed every connection kept to it: a GET that finds one of
// them is sent again on a new connection, not on the next kept one, which is as dead.
func TestLoopFetchRetryDialsAfresh(t *testing.T) {
	const kept = 4
	arrived := make(chan struct{}, kept)
	all := make(chan struct{})
	var once sync.Once
	var seen sync.Map // connections that have answered once
	up := startScripted(t, func(line string, conn int) ([]byte, bool) {
		if conn >= kept {
			return []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"), false
		}
		if _, again := seen.LoadOrStore(conn, true); again {
			return nil, true // "restarted": a kept connection's next request is closed unanswered
		}
		arrived <- struct{}{}
		if len(arrived) == kept {
			once.Do(func() { close(all) })
		}
		<-all // the first four are answered together, so that four connections are kept
		return []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkept"), false
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	var wg sync.WaitGroup
	for range kept {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := guestGet(t, s, "/fetch?url="+q(up.url("/a"))); got != "200\nkept" {
				t.Errorf("a first fetch: %q", got)
			}
		}()
	}
	wg.Wait()
	if n := up.conns.Load(); n != kept {
		t.Fatalf("%d connections for %d fetches at once, want %d", n, kept, kept)
	}
	if got := guestGet(t, s, "/fetch?url="+q(up.url("/b"))); got != "200\nfresh" {
		t.Errorf("a GET after the server closed every kept connection: %q, want it sent on a new one", got)
	}
}
