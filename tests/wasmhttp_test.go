package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"httpkit", "./tests/testdata/guests/httpkit", true})
}

// rawExchange sends a request as written and reads one response.
func rawExchange(t *testing.T, addr, request string) (*http.Response, []byte, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(conn, request)
	method := strings.Fields(request)[0]
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestWasmhttpHeaders: response header fields net/http normalises.
func TestWasmhttpHeaders(t *testing.T) {
	s := startServer(t, serverOpts{Module: "httpkit"})
	c := client(nil)
	get := func(path string) (*http.Response, []byte) {
		resp, err := c.Get(s.URL(path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	t.Run("204 with Content-Length: 0", func(t *testing.T) {
		if resp, b := get("/nocontent"); resp.StatusCode != 204 {
			t.Errorf("status %d (%q), want 204 as net/http sends", resp.StatusCode, b)
		}
	})
	t.Run("304 with Content-Length", func(t *testing.T) {
		if resp, b := get("/notmodified"); resp.StatusCode != 304 {
			t.Errorf("status %d (%q), want 304 as net/http sends", resp.StatusCode, b)
		}
	})
	t.Run("Transfer-Encoding set by the handler", func(t *testing.T) {
		if resp, b := get("/te"); resp.StatusCode != 200 || string(b) != "hello" {
			t.Errorf("status %d %q, want 200 \"hello\" as net/http sends", resp.StatusCode, b)
		}
	})
	t.Run("newline in a value", func(t *testing.T) {
		if resp, b := get("/newline"); resp.StatusCode != 200 || resp.Header.Get("X-Msg") != "line1 line2" {
			t.Errorf("status %d %q X-Msg %q, want 200 with \"line1 line2\" as net/http sends", resp.StatusCode, b, resp.Header.Get("X-Msg"))
		}
	})
	t.Run("invalid field name", func(t *testing.T) {
		if resp, b := get("/badname"); resp.StatusCode != 200 || string(b) != "ok" {
			t.Errorf("status %d %q, want 200 \"ok\" (net/http drops the field)", resp.StatusCode, b)
		}
	})
	t.Run("trailer", func(t *testing.T) {
		// The ABI has no response trailers (README, "Go's net/http, and Go habits"): the
		// body goes out whole, and no trailer is announced that would never come.
		resp, b := get("/trailer")
		if resp.StatusCode != 200 || len(b) != 8<<10 || resp.Header.Get("Trailer") != "" || len(resp.Trailer) != 0 {
			t.Errorf("status %d, %d bytes, Trailer field %q, trailer %v; want the body and no trailer announced", resp.StatusCode, len(b), resp.Header.Get("Trailer"), resp.Trailer)
		}
	})
}

// TestWasmhttpAbortAfterCommit: a panic after the response started must cut it (the
// client sees an error), as net/http does — above all http.ErrAbortHandler, whose purpose that
// is (httputil.ReverseProxy panics with it when the upstream's body fails mid-copy).
func TestWasmhttpAbortAfterCommit(t *testing.T) {
	s := startServer(t, serverOpts{Module: "httpkit"})
	for _, path := range []string{"/abort", "/panicafter"} {
		resp, err := client(nil).Get(s.URL(path))
		if err != nil {
			continue // cut before the head: also what net/http may do
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s: the client read a complete response (status %d, %d bytes, %v) after the handler panicked mid-response; want a truncated one (unexpected EOF)", path, resp.StatusCode, len(b), resp.TransferEncoding)
		}
	}
}

// TestWasmhttpDuplex: a handler writes a large response while a goroutine of its own
// reads the request body (as wasmhttp.Transport's sendBody does for a proxied upload). Both
// wait on the exchange; neither may miss its wake-up.
func TestWasmhttpDuplex(t *testing.T) {
	s := startServer(t, serverOpts{Module: "httpkit"})
	conn, err := net.DialTimeout("tcp", s.Addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 32 << 20
	const bodyLen = 1 << 20
	fmt.Fprintf(conn, "POST /duplex?n=%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", n, bodyLen)
	// No body yet, and no read: the reader waits for the body, the writer for a drain once
	// the response stops coming. Then the body goes.
	awaitSenderStalls(t, conn, ioTimeout)
	go func() {
		conn.Write(make([]byte, bodyLen))
	}()
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	tail := string(b[max(0, len(b)-40):])
	if want := "\nreader got " + strconv.Itoa(bodyLen); err != nil || !strings.HasSuffix(tail, want) {
		t.Fatalf("after %d bytes of %d: %v, tail %q; want it to end %q", len(b), n, err, tail, want)
	}
}

// TestWasmhttpContextNoOutput: the client leaves while the handler has sent nothing.
func TestWasmhttpContextNoOutput(t *testing.T) {
	s := startServer(t, serverOpts{Module: "httpkit"})
	logged := s.stdout.appears("waitctx: context done: context canceled\n")
	conn, err := net.DialTimeout("tcp", s.Addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	started := s.stdout.appears("waitctx: started\n")
	io.WriteString(conn, "GET /waitctx HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-started:
	case <-time.After(ioTimeout):
		t.Fatalf("the handler did not start\nstdout:\n%s", s.stdout)
	}
	conn.Close()
	select {
	case <-logged:
	case <-time.After(5 * time.Second):
		t.Fatalf("the handler's context was not cancelled when the client left\nstdout:\n%s\nstderr:\n%s", s.stdout, s.stderr)
	}
}

// TestWasmhttpRequest: what a handler sees of the request.
func TestWasmhttpRequest(t *testing.T) {
	s := startServer(t, serverOpts{Module: "httpkit"})
	var fields strings.Builder
	for i := range 20 {
		fmt.Fprintf(&fields, "X-F%02d: v%d\r\n", i, i)
	}
	_, b, err := rawExchange(t, s.Addr, "GET /info/a%2Fb/c?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Rep: 1\r\n"+fields.String()+"X-Rep: 2\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
	t.Logf("%s %v", b, err)
	for _, want := range []string{`Path="/info/a/b/c" RawPath="/info/a%2Fb/c" Escaped="/info/a%2Fb/c" RequestURI="/info/a%2Fb/c?q=1" Host="example.com"`,
		`X-Rep=["1" "2"]`, `Cookie=["a=1" "b=2"]`, `X-F19=["v19"]`, `X-F00=["v0"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("want %s", want)
		}
	}
	if strings.Contains(string(b), "\nHost=") {
		t.Errorf("Host in r.Header")
	}
	_, b, _ = rawExchange(t, s.Addr, "GET http://other.example/info/abs HTTP/1.1\r\nHost: example.com\r\n\r\n")
	t.Logf("%s", b)
	if !strings.Contains(string(b), `Path="/info/abs"`) || !strings.Contains(string(b), `Host="other.example"`) {
		t.Errorf("absolute form: %s", b)
	}
	_, b, _ = rawExchange(t, s.Addr, "GET /seg/a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n")
	if string(b) != `x="a/b"` {
		t.Errorf("segment with %%2F: %q", b)
	}
	if !strings.Contains(string(b), "") {
	}
}

// TestWasmhttpSlowBigBody: a body far above 256 KiB to a handler that reads it late.
func TestWasmhttpSlowBigBody(t *testing.T) {
	s := startServer(t, serverOpts{Module: "httpkit"})
	for _, chunked := range []bool{false, true} {
		data := make([]byte, 5<<20)
		got := string(postBytes(t, client(nil), s.URL("/slowsum"), data, chunked))
		if got != "5242880 <nil>" {
			t.Fatalf("chunked=%v: %q", chunked, got)
		}
	}
}

// TestStrandedNotForDrain: a native handler that writes until Full and continues in
// OnDrain — the back-pressure pattern README and samples/stream's /download teach — is not a
// response "nothing could end": the drain will.
func TestStrandedNotForDrain(t *testing.T) {
	s := startServer(t, serverOpts{Module: "stream"})
	conn, err := net.DialTimeout("tcp", s.Addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 64 << 20
	// A client slower than the handler's first burst: the handler writes until Full and goes
	// on in OnDrain once the client reads.
	fmt.Fprintf(conn, "GET /download?size=%d HTTP/1.1\r\nHost: x\r\n\r\n", size)
	awaitSenderStalls(t, conn, ioTimeout)
	conn.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != size {
		t.Fatalf("%d bytes, %v", n, err)
	}
	if strings.Contains(s.stderr.String(), "the handler returned without ending the response") {
		t.Fatalf("a response its OnDrain will end was reported as stranded:\n%s", s.stderr)
	}
}

// TestWasmhttpBodyAfterReturn: a goroutine that reads r.Body after its handler
// returned gets an error, as in net/http, instead of blocking for ever.
func TestWasmhttpBodyAfterReturn(t *testing.T) {
	s := startServer(t, serverOpts{Module: "httpkit"})
	logged := s.stdout.appears("leak: reader returned: ")
	conn, err := net.DialTimeout("tcp", s.Addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /leak HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-logged:
	case <-time.After(3 * time.Second):
		t.Fatalf("the goroutine reading the body after its handler returned is blocked for ever\nstdout:\n%s", s.stdout)
	}
}

// TestWasmhttpReverseProxyDuplex: httputil.ReverseProxy over wasmhttp.Transport to an
// upstream that echoes as it reads: Transport's sendBody reads r.Body on its goroutine while
// the proxy writes the response on the handler's.
func TestWasmhttpReverseProxyDuplex(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	}))
	defer func() { up.CloseClientConnections(); up.Close() }()
	s := startServer(t, serverOpts{Module: "httpkit", Flags: []string{"--allow-connect", strings.TrimPrefix(up.URL, "http://"), "--env", "UPSTREAM=" + up.URL}})
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i % 253)
	}
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(data); off += 64 << 10 {
			if _, err := pw.Write(data[off : off+64<<10]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", s.URL("/proxy/echo"), pr)
	req.ContentLength = int64(len(data))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := client(nil).Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := 0
	buf := make([]byte, 16<<10)
	for {
		n, err := resp.Body.Read(buf)
		got += n
		if got < 4<<20 {
			time.Sleep(2 * time.Millisecond) // a client slower than the upstream at first
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes of %d: %v", got, len(data), err)
		}
	}
	if got != len(data) {
		t.Fatalf("%d bytes back of %d", got, len(data))
	}
}
