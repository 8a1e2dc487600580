package host_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

// startAttack starts the attack guest (startMounted).
func startAttack(t *testing.T, cfg host.Config) *host.App { return startMounted(t, attackWasm, cfg) }

// startMounted starts the guest at path with no port, kept alive, on one worker unless cfg
// says otherwise, its output discarded.
func startMounted(t *testing.T, path string, cfg host.Config) *host.App {
	t.Helper()
	cfg.NoPorts, cfg.KeepAlive = true, true
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	cfg.Env = append(cfg.Env, "PORT=0")
	cfg.Stdout, cfg.Stderr = io.Discard, io.Discard
	app := load(t, path, cfg)
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	return app
}

// serve sends one request straight into h and returns the recorded answer, bounded by 20 s.
func serve(t *testing.T, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(ctx))
	if ctx.Err() != nil {
		t.Fatalf("%s %s: no answer within 20 s", req.Method, req.URL)
	}
	return rec
}

// A request the program saw and closed without an answer must not be handed to it again: a
// POST without a body on a kept connection is not idempotent, and the program counted it
// already. (The Handler retries a request whose kept connection turned out closed; it must
// tell that from a connection the program closed after reading the request.)
func TestAttackAbortedRequestNotRepeated(t *testing.T) {
	app := startAttack(t, host.Config{})
	h := app.Handler()
	// A first request leaves a kept connection in the Handler's pool.
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Code != 200 || rec.Body.String() != "1" {
		t.Fatalf("GET /count = %d %q", rec.Code, rec.Body)
	}
	rec := serve(t, h, httptest.NewRequest("POST", "/abort", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("POST /abort = %d, want 503 (closed without an answer)", rec.Code)
	}
	rec = serve(t, h, httptest.NewRequest("GET", "/stats", nil))
	if got := rec.Body.String(); got != "count=1 abort=1" {
		t.Errorf("after one POST /abort the program saw %q, want count=1 abort=1", got)
	}
}

// A request whose kept connection the program closed while it was idle is still sent again
// on a fresh one (the retry the previous test must not break): Swap makes the old program
// close its idle connections.
func TestAttackIdleClosedConnectionRetried(t *testing.T) {
	app := startAttack(t, host.Config{})
	h := app.Handler()
	for i := range 3 {
		rec := serve(t, h, httptest.NewRequest("GET", "/count", nil))
		if rec.Code != 200 {
			t.Fatalf("GET /count %d = %d %q", i, rec.Code, rec.Body)
		}
		wasm, err := os.ReadFile(attackWasm)
		if err != nil {
			t.Fatal(err)
		}
		if err := app.Swap(context.Background(), wasm); err != nil {
			t.Fatal(err)
		}
	}
	if rec := serve(t, h, httptest.NewRequest("POST", "/count", nil)); rec.Code != 200 || rec.Body.String() != "1" {
		t.Errorf("POST /count after a swap = %d %q, want 200 \"1\" from the new program", rec.Code, rec.Body)
	}
}

// A header value that an embedder's middleware set with a line break in it must not reach
// the program as header lines of its own (or as a second request on the kept connection,
// whose answer the next client would get): net/http's own client refuses such a request.
func TestAttackHeaderInjection(t *testing.T) {
	app := startAttack(t, host.Config{})
	h := app.Handler()
	inject := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-User", r.URL.Query().Get("user")) // from the client, unchecked
		r.URL.RawQuery = ""
		h.ServeHTTP(w, r)
	})
	req := httptest.NewRequest("GET", "/headers?user=ann%0d%0aX-Admin:%20yes", nil)
	rec := serve(t, inject, req)
	if strings.Contains(rec.Body.String(), "X-Admin") {
		t.Errorf("a header value with CRLF became a header of its own: %d %q", rec.Code, rec.Body)
	}
	if rec.Code != http.StatusBadRequest {
		t.Errorf("a request with CRLF in a header value: %d, want 400", rec.Code)
	}
	// And a smuggled second request: the program must not count it.
	req = httptest.NewRequest("GET", "/headers?user=x%0d%0a%0d%0aGET%20/count%20HTTP/1.1%0d%0aHost:%20a", nil)
	serve(t, inject, req)
	if rec := serve(t, h, httptest.NewRequest("GET", "/stats", nil)); rec.Body.String() != "count=0 abort=0" {
		t.Errorf("after the smuggling attempt the program saw %q, want count=0 abort=0", rec.Body)
	}
}

