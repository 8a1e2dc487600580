package reach

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/abi"
)

func TestParsePattern(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Pattern
		bad  bool
	}{
		{in: "db:5432", want: Pattern{"db", 5432}},
		{in: "API.example.com", want: Pattern{"api.example.com", 0}},
		{in: "*.example.com:443", want: Pattern{"*.example.com", 443}},
		{in: "127.0.0.1:*", want: Pattern{"127.0.0.1", 0}},
		{in: "[::1]:8080", want: Pattern{"::1", 8080}},
		{in: "[::1]", want: Pattern{"::1", 0}},
		{in: ":7000", want: Pattern{"*", 7000}},
		{in: "*", want: Pattern{"*", 0}},
		{in: "", bad: true},
		{in: "::1:80", bad: true},
		{in: "db:0", bad: true},
		{in: "db:65536", bad: true},
		{in: "db:http", bad: true},
		{in: "a*b.com", bad: true},
		{in: "*.", bad: true},
		{in: "bad host", bad: true},
		{in: "-x.com", bad: true},
	} {
		p, err := ParsePattern(c.in)
		if (err != nil) != c.bad || !c.bad && p != c.want {
			t.Errorf("ParsePattern(%q) = %+v, %v", c.in, p, err)
		}
	}
}

func TestGrantsAllow(t *testing.T) {
	g, err := ParseGrants([]string{"db:5432", "*.example.com:443", "127.0.0.1:8080", "[::1]", "cache"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host string
		port int
		want bool
	}{
		{"db", 5432, true},
		{"DB.", 5432, true},
		{"db", 5433, false},
		{"api.example.com", 443, true},
		{"a.b.example.com", 443, true},
		{"example.com", 443, false}, // *.example.com is what is below it
		{"evil-example.com", 443, false},
		{"api.example.com", 80, false},
		{"127.0.0.1", 8080, true},
		{"::ffff:127.0.0.1", 8080, true}, // the same address, mapped
		{"127.0.0.2", 8080, false},
		{"localhost", 8080, false}, // names are matched as written, not resolved
		{"::1", 1, true},
		{"0:0::1", 65535, true},
		{"cache", 6379, true},
		{"cache.evil.com", 6379, false},
	} {
		if got := g.Allows(c.host, c.port); got != c.want {
			t.Errorf("Allows(%q, %d) = %v", c.host, c.port, got)
		}
	}
	if (Grants{}).Allows("anything", 1) {
		t.Error("no grants allowed something")
	}
}

// fetchIn encodes a fetch request.
func fetchIn(timeoutMs uint32, flags byte, method, url, block, body string) []byte {
	in := binary.LittleEndian.AppendUint32(nil, timeoutMs)
	in = append(in, flags, byte(len(method)))
	in = append(in, method...)
	in = binary.LittleEndian.AppendUint32(in, uint32(len(url)))
	in = append(in, url...)
	in = binary.LittleEndian.AppendUint32(in, uint32(len(block)))
	return append(append(in, block...), body...)
}

func ownerCtx(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}

// A stream belongs to the instance that opened it: another's context cannot use its id, and
// it closes when its owner's context ends. (A TCP connection's reads and writes run on its
// loop's reactor and are tested end to end: tests/tcpecho_test.go; they find the stream by
// the same get.)
func TestStreamsBelongToTheirInstance(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer up.Close()
	g, _ := ParseGrants([]string{strings.TrimPrefix(up.URL, "http://")})
	r := New(Config{Connect: g})
	defer r.Close()
	fns := r.Functions()
	a, endA := ownerCtx(t)
	b, _ := ownerCtx(t)
	id, f := startFetch(t, r, a, 0, "GET", up.URL+"/")
	// The head is in (FnFetchResponse is answered from the loop, tested end to end).
	if <-f.done; f.err != nil {
		t.Fatal(f.err)
	}
	readIn := binary.LittleEndian.AppendUint32(append([]byte{}, id...), 100)
	if _, err := blockingRead(r, b, readIn); err == nil || !strings.HasPrefix(err.Error(), abi.ReachEBADID+" ") {
		t.Errorf("another instance's read: %v, want EBADID", err)
	}
	if _, err := fns[abi.FnStreamClose].Sync(b, id); err != nil || r.Open() != 1 {
		t.Errorf("another instance's close: %v, %d streams open", err, r.Open())
	}
	// A read pending when the owner ends fails, and the stream is gone.
	done := make(chan error, 1)
	go func() {
		_, err := blockingRead(r, a, readIn)
		done <- err
	}()
	endA()
	if err := <-done; err == nil {
		t.Error("a read pending when its owner ended succeeded")
	}
	// The read may fail for the cancelled context before the owner's close (context.AfterFunc,
	// on a goroutine of its own) has run: give it a bounded while.
	for deadline := time.Now().Add(10 * time.Second); r.Open() != 0 && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	if r.Open() != 0 {
		t.Errorf("%d streams open after their owner ended", r.Open())
	}
	if !r.held.TryAcquire(maxHeld) {
		t.Error("bytes of a read are still reserved")
	}
}

// startFetch starts a fetch of url for ctx and returns its id and state.
func startFetch(t *testing.T, r *Reach, ctx context.Context, flags byte, method, url string) ([]byte, *fetchState) {
	t.Helper()
	id, err := r.Functions()[abi.FnFetch].Sync(ctx, fetchIn(0, flags, method, url, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.get(ctx, binary.LittleEndian.Uint64(id))
	if err != nil {
		t.Fatal(err)
	}
	return id, e.s.(*fetchState)
}

// blockingRead is a fetch body's read as Reach.startRead makes it off the loop (a read no
// prefetch answers): the stream found for ctx, its one pending read taken, then the read.
func blockingRead(r *Reach, ctx context.Context, in []byte) ([]byte, error) {
	e, want, err := r.readOf(ctx, in)
	if err != nil {
		return nil, err
	}
	if err := e.begin(false); err != nil {
		return nil, err
	}
	defer e.end(false)
	return readHeld(ctx, r.held, e.s, want)
}

// One read and one write at a time per stream; a second is EBUSY.
func TestOneReadAtATime(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer up.Close()
	g, _ := ParseGrants([]string{strings.TrimPrefix(up.URL, "http://")})
	r := New(Config{Connect: g})
	defer r.Close()
	fns := r.Functions()
	ctx, _ := ownerCtx(t)
	id, err := fns[abi.FnFetch].Sync(ctx, fetchIn(0, 0, "GET", up.URL+"/", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	readIn := binary.LittleEndian.AppendUint32(append([]byte{}, id...), 10)
	e, err := r.get(ctx, binary.LittleEndian.Uint64(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.begin(false); err != nil { // as a read under way does
		t.Fatal(err)
	}
	if _, err := blockingRead(r, ctx, readIn); err == nil || !strings.HasPrefix(err.Error(), abi.ReachEBUSY+" ") {
		t.Errorf("a second read: %v, want EBUSY", err)
	}
	e.end(false)
	// A read waiting for a head that never comes ends when the stream is closed, whether the
	// close finds it waiting (ECLOSED) or comes first (EBADID).
	first := make(chan error, 1)
	go func() { _, err := blockingRead(r, ctx, readIn); first <- err }()
	fns[abi.FnStreamClose].Sync(ctx, id)
	if err := <-first; err == nil || !strings.HasPrefix(err.Error(), abi.ReachECLOSED+" ") && !strings.HasPrefix(err.Error(), abi.ReachEBADID+" ") {
		t.Errorf("the read at close: %v, want ECLOSED or EBADID", err)
	}
}

// Malformed requests to every function fail with a code, never a panic.
func FuzzFunctions(f *testing.F) {
	f.Add(uint8(0), fetchIn(0, 0, "GET", "http://127.0.0.1:1/", "Accept: */*\r\n", ""))
	f.Add(uint8(0), fetchIn(100, 3, "POST", "http://127.0.0.1:1/x", "Content-Length: 3\r\n", ""))
	f.Add(uint8(0), fetchIn(0, 0, "GET", "http://127.0.0.1:1/", "bad line\r\n", "body"))
	f.Add(uint8(1), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(2), append(binary.LittleEndian.AppendUint32(nil, 5), "127.0.0.2:9"...))
	f.Add(uint8(3), []byte("127.0.0.1:99999"))
	f.Add(uint8(4), []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		g, _ := ParseGrants([]string{"127.0.0.1:1"})
		r := New(Config{Connect: g, Listen: Grants{}})
		defer r.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// The functions that start on the loop (Start) decode their input with idOf and
		// connectTarget, then run these on a goroutine (a fetch's streams) or the loop's
		// reactor (a TCP connection's, tested end to end).
		connect := func(_ context.Context, in []byte) ([]byte, error) { _, _, err := r.connectTarget(in); return nil, err }
		response := func(ctx context.Context, in []byte) ([]byte, error) {
			id, _, err := idOf(in)
			if err == nil {
				_, err = r.get(ctx, id)
			}
			return nil, err
		}
		read := func(ctx context.Context, in []byte) ([]byte, error) { return blockingRead(r, ctx, in) }
		fns := []func(context.Context, []byte) ([]byte, error){r.fetch, read, connect, r.listen, r.setOption,
			r.write, r.end, r.closeOp, response, r.lookup}
		_, err := fns[int(which)%len(fns)](ctx, in)
		if err != nil {
			if code, _, _ := strings.Cut(err.Error(), " "); !strings.HasPrefix(code, "E") {
				t.Errorf("an error without a code: %v", err)
			}
		}
	})
}

// A small body of known length is read by the fetch's goroutine right after the head, held
// against the program's budget until delivered; a fetch closed with it undelivered, or while
// the body is still coming, gives every byte back.
func TestPrefetchGivesBackWhatItHeld(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
		if r.URL.Path == "/half" { // the rest never comes: the prefetch waits in its read
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		io.WriteString(w, "world")
	}))
	defer up.Close()
	defer close(release)
	g, _ := ParseGrants([]string{strings.TrimPrefix(up.URL, "http://")})
	r := New(Config{Connect: g})
	defer r.Close()
	fns := r.Functions()
	ctx, _ := ownerCtx(t)
	for _, path := range []string{"/whole", "/half"} {
		id, f := startFetch(t, r, ctx, 0, "GET", up.URL+path)
		if <-f.done; f.err != nil {
			t.Fatal(f.err)
		}
		// The prefetch reserved the body's 10 bytes before the head was published.
		if r.held.TryAcquire(maxHeld) {
			t.Fatalf("%s: nothing reserved for the prefetch", path)
		}
		if path == "/whole" { // close with the body read and undelivered: wait for the read
			read := false
			for deadline := time.Now().Add(10 * time.Second); !read && time.Now().Before(deadline); runtime.Gosched() {
				f.mu.Lock()
				read = f.bodyFree
				f.mu.Unlock()
			}
			if f.mu.Lock(); string(f.piece) != "helloworld" || !f.ended {
				t.Errorf("prefetched %q (ended %v), want the whole body", f.piece, f.ended)
			}
			f.mu.Unlock()
		}
		if _, err := fns[abi.FnStreamClose].Sync(ctx, id); err != nil {
			t.Fatal(err)
		}
		// The goroutine gives them back once its read ends: a bounded while.
		free := false
		for deadline := time.Now().Add(10 * time.Second); !free && time.Now().Before(deadline); runtime.Gosched() {
			free = r.held.TryAcquire(maxHeld)
		}
		if !free {
			t.Fatalf("%s: bytes of the prefetch are still reserved after the close", path)
		}
		r.held.Release(maxHeld)
	}
}

// A fetch refused at the program's stream limit leaves no goroutine behind: its close (add
// closes what it refuses) waited for a head that no request would bring.
func TestRefusedFetchLeavesNoGoroutine(t *testing.T) {
	g, _ := ParseGrants([]string{"127.0.0.1:1"})
	r := New(Config{Connect: g})
	defer r.Close()
	ctx, _ := ownerCtx(t)
	r.mu.Lock()
	for i := len(r.streams); i < maxStreams; i++ {
		r.streams[uint64(1<<40+i)] = &entry{owner: ctx}
	}
	r.mu.Unlock()
	before := runtime.NumGoroutine()
	for range 20 {
		_, err := r.fetch(ctx, fetchIn(0, 0, "GET", "http://127.0.0.1:1/", "", ""))
		if err == nil || !strings.HasPrefix(err.Error(), abi.ReachEMFILE+" ") {
			t.Fatalf("a fetch past the limit: %v, want EMFILE", err)
		}
	}
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > before && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		runtime.Gosched()
	}
	if n > before {
		t.Errorf("%d goroutines after 20 refused fetches, %d before", n, before)
	}
	r.mu.Lock()
	for id := range r.streams {
		delete(r.streams, id)
	}
	r.mu.Unlock()
}
