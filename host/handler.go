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
	"syscall"
	"time"

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
// upgrade the program accepts takes the connection over through http.Hijacker.
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
		ex := &exchange{w: w, r: r, pc: pc, bodySent: make(chan struct{})}
		switch ex.serve(reused && attempt == 0) {
		case kept:
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
			http.Error(ex.w, "the program's connection failed", http.StatusBadGateway)
			return closed
		}
	} else {
		// The body goes in beside the answer coming out: the program may answer before it
		// has read all of it (a 413, or a stream), and reading the answer must not wait for
		// the body's end.
		go ex.sendBody(bw)
	}
	result := closed
	defer func() {
		if result != kept {
			conn.Close() // ends sendBody's writes if the program stopped reading
		}
		<-ex.bodySent // r.Body must not be read once ServeHTTP has returned
	}()
	resp, err := readResponse(ex.w, br, r)
	if err != nil {
		stop()
		if mayRetry && !hasBody && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			result = retry
			return retry
		}
		if r.Context().Err() == nil {
			http.Error(ex.w, "the program closed the request without an answer", http.StatusServiceUnavailable)
		}
		return closed
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		stop()
		ex.switchProtocols(resp, br)
		return closed
	}
	header := ex.w.Header()
	for k, v := range resp.Header {
		header[k] = v
	}
	ex.w.WriteHeader(resp.StatusCode)
	err = copyFlushing(ex.w, resp.Body, br)
	resp.Body.Close()
	if !stop() { // the client left: the connection is closed
		return closed
	}
	if err != nil {
		// The answer was cut short (the program's instance trapped mid-stream): the client
		// must not take what it got for the whole answer, so its connection is aborted.
		panic(http.ErrAbortHandler)
	}
	<-ex.bodySent
	if !resp.Close && ex.bodyErr == nil && br.Buffered() == 0 {
		result = kept
	}
	return result
}

// readResponse reads the program's answer, passing 1xx interim answers (other than 101) on.
func readResponse(w http.ResponseWriter, br *bufio.Reader, r *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
	}
}

// sendBody writes the request body, chunked when its length is unknown.
func (ex *exchange) sendBody(bw *bufio.Writer) {
	var err error
	defer func() {
		ex.bodyErr = err
		close(ex.bodySent)
	}()
	if ex.r.ContentLength < 0 {
		cw := httputil.NewChunkedWriter(bw)
		if _, err = io.Copy(cw, ex.r.Body); err == nil {
			if err = cw.Close(); err == nil {
				_, err = bw.WriteString("\r\n")
			}
		}
	} else {
		_, err = io.CopyN(bw, ex.r.Body, ex.r.ContentLength)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// The client's body failed, or the program stopped reading: either way the request
		// cannot go on, and closing tells the program (on_close).
		ex.pc.conn.Close()
	}
}

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
				return nil // the client left; its context ends the exchange
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
func (ex *exchange) switchProtocols(resp *http.Response, br *bufio.Reader) {
	client, crw, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		http.Error(ex.w, "the server cannot hand the connection over for a WebSocket", http.StatusNotImplemented)
		return
	}
	defer client.Close()
	head := "HTTP/1.1 101 Switching Protocols\r\n"
	for k, vs := range resp.Header {
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
