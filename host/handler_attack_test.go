package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// An attack on the Handler's own answer reader (answer.go) and on the turns a request alone
// borrows from its sleeping worker (Pipe.BorrowAlone). The guest is testdata/attack2.

// spinWatch is the OnMessage of an attack2 App: it hears the guest's "spinning" (a /spin
// callback has begun) and whether that callback runs on a Handler request's own goroutine,
// which is what a borrowed turn is.
type spinWatch struct {
	spinning chan bool // true: the callback runs in a borrowed turn
}

func newSpinWatch() *spinWatch { return &spinWatch{spinning: make(chan bool, 16)} }

func (s *spinWatch) onMessage(_ int, data []byte) {
	if string(data) != "spinning" {
		return
	}
	buf := make([]byte, 64<<10)
	s.spinning <- bytes.Contains(buf[:runtime.Stack(buf, false)], []byte("host.appHandler.ServeHTTP"))
}

// await waits for the guest's "spinning", bounded by 20 s.
func (s *spinWatch) await(t *testing.T) (borrowed bool) {
	t.Helper()
	select {
	case borrowed = <-s.spinning:
		return borrowed
	case <-time.After(20 * time.Second):
		t.Fatal("the guest's /spin callback did not begin within 20 s")
		return false
	}
}

// spinBorrowed hands h a GET /spin?ms=ms and returns once its callback runs in a borrowed
// turn. A worker that was not asleep when the request came serves it on its own thread: such
// a try is let run to its end, and another made, up to 20. Each goes on a kept connection,
// which a GET /count leaves first: a new connection's attachment is queued to the worker's
// thread, and the request written behind it is served there.
func spinBorrowed(t *testing.T, h http.Handler, watch *spinWatch, ms int) <-chan served {
	t.Helper()
	for range 60 { // a loaded machine wakes the worker's thread often: it then serves /spin itself
		serve(t, h, httptest.NewRequest("GET", "/count", nil))
		done := serveBounded(httptest.NewRequest("GET", "/spin?ms="+strconv.Itoa(ms), nil), h)
		if watch.await(t) {
			return done
		}
		awaitServed(t, "a /spin the worker's thread served", done)
	}
	t.Fatal("in 60 tries, no /spin ran in a borrowed turn: the case under test was not reached")
	return nil
}

// startAttack2 starts the attack2 guest (startMounted).
func startAttack2(t *testing.T, cfg host.Config) *host.App { return startMounted(t, attack2Wasm, cfg) }

// serveBounded runs h for req on its own goroutine, and reports the recorded answer (or the
// panic, such as http.ErrAbortHandler, it ended with) once it returns. The bound is 20 s.
func serveBounded(req *http.Request, h http.Handler) <-chan served {
	done := make(chan served, 1)
	go func() {
		rec := httptest.NewRecorder()
		defer func() { done <- served{rec: rec, panicked: recover()} }()
		h.ServeHTTP(rec, req)
	}()
	return done
}

type served struct {
	rec      *httptest.ResponseRecorder
	panicked any
}

func awaitServed(t *testing.T, what string, done <-chan served) served {
	t.Helper()
	select {
	case s := <-done:
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: ServeHTTP did not return within 20 s", what)
		return served{}
	}
}

// A field longer than the Handler's 16 KiB read buffer is a well-formed answer: the worker
// sends it as it sends it to a client on its own port, where net/http's client reads it. The
// Handler must pass it on, not answer 503 as if the program had closed the request.
func TestHandlerAttackLongHeaderField(t *testing.T) {
	app := startAttack2(t, host.Config{})
	h := app.Handler()
	for _, n := range []int{100, 16 << 10, 20 << 10, 200 << 10} {
		rec := serve(t, h, httptest.NewRequest("GET", "/bigheader?n="+strconv.Itoa(n), nil))
		if rec.Code != 200 || len(rec.Header().Get("X-Big")) != n || rec.Body.String() != "ok" {
			t.Errorf("an answer with a field of %d bytes: %d, X-Big of %d bytes, body %.60q", n, rec.Code, len(rec.Header().Get("X-Big")), rec.Body)
		}
	}
	// And the kept connection still carries the next answer whole.
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Code != 200 || rec.Body.String() != "1" {
		t.Errorf("GET /count after them = %d %q", rec.Code, rec.Body)
	}
}

