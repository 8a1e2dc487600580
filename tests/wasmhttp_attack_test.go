package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/tests/testdata/guests/wasmhttpatk/routes"
)

// Attacks on guest-sdk/go/wasmhttp: the same handlers (package routes of
// tests/testdata/guests/wasmhttpatk) run natively under net/http's server and in a guest,
// and the answers are compared.

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"wasmhttpatk", "./tests/testdata/guests/wasmhttpatk", true})
}

type wratkResult struct {
	err     error // the request failed
	status  int
	header  http.Header
	trailer http.Header
	cl      int64
	body    string
	bodyErr error
}

func wratkDo(base, method, path string, body []byte, hdr map[string]string) wratkResult {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return wratkResult{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Transport: &http.Transport{}, Timeout: 8 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return wratkResult{err: err}
	}
	defer resp.Body.Close()
	b, berr := io.ReadAll(resp.Body)
	return wratkResult{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, cl: resp.ContentLength, body: string(b), bodyErr: berr}
}

func wratkNative(t *testing.T) string {
	ts := httptest.NewServer(routes.Mux())
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	return ts.URL
}

func wratkHeaderVals(h http.Header, k string) []string {
	vs := slices.Clone(h.Values(k))
	slices.Sort(vs)
	return vs
}

type wratkCase struct {
	name, method, path string
	body               []byte
	hdr                map[string]string
	fields             []string // header fields compared; HEAD also compares ContentLength
}

// wratkCompare runs each case under net/http and in the guest s and compares status, body,
// whether the body ended cleanly, and the header fields that matter.
func wratkCompare(t *testing.T, s *server, cases []wratkCase) {
	native := wratkNative(t)
	guest := "http://" + s.Addr
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := wratkDo(native, c.method, c.path, c.body, c.hdr)
			g := wratkDo(guest, c.method, c.path, c.body, c.hdr)
			if (n.err == nil) != (g.err == nil) {
				t.Fatalf("request error: net/http %v, guest %v", n.err, g.err)
			}
			if n.err != nil {
				return
			}
			if n.status != g.status {
				t.Errorf("status: net/http %d, guest %d", n.status, g.status)
			}
			if n.body != g.body {
				t.Errorf("body: net/http %q, guest %q", n.body, g.body)
			}
			if (n.bodyErr == nil) != (g.bodyErr == nil) {
				t.Errorf("body read error: net/http %v, guest %v", n.bodyErr, g.bodyErr)
			}
			for _, k := range c.fields {
				if nv, gv := wratkHeaderVals(n.header, k), wratkHeaderVals(g.header, k); !slices.Equal(nv, gv) {
					t.Errorf("%s: net/http %q, guest %q", k, nv, gv)
				}
			}
			if c.method == "HEAD" && n.cl != g.cl {
				t.Errorf("HEAD ContentLength: net/http %d, guest %d", n.cl, g.cl)
			}
		})
	}
}

