package host_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wasmloop/wasmloop/host"
)

// mounted starts the guest at path with no port of its own, mounts its Handler at /plugin/
// of a net/http test server on loopback, and returns that server's URL.
func mounted(t *testing.T, path string, cfg host.Config) (*host.App, string) {
	t.Helper()
	cfg.NoPorts = true
	cfg.Env = append(cfg.Env, "PORT=0")
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	cfg.Stderr = io.Discard
	app := load(t, path, cfg)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(ctx) })
	mux := http.NewServeMux()
	mux.Handle("/plugin/", http.StripPrefix("/plugin", app.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return app, srv.URL + "/plugin"
}

// A mounted guest serves through the service's own server: spread over the workers, its path
// as the router stripped it, with no port of its own.
func TestHandlerServes(t *testing.T) {
	app, url := mounted(t, whoamiWasm, host.Config{Workers: 2})
	if addrs := app.Addrs(); len(addrs) != 0 {
		t.Errorf("NoPorts, but the program listens on %v", addrs)
	}
	for i := 0; i < 5; i++ { // one after another, on one kept connection
		resp, err := http.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), " of 2, request ") {
			t.Fatalf("GET / = %d %q", resp.StatusCode, body)
		}
	}
	// Requests in flight together are each on a connection of their own, given to the
	// workers in turn: four answered 100 ms later are served by both.
	bodies := make(chan string, 4)
	for range 4 {
		go func() {
			resp, err := http.Get(url + "/later?ms=100")
			if err != nil {
				bodies <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies <- string(b)
		}()
	}
	seen := map[string]bool{}
	for range 4 {
		seen[<-bodies] = true
	}
	if !seen["worker 0 later\n"] || !seen["worker 1 later\n"] {
		t.Errorf("answers of four requests in flight together: %v, want both workers", seen)
	}
	// The request's body, with a length and without one (chunked).
	big := bytes.Repeat([]byte("0123456789abcdef"), 40_000)
	for _, body := range []io.Reader{bytes.NewReader(big), io.MultiReader(bytes.NewReader(big))} {
		resp, err := http.Post(url+"/echo", "application/octet-stream", body)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, big) {
			t.Errorf("POST /echo of %d bytes: %d, %d bytes back", len(big), resp.StatusCode, len(got))
		}
	}
	// The program's limits hold: a body past BodyLimit is answered 413 by the host.
	resp, err := http.Post(url+"/echo", "text/plain", bytes.NewReader(make([]byte, 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of 2 MiB = %d, want 413", resp.StatusCode)
	}
}

// A streamed answer reaches the client piece by piece (the ResponseWriter is flushed), a
// streamed body goes in as the program reads it, and a slow client holds the program back
// without losing a byte.
func TestHandlerStreams(t *testing.T) {
	// MaxOutput of 1 MiB: the guest writes its download until its response says full, in the
	// callback that starts it, before a byte reaches the ResponseWriter; without the high-water
	// signal through the handed-in connection, that burst would pass the cap and be cut.
	_, url := mounted(t, streamWasm, host.Config{Workers: 1, MaxOutput: 1 << 20})
	// /lines writes a line every 100 ms: the first must arrive long before the last is written.
	resp, err := http.Get(url + "/lines")
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(resp.Body)
	start := time.Now()
	first, err := lines.ReadString('\n')
	if err != nil || first != "line 1\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	firstAfter := time.Since(start)
	rest, _ := io.ReadAll(lines)
	resp.Body.Close()
	if !strings.HasSuffix(string(rest), "line 10\n") {
		t.Fatalf("lines: %q", rest)
	}
	if whole := time.Since(start); firstAfter >= whole/2 {
		t.Errorf("the first line came after %v of %v: the answer was not streamed", firstAfter, whole)
	}

	// An upload of unknown length, hashed by the program as it arrives.
	pr, pw := io.Pipe()
	sum := sha256.New()
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 64 { // 4 MiB: past BodyLimit, which a streamed body is not held to
			sum.Write(chunk)
			pw.Write(chunk)
		}
		pw.Close()
	}()
	resp, err = http.Post(url+"/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %s\n", 4<<20, hex.EncodeToString(sum.Sum(nil))); string(got) != want {
		t.Errorf("upload: %q, want %q", got, want)
	}

	// 64 MiB: far more than every buffer on the way holds, so the program must wait for
	// drains (Response.Full/OnDrain) as the client reads, and every byte arrives.
	const size = 64 << 20
	resp, err = http.Get(fmt.Sprintf("%s/download?size=%d", url, size))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != size {
		t.Errorf("download: %d of %d bytes, %v", n, size, err)
	}
}

