package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
)

func init() {
	guestBuilds = append(guestBuilds,
		guestBuild{"nethttp", "./tests/testdata/guests/nethttp", true},
		guestBuild{"todo", "./samples/todo", true},
		guestBuild{"deadlock", "./tests/testdata/guests/deadlock", true},
	)
}

// TestNetHTTPHandler serves Go's http.Handler (an http.ServeMux) from a guest through
// wasmhttp.ListenAndServe: patterns and PathValue, queries, cookies, http.Error, streamed
// bodies both ways, Flush, a panic, time.Sleep and context deadlines in handlers, a client
// that leaves, Expect: 100-continue, HEAD and a WebSocket upgrade — on one worker, so that a
// handler that sleeps must not hold the others.
func TestNetHTTPHandler(t *testing.T) {
	nativePort := freePort(t)
	s := startServer(t, serverOpts{Module: "nethttp", Flags: []string{"--env", "NATIVE_PORT=" + strconv.Itoa(nativePort)}})
	c := client(nil)
	if line := "wasmloop: 1 worker (--workers N for more; each has its own memory"; !strings.Contains(s.stderr.String(), line) {
		t.Fatalf("want %q in stderr:\n%s", line, s.stderr)
	}

	t.Run("mux", func(t *testing.T) {
		resp, body := httpGet(t, c, s.URL("/hello/gopher?q=x%20y"))
		if !strings.HasPrefix(string(body), "hello gopher (q=x y, served=") || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.ContentLength != int64(len(body)) {
			t.Fatalf("got %q, Content-Type %q, Content-Length %d", body, resp.Header.Get("Content-Type"), resp.ContentLength)
		}
		resp, err := c.Get(s.URL("/nothing"))
		if err != nil || resp.StatusCode != 404 {
			t.Fatalf("unknown path: %v %v", resp, err)
		}
		resp.Body.Close()
		resp, err = c.Post(s.URL("/hello/x"), "text/plain", strings.NewReader("x"))
		if err != nil || resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
			t.Fatalf("wrong method: %v %v", resp, err)
		}
		resp.Body.Close()
		// The body's framing as net/http's server gives it: none for a GET, a length, chunks.
		if _, body := httpGet(t, c, s.URL("/framing")); string(body) != `0 [] true` {
			t.Errorf("a GET's framing: %s, want no body (0 [] true)", body)
		}
		if got := string(postBytes(t, c, s.URL("/framing"), []byte("abc"), false)); got != `3 [] false` {
			t.Errorf("a POST of 3 bytes: %s", got)
		}
		if got := string(postBytes(t, c, s.URL("/framing"), []byte("abc"), true)); got != `-1 ["chunked"] false` {
			t.Errorf("a chunked POST: %s", got)
		}
	})

	t.Run("upload", func(t *testing.T) {
		data := make([]byte, 20<<20)
		rand.Read(data)
		sum := sha256.Sum256(data)
		want := fmt.Sprintf("%d %s", len(data), hex.EncodeToString(sum[:]))
		for _, chunked := range []bool{false, true} {
			if got := string(postBytes(t, c, s.URL("/sum"), data, chunked)); got != want {
				t.Fatalf("chunked=%v: got %q, want %q", chunked, got, want)
			}
		}
	})

	t.Run("echo", func(t *testing.T) {
		data := make([]byte, 8<<20)
		rand.Read(data)
		pr, pw := io.Pipe()
		go func() {
			for off := 0; off < len(data); off += 100 << 10 {
				if _, err := pw.Write(data[off:min(off+100<<10, len(data))]); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", s.URL("/echo"), pr)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, data) || resp.Header.Get("Transfer-Encoding") != "" && resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("echo: %v, %d bytes back of %d, equal %v", err, len(got), len(data), bytes.Equal(got, data))
		}
	})

	t.Run("big", func(t *testing.T) {
		const n = 32 << 20
		resp, err := c.Get(s.URL("/big?n=" + strconv.Itoa(n)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ContentLength != n {
			t.Fatalf("Content-Length %d", resp.ContentLength)
		}
		// Read slowly at first: the handler's writes must wait for the client, not pile up.
		br := bufio.NewReaderSize(resp.Body, 64<<10)
		total := 0
		for {
			b, err := br.ReadByte()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := byte((total % (32 << 10)) % 251); b != want {
				t.Fatalf("byte %d is %d, want %d", total, b, want)
			}
			total++
		}
		if total != n {
			t.Fatalf("%d bytes, want %d", total, n)
		}
	})

	t.Run("flush", func(t *testing.T) {
		resp, err := c.Get(s.URL("/flush"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); line != "first\n" {
			t.Fatalf("before the release: %q %v", line, err)
		}
		if _, body := httpGet(t, c, s.URL("/release")); string(body) != "released\n" {
			t.Fatalf("release: %q", body)
		}
		if rest, err := io.ReadAll(br); string(rest) != "second\n" || err != nil {
			t.Fatalf("after the release: %q %v", rest, err)
		}
	})

	t.Run("sleep", func(t *testing.T) {
		slept := make(chan string, 1)
		go func() {
			resp, err := c.Get(s.URL("/sleep?ms=400"))
			if err != nil {
				slept <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			slept <- string(b)
		}()
		// While one handler sleeps, the worker serves others.
		for i := range 5 {
			if _, body := httpGet(t, c, s.URL("/hello/x")); !strings.HasPrefix(string(body), "hello x") {
				t.Fatalf("request %d during the sleep: %q", i, body)
			}
			select {
			case got := <-slept:
				t.Fatalf("the sleep ended (%q) before the requests made during it", got)
			default:
			}
		}
		select {
		case got := <-slept:
			ms, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(got, "slept "), " ms"))
			if err != nil || ms < 400 || ms > 2000 {
				t.Fatalf("sleep answered %q", got)
			}
		case <-time.After(ioTimeout):
			t.Fatal("the sleeping handler never answered: its Go timer did not wake the guest")
		}
		if _, body := httpGet(t, c, s.URL("/timeout")); string(body) != "timer fired" {
			t.Fatalf("time.After: %q", body)
		}
	})

	t.Run("late", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(nativePort)+"/late", nil)
		req.Header.Set("X-Sleep-Ms", "50")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "late answer\n" {
			t.Fatalf("a goroutine's answer after the handler returned: %q", body)
		}
	})

	t.Run("forgotten response", func(t *testing.T) {
		reported := s.stderr.appears("wasmloop: GET /forgot: the handler returned without ending the response, and nothing that could end it is pending")
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(nativePort), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /forgot HTTP/1.1\r\nHost: x\r\n\r\n")
		select {
		case <-reported:
		case <-time.After(ioTimeout):
			t.Fatalf("a response left with nothing pending was not reported\nstderr:\n%s", s.stderr)
		}
		// An answer that is on its way is not reported: /late answers from a goroutine.
		if strings.Contains(s.stderr.String(), "GET /late") {
			t.Fatalf("a response a goroutine will end was reported:\n%s", s.stderr)
		}
	})

	t.Run("client leaves", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL("/wait"), nil)
		logged := s.stdout.appears("wait: context done: context canceled\n")
		resp, err := client(&http.Transport{DisableKeepAlives: true}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		resp.Body.Close()
		select {
		case <-logged:
		case <-time.After(ioTimeout):
			t.Fatalf("the handler's context was not cancelled when the client left\nstdout:\n%s", s.stdout)
		}
	})

	t.Run("cookies", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		cc := &http.Client{Jar: jar, Timeout: ioTimeout}
		for i := 1; i <= 2; i++ {
			resp, err := cc.Get(s.URL("/cookie"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "visit " + strconv.Itoa(i); string(body) != want {
				t.Fatalf("got %q, want %q", body, want)
			}
		}
	})

	t.Run("panic", func(t *testing.T) {
		_, before := httpGet(t, c, s.URL("/hello/a"))
		resp, err := c.Get(s.URL("/panic"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 500 {
			t.Fatalf("a panicking handler: status %d", resp.StatusCode)
		}
		_, after := httpGet(t, c, s.URL("/hello/a"))
		count := func(b []byte) int {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.SplitAfter(string(b), "served=")[1], ")\n"))
			return n
		}
		if count(after) != count(before)+1 {
			t.Fatalf("the instance was replaced after a handler's panic: %q then %q", before, after)
		}
		if !strings.Contains(s.stderr.String()+s.stdout.String(), "http: panic serving GET /panic: handler panicked on purpose") {
			t.Fatalf("the panic was not logged")
		}
	})

	t.Run("expect 100-continue", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", s.Addr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(ioTimeout))
		fmt.Fprintf(conn, "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(conn)
		line, _ := br.ReadString('\n')
		if line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("got %q before sending the body", line)
		}
		br.ReadString('\n')
		io.WriteString(conn, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if sum := sha256.Sum256([]byte("hello")); string(body) != "5 "+hex.EncodeToString(sum[:]) {
			t.Fatalf("got %q", body)
		}
	})

	t.Run("head", func(t *testing.T) {
		resp, err := c.Head(s.URL("/hello/h"))
		if err != nil || resp.StatusCode != 200 || resp.ContentLength <= 0 {
			t.Fatalf("HEAD: %v %v", resp, err)
		}
		resp.Body.Close()
	})

	t.Run("websocket", func(t *testing.T) {
		conn, _ := wsDial(t, "ws://"+s.Addr+"/ws", nil)
		if err := wsutil.WriteClientText(conn, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		msg, err := wsutil.ReadServerText(conn)
		if err != nil || string(msg) != "echo: hi" {
			t.Fatalf("got %q %v", msg, err)
		}
		resp, err := c.Get(s.URL("/ws"))
		if err != nil || resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("a plain GET of /ws: %v %v", resp, err)
		}
		resp.Body.Close()
	})
}