// TestWasmHTTPAttackCompare: guards — handlers whose guest answer matches net/http's.
func TestWasmHTTPAttackCompare(t *testing.T) {
	s := startServer(t, serverOpts{Module: "wasmhttpatk"})
	big := bytes.Repeat([]byte("z"), 1<<20)
	wratkCompare(t, s, []wratkCase{
		{"pathvalue and query", "GET", "/items/42?q=a+b&q=c%20d&x=%2F", nil, nil, nil},
		{"wildcard rest", "GET", "/files/a/b%2Fc/d.txt", nil, nil, nil},
		{"strip prefix", "GET", "/api/items/7", nil, nil, nil},
		{"json", "GET", "/json", nil, nil, []string{"Content-Type"}},
		{"http.Error", "GET", "/error", nil, nil, []string{"Content-Type", "X-Content-Type-Options"}},
		{"cookies", "GET", "/cookies", nil, map[string]string{"Cookie": "a=1; b=2"}, []string{"Set-Cookie"}},
		{"WriteHeader twice", "GET", "/twice", nil, nil, nil},
		{"HEAD small", "HEAD", "/small", nil, nil, []string{"Content-Length", "Content-Type"}},
		{"HEAD big", "HEAD", "/big", nil, nil, []string{"Content-Type"}},
		{"304 with body", "GET", "/304body", nil, nil, []string{"Etag", "Content-Length"}},
		{"204 with body", "GET", "/204body", nil, nil, nil},
		{"TimeoutHandler fires", "GET", "/timeout", nil, nil, nil},
		{"TimeoutHandler fast", "GET", "/timeout-fast", nil, nil, []string{"X-Inner"}},
		{"MaxBytesReader", "POST", "/max", big, nil, nil},
		{"partial read", "POST", "/partial", big[:100<<10], nil, nil},
		{"unread body", "POST", "/ignore", big[:100<<10], nil, nil},
		{"form", "POST", "/form?q=3", []byte("a=1&b=2"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, nil},
		{"utf-8 in a value", "GET", "/utf8value", nil, nil, []string{"X-Name"}},
	})
}

// TestWasmHTTPAttackLikeNetHTTP: each subtest failed on a real difference from net/http,
// fixed with it (guest-sdk/go/wasmhttp/server.go).
func TestWasmHTTPAttackLikeNetHTTP(t *testing.T) {
	s := startServer(t, serverOpts{Module: "wasmhttpatk"})
	wratkCompare(t, s, []wratkCase{
		// Was a bug: a handler that declares Content-Length 5 and writes "hello" then " world":
		// net/http sends 200 "hello" (the second Write returns ErrContentLength). The guest's
		// Write accepts all 11 bytes without error, the host refuses the End (length
		// mismatch, EINVAL) and the SDK substitutes a bare 500 — logged nowhere.
		{"Content-Length exceeded", "GET", "/cl/long", nil, nil, nil},
		// Was a bug: Content-Length 10, "hello" written: net/http sends the handler's 200 and 5
		// bytes then closes (the client sees a truncated body); the guest sends a bare 500,
		// silently, and the handler's status and body are lost.
		{"Content-Length short", "GET", "/cl/short", nil, nil, nil},
		// Was a divergence: fields set after WriteHeader or after the first Write are sent
		// by the guest while the response is still buffered; net/http snapshots the header at
		// WriteHeader and never sends them, so code that works in the guest breaks natively
		// and vice versa (a small body's "trailer" becomes a header field too).
		{"header after WriteHeader", "GET", "/late-header", nil, nil, []string{"X-Late", "X-Later"}},
	})
	// The guest's Write must refuse bytes beyond the declared length, as net/http's does.
	select {
	case <-s.stdout.appears("wratk: cl/long errs "):
	case <-time.After(5 * time.Second):
		t.Fatalf("no cl/long line\n%s", s.stdout)
	}
	if strings.Contains(s.stdout.String(), "wratk: cl/long errs <nil> <nil>") {
		t.Errorf("Write past the declared Content-Length returned no error (net/http: %v)", http.ErrContentLength)
	}
}

// TestWasmHTTPAttackConcurrent: many clients at once, each with its own path value, query,
// header, cookie and body; every answer must be its own.
func TestWasmHTTPAttackConcurrent(t *testing.T) {
	s := startServer(t, serverOpts{Module: "wasmhttpatk"})
	base := "http://" + s.Addr
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := strconv.Itoa(i)
			r := wratkDo(base, "GET", "/echo/"+id+"?q=q"+id, nil, map[string]string{"X-Req": "h" + id, "Cookie": "c=c" + id})
			want := fmt.Sprintf("id=%s q=q%s h=h%s c=c%s", id, id, id, id)
			if i%2 == 0 {
				want = strings.Repeat(id+",", 2000) + want
			}
			if r.err != nil || r.bodyErr != nil || r.body != want || r.header.Get("X-Id") != id || !slices.Equal(r.header.Values("Set-Cookie"), []string{"id=" + id}) {
				errs <- fmt.Sprintf("GET %s: err %v/%v X-Id %q Set-Cookie %q body tail %q", id, r.err, r.bodyErr, r.header.Get("X-Id"), r.header.Values("Set-Cookie"), r.body[max(0, len(r.body)-60):])
			}
		}()
	}
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte('A' + i)}, 200<<10+i*1000)
			r := wratkDo(base, "POST", "/echobody/"+strconv.Itoa(i), body, nil)
			want := fmt.Sprintf("id=%d len=%d sum=%x err=<nil>", i, len(body), sha256.Sum256(body))
			if r.err != nil || r.body != want {
				errs <- fmt.Sprintf("POST %d: %v %q, want %q", i, r.err, r.body, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestWasmHTTPAttackFlush: what was written before Flush reaches the client while the
// handler still runs (it waits for the client to leave), before and after the head went out.
func TestWasmHTTPAttackFlush(t *testing.T) {
	native := wratkNative(t)
	s := startServer(t, serverOpts{Module: "wasmhttpatk"})
	for _, base := range []string{native, "http://" + s.Addr} {
		for path, want := range map[string]string{"/flushstream": strings.Repeat("a", 8000) + "mark\n", "/flushsmall": "one\ntwo\n"} {
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), ioTimeout)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%s%s: %v", base, path, err)
			}
			got := make([]byte, len(want))
			n, err := io.ReadFull(resp.Body, got)
			if err != nil || string(got) != want {
				t.Errorf("%s%s: %d bytes flushed of %d (%v); want all of them while the handler runs", base, path, n, len(want), err)
			}
			conn.Close()
		}
	}
}

