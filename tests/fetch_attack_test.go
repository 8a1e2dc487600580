package tests

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Attacks on the fetch's prefetch, end to end (the reach guest's /attack-* paths). ABI.md
// §10, io.read: "at most max bytes, as soon as any are there … One read per stream at a
// time (EBUSY)".

// attackUpstream serves
//
//	/slow?k=K  Content-Length 10: "hello" at once, "world" once /go?k=K came (or 10 s passed)
//	/go?k=K    lets /slow?k=K finish
//	/ten       Content-Length 10: "helloworld"
//	/late?k=K  the same, its head once /go?k=K came (so that the program's asks for it wait)
type attackUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	releases map[string]chan struct{}
}

func (u *attackUpstream) release(k string) chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	ch := u.releases[k]
	if ch == nil {
		ch = make(chan struct{})
		u.releases[k] = ch
	}
	return ch
}

func (u *attackUpstream) let(k string) {
	ch := u.release(k)
	u.mu.Lock()
	defer u.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func newAttackUpstream(t *testing.T) *attackUpstream {
	u := &attackUpstream{releases: map[string]chan struct{}{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.URL.Query().Get("k")
		switch r.URL.Path {
		case "/slow":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "hello")
			w.(http.Flusher).Flush()
			select {
			case <-u.release(k):
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
			}
			io.WriteString(w, "world")
		case "/go":
			u.let(k)
		case "/ten", "/late":
			if r.URL.Path == "/late" { // the head once the program has asked for it (/go?k=K)
				select {
				case <-u.release(k):
				case <-r.Context().Done():
					return
				case <-time.After(10 * time.Second):
				}
			}
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "helloworld")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func TestAttackFetchReads(t *testing.T) {
	up := newAttackUpstream(t)
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", strings.TrimPrefix(up.URL, "http://"),
		"--callback-budget", "5s"}})

	// A read of a small body of known length that has partly come gets what has come: "as
	// soon as any are there". A body whose rest waits for the client's reaction to its
	// first bytes (or just a slow one, through a proxy) must not wait for the rest first.
	t.Run("first piece not held for the rest", func(t *testing.T) {
		got := make(chan string, 1)
		go func() {
			_, body := httpGet(t, client(&http.Transport{}), s.URL("/attack-firstpiece?url="+q(up.URL+"/slow?k=first")))
			got <- string(body)
		}()
		select {
		case body := <-got:
			if body != `"hello"` {
				t.Errorf("the first read gave %s, want \"hello\"", body)
			}
		case <-time.After(5 * time.Second):
			up.let("first")
			t.Errorf("the first read of a body whose first 5 bytes had come gave nothing within 5 s; "+
				"once the rest came it gave %s", <-got)
		}
		up.let("first")
	})

	// A read pending when the program closes the fetch (an abort, a timeout of its own)
	// fails with a code, as every error result begins (ABI.md §10, "Errors"): ECLOSED, or
	// EBADID as TestOneReadAtATime allows (before the prefetch, the read's goroutine found
	// the stream gone).
	t.Run("read pending at close", func(t *testing.T) {
		body := guestGet(t, s, "/attack-readclose?url="+q(up.URL+"/slow?k=close"))
		up.let("close")
		if !strings.HasPrefix(body, "ERR ECLOSED ") && !strings.HasPrefix(body, "ERR EBADID ") {
			t.Errorf("a read pending at the close ended with %q, want ERR ECLOSED … (or EBADID)", body)
		}
	})

	// Two reads at once on a fetch's body: the second fails EBUSY while the first is pending,
	// as on a TCP connection (tests/tcpecho_test.go, /streamops: "second read: EBUSY"). Here
	// both are answered from the prefetched body: a read answered on the loop marks itself
	// done (e.end) before its answer is delivered. (Before the prefetch, both went to
	// goroutines and both were answered as well.)
	t.Run("two reads at once", func(t *testing.T) {
		body := guestGet(t, s, "/attack-tworeads?url="+q(up.URL+"/ten"))
		if !strings.Contains(body, `first read: "he"`) || !strings.Contains(body, "read B: EBUSY") {
			t.Errorf("two reads at once on a fetch body:\n%s\nwant the second (read B) to fail EBUSY", body)
		}
	})

	// A read waits for the prefetch while, in one long callback, the program keeps asking
	// for more (each of those asks is made while the first read is pending: they should
	// fail EBUSY, see above). Whatever is answered, the body's bytes must reach the program
	// in order. The fetch's goroutine marks the first read done (e.end) before its answer is
	// delivered, through a task the loop runs only after the callback; a read made in that
	// window is answered from the prefetched piece on the loop, at once — ahead of the first.
	t.Run("reads in order", func(t *testing.T) {
		body := guestGet(t, s, "/attack-readspin?url="+q(up.URL+"/slow?k=spin")+"&go="+q(up.URL+"/go?k=spin"))
		data, counts, _ := strings.Cut(body, "\n")
		if data == "" || !strings.HasPrefix("helloworld", data) {
			t.Errorf("the body's bytes reached the program as %q (then %s): not in order", data, counts)
		}
	})

	// The head asked for twice before it came: both asks get it, and the body after it
	// comes whole, in order, read 3 bytes at a time (from the prefetched piece).
	t.Run("head asked twice", func(t *testing.T) {
		body := guestGet(t, s, "/attack-twoheads?url="+q(up.URL+"/late?k=heads")+"&go="+q(up.URL+"/go?k=heads"))
		if want := "head: 200\nhead: 200\nbody: \"helloworld\"\n"; body != want {
			t.Errorf("got:\n%s\nwant:\n%s", body, want)
		}
	})
}

