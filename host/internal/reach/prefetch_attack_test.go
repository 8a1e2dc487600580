package reach

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/abi"
)

// Attacks on the fetch's prefetch (fetchState.run, prefetch, Close). Each asserts what the
// ABI (ABI.md §10) or the budget's contract promises.

// waitBodyFree waits (bounded) for the fetch's goroutine to be done with the body.
func waitBodyFree(t *testing.T, f *fetchState) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); runtime.Gosched() {
		f.mu.Lock()
		free := f.bodyFree
		f.mu.Unlock()
		if free {
			return
		}
	}
	t.Fatal("the fetch's goroutine did not finish with the body")
}

// budgetFree reports whether the whole budget comes back within a bounded while (and gives
// it back again).
func budgetFree(r *Reach) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); runtime.Gosched() {
		if r.held.TryAcquire(maxHeld) {
			r.held.Release(maxHeld)
			return true
		}
	}
	return false
}

// rawUpstream serves each connection's first request with the canned answer for its path,
// then closes the connection: framings Go's server would not send. Each answer says
// "Connection: close" as it goes: the client must not keep the connection, or bytes an answer
// sent past its framing (a 204's "body") could be read as the next request's answer, if the
// next request is written before the client sees the close (flaky in CI, 2026-12-06).
func rawUpstream(t *testing.T, answers map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				status, rest, _ := strings.Cut(answers[req.URL.Path], "\r\n")
				io.WriteString(c, status+"\r\nConnection: close\r\n"+rest)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// Bodies whose length the head misstates, or that have none: the prefetch keeps what came,
// ends or fails as the body did, and every reserved byte comes back once the fetch closes.
func TestAttackPrefetchOddFramingsGiveBackTheBudget(t *testing.T) {
	base := rawUpstream(t, map[string]string{
		"/204":   "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
		"/304":   "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
		"/short": "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", // then the connection closes
		"/long":  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhelloworld",
		"/zero":  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"/head":  "HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n",
	})
	g, _ := ParseGrants([]string{strings.TrimPrefix(base, "http://")})
	r := New(Config{Connect: g})
	defer r.Close()
	ctx, _ := ownerCtx(t)
	for _, c := range []struct {
		method, path, piece string
		ended               bool
		errCode             string
	}{
		{"GET", "/204", "", true, ""},
		{"GET", "/304", "", true, ""},
		{"GET", "/short", "hel", false, abi.FileEIO},
		{"GET", "/long", "hel", true, ""},
		{"GET", "/zero", "", true, ""},
		{"HEAD", "/head", "", true, ""},
	} {
		id, f := startFetch(t, r, ctx, 0, c.method, base+c.path)
		if <-f.done; f.err != nil {
			t.Fatalf("%s: %v", c.path, f.err)
		}
		waitBodyFree(t, f)
		f.mu.Lock()
		piece, ended, bodyErr := string(f.piece), f.ended, f.bodyErr
		f.mu.Unlock()
		code := ""
		if bodyErr != nil {
			code, _, _ = strings.Cut(bodyErr.Error(), " ")
		}
		if piece != c.piece || ended != c.ended || code != c.errCode {
			t.Errorf("%s %s: piece %q ended %v err %v; want %q %v %q", c.method, c.path, piece, ended, bodyErr, c.piece, c.ended, c.errCode)
		}
		if _, err := r.Functions()[abi.FnStreamClose].Sync(ctx, id); err != nil {
			t.Fatal(err)
		}
		if !budgetFree(r) {
			t.Fatalf("%s %s: bytes are still reserved after the close", c.method, c.path)
		}
	}
}

// An instance that ends, or a close, while the prefetch waits in its read with a guest's read
// waiting for it (a crash, a swap, an abort): every byte comes back. And many fetches closed
// at every point of their prefetch (run with -race).
func TestAttackPrefetchInstanceEndAndRacingCloses(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "60000")
		if r.URL.Path == "/half" { // the head only: a read waits for the prefetch's first bytes
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Write(make([]byte, 60000))
	}))
	defer up.Close()
	defer close(release)
	g, _ := ParseGrants([]string{strings.TrimPrefix(up.URL, "http://")})
	r := New(Config{Connect: g})
	defer r.Close()

	// A read waits for the prefetch (fetchState.startRead sets readWait, as here), the
	// instance ends (or the program closes the fetch): the read fails, and every byte comes
	// back.
	for _, how := range []string{"instance end", "close"} {
		ctx, end := context.WithCancel(context.Background())
		id, f := startFetch(t, r, ctx, 0, "GET", up.URL+"/half")
		<-f.done
		if r.held.TryAcquire(maxHeld) {
			t.Fatal("nothing reserved for the prefetch")
		}
		answered := make(chan fetchRead, 1)
		f.mu.Lock()
		if f.bodyFree {
			t.Fatal("the prefetch of a body not yet come is over")
		}
		f.readWant, f.readWait = 100, func(res fetchRead) { answered <- res }
		f.mu.Unlock()
		if how == "close" {
			r.Functions()[abi.FnStreamClose].Sync(ctx, id)
		} else {
			end()
		}
		select {
		case res := <-answered:
			if res.err == nil {
				t.Errorf("%s: the waiting read got %q, want a failure", how, res.data)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: the waiting read was not answered", how)
		}
		end()
		if !budgetFree(r) {
			t.Fatalf("%s: bytes of a prefetch are still reserved", how)
		}
	}

	ctx2, end2 := context.WithCancel(context.Background())
	defer end2()
	for i := 0; i < 40; i++ {
		id, f := startFetch(t, r, ctx2, 0, "GET", up.URL+"/whole")
		switch i % 4 {
		case 1:
			<-f.done
		case 2:
			<-f.done
			runtime.Gosched()
		case 3:
			waitBodyFree(t, f)
		}
		r.Functions()[abi.FnStreamClose].Sync(ctx2, id)
	}
	if !budgetFree(r) {
		t.Fatal("bytes are still reserved after 40 fetches closed at every point of their prefetch")
	}
}

