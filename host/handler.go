package host

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmloop/wasmloop/host/internal/httpfield"
	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// Handler returns an http.Handler that serves requests with the running program's HTTP
// server, for mounting the program in a Go service's own server or router:
//
//	mux.Handle("/plugin/", http.StripPrefix("/plugin", app.Handler()))
//
// A request reaches the program as one from its own port does, on the next worker in turn:
// the same parser and limits, the body streamed in as the program reads it, the answer
// streamed out (flushed as it comes, when the ResponseWriter is an http.Flusher) with the same
// back-pressure — a slow client pauses the program through its drain signal — and a request
// whose context ends (the client left) is closed under the program (on_close). A WebSocket
// upgrade the program accepts takes the connection over through http.Hijacker. An answer
// that starts before the request's body has been read to its end (a 413, a streamed echo)
// closes the client's HTTP/1 connection once it is sent: what the client still sends of the
// body must not be read as its next request.
//
// A request whose head cannot be passed on as it is — a method or field name that is not a
// token, a target or host with a space or control character, a field value with a line break
// or NUL (which would add fields, or a request, of its own) — is answered 400, as net/http's
// own client refuses it.
//
// The program must have started (Start) and opened a server with listen; with
// Config.NoPorts that server opens no port, and Handler is its only way in. While the program
// is not running, or has no server, the Handler answers 503.
func (a *App) Handler() http.Handler { return appHandler{a} }

type appHandler struct{ app *App }

