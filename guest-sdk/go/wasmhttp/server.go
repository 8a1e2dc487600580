//go:build wasip1

package wasmhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

// ListenAndServe serves handler — any http.Handler: an http.ServeMux with Go 1.22 patterns,
// a router, middleware — on addr ("host:port"; an empty host is 127.0.0.1, the address every
// sample listens on; "0.0.0.0:port" for every interface). Unlike net/http's, it returns at
// once: the listening server keeps the program alive, and each worker serves its share of the
// connections.
//
// Every request runs its handler on a goroutine of its own, started inside the callback that
// delivered the request and run until it blocks or returns before that callback does, so a
// handler that neither blocks nor waits costs one goroutine (RATIONALE.md, "net/http
// handlers in a guest"). It may block: r.Body.Read waits for the body as it arrives (the
// connection is paused while 256 KiB wait unread), w.Write waits while the client is slow to
// take the output, http.Client calls go through wasmhttp.Transport, time.Sleep sleeps —
// while the worker goes on serving other requests.
func ListenAndServe(addr string, handler http.Handler) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("wasmhttp: listen address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("wasmhttp: listen address %q: bad port", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return NewServer(handler).Listen(p, host)
}

// NewServer returns a server, not yet listening, that runs handler for every request, with
// request bodies streamed to r.Body (wasmloop.Server.StreamBodies).
func NewServer(handler http.Handler) *wasmloop.Server {
	if handler == nil {
		handler = http.DefaultServeMux
	}
	s := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		serve(handler, req, res)
	})
	s.StreamBodies()
	return s
}

// Upgrade accepts a WebSocket handshake on a request served through ListenAndServe or
// NewServer; the host then runs the protocol and the returned *wasmloop.WebSocket delivers
// whole messages. The handler may return at once: the socket lives until it closes.
func Upgrade(w http.ResponseWriter, r *http.Request, opts wasmloop.UpgradeOptions) (*wasmloop.WebSocket, error) {
	rw, ok := w.(*responseWriter)
	if !ok {
		return nil, errors.New("wasmhttp: Upgrade needs the ResponseWriter of a wasmhttp server")
	}
	if rw.committed || rw.ended {
		return nil, errors.New("wasmhttp: Upgrade after the response has started")
	}
	ws, err := rw.x.res.Upgrade(opts)
	if err == nil {
		rw.upgraded = true
	}
	return ws, err
}