// A request with no body framing — HTTP/1.0, or HTTP/1.1 with Expect: 100-continue and
// no body — reaches net/http's handler with no body (content_length 0, not -1), and the
// host sends no 100 Continue for a body that is not coming.
func TestAttackBodilessFraming(t *testing.T) {
	s := startServer(t, serverOpts{Module: "nethttp"})
	for _, c := range []struct{ name, req, want string }{
		{"HTTP/1.0", "GET /framing HTTP/1.0\r\n\r\n", `0 [] true`},
		{"HTTP/1.0 POST without a length", "POST /framing HTTP/1.0\r\n\r\n", `0 [] true`},
		{"Expect without a body", "GET /framing HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", `0 [] true`},
		{"Content-Length 0", "POST /framing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", `0 [] true`},
	} {
		_, resp, body := rawRequest(t, s.Addr, c.req)
		if resp.StatusCode != 200 || string(body) != c.want {
			t.Errorf("%s: %d %q, want 200 %q", c.name, resp.StatusCode, body, c.want)
		}
	}
}

// A swap while a fetch's read waits for its prefetch: the old instance finishes its request
// with the whole body (it drains), the new one fetches from the start, and small bodies
// keep coming whole afterwards (nothing of the budget was lost on the way).
func TestAttackFetchAcrossSwap(t *testing.T) {
	up := newAttackUpstream(t)
	app := filepath.Join(t.TempDir(), "app.wasm")
	installModule(t, wasm["reach"], app)
	s := startServer(t, serverOpts{Module: app, Flags: []string{"--allow-connect", strings.TrimPrefix(up.URL, "http://")}})

	old := make(chan string, 1)
	go func() {
		resp, err := client(&http.Transport{}).Get(s.URL("/attack-firstpiece?url=" + q(up.URL+"/slow?k=swap")))
		if err != nil {
			old <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		old <- resp.Status + " " + string(b)
	}()
	// The first fetch is under way once the upstream has its request: wait for its head to
	// be out, by asking for the same path's rest to be held (the release channel exists).
	if !eventually(10*time.Second, func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		return up.releases["swap"] != nil
	}) {
		t.Fatal("the first fetch never reached the upstream")
	}
	reloaded := s.proc.stderr.appears("wasmloop: reloaded")
	s.proc.signal(t, syscall.SIGHUP)
	select {
	case <-reloaded:
	case <-time.After(30 * time.Second):
		t.Fatalf("no reload\nstderr:\n%s", s.proc.stderr)
	}
	for i := 0; i < 20; i++ {
		if got := guestGet(t, s, "/fetch?url="+q(up.URL+"/ten")); got != "200\nhelloworld" {
			t.Fatalf("fetch %d after the swap: %q", i, got)
		}
	}
	up.let("swap")
	select {
	case got := <-old:
		if got != "200 OK \"hello\"" && got != "200 OK \"helloworld\"" {
			t.Errorf("the request in flight across the swap: %q", got)
		}
	case <-time.After(15 * time.Second):
		t.Error("the request in flight across the swap never finished")
	}
}