func (h appHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.app.mu.Lock()
	run := h.app.running
	h.app.mu.Unlock()
	if run == nil {
		http.Error(w, "the program is not running", http.StatusServiceUnavailable)
		return
	}
	// The head is written as text onto a connection the next client's request may reuse: a
	// line break that a middleware put in a header value (or the method, target or host)
	// would become header lines or a whole request of its own, answered to that next client.
	// net/http's own client refuses such a request; so does the Handler.
	if err := checkHead(r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	alone := run.handling.Add(1) == 1
	defer run.handling.Add(-1)
	// A kept connection the loop has closed meanwhile (its idle timeout, a swap) fails
	// before any answer: the request is sent again on a new one, once, when it has no body
	// that could have been read.
	for attempt := 0; ; attempt++ {
		pc, reused := run.pool.get()
		if pc == nil {
			var err error
			if pc, err = handIn(run); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		pc.conn.BorrowAlone(alone)
		ex := &exchange{w: w, r: r, pc: pc, bodySent: make(chan struct{})}
		switch ex.serve(reused && attempt == 0) {
		case kept:
			// Idle in the pool, the connection's only notice is its close, which the pool
			// makes under its lock: that must not run a turn of the worker's.
			pc.conn.BorrowAlone(false)
			run.pool.put(pc)
			return
		case retry:
			continue
		}
		return
	}
}

// handIn opens an in-memory connection to the next worker in turn.
func handIn(run *run) (*pairConn, error) {
	p := run.g.ServePipe()
	if p == nil {
		return nil, errors.New("the program has ended")
	}
	return &pairConn{conn: p, br: bufio.NewReaderSize(p, 16<<10), bw: bufio.NewWriterSize(p, 4096)}, nil
}

// pairConn is the handler's end of a connection to the program, kept between requests as a
// client keeps a keep-alive connection: a new connection and its buffers cost more than the
// request itself.
type pairConn struct {
	conn      *loop.Pipe
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// connPool holds a run's idle connections, the most recently used first.
type connPool struct {
	mu     sync.Mutex
	idle   []*pairConn
	closed bool
	// maxIdleAge drops a connection idle that long, well before the loop's idle timeout
	// closes it under us.
	maxIdleAge time.Duration
}

// maxIdleConns bounds the connections a run keeps idle.
const maxIdleConns = 256

func (p *connPool) get() (pc *pairConn, reused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		pc = p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(pc.idleSince) < p.maxIdleAge {
			return pc, true
		}
		pc.conn.Close()
	}
	return nil, false
}

func (p *connPool) put(pc *pairConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxIdleConns {
		pc.conn.Close()
		return
	}
	pc.idleSince = time.Now()
	p.idle = append(p.idle, pc)
}

// closeAll closes the idle connections and every one put back later: the run has ended.
func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, pc := range p.idle {
		pc.conn.Close()
	}
	p.idle = nil
}

// exchange is one request handed in and its answer.
type exchange struct {
	w        http.ResponseWriter
	r        *http.Request
	pc       *pairConn
	bodySent chan struct{} // closed when the request body has been written (or given up)
	bodyErr  error         // why the body could not be written, once bodySent is closed
	bodyRead atomic.Bool   // the client's body has been read to its end (endBody)
}

// outcome is what became of an exchange's connection.
type outcome int

const (
	closed outcome = iota // done, and the connection closed
	kept                  // done, and the connection can carry another request
	retry                 // a kept connection had been closed: nothing was sent or answered
)

func (ex *exchange) serve(mayRetry bool) outcome {
	r, conn := ex.r, ex.pc.conn
	// The client leaving closes the connection under the program (on_close).
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	upgrade := isWebSocketUpgrade(r)
	seen := conn.Consumed() // what the program had read before this request
	bw, br := ex.pc.bw, ex.pc.br
	bw.Reset(conn)
	writeHead(bw, r, upgrade)
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 && !upgrade
	if !hasBody {
		close(ex.bodySent)
		if err := bw.Flush(); err != nil {
			stop()
			conn.Close()
			if mayRetry {
				return retry
			}
			// The worker closed its end before reading a byte: it has no server, or is draining
			// or ending. That is the program not serving, documented as 503, not a bad gateway.
			http.Error(ex.w, "the program is not serving", http.StatusServiceUnavailable)
			return closed
		}
	} else {
		// The body goes in beside the answer coming out: the program may answer before it
		// has read all of it (a 413, or a stream), and reading the answer must not wait for
		// the body's end.
		//
		// net/http's HTTP/1 server does not allow that unless asked (EnableFullDuplex): by
		// default it consumes or closes the unread request body once the answer begins, and
		// a program echoing a long upload as it arrives (samples/stream's /echo) had its
		// answer end 256 KiB + 1 short of the body, with no error at the client. A
		// ResponseWriter without the option (HTTP/2's is full duplex already) returns an
		// error, which changes nothing.
		http.NewResponseController(ex.w).EnableFullDuplex()
		go ex.sendBody(bw)
	}
	result := closed
	defer func() {
		if result != kept {
			conn.Close() // ends sendBody's writes if the program stopped reading
		}
		ex.endBody()
	}()
	a, header101, err := ex.readAnswerHead(br)
	if err != nil {
		stop()
		// Sent again only if the program never read a byte of it: a kept connection it closed
		// while idle. One it read and then closed without an answer (an aborted response, a
		// POST it acted on) must not be handed to it a second time.
		if mayRetry && !hasBody && conn.Consumed() == seen && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			result = retry
			return retry
		}
		if r.Context().Err() == nil {
			ex.closeIfBodyUnread(hasBody)
			http.Error(ex.w, "the program closed the request without an answer", http.StatusServiceUnavailable)
		}
		return closed
	}
	if a.status == http.StatusSwitchingProtocols {
		stop()
		ex.switchProtocols(header101, br)
		return closed
	}
	ex.closeIfBodyUnread(hasBody)
	ex.w.WriteHeader(a.status)
	err = copyFlushing(ex.w, answerBody(br, a), br)
	if !stop() { // the client left: the connection is closed
		return closed
	}
	if err == errClientWrite {
		// The rest of the answer is still in the connection, unread: kept, it would be the
		// next request's answer — a body the program echoed, served to another client as an
		// answer of its own. (http.ReadResponse's body read the rest away on Close; this
		// reader does not.) The deferred Close ends it.
		return closed
	}
	if err != nil {
		// The answer was cut short (the program's instance trapped mid-stream): the client
		// must not take what it got for the whole answer, so its connection is aborted.
		panic(http.ErrAbortHandler)
	}
	ex.endBody() // answered before the client's body ended (a 413): the rest is not waited for
	if !a.close && ex.bodyErr == nil && br.Buffered() == 0 {
		result = kept
	}
	return result
}