// A program with no server answers the Handler 503 (as documented), every time: never 502
// because the worker happened to close its end before the request was written.
func TestAttackHandlerNoServerIs503(t *testing.T) {
	app := startPlugin(t, host.Config{Workers: 2})
	h := app.Handler()
	statuses := map[int]int{}
	for range 100 {
		statuses[serve(t, h, httptest.NewRequest("GET", "/", nil)).Code]++
	}
	if len(statuses) != 1 || statuses[http.StatusServiceUnavailable] != 100 {
		t.Errorf("statuses of 100 requests to a program with no server: %v, want all 503", statuses)
	}
}

// Close with a call the guest holds and never answers: the call is answered (with an error)
// and Close returns.
func TestAttackCloseAnswersHeldCall(t *testing.T) {
	app := startAttack(t, host.Config{Workers: 2})
	done := make(chan error, 4)
	for w := range 2 {
		go func() {
			_, err := app.CallWorker(context.Background(), w, "hold", nil)
			done <- err
		}()
	}
	// Every call delivered before: a later call on the same worker comes after it.
	for w := range 2 {
		if _, err := app.CallWorker(context.Background(), w, "echo", nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- app.Close(ctx) }()
	bound, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	for range 2 {
		select {
		case err := <-done:
			if err == nil {
				t.Error("a held call returned no error")
			}
		case <-bound.Done():
			t.Fatal("a held call was not answered 20 s after Close")
		}
	}
	select {
	case <-closed:
	case <-bound.Done():
		t.Fatal("Close did not return")
	}
	if _, err := app.Call(context.Background(), "echo", nil); !errors.Is(err, host.ErrNotRunning) {
		t.Errorf("Call after Close = %v, want ErrNotRunning", err)
	}
}

// Start after Close is an error, not a crash, and so are Call, Post and the Handler.
func TestAttackStartAfterClose(t *testing.T) {
	app := load(t, attackWasm, host.Config{Workers: 1, NoPorts: true, KeepAlive: true, Env: []string{"PORT=0"}, Stdout: io.Discard, Stderr: io.Discard})
	ctx := context.Background()
	if err := app.Close(ctx); err != nil {
		t.Fatal(err)
	}
	bound, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := app.Start(bound); err == nil {
		t.Error("Start after Close succeeded")
		app.Close(ctx)
	}
	if bound.Err() != nil {
		t.Error("Start after Close waited for its context")
	}
	if _, err := app.Call(ctx, "echo", nil); err == nil {
		t.Error("Call after Close succeeded")
	}
	if err := app.Post(0, nil); err == nil {
		t.Error("Post after Close succeeded")
	}
	if rec := serve(t, app.Handler(), httptest.NewRequest("GET", "/count", nil)); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("Handler after Close: %d, want 503", rec.Code)
	}
}

// blockingNoop is a sync function "noop" that holds the worker inside the guest's call until
// release is closed (which the documentation forbids, and which is how a test keeps a worker
// busy); entered hears each time it starts.
func blockingNoop(entered chan<- struct{}, release <-chan struct{}) map[string]host.Function {
	fns := pluginFunctions()
	fns["noop"] = host.Function{Sync: func(context.Context, []byte) ([]byte, error) {
		entered <- struct{}{}
		<-release
		return nil, nil
	}}
	return fns
}