// IsWebSocket reports whether r asks for a WebSocket upgrade (Upgrade: websocket on a GET
// whose Connection field lists upgrade); Upgrade checks the rest of the handshake.
func IsWebSocket(r *http.Request) bool {
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// pendingBodyMax is how much of a request body may wait unread before the connection is
// paused; reading it down to resumeBelow resumes it.
const (
	pendingBodyMax = 256 << 10
	resumeBelow    = 64 << 10
	// bufferedOutput is how much of a response is held before the head goes out: a response
	// that fits is sent in one piece with a Content-Length, as net/http does below its
	// buffer's size; a longer one goes out chunked as it is written.
	bufferedOutput = 4 << 10
)

// exchange is one request served through an http.Handler: what the handler's goroutine and
// the callbacks that deliver the body, the drain and the close share. Only one of them runs
// at a time (the guest has one thread, and goroutines run only when a callback lets them), so
// it needs no lock. It holds the handler's ResponseWriter, the request's body, context and URL
// and the header values' slices too: in Go's wasm code each allocation costs about as much as
// the host's whole request path, so a request makes as few as it can (RATIONALE.md, "net/http
// handlers in a guest").
type exchange struct {
	req wasmloop.Request
	res wasmloop.Response

	body       []byte // received and not yet read
	bodyEnded  bool
	paused     bool
	needResume bool // Expect: 100-continue: the first Read asks for the body
	gone       bool // the client left
	served     bool // the handler returned: r.Body and w are closed

	// The goroutines waiting on the exchange: one for a body piece or the end (r.Body.Read),
	// one for a drain (w.Write). They may be different goroutines, waiting at the same time (a
	// goroutine reads the body while the handler writes: wasmhttp.Transport's sendBody does),
	// so each has its own slot; the close wakes both.
	readWake, drainWake func()

	w      responseWriter
	reader requestBody
	ctx    requestContext
	url    url.URL
	values [16]string // the header values' []string, for up to 16 fields
}

func wake(slot *func()) {
	if w := *slot; w != nil {
		*slot = nil
		w()
	}
}

func (x *exchange) signalRead()  { wake(&x.readWake) }
func (x *exchange) signalDrain() { wake(&x.drainWake) }

// wait blocks the calling goroutine until a callback wakes the slot.
func (x *exchange) wait(slot *func()) error {
	_, err := wasmloop.Await(func(done func(struct{})) error {
		*slot = func() { done(struct{}{}) }
		return nil
	})
	return err
}

// canonicalName returns the canonical form of a common field name (the host hands names over
// in lower case) without allocating, or "". A switch, not a map: a map operation costs about
// a microsecond in Go's wasm code.
func canonicalName(name []byte) string {
	switch string(name) {
	case "accept":
		return "Accept"
	case "accept-encoding":
		return "Accept-Encoding"
	case "accept-language":
		return "Accept-Language"
	case "authorization":
		return "Authorization"
	case "cache-control":
		return "Cache-Control"
	case "connection":
		return "Connection"
	case "content-length":
		return "Content-Length"
	case "content-type":
		return "Content-Type"
	case "cookie":
		return "Cookie"
	case "expect":
		return "Expect"
	case "host":
		return "Host"
	case "if-modified-since":
		return "If-Modified-Since"
	case "if-none-match":
		return "If-None-Match"
	case "origin":
		return "Origin"
	case "range":
		return "Range"
	case "referer":
		return "Referer"
	case "sec-websocket-extensions":
		return "Sec-Websocket-Extensions"
	case "sec-websocket-key":
		return "Sec-Websocket-Key"
	case "sec-websocket-protocol":
		return "Sec-Websocket-Protocol"
	case "sec-websocket-version":
		return "Sec-Websocket-Version"
	case "transfer-encoding":
		return "Transfer-Encoding"
	case "upgrade":
		return "Upgrade"
	case "user-agent":
		return "User-Agent"
	case "x-forwarded-for":
		return "X-Forwarded-For"
	}
	return ""
}

func serve(handler http.Handler, req wasmloop.Request, res wasmloop.Response) {
	x := &exchange{req: req, res: res}
	target := req.URL()
	if !parseTarget(&x.url, target) {
		res.WriteHead(400, "Content-Type", "text/plain; charset=utf-8", "Connection", "close")
		res.End("400 Bad Request: malformed request target\n")
		return
	}
	header := x.header()
	hr := http.Request{
		Method:        req.Method(),
		URL:           &x.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    req.ProtoMinor(),
		Header:        header,
		ContentLength: req.ContentLength(),
		Host:          req.Host(),
		RequestURI:    target,
		Close:         !req.KeepAlive(),
	}
	if hr.ProtoMinor == 0 {
		hr.Proto = "HTTP/1.0"
	}
	if hr.ContentLength == -1 {
		hr.TransferEncoding = []string{"chunked"}
	}
	x.reader.x = x
	if hr.ContentLength == 0 {
		hr.Body = http.NoBody
		x.bodyEnded = true
	} else {
		hr.Body = &x.reader
	}
	if req.ExpectsContinue() {
		req.Pause() // the handler's first Read asks for the body, as net/http does
		x.paused, x.needResume = true, true
	}
	req.OnData(x.onData)
	req.OnEnd(x.onEnd)
	res.OnClose(x.onClose)
	x.w = responseWriter{x: x, hr: hr.WithContext(&x.ctx)}
	wasmloop.Go(x.w.run(handler))
}

// parseTarget parses an origin-form target ("/path?query") into u; a target with escapes or
// any other form goes through url.ParseRequestURI.
func parseTarget(u *url.URL, target string) bool {
	if len(target) > 0 && target[0] == '/' && !strings.ContainsAny(target, "%#") {
		path, query, _ := strings.Cut(target, "?")
		*u = url.URL{Path: path, RawQuery: query}
		return true
	}
	p, err := url.ParseRequestURI(target)
	if err != nil {
		return false
	}
	*u = *p
	return true
}

// header builds the request's http.Header: names in canonical form, one string holding every
// value, the values' slices cut from x.values, and one map operation per field. The Host field
// is left out, as net/http does (it is r.Host).
func (x *exchange) header() http.Header {
	n, size := 0, 0
	x.req.VisitHeaders(func(name, value []byte) { n++; size += len(value) })
	header := make(http.Header, n)
	if n == 0 {
		return header
	}
	all := make([]byte, 0, size)
	var backing []string
	if n <= len(x.values) {
		backing = x.values[:n]
	} else {
		backing = make([]string, n)
	}
	var keys [16]string
	i := 0
	x.req.VisitHeaders(func(name, value []byte) {
		k := canonicalName(name)
		if k == "Host" {
			return
		}
		if k == "" {
			k = textproto.CanonicalMIMEHeaderKey(string(name))
		}
		start := len(all)
		all = append(all, value...)
		v := unsafe.String(unsafe.SliceData(all[start:]), len(value)) // all is never written again below start+len
		for j := range min(i, len(keys)) {
			if keys[j] == k { // a repeated field: rare, so a map lookup only then
				header[k] = append(header[k], v)
				return
			}
		}
		if i >= len(keys) {
			if vs, ok := header[k]; ok {
				header[k] = append(vs, v)
				return
			}
		} else {
			keys[i] = k
		}
		backing[i] = v
		header[k] = backing[i : i+1 : i+1]
		i++
	})
	return header
}

func (x *exchange) onEnd() {
	x.bodyEnded = true
	x.signalRead()
}

func (x *exchange) onClose() {
	x.gone = true
	x.ctx.cancel()
	x.signalRead()
	x.signalDrain()
}

// requestContext is r.Context(): done when the client leaves or the handler returns, as
// net/http's is. It implements AfterFunc, which context.WithCancel and WithTimeout use to
// follow it without a goroutine of their own.
type requestContext struct {
	done  chan struct{}
	err   error
	after []func()
}

func (c *requestContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *requestContext) Value(any) any               { return nil }
func (c *requestContext) Err() error                  { return c.err }

func (c *requestContext) Done() <-chan struct{} {
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

// AfterFunc arranges for f to run (on a goroutine, as context.AfterFunc does) once c is done.
func (c *requestContext) AfterFunc(f func()) (stop func() bool) {
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	i := len(c.after)
	c.after = append(c.after, f)
	return func() bool {
		if c.err != nil || c.after[i] == nil {
			return false
		}
		c.after[i] = nil
		return true
	}
}

func (c *requestContext) cancel() {
	if c.err != nil {
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	for _, f := range c.after {
		if f != nil {
			go f()
		}
	}
	c.after = nil
}

func (x *exchange) onData(chunk []byte) {
	x.body = append(x.body, chunk...)
	if len(x.body) > pendingBodyMax && !x.paused {
		x.paused = true
		x.req.Pause()
	}
	x.signalRead()
}

// closeBody runs when the handler returns: a goroutine it left reading r.Body (or waiting
// for a drain) gets an error instead of waiting for ever on an exchange that has ended.
func (x *exchange) closeBody() {
	x.served = true
	x.body = nil
	x.signalRead()
	x.signalDrain()
}

// requestBody is r.Body: the request's body as it arrives.
type requestBody struct{ x *exchange }

func (b *requestBody) Read(p []byte) (int, error) {
	x := b.x
	for {
		if len(x.body) > 0 {
			n := copy(p, x.body)
			x.body = x.body[n:]
			if len(x.body) == 0 {
				x.body = x.body[:0:0] // let the pieces read go
			}
			if x.paused && !x.needResume && len(x.body) < resumeBelow {
				x.paused = false
				x.req.Resume()
			}
			return n, nil
		}
		switch {
		case x.bodyEnded:
			return 0, io.EOF
		case x.served:
			return 0, http.ErrBodyReadAfterClose
		case x.gone:
			return 0, io.ErrUnexpectedEOF
		}
		if x.needResume {
			x.needResume, x.paused = false, false
			x.req.Resume()
		}
		if err := x.wait(&x.readWake); err != nil {
			return 0, err
		}
	}
}

func (b *requestBody) Close() error { return nil }

// responseWriter is the handler's http.ResponseWriter; it is also an http.Flusher.
type responseWriter struct {
	x      *exchange
	hr     *http.Request
	header http.Header // the handler's fields
	// head is the fields the head goes out with once the status is set: the handler's as
	// they were then, as net/http takes them at WriteHeader. Header() after the status hands
	// the handler a copy (frozen), so only a handler that asks for the header then pays for
	// one.
	head   http.Header
	frozen bool
	// declared is the Content-Length the handler set at WriteHeader (-1: none); written
	// counts the body against it, as net/http does.
	declared, written int64

	status    int
	buf       []byte // output held until bufferedOutput, Flush or the handler's return
	committed bool   // the head has gone out
	ended     bool
	upgraded  bool
}

func (w *responseWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	if w.status != 0 && !w.frozen {
		// Fields set from now on are the handler's alone (net/http sends the ones it had at
		// WriteHeader; a late one went out here while the body was still held).
		w.frozen = true
		w.head, w.header = w.header, w.header.Clone()
	}
	return w.header
}

// fields is what the head goes out with (head).
func (w *responseWriter) fields() http.Header {
	if w.frozen {
		return w.head
	}
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	return w.header
}

// EnableFullDuplex is http.ResponseController's: the adapter reads the request body and
// writes the answer independently already, so there is nothing to enable.
func (w *responseWriter) EnableFullDuplex() error { return nil }

// WriteHeader sets the status; informational statuses (1xx) are not sent, the first other
// one wins, as in net/http.
func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 || code > 999 {
		if code < 100 || code > 999 {
			panic(fmt.Sprintf("invalid WriteHeader code %v", code))
		}
		return
	}
	w.status = code
	w.declared = -1
	if cl := w.fields().Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.declared = n
		}
	}
}