// A client that leaves closes the request under the program (on_close).
func TestHandlerClientLeaves(t *testing.T) {
	logs, stdout := io.Pipe()
	lines := bufio.NewScanner(logs)
	_, url := mounted(t, greetWasm, host.Config{Workers: 1, Stdout: stdout})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/later?ms=60000", nil)
	failed := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		failed <- err
	}()
	for lines.Scan() && lines.Text() != "request /later" {
	}
	cancel()
	for lines.Scan() && lines.Text() != "closed /later" {
	}
	if lines.Err() != nil {
		t.Fatal(lines.Err())
	}
	if err := <-failed; err == nil {
		t.Error("the cancelled request succeeded")
	}
	go io.Copy(io.Discard, logs)
}

// A WebSocket the program accepts takes the client's connection over (http.Hijacker).
func TestHandlerWebSocket(t *testing.T) {
	_, url := mounted(t, wsechoWasm, host.Config{Workers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, msg := range []string{"hello", strings.Repeat("big ", 100_000)} {
		if err := wsutil.WriteClientText(conn, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		got, err := wsutil.ReadServerText(conn)
		if err != nil || string(got) != msg {
			t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
		}
	}
}

// Before Start and after the program has ended, the Handler answers 503.
func TestHandlerWhileNotRunning(t *testing.T) {
	app := load(t, whoamiWasm, host.Config{Workers: 1, NoPorts: true, Env: []string{"PORT=0"}, Stdout: io.Discard})
	defer app.Close(context.Background())
	h := app.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("before Start: %d, want 503", rec.Code)
	}
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := app.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("after Shutdown: %d, want 503", rec.Code)
	}
}

// Two programs in one process, each with its own workers, mounted side by side and called at
// once.
func TestTwoApps(t *testing.T) {
	_, whoami := mounted(t, whoamiWasm, host.Config{Workers: 2})
	_, greet := mounted(t, greetWasm, host.Config{Workers: 1, Env: []string{"NAME=second"}})
	done := make(chan string, 20)
	for i := range 20 {
		go func() {
			url := whoami + "/"
			if i%2 == 1 {
				url = greet + "/"
			}
			resp, err := http.Get(url)
			if err != nil {
				done <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- string(b)
		}()
	}
	counts := map[string]int{}
	for range 20 {
		got := <-done
		switch {
		case strings.Contains(got, " of 2, request "):
			counts["whoami"]++
		case got == "hello, second\n":
			counts["greet"]++
		default:
			t.Errorf("an answer: %q", got)
		}
	}
	if counts["whoami"] != 10 || counts["greet"] != 10 {
		t.Errorf("answers: %v, want 10 from each program", counts)
	}
}

// Many requests at once, from many goroutines, with and without bodies, straight into the
// Handler (no client socket): every one is answered whole, by the worker it was handed to, and
// none waits for a wake-up that was lost between a loop going to sleep and a request arriving.
func TestHandlerManyAtOnce(t *testing.T) {
	app, _ := mounted(t, whoamiWasm, host.Config{Workers: 2})
	h := app.Handler()
	const goroutines, each = 16, 40
	errs := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			for i := range each {
				body := strings.Repeat(fmt.Sprintf("%d/%d ", g, i), 1+(g*i)%3000)
				req := httptest.NewRequest("POST", "/echo", strings.NewReader(body))
				if i%2 == 0 {
					req = httptest.NewRequest("GET", "/", nil)
					body = ""
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req.WithContext(ctx))
				cancel()
				got := rec.Body.String()
				switch {
				case rec.Code != 200:
					errs <- fmt.Errorf("request %d/%d: %d %q", g, i, rec.Code, got)
					return
				case body != "" && got != body, body == "" && !strings.Contains(got, " of 2, request "):
					errs <- fmt.Errorf("request %d/%d: answered %.60q", g, i, got)
					return
				}
			}
			errs <- nil
		}()
	}
	for range goroutines {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