// Post's limits hold while the worker is busy: 4096 messages queued, then ELIMIT; and every
// message accepted is delivered once, none lost, none twice.
func TestAttackPostLimitAndDelivery(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var mu sync.Mutex
	got := map[string]int{}
	all := make(chan struct{})
	const limit = 4096
	app := startPlugin(t, host.Config{Workers: 1, Functions: blockingNoop(entered, release),
		OnMessage: func(_ int, data []byte) {
			mu.Lock()
			defer mu.Unlock()
			got[string(data)]++
			if len(got) == limit && got[string(data)] == 1 {
				close(all)
			}
		}})
	callDone := make(chan error, 1)
	go func() {
		_, err := app.Call(context.Background(), "spin", []byte("1"))
		callDone <- err
	}()
	<-entered // the worker is inside the guest's call, and takes no message until it returns
	accepted := 0
	var refused error
	for i := range limit + 10 {
		if err := app.Post(0, []byte(fmt.Sprint(i))); err != nil {
			refused = err
			break
		}
		accepted++
	}
	if accepted != limit || refused == nil || !strings.Contains(refused.Error(), "LIMIT") && !strings.Contains(strings.ToLower(refused.Error()), "limit") {
		t.Errorf("Post to a busy worker: %d accepted, then %v; want %d, then ELIMIT", accepted, refused, limit)
	}
	if err := app.Post(0, make([]byte, 1<<20+1)); err == nil {
		t.Error("a message of 1 MiB + 1 was accepted")
	}
	close(release)
	if err := <-callDone; err != nil {
		t.Fatal(err)
	}
	bound, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-all:
	case <-bound.Done():
		mu.Lock()
		t.Fatalf("%d of %d messages came back", len(got), accepted)
	}
	// Once drained, the worker takes messages again.
	if err := app.Post(0, []byte("after")); err != nil {
		t.Errorf("Post once the queue drained: %v", err)
	}
	if _, err := app.Call(context.Background(), "echo", nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range got {
		if n != 1 {
			t.Errorf("message %q came back %d times", k, n)
		}
	}
}

// An embedder function's error, however it fails — an empty message, a panic, a panic with
// an error, a huge result — reaches the guest as a value; it never traps the instance.
func TestAttackFunctionErrorsAreValues(t *testing.T) {
	fns := pluginFunctions()
	var failing func(context.Context, []byte) ([]byte, error)
	fns["failing"] = host.Function{Sync: func(ctx context.Context, in []byte) ([]byte, error) { return failing(ctx, in) }}
	big := strings.Repeat("0123456789abcdef", 3<<16) // 3 MiB, larger than any guest buffer
	fns["lookup_user"] = host.Function{Sync: func(_ context.Context, in []byte) ([]byte, error) {
		if string(in) == "big" {
			return []byte(big), nil
		}
		return []byte("user-" + string(in)), nil
	}}
	fns["slow_lookup"] = host.Function{Async: func(_ context.Context, in []byte) ([]byte, error) {
		switch {
		case string(in) == "user-panic":
			panic("async went wrong")
		case string(in) == "user-goexit":
			panic(errors.New("an error as a panic"))
		case len(in) == len(big):
			return in, nil
		}
		return nil, errors.New("")
	}}
	app := startPlugin(t, host.Config{Workers: 1, Functions: fns})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		f    func(context.Context, []byte) ([]byte, error)
		want string
	}{
		{"empty error", func(context.Context, []byte) ([]byte, error) { return nil, errors.New("") }, ""},
		{"error and a result", func(context.Context, []byte) ([]byte, error) { return []byte("ignored"), errors.New("both") }, "both"},
		{"panic", func(context.Context, []byte) ([]byte, error) { panic("sync went wrong") }, `host function "failing" panicked`},
		{"nil panic", func(context.Context, []byte) ([]byte, error) { panic(nil) }, `host function "failing" panicked`},
		{"huge error", func(context.Context, []byte) ([]byte, error) { return nil, errors.New(big) }, big},
	} {
		failing = tc.f
		got, err := app.Call(ctx, "hosterr", nil)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: hosterr = %.80q, %v; want %.80q", tc.name, got, err, tc.want)
		}
	}
	var ce *host.CallError
	for _, tc := range []struct{ payload, want string }{
		{"panic", `host function "slow_lookup" panicked`},
		{"goexit", `host function "slow_lookup" panicked`},
		{"empty", ""},
	} {
		if _, err := app.Call(ctx, "render", []byte(tc.payload)); !errors.As(err, &ce) || ce.Message != tc.want {
			t.Errorf("render(%s) = %v, want a CallError %q", tc.payload, err, tc.want)
		}
	}
	want := "big: " + big + " / " + big
	if got, err := app.Call(ctx, "render", []byte("big")); err != nil || string(got) != want {
		t.Errorf("render(big) = %d bytes, %v; want %d", len(got), err, len(want))
	}
}

