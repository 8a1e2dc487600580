package host_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// pluginFunctions are the service's functions the plugin guest calls.
func pluginFunctions() map[string]host.Function {
	return map[string]host.Function{
		"lookup_user": {Sync: func(_ context.Context, in []byte) ([]byte, error) {
			return []byte("user-" + string(in)), nil
		}},
		"slow_lookup": {Async: func(ctx context.Context, in []byte) ([]byte, error) {
			select { // an async function may block: this one waits on a timer
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []byte("profile of " + string(in)), nil
		}},
		"failing": {Sync: func(context.Context, []byte) ([]byte, error) {
			return nil, errors.New("the database is down")
		}},
		"echo_sync": {Sync: func(_ context.Context, in []byte) ([]byte, error) {
			return bytes.Clone(in), nil
		}},
		"fail_with": {Sync: func(_ context.Context, in []byte) ([]byte, error) {
			return nil, errors.New(string(in))
		}},
	}
}

func startPlugin(t *testing.T, cfg host.Config) *host.App {
	t.Helper()
	cfg.KeepAlive = true
	if cfg.Functions == nil {
		cfg.Functions = pluginFunctions()
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	app := load(t, pluginWasm, cfg)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(ctx) })
	return app
}

// The service calls the guest, which calls the service's sync and async functions and
// answers from the async one's result; errors cross both ways as values.
func TestCallAndHostFunctions(t *testing.T) {
	app := startPlugin(t, host.Config{Workers: 2})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 50 { // from many goroutines at once, over both workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint(i)
			got, err := app.Call(ctx, "render", []byte(id))
			if want := id + ": user-" + id + " / profile of user-" + id; err != nil || string(got) != want {
				t.Errorf("render(%s) = %q, %v; want %q", id, got, err, want)
			}
		}()
	}
	wg.Wait()
	for w := range 2 {
		got, err := app.CallWorker(ctx, w, "echo", []byte("on worker"))
		if err != nil || string(got) != "on worker" {
			t.Errorf("echo on worker %d = %q, %v", w, got, err)
		}
	}
	if _, err := app.CallWorker(ctx, 2, "echo", nil); err == nil {
		t.Error("a call to worker 2 of 2 succeeded")
	}
	// A payload larger than the guest's 64 KiB inbox comes through whole, and so does the
	// answer.
	big := bytes.Repeat([]byte("0123456789"), 100_000)
	if got, err := app.Call(ctx, "echo", big); err != nil || !bytes.Equal(got, big) {
		t.Errorf("echo of 1 MB: %d bytes, %v", len(got), err)
	}
	var ce *host.CallError
	if _, err := app.Call(ctx, "fail", nil); !errors.As(err, &ce) || ce.Message != "asked to fail" {
		t.Errorf("fail = %v, want a CallError \"asked to fail\"", err)
	}
	if _, err := app.Call(ctx, "nosuch", nil); !errors.As(err, &ce) || !strings.Contains(ce.Message, "no function nosuch") {
		t.Errorf("nosuch = %v, want a CallError naming it", err)
	}
	if got, err := app.Call(ctx, "probe", nil); err != nil || string(got) != "absent" {
		t.Errorf("probe = %q, %v; want \"absent\" (an unknown host function is an error value)", got, err)
	}
	if got, err := app.Call(ctx, "hosterr", nil); err != nil || string(got) != "the database is down" {
		t.Errorf("hosterr = %q, %v; want the host function's error message", got, err)
	}
}

// Goroutines of one guest calling the service's sync functions at once each get their own
// answers, while the guest's collector runs every few calls: the SDK's answer buffer is
// shared, and a copy out of it allocates, which can park the goroutine (a GC assist) and
// run another that calls meanwhile.
func TestSyncCallsFromGoroutinesKeepTheirAnswers(t *testing.T) {
	// 16,000 host calls and ~100 collections in one callback: seconds under -race on a busy
	// machine, past the default budget of 1 s (wall time).
	app := startPlugin(t, host.Config{Workers: 1, CallbackBudget: time.Minute})
	got, err := app.Call(context.Background(), "shared", []byte("16 500"))
	if err != nil || string(got) != "ok" {
		t.Fatalf("shared = %q, %v", got, err)
	}
}

// An async function that ends its goroutine with runtime.Goexit (as t.FailNow does) rather
// than return still answers the guest, with an error, and the program goes on.
func TestAsyncFunctionGoexitAnswers(t *testing.T) {
	fns := pluginFunctions()
	fns["goexit"] = host.Function{Async: func(context.Context, []byte) ([]byte, error) {
		runtime.Goexit()
		return nil, nil
	}}
	app := startPlugin(t, host.Config{Workers: 1, Functions: fns})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := app.Call(ctx, "async", []byte("goexit"))
	if want := `error: host function "goexit" ended without returning (runtime.Goexit)`; err != nil || string(got) != want {
		t.Fatalf("async goexit = %q, %v; want %q", got, err, want)
	}
	if got, err := app.Call(ctx, "async", []byte("slow_lookup")); err != nil || string(got) != "profile of " {
		t.Fatalf("async slow_lookup after it = %q, %v", got, err)
	}
}