// closeIfBodyUnread, called before an answer's head goes to the client, makes it end the
// client's HTTP/1 connection when the client's body has not been read to its end: the
// exchange may end with the rest of it cut off (endBody), and net/http's server in
// full-duplex mode keeps a connection whose body read was cut and reads what follows of the
// body as the client's next request — a 400 to a client that did nothing wrong, or, for a
// body that holds HTTP text, a request the client never made. Said in the head, while it can
// still be said, as net/http's own rule for a body unread when the head goes out (Expect:
// 100-continue) has it. HTTP/2 frames each body on its stream: nothing to end there (and its
// server would take the field for a GOAWAY of the whole connection).
func (ex *exchange) closeIfBodyUnread(hasBody bool) {
	if hasBody && ex.r.ProtoMajor == 1 && !ex.bodyRead.Load() {
		ex.w.Header().Set("Connection", "close")
		// And closed the way net/http closes a connection whose body passed a limit: write
		// side first, the rest after a wait. Closed at once with the client's body still
		// coming, the kernel answers its next bytes with a reset, and a reset drops what the
		// client had received but not read yet: the answer itself (the client saw "connection
		// reset by peer" instead of its 413). MaxBytesReader is net/http's one public way to
		// ask for that close ("it tells the ResponseWriter to close the connection"); behind
		// a writer that hides it, the field above still ends the connection.
		http.MaxBytesReader(ex.w, io.NopCloser(strings.NewReader("x")), 0).Read(make([]byte, 1))
	}
}

// readAnswerHead reads the program's answer head (answer.go), its fields straight into the
// ResponseWriter's header. 1xx interim heads other than 101 go on to the client as they come;
// a 101's fields go into a header of their own, for the head written on the client's
// connection once it is taken over.
func (ex *exchange) readAnswerHead(br *bufio.Reader) (answerHead, http.Header, error) {
	for {
		status, http10, err := readStatusLine(br)
		if err != nil {
			return answerHead{}, nil, err
		}
		h := ex.w.Header()
		if status == http.StatusSwitchingProtocols {
			h = http.Header{}
		}
		a, err := readFields(br, h, status, http10, ex.r.Method)
		if err != nil || status >= 200 || status == http.StatusSwitchingProtocols {
			return a, h, err
		}
		ex.w.WriteHeader(status)
	}
}

// sendBody writes the request head, at once, then the body piece by piece as the client
// sends it, chunked when its length is unknown. Held back until the body ended (or a buffer
// filled), the program heard nothing of a request whose client sends slowly or streams —
// no small echoed piece came back, and its body timeouts never saw the request — as it
// would on its own port.
func (ex *exchange) sendBody(bw *bufio.Writer) {
	var err error
	defer func() {
		ex.bodyErr = err
		close(ex.bodySent)
	}()
	if err = bw.Flush(); err == nil {
		err = copyBody(bw, ex.r.Body, ex.r.ContentLength, &ex.bodyRead)
	}
	if err != nil {
		// The client's body failed, or the program stopped reading: either way the request
		// cannot go on, and closing tells the program (on_close).
		ex.pc.conn.Close()
	}
}