// More distinct fields than nameSet's array holds, and a repeated one: every field arrives,
// a repeat with all its values in order, and a middleware's field the answer does not set
// stays while one it sets is replaced.
func TestHandlerAttackManyFields(t *testing.T) {
	app := startAttack2(t, host.Config{})
	h := app.Handler()
	mw := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "7")
		w.Header().Set("X-F-3", "from the middleware")
		w.Header().Add("Set-Cookie", "mw=1")
		h.ServeHTTP(w, r)
	})
	rec := serve(t, mw, httptest.NewRequest("GET", "/fields?n=40", nil))
	if rec.Code != 200 || rec.Body.String() != "ok" {
		t.Fatalf("GET /fields = %d %q", rec.Code, rec.Body)
	}
	for i := range 40 {
		if got := rec.Header().Values("X-F-" + strconv.Itoa(i)); len(got) != 1 || got[0] != strconv.Itoa(i) {
			t.Errorf("X-F-%d = %q, want [%d]", i, got, i)
		}
	}
	if got := rec.Header().Values("Set-Cookie"); strings.Join(got, ",") != "a=1,b=2,c=3" {
		t.Errorf("Set-Cookie = %q, want the program's three in order", got)
	}
	if got := rec.Header().Get("X-Request-Id"); got != "7" {
		t.Errorf("the middleware's X-Request-Id = %q, want it kept", got)
	}
}

// failingWriter is an embedder's ResponseWriter that takes no body byte (a response size
// limit, say), while the request's context goes on.
type failingWriter struct{ http.ResponseWriter }

func (failingWriter) Write([]byte) (int, error) {
	return 0, errors.New("the response is over the middleware's size limit")
}

// When the embedder's ResponseWriter refuses the body, the Handler stops reading the answer:
// the rest of it is still in the connection, which therefore must not be kept for the next
// request. Kept, the next client gets the previous answer's leftover bytes as its answer —
// and since a body is data the program echoes (here a client's own upload), one that reads
// as an answer is served to another client. (http.ReadResponse's body, on Close, read the
// rest away; the Handler's own reader does not.)
func TestHandlerAttackFailedClientWriteNotReused(t *testing.T) {
	app := startAttack2(t, host.Config{})
	h := app.Handler()
	const size = 64 << 10
	// The answer to a POST /echo of size bytes arrives whole in the connection; the Handler's
	// reader takes its first 16 KiB, head included. Where that cut falls in the body follows
	// from the head's length, measured on a first answer of the same shape.
	rec := serve(t, h, httptest.NewRequest("POST", "/echo", strings.NewReader(strings.Repeat("x", size))))
	if rec.Code != 200 || rec.Body.Len() != size {
		t.Fatalf("POST /echo = %d, %d bytes", rec.Code, rec.Body.Len())
	}
	head := len("HTTP/1.1 200 OK\r\n") + len("\r\n")
	for k, vs := range rec.Header() {
		for _, v := range vs {
			head += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	cut := 16<<10 - head
	forged := "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
	body := strings.Repeat("x", cut) + forged + strings.Repeat("y", size-cut-len(forged))
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(failingWriter{w}, r) })
	serve(t, limited, httptest.NewRequest("POST", "/echo", strings.NewReader(body)))
	// The next request, from another client, on whichever connection the Handler picks.
	rec = serve(t, h, httptest.NewRequest("GET", "/count", nil))
	if rec.Code != 200 || rec.Body.String() != "1" {
		t.Errorf("GET /count after an answer the ResponseWriter refused = %d %q, want 200 \"1\" (its own answer)", rec.Code, rec.Body)
	}
}