// A streamed request body whose response came back whole (a server that answers before it
// has read the upload: a 413, a 401) and was read to its end: closing the fetch must close
// the upload's pipe too, as it does in every other state. Otherwise the transport's writing
// goroutine waits for the rest of a body nobody will write, for ever (one per such fetch).
func TestAttackCloseAfterPrefetchedEndClosesStreamedBody(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answered before the upload is read (full duplex: else Go's server would first
		// drain the upload, which never ends), then the upload is read until it fails.
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "no")
		w.(http.Flusher).Flush()
		io.Copy(io.Discard, r.Body)
	}))
	defer up.Close()
	g, _ := ParseGrants([]string{strings.TrimPrefix(up.URL, "http://")})
	r := New(Config{Connect: g})
	defer r.Close()
	ctx, _ := ownerCtx(t)
	id, f := startFetch(t, r, ctx, abi.FetchStreamBody, "POST", up.URL+"/upload")
	if _, err := r.write(ctx, append(append([]byte{}, id...), "the first piece"...)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no head within 10 s")
	}
	if f.err != nil {
		t.Fatal(f.err)
	}
	waitBodyFree(t, f)
	f.mu.Lock()
	piece, ended := string(f.piece), f.ended
	f.mu.Unlock()
	if piece != "no" || !ended {
		t.Fatalf("prefetched %q (ended %v)", piece, ended)
	}
	// The guest read it to the end, and closes the fetch (the SDK closes at EOF).
	if _, err := r.Functions()[abi.FnStreamClose].Sync(ctx, id); err != nil {
		t.Fatal(err)
	}
	// No transport goroutine is left reading the pipe (one would wait for ever).
	var stuck string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		stuck = pipeReaders()
		if stuck == "" {
			break
		}
	}
	if stuck != "" {
		t.Errorf("a transport goroutine still reads the closed fetch's request body:\n%s", stuck)
	}
	// The upload's pipe is closed: a write to it fails rather than feed the transport.
	wrote := make(chan error, 1)
	go func() { _, err := f.body.Write([]byte("x")); wrote <- err }()
	select {
	case err := <-wrote:
		if err == nil {
			t.Error("the streamed request body's pipe is still open after the fetch was closed: a write went through")
		}
	case <-time.After(5 * time.Second):
		t.Error("a write to the closed fetch's request body is still blocked after 5 s: its pipe was not closed")
	}
}

