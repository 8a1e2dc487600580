package reach

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/httpfield"
	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// Outbound HTTP through Go's net/http client: connection reuse, HTTP/2, TLS with the
// system's roots, all of it on the client's goroutines. The guest's fetch starts the request
// (FnFetch, on the loop: it only checks and starts), takes the response head when it comes
// (FnFetchResponse) and reads the body as a stream; a streamed request body is written to
// the same id.

// maxRedirects is how many redirects FetchFollowRedirects follows, as Go's client does.
const maxRedirects = 10

// newClient is the program's HTTP client: the configured transport, or one of its own whose
// dials reach only granted hosts and whose proxy (from the host's environment) is used
// only when it is granted too. Redirects are the fetch's to follow (fetchOf).
func (r *Reach) newClient() *http.Client {
	tr := r.cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Go keeps 2 idle connections per host by default: a proxy with 64 requests in
		// flight then dialled for 4 requests in 5 (tests/bench/proxy.sh).
		t.MaxIdleConnsPerHost = 256
		if r.cfg.IdleTimeout > 0 {
			t.ResponseHeaderTimeout = r.cfg.IdleTimeout
		}
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if err := r.allowConnect(addr); err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, network, addr)
		}
		t.Proxy = func(req *http.Request) (*url.URL, error) {
			p, err := http.ProxyFromEnvironment(req)
			if err != nil || p == nil || r.allowConnect(canonicalAddr(p)) != nil {
				return nil, nil // no proxy, or one not granted: go direct (to a granted host)
			}
			return p, nil
		}
		tr = t
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		f, _ := via[0].Context().Value(fetchKey{}).(*fetchState)
		if f == nil || !f.follow {
			return http.ErrUseLastResponse // the 3xx is the answer
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return r.allowConnect(canonicalAddr(req.URL))
	}}
}

// canonicalAddr is u's host and port, the scheme's port when it names none.
func canonicalAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// allowConnect checks host:port against the connect grants.
func (r *Reach) allowConnect(addr string) error {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return coded(abi.FileEINVAL, fmt.Errorf("%q: want host:port", addr))
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return coded(abi.FileEINVAL, fmt.Errorf("%q: the port is not a number from 1 to 65535", addr))
	}
	if r.cfg.Connect.Allows(host, port) {
		return nil
	}
	e := &notGranted{"connect to", addr, "--allow-connect"}
	r.refused("connect", e.Error())
	return coded(abi.FileEACCES, e)
}

// fetchKey finds a request's fetchState in its context (CheckRedirect).
type fetchKey struct{}

// prefetchMax is the largest body the fetch's goroutine reads right after the head, when the
// head gives its length: the guest's reads of a small answer then finish on the loop, where
// each would otherwise start a goroutine and wake the loop from it (tests/bench/proxy.sh).
const prefetchMax = 64 << 10

// fetchState is one fetch: the stream of its bodies. One goroutine sends the request, waits
// for the head and reads a small body whole (prefetch); the guest's calls for the head, and a
// read made before that goroutine is done with the body, wait for it to hand them their
// results. Later reads take what was prefetched on the loop, and read on a goroutine of their
// own (Reach.read) only past it.
type fetchState struct {
	follow bool
	idle   time.Duration       // bounds each read of the answer's body (Config.IdleTimeout); <= 0: none
	held   *semaphore.Weighted // the program's budget of bytes read and not delivered
	cancel context.CancelFunc
	body   *io.PipeWriter // the request body's writing end, when streamed; else nil
	done   chan struct{}  // closed when the head (or the failure) is in
	resp   *http.Response // set before done is closed
	err    error          // set before done is closed
	head   []byte         // set before done is closed: status u16 and the header block

	mu       sync.Mutex
	headWait []func([]byte, error) // response ops waiting for the head
	readWait func(fetchRead)       // a read waiting for the goroutine to be done with the body
	readWant int                   // how much readWait asks for
	bodyFree bool                  // the goroutine is done with the body: reads go on their own
	closed   bool
	piece    []byte // prefetched and not yet delivered; held against the budget
	ended    bool   // the body ended after piece
	bodyErr  error  // the body failed after piece
	// raw is the body before its idleBody (set before done is closed): the prefetch reads it
	// whether or not the program has asked, so its wait is bounded only while a read is
	// waiting (readTimer, armed and stopped with readWait); expired: that bound passed.
	raw       io.Reader
	readTimer *time.Timer
	expired   bool
}