// A guest that sleeps in the Go runtime (WASI poll_oneoff, which the host provides itself)
// sleeps, and goes on.
func TestGuestSleeps(t *testing.T) {
	app := startPlugin(t, host.Config{Workers: 1})
	start := time.Now()
	got, err := app.Call(context.Background(), "sleep", nil)
	if err != nil || string(got) != "slept" {
		t.Fatalf("sleep = %q, %v", got, err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("the guest's 20 ms sleep returned after %v", d)
	}
}

// A call the service gives up on is withdrawn: the guest hears of it.
func TestCallWithdrawn(t *testing.T) {
	logs, stdout := io.Pipe()
	lines := bufio.NewScanner(logs)
	app := startPlugin(t, host.Config{Workers: 1, Stdout: stdout})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := app.Call(ctx, "hold", []byte("call 1"))
		done <- err
	}()
	// The guest holds the call until it is withdrawn: cancel once it has it (a cancel before
	// the call is made would return at once, and the guest would never say "cancelled").
	for lines.Scan() && lines.Text() != "holding call 1" {
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the withdrawn call returned %v, want context.Canceled", err)
	}
	for lines.Scan() && lines.Text() != "cancelled call 1" {
	}
	if lines.Err() != nil {
		t.Fatal(lines.Err())
	}
	go io.Copy(io.Discard, logs)
}

// A call that finds its worker asleep runs on the caller's goroutine (a borrowed turn of the
// loop); when the guest arms a timer in it, earlier than the worker's wait would end, the
// worker must wake for it. Here the worker sleeps until an hour-long timer, and a call whose
// answer waits on a 1 ms timer must still be answered.
func TestCallWakesTheWorkerForItsTimer(t *testing.T) {
	logs, stdout := io.Pipe()
	lines := bufio.NewScanner(logs)
	app := startPlugin(t, host.Config{Workers: 1, Stdout: stdout})
	far, cancelFar := context.WithCancel(context.Background())
	farDone := make(chan error, 1)
	go func() {
		_, err := app.Call(far, "after", []byte("3600000"))
		farDone <- err
	}()
	for lines.Scan() && lines.Text() != "armed 3600000" {
	}
	go io.Copy(io.Discard, logs)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		if got, err := app.Call(ctx, "after", []byte("1")); err != nil || string(got) != "1" {
			t.Fatalf("call %d: %q, %v (the worker slept through the call's timer)", i, got, err)
		}
	}
	cancelFar()
	if err := <-farDone; !errors.Is(err, context.Canceled) {
		t.Errorf("the hour-long call returned %v", err)
	}
}