// TestNetHTTPClientInHandler: a handler calls http.Client.Get (over wasmhttp.Transport) as Go
// code does, blocking its own goroutine while the worker goes on.
func TestNetHTTPClientInHandler(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from upstream "+r.URL.Path)
	}))
	defer up.Close()
	addr := strings.TrimPrefix(up.URL, "http://")
	s := startServer(t, serverOpts{Module: "nethttp", Flags: []string{"--allow-connect", addr}})
	resp, body := httpGet(t, client(nil), s.URL("/fetch?url="+url.QueryEscape(up.URL+"/x")))
	if resp.StatusCode != 200 || string(body) != "from upstream /x" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	resp, body = httpGet(t, client(nil), s.URL("/fetch?url="+url.QueryEscape("http://127.0.0.1:1/")))
	if resp.StatusCode != 502 || !strings.Contains(string(body), "not granted; add --allow-connect 127.0.0.1:1") {
		t.Fatalf("an ungranted fetch: %d %q", resp.StatusCode, body)
	}
}

// A POST through wasmhttp.Transport whose server answers before reading the body: the
// transport stops sending and closes the request body, as a RoundTripper must (its sending
// goroutine waited for a drain that an answered fetch never has, for ever, with the body
// open).
func TestNetHTTPClientPostAnsweredEarlyClosesTheBody(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge) // without reading the body
	}))
	defer up.Close()
	s := startServer(t, serverOpts{Module: "nethttp", Flags: []string{"--allow-connect", strings.TrimPrefix(up.URL, "http://")}})
	_, body := httpGet(t, client(nil), s.URL("/postearly?url="+url.QueryEscape(up.URL+"/upload")))
	if !strings.HasSuffix(string(body), " closed") || strings.Contains(string(body), "not closed") {
		t.Fatalf("got %q, want the body closed", body)
	}
}

