package host_test

// More attacks on the embedding API (helper session; embed_attack_test.go already existed, so
// these live in a file of their own). Every test is TestEmbedAttack…; run with
//
//	go test -race -count=1 ./host -run EmbedAttack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// within runs f and fails the test if it has not returned after d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: did not return within %v", what, d)
	}
}

// mountedServer serves app.Handler() on 127.0.0.1, and reports each request's entry and return.
func mountedServer(t *testing.T, app *host.App) (srv *httptest.Server, entered, returned chan string) {
	t.Helper()
	entered, returned = make(chan string, 64), make(chan string, 64)
	h := app.Handler()
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r.URL.Path
		defer func() { returned <- r.URL.Path }()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv, entered, returned
}

func recv(t *testing.T, c chan string, d time.Duration, what string) string {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		return ""
	}
}

// A client that sends a request head and part of its body, then stalls with its connection
// open: the program's BodyTimeout answers 408 and the Handler must then return, as the
// program's own port would close the connection. It must not stay in ServeHTTP (holding the
// client's connection and a goroutine) for as long as the client cares to keep it open.
func TestEmbedAttackStalledBodyHandlerReturnsAfterBodyTimeout(t *testing.T) {
	app := startMounted(t, attackWasm, host.Config{BodyTimeout: 300 * time.Millisecond})
	srv, entered, returned := mountedServer(t, app)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	recv(t, entered, 5*time.Second, "request entering ServeHTTP")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	recv(t, returned, 5*time.Second, "ServeHTTP after the 408 (the client still holds its connection)")
}

// Close while a Handler request's body is still arriving (the client stalled, its connection
// open): the request is answered and ServeHTTP returns, as for any request in flight.
func TestEmbedAttackCloseAnswersHandlerRequestWithStalledBody(t *testing.T) {
	app := startMounted(t, attackWasm, host.Config{})
	srv, entered, returned := mountedServer(t, app)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	recv(t, entered, 5*time.Second, "request entering ServeHTTP")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	within(t, 10*time.Second, "Close", func() { app.Close(ctx) })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("client after Close: %v (want an answer or the connection closed)", err)
	}
	recv(t, returned, 5*time.Second, "ServeHTTP after Close (the client still holds its connection)")
}

// A Sync function's result larger than the guest's memory: the call returns (an error is
// fine), and the program goes on answering.
func TestEmbedAttackHugeSyncResultDoesNotHangOrKill(t *testing.T) {
	fns := pluginFunctions()
	fns["optional_fn"] = host.Function{Sync: func(context.Context, []byte) ([]byte, error) {
		return make([]byte, 96<<20), nil
	}}
	app := startPlugin(t, host.Config{Workers: 1, MemoryLimit: 64 << 20, Functions: fns, Stderr: io.Discard})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := app.Call(ctx, "probe", nil)
	t.Logf("probe with a 96 MiB result under a 64 MiB limit: %d bytes, %v", len(res), err)
	if ctx.Err() != nil {
		t.Fatal("the call did not return")
	}
	if err == nil && len(res) != 96<<20 {
		t.Errorf("no error, but %d bytes", len(res))
	}
	if got, err := app.Call(ctx, "echo", []byte("after")); err != nil || string(got) != "after" {
		t.Fatalf("next call = %q, %v", got, err)
	}
}

// A Sync function returning nil, nil: the guest gets an empty result, not "absent" and not a
// trap.
func TestEmbedAttackNilSyncResultIsEmpty(t *testing.T) {
	fns := pluginFunctions()
	fns["optional_fn"] = host.Function{Sync: func(context.Context, []byte) ([]byte, error) { return nil, nil }}
	app := startPlugin(t, host.Config{Workers: 1, Functions: fns})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := app.Call(ctx, "probe", nil)
	if err != nil || len(res) != 0 {
		t.Fatalf("probe = %q, %v; want empty, nil", res, err)
	}
}