// A call in progress at a graceful Shutdown is answered, as a request in progress is: the
// guest answers it from a timer 300 ms later, well within the shutdown timeout.
func TestAttackShutdownAnswersCallInProgress(t *testing.T) {
	logs, stdout := io.Pipe()
	lines := bufio.NewScanner(logs)
	app := startPlugin(t, host.Config{Workers: 1, Stdout: stdout})
	done := make(chan error, 1)
	go func() {
		got, err := app.Call(context.Background(), "after", []byte("300"))
		if err == nil && string(got) != "300" {
			err = fmt.Errorf("answered %q", got)
		}
		done <- err
	}()
	for lines.Scan() && lines.Text() != "armed 300" { // the guest has the call
	}
	go io.Copy(io.Discard, logs)
	if err := app.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("the call in progress at Shutdown: %v, want its answer", err)
	}
}

// Swap fails no request: requests handed in one after another on the Handler's kept
// connections, while the program is swapped again and again, are all answered 200 — even the
// one that went onto a kept connection just as the old program closed it.
func TestAttackSwapFailsNoHandedInRequest(t *testing.T) {
	app := startAttack(t, host.Config{})
	h := app.Handler()
	wasm, err := os.ReadFile(attackWasm)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	failures := make(chan string, 4)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Code != 200 {
					failures <- fmt.Sprintf("request %d: %d %q", i, rec.Code, rec.Body)
					return
				}
			}
		}()
	}
	for range 8 {
		if err := app.Swap(context.Background(), wasm); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("during swaps, %s", f)
	}
}