// TestTodoSample drives samples/todo, a JSON REST API on http.ServeMux, with two workers:
// every request sees the same list, whichever worker the kernel hands the connection to.
func TestTodoSample(t *testing.T) {
	s := startServer(t, serverOpts{Module: "todo", Workers: 2})
	// run says at once that the workers do not share memory (README, "Workers and state").
	if line := `wasmloop: 2 workers; each has its own memory — state one keeps is not seen by the others`; strings.Count(s.stderr.String(), line) != 1 {
		t.Fatalf("want the workers line once in stderr:\n%s", s.stderr)
	}
	type todo struct {
		ID    int    `json:"id"`
		Title string `json:"title"`
		Done  bool   `json:"done"`
	}
	do := func(method, path, body string, wantStatus int, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL(path), strings.NewReader(body))
		// A new connection per request, so both workers would get some if both listened.
		resp, err := client(&http.Transport{DisableKeepAlives: true}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d (%q), want %d", method, path, resp.StatusCode, b, wantStatus)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %q: %v", method, path, b, err)
			}
		}
	}
	for i := range 10 {
		var got todo
		do("POST", "/todos", `{"title":"task `+strconv.Itoa(i)+`"}`, 201, &got)
		if got.ID != i+1 {
			t.Fatalf("item %d got id %d", i, got.ID)
		}
	}
	for range 10 {
		var list []todo
		do("GET", "/todos", "", 200, &list)
		if len(list) != 10 || list[9].Title != "task 9" {
			t.Fatalf("the list differs between requests: %+v", list)
		}
	}
	var one todo
	do("PATCH", "/todos/3", `{"done":true}`, 200, &one)
	if !one.Done || one.Title != "task 2" {
		t.Fatalf("PATCH: %+v", one)
	}
	var done []todo
	do("GET", "/todos?done=true", "", 200, &done)
	if len(done) != 1 || done[0].ID != 3 {
		t.Fatalf("done=true: %+v", done)
	}
	do("DELETE", "/todos/3", "", 204, nil)
	do("GET", "/todos/3", "", 404, nil)
	do("GET", "/todos/x", "", 400, nil)
	do("POST", "/todos", `{"title":`, 400, nil)
	do("GET", "/todos?done=maybe", "", 400, nil)
	do("PUT", "/todos/1", "", 405, nil)
}