// A program whose answer is cut short — its instance traps mid-answer (chunked or with a
// length), or it ends an answer short of its Content-Length — gives the client an aborted
// response, never a shorter one that reads as whole; and the next request is answered by the
// fresh instance.
func TestHandlerAttackCutAnswerAborts(t *testing.T) {
	app := startAttack2(t, host.Config{})
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	client := srv.Client()
	for _, path := range []string{"/trap-chunked", "/trap-length", "/short"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			continue // aborted before the head: not taken for whole either
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("GET %s: %d, %q read as a whole answer; want the response aborted", path, resp.StatusCode, body)
		}
		rec := serve(t, app.Handler(), httptest.NewRequest("GET", "/count", nil))
		if rec.Code != 200 {
			t.Errorf("GET /count after %s = %d %q", path, rec.Code, rec.Body)
		}
	}
}

// HEAD, whose answer has a Content-Length but no body, leaves the kept connection at the
// next answer.
func TestHandlerAttackHeadThenGet(t *testing.T) {
	app := startAttack2(t, host.Config{})
	h := app.Handler()
	for i := 1; i <= 6; i += 2 {
		rec := serve(t, h, httptest.NewRequest("HEAD", "/count", nil))
		if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != strconv.Itoa(len(strconv.Itoa(i))) {
			t.Errorf("HEAD /count = %d %q, Content-Length %q", rec.Code, rec.Body, rec.Header().Get("Content-Length"))
		}
		if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Code != 200 || rec.Body.String() != strconv.Itoa(i+1) {
			t.Errorf("GET /count after a HEAD = %d %q, want %d", rec.Code, rec.Body, i+1)
		}
	}
}

// The client leaves while the guest's callback runs in a borrowed turn on the request's own
// goroutine: ServeHTTP returns once the turn is over (it cannot leave the guest mid-call),
// the connection is not kept, and the next request is answered.
func TestHandlerAttackClientLeavesDuringBorrowedTurn(t *testing.T) {
	watch := newSpinWatch()
	app := startAttack2(t, host.Config{OnMessage: watch.onMessage})
	h := app.Handler()
	serve(t, h, httptest.NewRequest("GET", "/count", nil)) // a kept connection, and the worker asleep
	borrowedOnce := false
	for round := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		done := serveBounded(httptest.NewRequest("GET", "/spin?ms=300", nil).WithContext(ctx), h)
		borrowedOnce = watch.await(t) || borrowedOnce
		cancel()
		s := awaitServed(t, "the client left mid-spin", done)
		if s.panicked != nil {
			t.Errorf("round %d: ServeHTTP panicked: %v", round, s.panicked)
		}
		if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Code != 200 || rec.Body.String() != strconv.Itoa(round+2) {
			t.Errorf("round %d: GET /count after the client left = %d %q, want %d", round, rec.Code, rec.Body, round+2)
		}
	}
	if !borrowedOnce {
		t.Log("no /spin ran in a borrowed turn: the test did not reach its case")
	}
}

// A graceful Shutdown, a Close whose context ends, and a Swap, each while a request's
// callback runs in a borrowed turn: each returns, and the request is answered (200 where the
// program goes on, or refused), never left waiting.
func TestHandlerAttackLifecycleDuringBorrowedTurn(t *testing.T) {
	wasm, err := os.ReadFile(attack2Wasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		act    func(*host.App) error
		want   int // the spinning request's status; 0: any
		actErr bool
	}{
		{"Shutdown", func(app *host.App) error { return app.Shutdown(context.Background()) }, 200, false},
		{"Swap", func(app *host.App) error { return app.Swap(context.Background(), wasm) }, 200, false},
		{"Close with a short context", func(app *host.App) error {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			return app.Close(ctx)
		}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watch := newSpinWatch()
			app := startAttack2(t, host.Config{OnMessage: watch.onMessage})
			h := app.Handler()
			done := spinBorrowed(t, h, watch, 400)
			acted := make(chan error, 1)
			go func() { acted <- tc.act(app) }()
			s := awaitServed(t, tc.name+" mid-spin", done)
			select {
			case err := <-acted:
				if err != nil && !tc.actErr {
					t.Errorf("%s: %v", tc.name, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s did not return within 20 s", tc.name)
			}
			if s.panicked != nil && s.panicked != http.ErrAbortHandler {
				t.Errorf("ServeHTTP panicked: %v", s.panicked)
			}
			if tc.want != 0 && (s.rec.Code != tc.want || s.rec.Body.String() != "spun") {
				t.Errorf("the request in a borrowed turn during %s = %d %q, want %d \"spun\"", tc.name, s.rec.Code, s.rec.Body, tc.want)
			}
		})
	}
}

// A callback past its budget in a borrowed turn is stopped there, its request answered 503,
// and a fresh instance answers the next one.
func TestHandlerAttackBudgetInBorrowedTurn(t *testing.T) {
	watch := newSpinWatch()
	app := startAttack2(t, host.Config{OnMessage: watch.onMessage, CallbackBudget: 200 * time.Millisecond})
	h := app.Handler()
	done := spinBorrowed(t, h, watch, 60000)
	s := awaitServed(t, "a callback past its budget", done)
	if s.panicked != nil || s.rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a callback past its budget = %d %q (panic %v), want 503", s.rec.Code, s.rec.Body, s.panicked)
	}
	if rec := serve(t, h, httptest.NewRequest("GET", "/count", nil)); rec.Code != 200 {
		t.Errorf("GET /count after = %d %q, want 200 from a fresh instance", rec.Code, rec.Body)
	}
}