// Close with requests and calls in flight from many goroutines, on one of two Apps: every
// one returns (answered, or refused with 503 or an error), Close returns, the other App goes
// on serving, and once both are closed no goroutine of theirs is left.
func TestAttackCloseUnderLoad(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := host.Config{Workers: 2, NoPorts: true, KeepAlive: true, Env: []string{"PORT=0"}, Stdout: io.Discard, Stderr: io.Discard}
	victim, other := load(t, attackWasm, cfg), load(t, attackWasm, cfg)
	ctx := context.Background()
	for _, app := range []*host.App{victim, other} {
		if err := app.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h := victim.Handler()
	started := make(chan struct{}, 16)
	results := make(chan string, 16)
	for g := range 16 {
		go func() {
			for i := range 1000 {
				if i == 5 {
					started <- struct{}{}
				}
				var status string
				switch g % 4 {
				case 0:
					rec := serve(t, h, httptest.NewRequest("GET", "/count", nil))
					status = fmt.Sprint(rec.Code)
					if rec.Code != 200 && rec.Code != http.StatusServiceUnavailable {
						results <- fmt.Sprintf("GET /count: %d %q", rec.Code, rec.Body)
						return
					}
				case 1:
					rec := serve(t, h, httptest.NewRequest("POST", "/count", strings.NewReader("some body")))
					status = fmt.Sprint(rec.Code)
					if rec.Code != 200 && rec.Code != http.StatusServiceUnavailable {
						results <- fmt.Sprintf("POST /count: %d %q", rec.Code, rec.Body)
						return
					}
				case 2:
					got, err := victim.Call(ctx, "echo", []byte("x"))
					if err == nil && string(got) != "x" {
						results <- fmt.Sprintf("echo answered %q", got)
						return
					}
					status = fmt.Sprint(err)
				case 3:
					cctx, cancel := context.WithCancel(ctx)
					_, err := victim.Call(cctx, "echo", []byte("y"))
					cancel()
					status = fmt.Sprint(err)
				}
				if errors.Is(victim.Post(0, nil), host.ErrNotRunning) && status != "200" && status != "<nil>" {
					results <- "" // the program has ended, and this goroutine's last answer said so
					return
				}
			}
			results <- ""
		}()
	}
	for range 16 {
		<-started
	}
	closeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := victim.Close(closeCtx); err != nil {
		t.Errorf("Close under load: %v", err)
	}
	if closeCtx.Err() != nil {
		t.Error("Close under load had to stop the program (the graceful shutdown took 20 s)")
	}
	for range 16 {
		if r := <-results; r != "" {
			t.Error(r)
		}
	}
	if got, err := other.Call(ctx, "echo", []byte("still")); err != nil || string(got) != "still" {
		t.Errorf("the other App after the first closed: %q, %v", got, err)
	}
	if err := other.Close(ctx); err != nil {
		t.Fatal(err)
	}
	settleGoroutines(t, before, 0)
}

// A call whose name is larger than the guest's inbox is refused with an error, at once, and
// the worker goes on taking calls.
func TestAttackCallNameTooLong(t *testing.T) {
	app := startAttack(t, host.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := app.Call(ctx, strings.Repeat("n", 1<<17), nil); err == nil || ctx.Err() != nil {
		t.Errorf("a call with a 128 KiB name: %v", err)
	}
	if got, err := app.Call(ctx, "echo", []byte("ok")); err != nil || string(got) != "ok" {
		t.Errorf("echo after it = %q, %v", got, err)
	}
}

// An OnMessage that panics (an embedder's bug, as a panicking Function is) must not take the
// process down, nor trap the guest that posted: the instance, with its state, goes on, and
// so does the next message.
func TestAttackOnMessagePanics(t *testing.T) {
	got := make(chan string, 2)
	app := startAttack(t, host.Config{OnMessage: func(_ int, data []byte) {
		if string(data) == "echo:boom" {
			panic("OnMessage went wrong")
		}
		got <- string(data)
	}})
	h := app.Handler()
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Body.String() != "1" {
		t.Fatalf("GET /count = %d %q", rec.Code, rec.Body)
	}
	if err := app.Post(0, []byte("boom")); err != nil {
		t.Fatal(err)
	}
	if err := app.Post(0, []byte("fine")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "echo:fine" {
		t.Errorf("the message after the panic: %q", m)
	}
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Body.String() != "2" {
		t.Errorf("GET /count after OnMessage panicked = %d %q, want \"2\" from the same instance (the guest was trapped, and replaced, for the embedder's panic)", rec.Code, rec.Body)
	}
}

// Start and Close at once: both return, and whichever won, the App ends up closed — no
// program left running on a released runtime, no panic.
func TestAttackStartRacesClose(t *testing.T) {
	cfg := host.Config{Workers: 2, NoPorts: true, KeepAlive: true, Env: []string{"PORT=0"}, Stdout: io.Discard, Stderr: io.Discard}
	for i := range 6 {
		app := load(t, attackWasm, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		startErr, closeErr := make(chan error, 1), make(chan error, 1)
		go func() { startErr <- app.Start(ctx) }()
		go func() { closeErr <- app.Close(ctx) }()
		serr, cerr := <-startErr, <-closeErr
		if ctx.Err() != nil {
			cancel()
			t.Fatalf("round %d: Start and Close took 20 s", i)
		}
		if serr == nil {
			// Start succeeded: the program it started either runs still or was shut down by
			// Close, gracefully (status 0) — it must not have died of a runtime Close
			// released under it.
			if _, err := app.Call(ctx, "echo", nil); err != nil {
				if code, err := app.Wait(); code != 0 || err != nil {
					t.Errorf("round %d: Start succeeded beside Close (%v), then the program ended with %d, %v", i, cerr, code, err)
				}
			}
		}
		if err := app.Close(ctx); err != nil {
			t.Errorf("round %d: the second Close: %v", i, err)
		}
		if _, err := app.Call(ctx, "echo", nil); !errors.Is(err, host.ErrNotRunning) {
			t.Errorf("round %d: after Close, Call = %v", i, err)
		}
		cancel()
	}
}