// fetchRead is a read's answer: the bytes (nil at the end; they hold their length of the
// budget until delivered) or the failure.
type fetchRead struct {
	data []byte
	err  error
}

// run sends req and serves what waits for the head and the body.
func (f *fetchState) run(client *http.Client, req *http.Request) {
	resp, err := client.Do(req)
	var head []byte
	n := int64(-1)
	if err != nil {
		if f.idle > 0 && strings.Contains(err.Error(), "timeout awaiting response headers") {
			// Our Transport's ResponseHeaderTimeout (newClient): say which setting it is. (The
			// code is ETIMEDOUT either way; only the words depend on net/http's.)
			err = coded(abi.ReachETIMEDOUT, fmt.Errorf("%w: the server sent no answer for %v after the request (--fetch-idle-timeout)", err, f.idle))
		}
		err = classify(err)
	} else {
		head, n = headOf(resp), resp.ContentLength
		f.raw = resp.Body
		if f.idle > 0 {
			resp.Body = &idleBody{ReadCloser: resp.Body, idle: f.idle, cancel: f.cancel}
		}
	}
	f.mu.Lock()
	f.resp, f.err, f.head = resp, err, head
	waiting := f.headWait
	f.headWait = nil
	prefetch := err == nil && !f.closed && n >= 0 && n <= prefetchMax && f.held.TryAcquire(n)
	if prefetch && f.readWait != nil {
		f.armLocked() // a read that came before the head waits for the server from now
	}
	close(f.done)
	f.mu.Unlock()
	for _, w := range waiting {
		w(head, err)
	}
	if prefetch {
		f.prefetch(int(n))
	}
	f.mu.Lock()
	w := f.readWait
	f.readWait = nil
	f.disarmLocked() // a read made below goes through the idleBody
	if w == nil {
		f.bodyFree = true
		f.mu.Unlock()
		return
	}
	res, ok := f.takeLocked(f.readWant)
	switch {
	case ok:
	case err != nil:
		res = fetchRead{err: err}
	case f.closed:
		res = fetchRead{err: classify(errStreamClosed)}
	default:
		f.mu.Unlock()
		// Nothing is left of the prefetch: read for the waiting read here, as a read on a
		// goroutine of its own would (a wait for the budget ends with the fetch: its close,
		// its instance's end).
		data, err := readHeld(req.Context(), f.held, f.resp.Body, f.readWant)
		res = fetchRead{data, err}
		f.mu.Lock()
	}
	f.bodyFree = true
	f.mu.Unlock()
	w(res)
}

// prefetch reads a body of n bytes (held already) into piece, handing a waiting read what
// has come after each read of the socket: a read answers as soon as any bytes are there.
func (f *fetchState) prefetch(n int) {
	buf := make([]byte, n)
	f.mu.Lock()
	f.piece = buf[:0]
	f.mu.Unlock()
	got := 0
	var err error
	for first := true; err == nil && (got < n || first); first = false {
		var k int
		k, err = f.raw.Read(buf[got:]) // an empty body is read once, to see its end
		got += k
		f.mu.Lock()
		if f.closed { // the close gave back what piece held; these bytes are the loop's to free
			f.mu.Unlock()
			f.held.Release(int64(k))
			break
		}
		f.piece = f.piece[:len(f.piece)+k]
		switch {
		case err == io.EOF:
			f.ended = true
		case err != nil && f.expired:
			f.bodyErr = errIdle(f.idle)
		case err != nil:
			f.bodyErr = classify(err)
		}
		var (
			w   func(fetchRead)
			res fetchRead
		)
		if f.readWait != nil {
			var ok bool
			if res, ok = f.takeLocked(f.readWant); ok {
				w, f.readWait = f.readWait, nil
				f.disarmLocked()
			}
		}
		f.mu.Unlock()
		if w != nil {
			w(res)
		}
	}
	f.held.Release(int64(n - got))
}