// pipeReaders returns the stacks of goroutines of net/http's transport blocked reading an
// io.Pipe (a request body).
func pipeReaders() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "io.(*pipe).read") && strings.Contains(g, "net/http.(*persistConn).writeLoop") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// A read made before the head (it waits for the fetch's goroutine: fetchState.startRead sets
// readWait, as here) of a body that is not prefetched, while the program's budget is spent
// (by other streams' undelivered pieces — here held by the test): the goroutine reads for it,
// and its wait for the budget must end when the read's instance does, as a read on a
// goroutine of its own (Reach.read, under the instance's context) did. Otherwise the
// operation stays pending after its instance is gone, until someone else frees budget.
func TestAttackWaitingReadEndsWithItsInstanceWhenBudgetIsSpent(t *testing.T) {
	start := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-start:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(200) // no length: chunked, not prefetched
		io.WriteString(w, "hello")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer up.Close()
	g, _ := ParseGrants([]string{strings.TrimPrefix(up.URL, "http://")})
	r := New(Config{Connect: g})
	defer r.Close()
	ctx, end := context.WithCancel(context.Background())
	defer end()
	_, f := startFetch(t, r, ctx, 0, "GET", up.URL+"/chunked")
	answered := make(chan fetchRead, 1)
	f.mu.Lock()
	if f.bodyFree {
		f.mu.Unlock()
		t.Fatal("the body was free before the head came")
	}
	f.readWant = 100 // as fetchState.startRead does for a read before the head
	f.readWait = func(res fetchRead) { answered <- res }
	f.mu.Unlock()
	if err := r.held.Acquire(context.Background(), maxHeld); err != nil { // the budget is spent
		t.Fatal(err)
	}
	spent := true
	defer func() {
		if spent {
			r.held.Release(maxHeld)
		}
	}()
	close(start)
	<-f.done
	// Wait (bounded) until the fetch's goroutine waits for budget: a semaphore with a waiter
	// refuses even a TryAcquire of 0.
	waiting := false
	for deadline := time.Now().Add(10 * time.Second); !waiting && time.Now().Before(deadline); runtime.Gosched() {
		if r.held.TryAcquire(0) {
			select {
			case res := <-answered: // answered without waiting: nothing to attack
				t.Skipf("the read was answered before it waited for budget: %q %v", res.data, res.err)
			default:
			}
		} else {
			waiting = true
		}
	}
	if !waiting {
		t.Fatal("the fetch's goroutine never waited for budget")
	}
	end() // the instance ends (a trap, a swap): its fetch is closed
	select {
	case res := <-answered:
		if res.err == nil {
			t.Errorf("the waiting read got %q after its instance ended, want a failure", res.data)
		}
	case <-time.After(5 * time.Second):
		t.Error("a read waiting for the fetch's goroutine did not end within 5 s of its instance's end: " +
			"the goroutine still waits for budget (readHeld with context.Background in fetchState.run)")
		r.held.Release(maxHeld)
		spent = false
		select {
		case <-answered:
		case <-time.After(5 * time.Second):
		}
	}
}

// A read waiting for the prefetch when the program closes the fetch fails ECLOSED: every
// failed result begins with its code (ABI.md §10, "Errors"; FuzzFunctions checks the same
// of the functions' own results), which the SDK takes as NetError.Code.
func TestAttackWaitingReadAtCloseFailsWithACode(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer up.Close()
	defer close(release)
	g, _ := ParseGrants([]string{strings.TrimPrefix(up.URL, "http://")})
	r := New(Config{Connect: g})
	defer r.Close()
	ctx, _ := ownerCtx(t)
	id, f := startFetch(t, r, ctx, 0, "GET", up.URL+"/half")
	<-f.done
	answered := make(chan fetchRead, 1)
	f.mu.Lock()
	if f.bodyFree {
		f.mu.Unlock()
		t.Fatal("the prefetch of a body half come is over")
	}
	f.readWant, f.readWait = 100, func(res fetchRead) { answered <- res } // as startRead does
	f.mu.Unlock()
	r.Functions()[abi.FnStreamClose].Sync(ctx, id)
	select {
	case res := <-answered:
		if res.err == nil || !strings.HasPrefix(res.err.Error(), abi.ReachECLOSED+" ") {
			t.Errorf("the read waiting at the close failed with %q (data %q), want \"ECLOSED …\"", res.err, res.data)
		}
	case <-time.After(10 * time.Second):
		t.Error("the read waiting at the close was not answered")
	}
}