// copyBody writes length bytes of body to bw (all of it, chunked, when length < 0), each
// piece flushed as soon as it is read. read is set as soon as the body's end has been read,
// before its last piece is written.
func copyBody(bw *bufio.Writer, body io.Reader, length int64, read *atomic.Bool) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	w := io.Writer(bw)
	var chunked io.WriteCloser
	if length < 0 {
		chunked = httputil.NewChunkedWriter(bw)
		w = chunked
	} else {
		body = io.LimitReader(body, length)
	}
	var sent int64
	for {
		n, rerr := body.Read(buf)
		if rerr == io.EOF || length >= 0 && sent+int64(n) >= length {
			read.Store(true)
		}
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if chunked == nil {
		if sent < length {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	if err := chunked.Close(); err != nil {
		return err
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// endBody waits for sendBody once the exchange is over (r.Body must not be read after
// ServeHTTP returns). A client that stalls mid-body would hold ServeHTTP for as long as it
// stays: its body read is ended by a read deadline in the past (net/http then closes its
// connection, as it must with the body unread). A ResponseWriter that cannot set deadlines
// (a middleware's that does not unwrap) leaves the wait to the client or the server's
// ReadTimeout.
func (ex *exchange) endBody() {
	select {
	case <-ex.bodySent:
		return
	default:
	}
	if !ex.bodyRead.Load() {
		// Not once the body's end is read: net/http has then begun its own read of the
		// connection, and a deadline would end that one — and the context of every later
		// request on the connection with it. What is left (writing the last piece to the
		// program) does not wait for the client.
		http.NewResponseController(ex.w).SetReadDeadline(time.Now())
	}
	<-ex.bodySent
}

// errClientWrite is the ResponseWriter refusing the answer's body: the client left (its
// context ends the exchange), or a middleware's writer failed while the request goes on.
// Either way the rest of the answer is left unread in the connection.
var errClientWrite = errors.New("the ResponseWriter refused the answer's body")

// copyBufs are the buffers answers are copied through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyFlushing copies the answer's body to w, flushing whenever nothing more is waiting, so
// that a streamed answer reaches the client as the program writes it.
func copyFlushing(w http.ResponseWriter, body io.Reader, br *bufio.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	flusher, _ := w.(http.Flusher)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return errClientWrite
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if flusher != nil && br.Buffered() == 0 {
			flusher.Flush()
		}
	}
}

// switchProtocols hands the client's connection over to the program's WebSocket: the 101
// answer goes to the client, and then bytes are copied both ways until either side closes.
func (ex *exchange) switchProtocols(header http.Header, br *bufio.Reader) {
	client, crw, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		http.Error(ex.w, "the server cannot hand the connection over for a WebSocket", http.StatusNotImplemented)
		return
	}
	defer client.Close()
	head := "HTTP/1.1 101 Switching Protocols\r\n"
	for k, vs := range header {
		for _, v := range vs {
			head += k + ": " + v + "\r\n"
		}
	}
	if _, err := io.WriteString(client, head+"\r\n"); err != nil {
		return
	}
	// What each side sent past the handshake is already in a buffer: it goes first.
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(ex.pc.conn, crw.Reader)
		ex.pc.conn.CloseWrite()
	}()
	io.Copy(client, br)
	client.Close()
	ex.pc.conn.Close()
	<-done
}

func isWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// hopByHop are the header fields that belong to the client's connection, not to the request:
// the connection to the program has its own framing.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Transfer-Encoding": true, "Trailer": true, "Upgrade": true, "Expect": true,
	"Content-Length": true, "Host": true,
}

// checkHead refuses a request whose head cannot be written as it is (writeHead): a method or
// field name that is not a token, a target or host with a space or a control character, a
// field value with a line break or NUL.
func checkHead(r *http.Request) error {
	if !isToken(r.Method) {
		return errors.New("invalid method")
	}
	if !isVisible(r.URL.RequestURI()) || !isVisible(r.Host) {
		return errors.New("invalid request target or host")
	}
	for k, vs := range r.Header {
		if !isToken(k) {
			return errors.New("invalid header field name")
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return errors.New("invalid header field value")
			}
		}
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110, 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpfield.IsTchar(s[i]) {
			return false
		}
	}
	return true
}

// isVisible reports whether s has no space and no control character.
func isVisible(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// writeHead writes the request's head in origin form, as a client would have sent it to the
// program's port. The path is r.URL's, so a router's prefix stripping holds.
func writeHead(bw *bufio.Writer, r *http.Request, upgrade bool) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	for k, vs := range r.Header {
		if hopByHop[k] {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case upgrade:
		bw.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n")
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(r.ContentLength, 10))
		bw.WriteString("\r\n")
	case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
}