// App.Call and Handler requests race for the same sleeping worker, one at a time each, so
// that each is often alone and may borrow: every answer is right, none waits for a wake-up
// that was lost between the two borrowers.
func TestHandlerAttackCallRacesHandler(t *testing.T) {
	app := startAttack2(t, host.Config{})
	h := app.Handler()
	const rounds = 300
	errs := make(chan error, 2)
	go func() {
		for i := range rounds {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			got, err := app.Call(ctx, "echo", []byte(strconv.Itoa(i)))
			cancel()
			if err != nil || string(got) != strconv.Itoa(i) {
				errs <- fmt.Errorf("call %d: %q, %v", i, got, err)
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for i := range rounds {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/count", nil).WithContext(ctx))
			cancel()
			if rec.Code != 200 || rec.Body.String() != strconv.Itoa(i+1) {
				errs <- fmt.Errorf("request %d: %d %q", i, rec.Code, rec.Body)
				return
			}
		}
		errs <- nil
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A request alone streams a large body in and its echo out at once (the body goes in on one
// goroutine, the answer comes out on another, and each may borrow the worker): every byte
// arrives, in order, and neither side waits for the other for ever.
func TestHandlerAttackAloneStreamsBothWays(t *testing.T) {
	_, url := mounted(t, streamWasm, host.Config{Workers: 1})
	pr, pw := io.Pipe()
	sent := sha256.New()
	go func() {
		chunk := make([]byte, 48<<10)
		for i := range 96 { // 4.5 MiB, of unknown length
			for j := range chunk {
				chunk[j] = byte(i + j)
			}
			sent.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/echo", pr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || n != 96*48<<10 || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Errorf("echo of %d bytes: %d back, %v, same bytes %v", 96*48<<10, n, err, bytes.Equal(got.Sum(nil), sent.Sum(nil)))
	}
}

// Requests one at a time, each alone and borrowing, then the App closed: no goroutine of the
// Handler's or of a borrowed turn is left behind.
func TestHandlerAttackNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := host.Config{Workers: 1, NoPorts: true, KeepAlive: true, Env: []string{"PORT=0"}, Stdout: io.Discard, Stderr: io.Discard}
	app := load(t, attack2Wasm, cfg)
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := app.Handler()
	for i := range 50 {
		var req *http.Request
		switch i % 3 {
		case 0:
			req = httptest.NewRequest("GET", "/count", nil)
		case 1:
			req = httptest.NewRequest("POST", "/echo", strings.NewReader(strings.Repeat("b", 40<<10)))
		default:
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a client gone before its request goes in
			req = httptest.NewRequest("GET", "/count", nil).WithContext(ctx)
		}
		awaitServed(t, "a request", serveBounded(req, h))
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	settleGoroutines(t, before, 0)
}