// takeLocked is a read of up to want bytes from what the prefetch left, if it can answer one:
// the next bytes, the end, or the failure. f.mu is held.
func (f *fetchState) takeLocked(want int) (fetchRead, bool) {
	switch {
	case len(f.piece) > 0:
		k := min(want, len(f.piece))
		res := f.piece[:k:k]
		f.piece = f.piece[k:]
		return fetchRead{data: res}, true
	case f.ended:
		return fetchRead{}, true
	case f.bodyErr != nil:
		return fetchRead{err: f.bodyErr}, true
	}
	return fetchRead{}, false
}

// startRead answers a read of up to want bytes on the loop when the prefetch can, or has the
// fetch's goroutine answer it when that goroutine still has the body; false: read on a
// goroutine of the read's own.
func (f *fetchState) startRead(op *loop.Op, want int, release func([]byte, bool)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if res, ok := f.takeLocked(want); ok {
		op.Finish(res.data, res.err)
		return true
	}
	if f.bodyFree || f.closed {
		return false
	}
	deliver := op.FinishFrom()
	if deliver == nil {
		return true // refused: finished with ELIMIT
	}
	f.readWant = want
	f.readWait = func(res fetchRead) {
		deliver(func() { op.Finish(res.data, res.err) }, func() { release(res.data, res.err != nil) })
	}
	select {
	case <-f.done: // the prefetch is reading: the wait for the server counts from this read
		f.armLocked()
	default: // the head is awaited (ResponseHeaderTimeout); run arms it if a prefetch follows
	}
	return true
}

// armLocked starts the bound on a waiting read's wait for the prefetch (Config.IdleTimeout);
// disarmLocked stops it once the read is answered. f.mu is held.
func (f *fetchState) armLocked() {
	if f.idle > 0 && f.readTimer == nil {
		f.readTimer = time.AfterFunc(f.idle, func() {
			f.mu.Lock()
			f.expired = true
			f.mu.Unlock()
			f.cancel() // the prefetch's read returns
		})
	}
}

func (f *fetchState) disarmLocked() {
	if f.readTimer != nil {
		f.readTimer.Stop()
		f.readTimer = nil
	}
}

// startResponse answers a response op with the head, now or once it is in.
func (f *fetchState) startResponse(op *loop.Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		op.Finish(f.head, f.err)
		return
	default:
	}
	deliver := op.FinishFrom()
	if deliver == nil {
		return
	}
	f.headWait = append(f.headWait, func(head []byte, err error) {
		deliver(func() { op.Finish(head, err) }, nil)
	})
}

// Read is a read past the prefetch, on the read's own goroutine (Reach.read).
func (f *fetchState) Read(p []byte) (int, error) {
	<-f.done
	if f.err != nil {
		return 0, f.err
	}
	return f.resp.Body.Read(p)
}

func (f *fetchState) Write(p []byte) (int, error) {
	if f.body == nil {
		return 0, coded(abi.FileEINVAL, errors.New("the request body was given whole: fetch with FetchStreamBody to write it"))
	}
	return f.body.Write(p)
}

func (f *fetchState) CloseWrite() error {
	if f.body == nil {
		return nil
	}
	return f.body.Close()
}

func (f *fetchState) Close() error {
	f.mu.Lock()
	f.closed = true
	f.disarmLocked()
	f.held.Release(int64(len(f.piece)))
	f.piece = nil
	ended := f.ended && f.bodyFree
	f.mu.Unlock()
	if f.body != nil { // an upload the server did not wait for ends too
		f.body.CloseWithError(errStreamClosed)
	}
	if ended { // read to its end: closing it only lets its connection go back to the pool
		f.resp.Body.Close()
		f.cancel()
		return nil
	}
	f.cancel()
	go func() { // the head may still be on its way
		<-f.done
		if f.resp != nil {
			f.resp.Body.Close()
		}
	}()
	return nil
}