// TestWasmHTTPAttackUnreadBodyPipelined: a handler answers without reading a body; a request
// pipelined behind the body must be answered or the connection closed — never left hanging.
func TestWasmHTTPAttackUnreadBodyPipelined(t *testing.T) {
	native := wratkNative(t)
	s := startServer(t, serverOpts{Module: "wasmhttpatk"})
	for _, size := range []int{100 << 10, 2 << 20} {
		for _, base := range []string{native, "http://" + s.Addr} {
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), ioTimeout)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(6 * time.Second))
			go func() {
				fmt.Fprintf(conn, "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
				conn.Write(make([]byte, size))
				io.WriteString(conn, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
			}()
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s size %d: first response: %v", base, size, err)
			}
			b, err := io.ReadAll(resp.Body)
			if string(b) != "ignored" || err != nil {
				t.Fatalf("%s size %d: first body %q %v", base, size, b, err)
			}
			resp2, err := http.ReadResponse(br, nil)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("%s size %d: the pipelined request was neither answered nor the connection closed (first response Connection: %q)", base, size, resp.Header.Get("Connection"))
			} else if err == nil {
				b, _ := io.ReadAll(resp2.Body)
				if string(b) != "small body" {
					t.Errorf("%s size %d: second response %d %q", base, size, resp2.StatusCode, b)
				}
			}
			t.Logf("%s size %d: second: %v", base, size, err)
			conn.Close()
		}
	}
}

// TestWasmHTTPAttackAfterReturn: a goroutine that writes to w after its handler returned
// gets an error and the guest goes on serving.
func TestWasmHTTPAttackAfterReturn(t *testing.T) {
	s := startServer(t, serverOpts{Module: "wasmhttpatk"})
	logged := s.stdout.appears("wratk: afterreturn write err=")
	r := wratkDo("http://"+s.Addr, "GET", "/afterreturn", nil, nil)
	if r.err != nil || r.body != "returned" {
		t.Fatalf("%v %q", r.err, r.body)
	}
	select {
	case <-logged:
	case <-time.After(5 * time.Second):
		t.Fatalf("the late writer never ran\n%s", s.stdout)
	}
	if strings.Contains(s.stdout.String(), "write err=<nil>") {
		t.Errorf("a write after the handler returned succeeded:\n%s", s.stdout)
	}
	if r := wratkDo("http://"+s.Addr, "GET", "/small", nil, nil); r.body != "small body" {
		t.Errorf("after: %v %q", r.err, r.body)
	}
}

// The differences from net/http the README lists: http.ResponseController's deadlines are
// not supported (EnableFullDuplex and Flush are), and a HEAD answered with nothing says
// Content-Length 0 (the host frames every whole answer; net/http sends none). Guards: a
// change to either must change the README too.
func TestWasmHTTPAttackDocumentedDifferences(t *testing.T) {
	s := startServer(t, serverOpts{Module: "wasmhttpatk"})
	c := client(nil)
	_, body := httpGet(t, c, s.URL("/rc"))
	if want := "wd=feature not supported rd=feature not supported fd=<nil> fl=<nil>"; string(body) != want {
		t.Errorf("ResponseController in the guest: %q, want %q", body, want)
	}
	req, _ := http.NewRequest("HEAD", s.URL("/empty"), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Length"); resp.StatusCode != 200 || got != "0" {
		t.Errorf("HEAD of an empty answer: %d, Content-Length %q, want 200 and 0", resp.StatusCode, got)
	}
}