// TestBlockingMainExplained: a main written as an ordinary Go server (net/http's
// ListenAndServe, select {}) blocks for ever, which the Go runtime reports as "all goroutines
// are asleep - deadlock!" and the start fails (exit 1); the host says what to do instead.
func TestBlockingMainExplained(t *testing.T) {
	for _, mode := range []string{"listen", "select"} {
		t.Run(mode, func(t *testing.T) {
			r := runWasmloop(t, "", startTimeout, "run", "--cache-dir", cacheDir, "--workers", "1", "--env", "MODE="+mode, wasm["deadlock"])
			if r.code != 1 || !strings.Contains(r.stderr, "all goroutines are asleep - deadlock!") ||
				!strings.Contains(r.stderr, "main must return, since the host runs the event loop after it — serve with wasmloop.CreateServer(...).Listen or wasmhttp.ListenAndServe, not http.ListenAndServe") {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
		})
	}
	t.Run("handler", func(t *testing.T) {
		s := startServer(t, serverOpts{Module: "deadlock", Flags: []string{"--env", "MODE=handler"}})
		hinted := s.stderr.appears("main must return, since the host runs the event loop after it")
		resp, err := client(nil).Get(s.URL("/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 500 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		select {
		case <-hinted:
		case <-time.After(ioTimeout):
			t.Fatalf("no hint after a handler's deadlock\nstderr:\n%s", s.stderr)
		}
	})
}

// The samples listen where HOST says (127.0.0.1 unless set): with HOST=0.0.0.0, as in a
// container, samples/hello says so and serves on every interface, loopback included.
func TestSampleHost(t *testing.T) {
	port := freePort(t)
	p := startProc(t, nil, "", "run", "--cache-dir", cacheDir, "--workers", "1", "--env", "PORT="+strconv.Itoa(port),
		"--env", "HOST=0.0.0.0", wasm["hello"])
	p.awaitStdout(t, "Server running at http://0.0.0.0:"+strconv.Itoa(port)+"/\n", startTimeout)
	if _, body := httpGet(t, client(nil), "http://127.0.0.1:"+strconv.Itoa(port)+"/"); string(body) != "Hello World\n" {
		t.Fatalf("got %q", body)
	}
}