// An Async function that ignores its ctx and blocks past Close: Close returns (bounded by its
// ctx), the Call waiting on it returns, and once the function finally returns nothing is
// left behind.
func TestEmbedAttackAsyncBlockingPastCloseDoesNotHoldClose(t *testing.T) {
	base := runtime.NumGoroutine()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	fns := pluginFunctions()
	fns["blocker"] = host.Function{Async: func(context.Context, []byte) ([]byte, error) {
		entered <- struct{}{}
		<-release // ignores ctx
		return []byte("late"), nil
	}}
	app := load(t, pluginWasm, host.Config{Workers: 1, KeepAlive: true, Functions: fns, Stdout: io.Discard, Stderr: io.Discard})
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	callDone := make(chan error, 1)
	go func() {
		_, err := app.Call(context.Background(), "async", []byte("blocker"))
		callDone <- err
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the async function was not called")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	within(t, 10*time.Second, "Close with an async function blocked", func() { app.Close(ctx) })
	select {
	case err := <-callDone:
		if err == nil {
			t.Error("the call answered with no error after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Call did not return after Close")
	}
	close(release)
	settleGoroutines(t, base, 3)
}

// CallWorker and Post with a worker out of range are errors, at once; never a panic.
func TestEmbedAttackWorkerOutOfRange(t *testing.T) {
	app := startMounted(t, attackWasm, host.Config{Workers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, w := range []int{2, 3, -2, -1000, math.MaxInt32, math.MaxInt32 + 1, math.MaxInt, math.MinInt} {
		within(t, 5*time.Second, fmt.Sprintf("CallWorker(%d)", w), func() {
			if _, err := app.CallWorker(ctx, w, "echo", nil); err == nil {
				t.Errorf("CallWorker(%d) succeeded", w)
			}
		})
		if err := app.Post(w, []byte("x")); err == nil {
			t.Errorf("Post(%d) succeeded", w)
		}
	}
	for w := -1; w < 2; w++ {
		if got, err := app.CallWorker(ctx, w, "echo", []byte("ok")); err != nil || string(got) != "ok" {
			t.Errorf("CallWorker(%d) = %q, %v", w, got, err)
		}
	}
}

// Calls with a context already cancelled, from many goroutines: each returns at once (its
// answer or ctx's error), the guest's held calls are withdrawn, nothing is left behind, and the
// program still answers.
func TestEmbedAttackCancelledContextCalls(t *testing.T) {
	app := startMounted(t, attackWasm, host.Config{Workers: 2})
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "echo"
			if i%2 == 0 {
				name = "hold"
			}
			res, err := app.Call(ctx, name, []byte("p"))
			switch {
			case errors.Is(err, context.Canceled):
			case err == nil && name == "echo" && string(res) == "p":
			default:
				t.Errorf("Call(%s) with a cancelled ctx = %q, %v", name, res, err)
			}
		}()
	}
	within(t, 20*time.Second, "400 calls with a cancelled ctx", wg.Wait)
	settleGoroutines(t, base, 2)
	bound, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	if got, err := app.Call(bound, "echo", []byte("after")); err != nil || string(got) != "after" {
		t.Fatalf("Call after = %q, %v", got, err)
	}
}

// Shutdown with a ctx already ended stops the program at once and returns; then Call, Post,
// Addrs and the Handler say it is not running, and Start starts it again.
func TestEmbedAttackShutdownWithEndedContext(t *testing.T) {
	app := load(t, attackWasm, host.Config{Workers: 2, NoPorts: true, KeepAlive: true,
		Env: []string{"PORT=0"}, Stdout: io.Discard, Stderr: io.Discard})
	defer app.Close(context.Background())
	if a := app.Addrs(); len(a) != 0 {
		t.Errorf("Addrs before Start = %v", a)
	}
	if err := app.Shutdown(context.Background()); !errors.Is(err, host.ErrNotRunning) {
		t.Errorf("Shutdown before Start = %v, want ErrNotRunning", err)
	}
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() { _, err := app.Call(context.Background(), "hold", nil); held <- err }()
	// the held call delivered before the shutdown: a later call on the same worker comes after
	bound, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	for w := range 2 {
		if _, err := app.CallWorker(bound, w, "echo", nil); err != nil {
			t.Fatal(err)
		}
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	within(t, 10*time.Second, "Shutdown with an ended ctx", func() {
		if err := app.Shutdown(ended); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown = %v", err)
		}
	})
	select {
	case err := <-held:
		if err == nil {
			t.Error("held call answered without error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held call did not return after Shutdown")
	}
	if _, err := app.Call(bound, "echo", nil); !errors.Is(err, host.ErrNotRunning) {
		t.Errorf("Call after Shutdown = %v, want ErrNotRunning", err)
	}
	if err := app.Post(0, nil); !errors.Is(err, host.ErrNotRunning) {
		t.Errorf("Post after Shutdown = %v, want ErrNotRunning", err)
	}
	if rec := serve(t, app.Handler(), httptest.NewRequest("GET", "/count", nil)); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("Handler after Shutdown: %d", rec.Code)
	}
	if err := app.Start(bound); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	if rec := serve(t, app.Handler(), httptest.NewRequest("GET", "/count", nil)); rec.Code != 200 || rec.Body.String() != "1" {
		t.Errorf("Handler after a restart: %d %q", rec.Code, rec.Body)
	}
}

// Post to a program with no OnMessage: an error or a dropped message, never a trap; the
// program's state (its count) survives.
func TestEmbedAttackPostWithoutOnMessage(t *testing.T) {
	app := startMounted(t, attack2Wasm, host.Config{})
	h := app.Handler()
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Body.String() != "1" {
		t.Fatalf("first /count: %d %q", rec.Code, rec.Body)
	}
	for i := range 100 {
		if err := app.Post(0, []byte("hello")); err != nil && i == 0 {
			t.Logf("Post to a program without OnMessage: %v", err)
		}
	}
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Body.String() != "2" {
		t.Fatalf("/count after posts: %d %q (the instance was replaced?)", rec.Code, rec.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	app.Close(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close after posts to a program without OnMessage took %v (its graceful shutdown waited)", d)
	}
}

// A Handler request the old program holds when the App is Swapped: once SwapDrainTimeout
// passes it is answered (503) and ServeHTTP returns; the next request goes to the new program.
func TestEmbedAttackSwapAnswersHeldHandlerRequest(t *testing.T) {
	app := startMounted(t, attackWasm, host.Config{SwapDrainTimeout: 300 * time.Millisecond})
	srv, entered, returned := mountedServer(t, app)
	h := app.Handler()
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Body.String() != "1" {
		t.Fatalf("/count: %q", rec.Body)
	}
	status := make(chan int, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/hold")
		if err != nil {
			status <- -1
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	recv(t, entered, 5*time.Second, "/hold entering")
	// the held request delivered: a later request on the same worker comes after it
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Body.String() != "2" {
		t.Fatalf("/count: %q", rec.Body)
	}
	wasm, _ := os.ReadFile(attackWasm)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Swap(ctx, wasm); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-status:
		if s < 500 {
			t.Errorf("held request after the swap's drain: %d, want 5xx", s)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("held request not answered after the swap's drain")
	}
	recv(t, returned, 5*time.Second, "ServeHTTP of the held request")
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Body.String() != "1" {
		t.Errorf("/count on the new program: %d %q, want 1", rec.Code, rec.Body)
	}
}

// Many Apps in one process, started, used through Handler and Call from many goroutines, and
// closed at once while in use: every call returns, and no goroutine is left.
func TestEmbedAttackManyAppsCloseUnderLoadNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	var apps []*host.App
	for range 4 {
		apps = append(apps, startMounted(t, attackWasm, host.Config{Workers: 2}))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, app := range apps {
		h := app.Handler()
		for g := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					switch (g + i) % 3 {
					case 0:
						app.Call(ctx, "echo", []byte("x"))
					case 1:
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, httptest.NewRequest("POST", "/count", strings.NewReader("body")).WithContext(ctx))
					case 2:
						app.Call(context.Background(), "echo", []byte("y"))
					}
					if ctx.Err() != nil {
						t.Error("an operation took 10 s")
					}
					cancel()
				}
			}()
		}
	}
	// let the load run for a while, then close every App at once under it
	for _, app := range apps {
		bound, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		for range 50 {
			app.Call(bound, "echo", nil)
		}
		cancel()
	}
	var cw sync.WaitGroup
	for _, app := range apps {
		cw.Add(1)
		go func() {
			defer cw.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			app.Close(ctx)
		}()
	}
	within(t, 20*time.Second, "Close of 4 Apps under load", cw.Wait)
	close(stop)
	within(t, 20*time.Second, "the load's goroutines", wg.Wait)
	settleGoroutines(t, base, 3)
}

// A request body past BodyLimit with no length (chunked): 413, ServeHTTP returns, the next
// request is served.
func TestEmbedAttackChunkedBodyPastLimit(t *testing.T) {
	app := startMounted(t, attack2Wasm, host.Config{BodyLimit: 1 << 10})
	srv, _, _ := mountedServer(t, app)
	pr, pw := io.Pipe()
	go func() {
		chunk := strings.Repeat("z", 4096)
		for range 64 {
			if _, err := pw.Write([]byte(chunk)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.URL+"/echo", pr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pr.CloseWithError(errors.New("done"))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/count")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "1" {
		t.Errorf("/count after: %q", b)
	}
}

// What a client sends after an answer that came before its body's end is never read as a
// request of its own: the rest of a body past BodyLimit, sent once the 413 is in, is cut off
// with the connection, not answered 400 as a malformed next request (net/http's server in
// full-duplex mode keeps a connection whose body read was cut).
func TestEmbedAttackBodyRestAfterEarlyAnswerIsNotARequest(t *testing.T) {
	app := startMounted(t, attack2Wasm, host.Config{BodyLimit: 1 << 10})
	srv, _, _ := mountedServer(t, app)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	piece := strings.Repeat("z", 2048)
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(piece), piece)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if !resp.Close {
		t.Errorf("the 413 came before the body's end and does not say Connection: close")
	}
	// The rest of the body, then a request: the connection ends, or (had it been kept) the
	// body's rest must not have been taken for a request.
	fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\nGET /count HTTP/1.1\r\nHost: x\r\n\r\n", len(piece), piece)
	if resp, err := http.ReadResponse(br, nil); err == nil {
		b, _ := io.ReadAll(resp.Body)
		t.Errorf("after the 413 the connection answered again: %d %q", resp.StatusCode, b)
	}
}

// A request body streamed in small pieces through the Handler reaches the program as it
// arrives, as the Handler's documentation says ("the body streamed in as the program reads
// it") and as it does on the program's own port: samples/stream's /echo echoes each piece as
// it comes, so a client that sends "hello" and waits for its echo must get it, not wait for
// 4 KiB more of its own body first.
func TestEmbedAttackSmallStreamedBodyPiecesReachTheProgram(t *testing.T) {
	app := startMounted(t, streamWasm, host.Config{})
	srv, _, _ := mountedServer(t, app)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer head within 5 s of a first piece of the body: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo of the first piece: %q, %v", buf, err)
	}
}