// Calls from many goroutines at once: some find a worker asleep and run on their own
// goroutine, the others are queued for a worker that is busy (or borrowed); every one is
// answered, whether at once or from a timer (under -race: the loop's state is touched by one
// goroutine at a time).
func TestCallsBorrowedAndQueued(t *testing.T) {
	app := startPlugin(t, host.Config{Workers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				name, payload := "echo", fmt.Sprint(g, "-", i)
				if i%3 == 0 {
					name, payload = "after", fmt.Sprint(i%2)
				}
				got, err := app.CallWorker(ctx, (g+i)%3-1, name, []byte(payload))
				if err != nil || string(got) != payload {
					t.Errorf("%s(%s) = %q, %v", name, payload, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// App.Call's ctx bounds the wait for the answer even when the call found its worker asleep
// and borrowed it: here the guest's callback sits in a service function that blocks (which
// the documentation forbids, and which nothing can interrupt), and Call must still return
// when its 200 ms context ends.
func TestCallReturnsWhenItsContextEndsInAHostFunction(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	fns := pluginFunctions()
	fns["noop"] = host.Function{Sync: func(ctx context.Context, in []byte) ([]byte, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil, nil
	}}
	app := startPlugin(t, host.Config{Workers: 1, Functions: fns})
	defer close(release) // before Close: the worker must come back from the function
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := app.Call(ctx, "spin", []byte("1"))
		done <- err
	}()
	bound, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	select {
	case <-entered:
	case <-bound.Done():
		t.Fatal("the call never reached the host function")
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Call returned %v, want its context's error", err)
		}
	case <-bound.Done():
		t.Fatal("Call did not return 10 s after its 200 ms context ended")
	}
}

// The same when the guest's own callback is long (3 s, within a budget raised to 10 s): a
// call with a 100 ms context comes back with the context's error, not with the answer 3 s
// later.
func TestCallReturnsWhenItsContextEndsInALongCallback(t *testing.T) {
	app := startPlugin(t, host.Config{Workers: 1, CallbackBudget: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	got, err := app.Call(ctx, "sleep", []byte("3000"))
	if took := time.Since(began); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call with a 100 ms context returned %q, %v after %v; want its context's error", got, err, took.Round(time.Millisecond))
	}
}

// Messages cross between the service and the guest both ways.
func TestPostBetweenServiceAndGuest(t *testing.T) {
	got := make(chan string, 1)
	app := startPlugin(t, host.Config{Workers: 1, OnMessage: func(worker int, data []byte) {
		got <- fmt.Sprintf("worker %d: %s", worker, data)
	}})
	if err := app.Post(0, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "worker 0: echo:ping" {
		t.Errorf("the guest's message: %q", m)
	}
	if err := app.Post(5, []byte("x")); err == nil {
		t.Error("a post to worker 5 of 1 succeeded")
	}
}

// Config.Functions must set exactly one of Sync and Async.
func TestFunctionsChecked(t *testing.T) {
	for _, fs := range []map[string]host.Function{
		{"both": {Sync: func(context.Context, []byte) ([]byte, error) { return nil, nil }, Async: func(context.Context, []byte) ([]byte, error) { return nil, nil }}},
		{"neither": {}},
	} {
		if _, err := (host.Config{Functions: fs}).WithDefaults(); err == nil {
			t.Errorf("%v accepted", fs)
		}
	}
}

// Calls of a program that is not running fail at once.
func TestCallNotRunning(t *testing.T) {
	app := load(t, pluginWasm, host.Config{Workers: 1})
	defer app.Close(context.Background())
	if _, err := app.Call(context.Background(), "echo", nil); !errors.Is(err, host.ErrNotRunning) {
		t.Errorf("Call before Start = %v, want ErrNotRunning", err)
	}
}

// BenchmarkCall: a round trip of App.Call with a 1 KiB payload the guest echoes.
// With a context that cannot end the guest runs on the calling goroutine; with one that can
// (a request's, a deadline), on a goroutine of its own while the caller watches the context.
func BenchmarkCall(b *testing.B) {
	app := benchPlugin(b)
	payload := bytes.Repeat([]byte("x"), 1024)
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"cancellable", cancellable}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := app.Call(c.ctx, "echo", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHostFunctionSync: one sync host function call from the guest (CallSync of a
// function that returns nothing), measured as 10,000 of them in one App.Call.
func BenchmarkHostFunctionSync(b *testing.B) {
	app := benchPlugin(b)
	ctx := context.Background()
	const per = 10_000
	b.ResetTimer()
	for b.Loop() {
		if _, err := app.Call(ctx, "spin", []byte(fmt.Sprint(per))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/hostcall")
}

func benchPlugin(b *testing.B) *host.App {
	b.Helper()
	fs := pluginFunctions()
	fs["noop"] = host.Function{Sync: func(context.Context, []byte) ([]byte, error) { return nil, nil }}
	wasm, err := os.ReadFile(pluginWasm)
	if err != nil {
		b.Fatal(err)
	}
	app, err := host.Load(context.Background(), wasm, host.Config{Workers: 1, KeepAlive: true, Functions: fs, Stdout: io.Discard, CacheDir: cacheDir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { app.Close(context.Background()) })
	if err := app.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return app
}

// The file functions' results are held in the host only until the guest has them: after 64
// reads of a 256 KiB file at once, nothing is held (loop.HostFunc.Done released each).
func TestFileResultsReleased(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	app := load(t, pluginWasm, host.Config{Workers: 1, KeepAlive: true, Functions: pluginFunctions(), Stdout: io.Discard,
		Dirs: []host.Dir{{HostPath: dir, GuestPath: "/d", ReadOnly: true}}})
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := app.Call(ctx, "readmany", []byte("64 /d/big"))
	if err != nil || string(got) != fmt.Sprint(64*256<<10) {
		t.Fatalf("readmany: %q %v", got, err)
	}
	if err := app.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if host.FileResultsHeld(app) {
		t.Error("file results are still held after every one was delivered")
	}
}

// A fetch belongs to the instance that started it: when the instance is replaced (here, it
// crashes), the fetch is cancelled — the upstream sees its request end — and its result is
// delivered to nobody, not to the successor, which serves on.
func TestFetchEndsWithItsInstance(t *testing.T) {
	arrived, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			io.WriteString(w, "quick")
			return
		}
		arrived <- struct{}{}
		<-r.Context().Done()
		cancelled <- struct{}{}
	}))
	defer up.Close()
	app := startPlugin(t, host.Config{Workers: 1, AllowConnect: []string{strings.TrimPrefix(up.URL, "http://")}})
	ctx := context.Background()
	held := make(chan error, 1)
	go func() { _, err := app.Call(ctx, "fetch", []byte(up.URL+"/hold")); held <- err }()
	<-arrived
	if _, err := app.Call(ctx, "crash", nil); err == nil {
		t.Fatal("the crash call succeeded")
	}
	<-cancelled // the replaced instance's fetch was closed with it
	if err := <-held; err == nil {
		t.Error("the call waiting on the crashed instance's fetch succeeded")
	}
	if got, err := app.Call(ctx, "fetch", []byte(up.URL+"/quick")); err != nil || string(got) != "200 quick" {
		t.Errorf("the successor's fetch: %q %v", got, err)
	}
}