func (w *responseWriter) bodyAllowed() bool {
	return w.status != 204 && w.status != 304
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(200)
	}
	switch {
	case w.ended || w.upgraded:
		return 0, http.ErrHijacked
	case !w.bodyAllowed():
		return 0, http.ErrBodyNotAllowed
	case w.x.gone:
		return 0, wasmloop.ErrClosed
	case w.declared >= 0 && w.written+int64(len(p)) > w.declared:
		// As net/http: the write past the declared length is refused whole. Taken, the
		// host refused the answer at its end for the mismatch, and the client got a bare
		// 500 in place of the handler's answer.
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed && len(w.buf)+len(p) <= bufferedOutput {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if err := w.commit(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// commit sends the head (once) with what was held and p, then waits while the connection is
// above its high-water mark.
func (w *responseWriter) commit(p []byte) error {
	res := w.x.res
	if !w.committed {
		held := w.buf
		w.buf = nil
		if len(held) == 0 {
			w.sendHead(p)
		} else {
			w.sendHead(held)
		}
		w.committed = true
		if len(held) > 0 || len(p) == 0 {
			if _, err := res.Write(held); err != nil { // an empty write sends the head alone
				return err
			}
		}
	}
	if len(p) > 0 {
		if _, err := res.Write(p); err != nil {
			return err
		}
	}
	for res.Full() && !w.x.gone {
		res.OnDrain(w.x.signalDrain)
		if err := w.x.wait(&w.x.drainWake); err != nil {
			return err
		}
	}
	if w.x.gone {
		return wasmloop.ErrClosed
	}
	return nil
}

// sendHead sets the response's status and header fields; sample is the start of the body,
// for the Content-Type net/http would sniff.
func (w *responseWriter) sendHead(sample []byte) {
	res := w.x.res
	h := w.fields()
	if _, ok := h["Content-Type"]; !ok && w.bodyAllowed() && len(sample) > 0 && h.Get("Content-Encoding") == "" {
		h.Set("Content-Type", http.DetectContentType(sample))
	}
	for k, vs := range h {
		if !sendable(k, w.status) {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				v = newlineToSpace.Replace(v) // as net/http does: never a split header
			}
			res.SetHeader(k, v)
		}
	}
	res.WriteHead(w.status)
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// sendable reports whether the handler's field k goes into the head, as net/http decides:
// invalid names are dropped (the host would refuse the whole head, a 500), and so are
// Transfer-Encoding (the host frames the body), trailers (http.TrailerPrefix; the ABI has no
// trailers) and, for 204 and 304, Content-Length (and for 304 Content-Type), which net/http
// removes.
func sendable(k string, status int) bool {
	switch k {
	case "Transfer-Encoding", "Trailer":
		return false
	case "Content-Length":
		return status != 204 && status != 304
	case "Content-Type":
		return status != 304
	}
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// Flush sends the head and everything written so far (http.Flusher).
func (w *responseWriter) Flush() {
	if w.ended || w.upgraded || w.x.gone {
		return
	}
	if w.status == 0 {
		w.WriteHeader(200)
	}
	if !w.committed {
		w.commit(nil)
	}
}

// run returns the handler's goroutine's function.
func (w *responseWriter) run(handler http.Handler) func() {
	return func() { w.serve(handler) }
}

func (w *responseWriter) serve(handler http.Handler) {
	defer w.x.ctx.cancel()
	defer w.x.closeBody()
	defer func() {
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				fmt.Fprintf(os.Stderr, "http: panic serving %s %s: %v\n%s", w.hr.Method, w.hr.RequestURI, err, debug.Stack())
			}
			if w.upgraded || w.ended {
				return
			}
			if w.committed || err == http.ErrAbortHandler {
				// Part of the response is out (or the handler asked for it to be cut): end it
				// so that the client sees it incomplete, as net/http does, not as a whole one.
				w.ended = true
				w.buf = nil
				w.x.res.Abort()
				return
			}
			w.header, w.frozen = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, false
			w.status, w.declared, w.buf = 500, -1, append(w.buf[:0], "500 Internal Server Error\n"...)
			w.finish()
		}
	}()
	handler.ServeHTTP(w, w.hr)
	w.finish()
}

// finish ends the response when the handler returns: in one piece with a Content-Length if
// nothing went out yet, as net/http does.
func (w *responseWriter) finish() {
	if w.ended || w.upgraded {
		return
	}
	if w.status == 0 {
		w.WriteHeader(200) // and the Content-Length it declared, if any, as net/http does
	}
	w.ended = true
	res := w.x.res
	if !w.committed && w.written < w.declared && w.bodyAllowed() && w.hr.Method != "HEAD" {
		// Shorter than the Content-Length it declared: the head and what there is go out,
		// and the host closes the connection at the short end (the client sees the body cut),
		// as net/http does. In one piece, the host refused the mismatch and sent a bare 500.
		w.commit(nil)
	}
	if !w.committed {
		w.sendHead(w.buf)
		if _, ok := w.fields()["Content-Length"]; !ok && w.bodyAllowed() && (len(w.buf) > 0 || w.hr.Method != "HEAD") {
			var digits [20]byte
			res.SetHeader("Content-Length", unsafe.String(&digits[0], len(strconv.AppendInt(digits[:0], int64(len(w.buf)), 10))))
		}
		w.committed = true
	}
	var body string
	if len(w.buf) > 0 {
		body = unsafe.String(&w.buf[0], len(w.buf)) // End copies it before returning
	}
	if err := res.End(body); err != nil && !w.x.gone {
		fmt.Fprintf(os.Stderr, "http: %s %s: the answer could not end: %v\n", w.hr.Method, w.hr.RequestURI, err)
	}
	w.buf = nil
}