// fetch: in = the request (abi.FnFetch); result = the fetch's id. It checks the request and
// the grant here, on the loop, so a refusal is the call's own result. A plain http:// fetch
// goes on the loop's own HTTP/1.1 client (loop.StartFetch; see onLoop); any other is sent by
// Go's net/http client on a goroutine.
func (r *Reach) fetch(ctx context.Context, in []byte) ([]byte, error) {
	fr, err := decodeFetch(in)
	if err != nil {
		return nil, err
	}
	if err := r.allowConnect(canonicalAddr(fr.url)); err != nil {
		return nil, err
	}
	if r.onLoop(ctx, fr) {
		fs, err := loop.StartFetch(ctx, r.loopSpec(fr))
		if err != nil {
			return nil, err
		}
		id, err := r.add(ctx, &entry{hf: fs})
		if err != nil { // refused, and closed by add
			return nil, err
		}
		return binary.LittleEndian.AppendUint64(nil, id), nil
	}
	req, f, err := r.fetchOf(ctx, fr)
	if err != nil {
		return nil, err
	}
	id, err := r.add(ctx, &entry{s: f})
	if err != nil { // refused, and closed by add: no head will come, so none is awaited
		close(f.done)
		return nil, err
	}
	go f.run(r.client, req)
	return binary.LittleEndian.AppendUint64(nil, id), nil
}

// fetchRequest is a decoded fetch request (abi.FnFetch). block and body alias the call's
// input, which is the loop's until the call returns.
type fetchRequest struct {
	timeout time.Duration
	flags   byte
	method  string
	url     *url.URL
	block   []byte // the header block, each line checked by httpfield.CutLine
	body    []byte // given whole
}

// decodeFetch decodes and checks a fetch request.
func decodeFetch(in []byte) (*fetchRequest, error) {
	bad := func(why string) (*fetchRequest, error) {
		return nil, coded(abi.FileEINVAL, errors.New(why))
	}
	if len(in) < 6 {
		return bad("the request is shorter than its fields")
	}
	fr := &fetchRequest{timeout: time.Duration(binary.LittleEndian.Uint32(in)) * time.Millisecond, flags: in[4]}
	mlen := int(in[5])
	in = in[6:]
	if len(in) < mlen+4 {
		return bad("the request is shorter than its fields")
	}
	fr.method = string(in[:mlen])
	in = in[mlen:]
	ulen := binary.LittleEndian.Uint32(in)
	if uint64(ulen)+4 > uint64(len(in))-4 {
		return bad("the request is shorter than its fields")
	}
	rawURL := string(in[4 : 4+ulen])
	in = in[4+ulen:]
	hlen := binary.LittleEndian.Uint32(in)
	if uint64(hlen) > uint64(len(in))-4 {
		return bad("the request is shorter than its fields")
	}
	fr.block, fr.body = in[4:4+hlen], in[4+hlen:]
	if len(fr.body) > abi.MaxFetchBody {
		return bad(fmt.Sprintf("a body of %d bytes given whole, more than %d: stream it (FetchStreamBody)", len(fr.body), abi.MaxFetchBody))
	}
	if fr.flags&abi.FetchStreamBody != 0 && len(fr.body) > 0 {
		return bad("a streamed body is written with io.write, not given with the request")
	}
	if fr.method == "" {
		fr.method = "GET"
	}
	if !httpfield.IsToken([]byte(fr.method)) {
		return bad(fmt.Sprintf("method %q is not a token", fr.method))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return bad(err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad(fmt.Sprintf("%q: want an http:// or https:// URL", rawURL))
	}
	if u.Host == "" {
		return bad(fmt.Sprintf("%q has no host", rawURL))
	}
	fr.url = u
	for b := fr.block; len(b) > 0; {
		_, _, rest, fault := httpfield.CutLine(b)
		if fault != 0 {
			return bad(fmt.Sprintf("a malformed header line: %q", truncate(b, 80)))
		}
		b = rest
	}
	return fr, nil
}

// fetchOf makes the http.Request for fr, and its state.
func (r *Reach) fetchOf(ctx context.Context, fr *fetchRequest) (*http.Request, *fetchState, error) {
	f := &fetchState{follow: fr.flags&abi.FetchFollowRedirects != 0, held: r.held, done: make(chan struct{}), idle: r.cfg.IdleTimeout}
	var rctx context.Context
	if fr.timeout > 0 {
		rctx, f.cancel = context.WithTimeout(ctx, fr.timeout)
	} else {
		rctx, f.cancel = context.WithCancel(ctx)
	}
	if f.follow { // CheckRedirect finds it there; without it, a 3xx is the answer
		rctx = context.WithValue(rctx, fetchKey{}, f)
	}
	var reqBody io.Reader
	length := int64(len(fr.body))
	if fr.flags&abi.FetchStreamBody != 0 {
		pr, pw := io.Pipe()
		f.body, reqBody, length = pw, pr, -1
	} else if len(fr.body) > 0 {
		reqBody = bytes.NewReader(bytes.Clone(fr.body)) // the input is the loop's until the call returns
	}
	req, err := http.NewRequestWithContext(rctx, fr.method, fr.url.String(), reqBody)
	if err != nil {
		f.cancel()
		return nil, nil, coded(abi.FileEINVAL, err)
	}
	req.ContentLength = length
	if length == 0 {
		req.Body = nil
	}
	for block := fr.block; len(block) > 0; {
		name, value, rest, _ := httpfield.CutLine(block) // checked by decodeFetch
		block = rest
		switch n := string(name); {
		case strings.EqualFold(n, "Host"):
			req.Host = string(value)
		case strings.EqualFold(n, "Content-Length"):
			if f.body != nil { // a streamed body of a known length goes without chunks
				if cl, err := strconv.ParseInt(string(value), 10, 64); err == nil && cl >= 0 {
					req.ContentLength = cl
				}
			}
		case strings.EqualFold(n, "Transfer-Encoding"), strings.EqualFold(n, "Connection"):
			// the transport's business
		default:
			req.Header.Add(n, string(value))
		}
	}
	return req, f, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// startResponse: in = id u64; result = status u16 and the response's header block, once the
// head is in.
func (r *Reach) startResponse(op *loop.Op, in []byte) {
	e, _ := r.opStream(op, in)
	if e == nil {
		return
	}
	if e.hf != nil {
		e.hf.Response(op)
		return
	}
	f, ok := e.s.(*fetchState)
	if !ok {
		op.Finish(nil, coded(abi.FileEINVAL, errors.New("the stream is not a fetch")))
		return
	}
	f.startResponse(op)
}

// headOf is the response op's result for resp: status u16 and the header block.
func headOf(resp *http.Response) []byte {
	out := binary.LittleEndian.AppendUint16(nil, uint16(resp.StatusCode))
	if resp.ContentLength >= 0 && resp.Header.Get("Content-Length") == "" && !resp.Uncompressed {
		out = append(out, "Content-Length: "+strconv.FormatInt(resp.ContentLength, 10)+"\r\n"...)
	}
	for name, values := range resp.Header {
		for _, v := range values {
			out = append(append(append(append(out, name...), ": "...), v...), "\r\n"...)
		}
	}
	return out
}

// idleBody bounds each read of an answer's body: a server silent for idle ends the fetch
// (its context, which the read returns from) with ETIMEDOUT, as the loop's client does.
type idleBody struct {
	io.ReadCloser
	idle   time.Duration
	cancel context.CancelFunc
	fired  atomic.Bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	t := time.AfterFunc(b.idle, func() {
		b.fired.Store(true)
		b.cancel()
	})
	n, err := b.ReadCloser.Read(p)
	t.Stop()
	if err != nil && b.fired.Load() { // also a later read's: the fetch's context ended with it
		err = errIdle(b.idle)
	}
	return n, err
}

// errIdle is a fetch's failure once its server was silent past the idle bound.
func errIdle(d time.Duration) error {
	return coded(abi.ReachETIMEDOUT, fmt.Errorf("the server sent nothing for %v while the fetch waited for it (--fetch-idle-timeout)", d))
}
