package loop

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
)

// A fetch over plain HTTP/1.1 carried by the loop's own reactor (ABI.md §10): the request is
// written and the answer read on one of the loop's connections (clientconn.go), kept open
// between fetches to the same address as a browser or Go's client keeps them. No goroutine
// runs per fetch but the dial of a new connection: the head, each piece of the body and each
// write of a streamed upload are the reactor's events, answered after the callback that asked,
// like a raw TCP stream's (tcpstream.go). The body is read only while the program has a read
// pending, so a program that does not ask pushes back on the server through the kernel's
// buffers. Everything else a fetch may need — https, a proxy, redirects, an embedder's
// transport — stays with Go's net/http client (package reach decides).

// FetchSpec is a fetch for the reactor to carry, built by package reach.
type FetchSpec struct {
	Addr    string // host:port: the dial's target and the key of the kept connections
	Request []byte // the request head, followed by the whole body unless Streamed
	Head    bool   // a HEAD request: its answer has no body
	// Streamed: the program writes the body (Write, End) after the head; BodyLength is its
	// length when the program gave one (Content-Length), else -1 (chunked).
	Streamed   bool
	BodyLength int64
	// Replayable: the request may be sent again on a new connection when a kept one turns
	// out closed before any byte of the answer (an idempotent method, a body given whole),
	// as Go's transport does.
	Replayable bool
	Timeout    time.Duration // for the whole exchange, body included; 0: none
	// Dial opens a new connection to Addr, on a goroutine: a connected, non-blocking,
	// close-on-exec socket, or an error whose text begins with its code.
	Dial func(ctx context.Context, addr string) (fd int, err error)
}

// fetchPhase is where a fetch is. It only moves forward, but for a retry (connecting again).
type fetchPhase uint8

const (
	fetchConnecting fetchPhase = iota // waiting for a kept connection's turn or a dial
	fetchHead                         // the request is sent (or going); the answer's head is awaited
	fetchBody                         // the head is in; the body is read as the program asks
	fetchEnded                        // the body ended: the connection is kept or closed
	fetchFailed                       // err says why; the connection is closed
)

// maxAnswerHead bounds an answer's head, as Go's client does (10 MB).
const maxAnswerHead = 10 << 20

// maxInformational bounds the 1xx answers skipped before the final one, as Go's client does.
const maxInformational = 5

// answerLimits are the chunked decoder's for an answer's body: any length (the program reads
// it piece by piece), a chunk line and a trailer section bounded as net/http's client bounds them.
var answerLimits = http1.Limits{MaxBodyBytes: math.MaxInt64, MaxChunkLine: 4096, MaxTrailerBytes: 1 << 20}

// FetchStream is one fetch the reactor carries: reach's handle for its id. Its methods run on
// the loop's goroutine but CloseLater.
type FetchStream struct {
	l     *Loop
	in    *instance
	spec  FetchSpec
	phase fetchPhase
	err   error       // why it failed (fetchFailed)
	cc    *clientConn // the connection carrying it (fetchHead, fetchBody), else nil
	// reused: cc was kept from an earlier fetch; answered: a byte of the answer came on cc.
	// A kept connection the server closed before answering is what a retry is for.
	reused, answered bool
	retried          bool

	head     []byte // the head's result: status u16 and the field lines (fetchBody on)
	headOps  []*Op  // response operations waiting for the head
	informal int    // 1xx answers skipped
	// headScanned: how much of the head in the connection's input was searched for its end
	headScanned int
	keep        bool // the connection may carry another fetch once this one ends
	framing     http1.BodyFraming
	left        int64 // BodyLength: bytes of the body still to come
	chunks      http1.ChunkedDecoder

	read    *Op // waiting for body bytes; readMax is what it asked for
	readMax int
	reading bool // a read is pending until its answer is handed to the program

	write     *Op    // a streamed body's piece waiting for the output to drain, or for a connection
	writeData []byte // that piece, while connecting (a copy)
	end       *Op    // the program's end of its body, while connecting
	sent      int64  // streamed body bytes queued
	bodyDone  bool   // the program ended its streamed body
	timeout   *timer // fails the fetch at spec.Timeout; out of the heap once it ends
}

// fetch errors, in the "CODE message" form of reach's results.
var (
	errFetchWhole    = fmt.Errorf("%s the request body was given whole: fetch with FetchStreamBody to write it", abi.FileEINVAL)
	errFetchAnswered = fmt.Errorf("%s the answer has ended: the server takes no more of the body", abi.ReachECLOSED)
	errFetchEOF      = fmt.Errorf("%s the server closed the connection before the body's end", abi.FileEIO)
	errFetchHeadCut  = fmt.Errorf("%s the server closed the connection before its answer's head ended (with an empty line, its lines ending in CRLF)", abi.FileEIO)
	errFetchNoAnswer = fmt.Errorf("%s the server closed the connection without an answer", abi.ReachECONNRESET)
	errFetchNotLoop  = fmt.Errorf("%s a fetch is started from a program's call", abi.FileEINVAL)
)

// instanceKey finds the instance a context belongs to (StartFetch).
type instanceKey struct{}

// CarriesFetches reports whether ctx is a program's call, on whose loop StartFetch may start
// a fetch.
func CarriesFetches(ctx context.Context) bool {
	_, ok := ctx.Value(instanceKey{}).(*instance)
	return ok
}

// StartFetch starts spec on the loop of the instance ctx belongs to, from that loop's
// goroutine (a sync host function): a kept connection to spec.Addr carries it if one is idle,
// else a new one is dialled.
func StartFetch(ctx context.Context, spec FetchSpec) (*FetchStream, error) {
	in, _ := ctx.Value(instanceKey{}).(*instance)
	if in == nil {
		return nil, errFetchNotLoop
	}
	l := in.calls.l
	if l.stopped {
		return nil, errStreamClosed
	}
	fs := &FetchStream{l: l, in: in, spec: spec}
	fs.chunks.Limits = answerLimits
	if spec.Timeout > 0 {
		fs.timeout = l.addHostTimer(spec.Timeout, func() {
			fs.fail(fmt.Errorf("%s the fetch took longer than its timeout of %v", abi.ReachETIMEDOUT, spec.Timeout))
		})
	}
	fs.connect()
	return fs, nil
}

// connect takes a kept connection to the address, or dials one.
func (fs *FetchStream) connect() {
	if cc := fs.l.takeIdle(fs.spec.Addr); cc != nil {
		fs.attach(cc, true)
		return
	}
	fs.dial()
}

// dial opens a new connection for the fetch, on a goroutine.
func (fs *FetchStream) dial() {
	l, dial, addr, ctx := fs.l, fs.spec.Dial, fs.spec.Addr, fs.in.ctx
	go func() {
		fd, err := dial(ctx, addr)
		l.post(func(*Loop) { fs.connected(fd, err) }, func() {
			if err == nil {
				unix.Close(fd) // the loop has ended
			}
		})
	}()
}

// connected takes the dial's connection: this fetch's if it still waits for one, else the
// next fetch's (kept).
func (fs *FetchStream) connected(fd int, err error) {
	l := fs.l
	if err != nil {
		if fs.phase == fetchConnecting {
			fs.fail(err)
		}
		return
	}
	cc, err := l.newClientConn(fd, fs.spec.Addr)
	switch {
	case err != nil:
		if fs.phase == fetchConnecting {
			fs.fail(fmt.Errorf("%s %v", abi.FileEIO, err))
		}
	case fs.phase != fetchConnecting: // closed, failed or timed out meanwhile
		l.putIdle(cc)
	default:
		fs.attach(cc, false)
	}
}

// attach sends the request on cc.
func (fs *FetchStream) attach(cc *clientConn, reused bool) {
	l, c := fs.l, cc.c
	fs.cc, cc.fs, fs.reused, fs.phase = cc, fs, reused, fetchHead
	c.since = l.clock()
	// The head and a body given whole go at once, and a streamed body one piece at a time
	// under the mark: the output is bounded by what the program gave, never grown by a peer.
	c.maxOut = max(c.maxOut, l.cfg.WriteHighWater+len(fs.spec.Request)+abi.MaxStreamWrite+32)
	fs.queue(nil, fs.spec.Request, nil)
	if fs.cc != cc {
		return // the connection closed at once (lost): the fetch failed, or went on another
	}
	if op := fs.write; op != nil && !c.closed() {
		fs.write = nil
		data := fs.writeData
		fs.writeData = nil
		fs.writeBody(op, data)
	}
	if op := fs.end; op != nil && !c.closed() {
		fs.end = nil
		fs.End(op)
	}
}

// queue queues pre, data and post on the fetch's connection.
func (fs *FetchStream) queue(pre, data, post []byte) {
	l, c := fs.l, fs.cc.c
	n := len(pre) + len(data) + len(post)
	if n >= directWrite {
		l.writeThrough(c, pre, data, post)
		return
	}
	l.outRoom(c, n)
	c.out = append(append(append(c.out, pre...), data...), post...)
	l.queue.flush(c)
}

// requestDone reports whether the whole request is queued.
func (fs *FetchStream) requestDone() bool { return !fs.spec.Streamed || fs.bodyDone }

// waitsOnServer reports whether the fetch is waiting for its server: for the answer's head
// once the whole request is queued or while the server is not taking what is, or for more of
// the body while the program has a read pending. A program that is slow to write its body,
// or has no read pending, is not waiting for the server. Conn.since is the last time it did
// anything: connected, took output, sent bytes — or the program wrote, ended, or asked to read.
func (fs *FetchStream) waitsOnServer() bool {
	switch fs.phase {
	case fetchHead:
		return fs.requestDone() || fs.cc.c.outLen() > 0
	case fetchBody:
		return fs.read != nil
	}
	return false
}

// serve reads the answer from data: the head, then body bytes for a pending read.
func (fs *FetchStream) serve(data []byte) int {
	if len(data) > 0 {
		fs.cc.c.since = fs.l.clock()
	}
	used := 0
	for fs.phase == fetchHead {
		if len(data) > used {
			fs.answered = true
		}
		// A head that comes in many reads is searched for its end only in what is new: a
		// search from its start at every read made a hostile 8 MiB head cost seconds.
		rest := data[used:]
		if !bytes.Contains(rest[max(fs.headScanned-3, 0):], headEnd) && len(rest) <= maxAnswerHead {
			fs.headScanned = len(rest)
			return used
		}
		fs.headScanned = 0
		h, n, err := http1.ParseResponseHead(rest, maxAnswerHead, fs.l.headScratch())
		fs.l.keepHeadScratch(h.Fields)
		switch {
		case err != nil:
			fs.fail(fmt.Errorf("%s %v", abi.FileEIO, err))
			return 0
		case n == 0:
			return used // more is to come
		}
		used += n
		if h.Status < 200 && h.Status != 101 { // an interim answer (100 Continue, 103): the final one follows
			if fs.informal++; fs.informal > maxInformational {
				fs.fail(fmt.Errorf("%s more than %d interim (1xx) answers", abi.FileEIO, maxInformational))
				return 0
			}
			continue
		}
		head := make([]byte, len(h.Fields))
		copy(head, h.Fields)
		binary.LittleEndian.PutUint16(head, uint16(h.Status))
		fs.head, fs.phase = head, fetchBody
		// 101: the connection is the server's other protocol now, which a fetch does not speak.
		fs.keep = !h.Close && h.Status != 101
		fs.framing, fs.left = h.Framing(fs.spec.Head), h.ContentLength
		for _, op := range fs.headOps {
			op.Finish(head, nil)
		}
		fs.headOps = nil
		if fs.framing == http1.BodyNone || fs.framing == http1.BodyLength && fs.left == 0 {
			fs.ended(used < len(data))
			return used
		}
	}
	if fs.phase == fetchBody && fs.read != nil {
		used += fs.serveBody(data[used:])
	}
	return used
}

// serveBody answers the pending read from data, and returns how much of data it used.
func (fs *FetchStream) serveBody(data []byte) int {
	switch fs.framing {
	case http1.BodyLength:
		k := int(min(int64(len(data)), fs.left, int64(fs.readMax)))
		if k > 0 {
			fs.deliver(append(fs.l.getBufN(k), data[:k]...))
			fs.left -= int64(k)
		}
		if fs.left == 0 {
			fs.ended(len(data) > k)
		}
		return k
	case http1.BodyToClose:
		k := min(len(data), fs.readMax)
		if k > 0 {
			fs.deliver(append(fs.l.getBufN(k), data[:k]...))
		}
		return k
	}
	// Chunked: decode up to readMax bytes of data. The decoder keeps a partial chunk line's
	// state itself, so a source cut anywhere is safe.
	var out []byte
	used, done := 0, false
	for used < len(data) && len(out) < fs.readMax && !done {
		src := data[used:]
		if out == nil {
			out = fs.l.getBufN(min(len(src), fs.readMax))
		}
		src = src[:min(len(src), fs.readMax-len(out))]
		piece, k, end, err := fs.chunks.Next(src)
		if err != nil {
			if len(out) > 0 {
				fs.l.putBuf(out)
			}
			fs.fail(fmt.Errorf("%s a malformed chunked body: %v", abi.FileEIO, err))
			return 0
		}
		used += k
		out = append(out, piece...)
		done = end
		if k == 0 {
			break
		}
	}
	switch {
	case len(out) > 0:
		fs.deliver(out)
	case out != nil:
		fs.l.putBuf(out)
	}
	if done {
		fs.ended(used < len(data))
	}
	return used
}

// deliver finishes the pending read with b, one of the loop's buffers.
func (fs *FetchStream) deliver(b []byte) {
	op := fs.read
	fs.read = nil
	op.pooled = true
	op.Finish(b, nil)
}

// ended: the answer's body is complete. A pending read gets the end; the connection goes back
// to the kept ones if it can carry another fetch — the answer allowed it, the whole request
// went, and the server sent nothing past its answer (extra) — and is closed if not.
func (fs *FetchStream) ended(extra bool) {
	fs.phase = fetchEnded
	fs.stopTimeout()
	if op := fs.read; op != nil {
		fs.read = nil
		op.Finish(nil, nil)
	}
	if op := fs.write; op != nil { // an upload the server answered before its end
		fs.write = nil
		op.Finish(nil, errFetchAnswered)
	}
	cc := fs.cc
	fs.cc, cc.fs = nil, nil
	c := cc.c
	if fs.keep && !extra && fs.requestDone() && c.outLen() == 0 && !c.eof {
		fs.l.putIdle(cc)
		return
	}
	fs.l.closeConn(c, abi.CloseHost)
}

// fail ends the fetch with err: what waits gets it, and the connection is closed. A fetch
// that ended already keeps its end.
func (fs *FetchStream) fail(err error) {
	if fs.phase >= fetchEnded {
		return
	}
	fs.phase, fs.err = fetchFailed, err
	fs.stopTimeout()
	for _, op := range fs.headOps {
		op.Finish(nil, err)
	}
	fs.headOps = nil
	for _, op := range [...]*Op{fs.read, fs.write, fs.end} {
		if op != nil {
			op.Finish(nil, err)
		}
	}
	fs.read, fs.write, fs.end, fs.writeData = nil, nil, nil, nil
	if cc := fs.cc; cc != nil {
		fs.cc, cc.fs = nil, nil
		fs.l.closeConn(cc.c, abi.CloseHost)
	}
}

// stopTimeout takes the fetch's timeout out of the loop's heap: a fetch that ended is not
// held there until it would have been due.
func (fs *FetchStream) stopTimeout() {
	if fs.timeout != nil {
		fs.l.heap.remove(fs.timeout)
		fs.timeout = nil
	}
}

// lost: the connection carrying the fetch closed (reason: abi.Close*). A kept connection that
// the server had closed before any byte of the answer came carries a replayable request
// again, once, on a new connection — dialled, not kept: a server that restarted has closed
// every connection kept to it, and the retry must not find the next of them; anything else
// fails the fetch.
func (fs *FetchStream) lost(reason int32) {
	fs.cc = nil
	switch {
	case fs.phase == fetchHead && fs.reused && !fs.answered && !fs.retried && fs.spec.Replayable && !fs.l.stopped:
		fs.retried, fs.reused, fs.phase = true, false, fetchConnecting
		fs.dial()
	case fs.phase == fetchBody:
		fs.fail(errFetchEOF)
	case fs.phase == fetchHead && fs.answered:
		fs.fail(errFetchHeadCut)
	case reason == abi.ClosePeer || fs.phase == fetchHead:
		fs.fail(errFetchNoAnswer)
	default:
		fs.fail(errStreamClosed)
	}
}

// Response answers op with the head (status u16 and the field lines), now or once it is in.
func (fs *FetchStream) Response(op *Op) {
	switch {
	case fs.head != nil:
		op.Finish(fs.head, nil)
	case fs.phase == fetchFailed:
		op.Finish(nil, fs.err)
	default:
		fs.headOps = append(fs.headOps, op)
	}
}

// Read asks for up to max bytes of the body; the op finishes with them, with nothing at the
// body's end, or with the failure.
func (fs *FetchStream) Read(op *Op, max int) {
	switch {
	case fs.reading:
		op.Finish(nil, errReadPending)
	case fs.phase == fetchFailed:
		op.Finish(nil, fs.err)
	case fs.phase == fetchEnded:
		op.Finish(nil, nil)
	default:
		fs.read, fs.readMax, fs.reading = op, max, true
		op.OnHandOver(func() { fs.reading = false })
		if fs.phase == fetchBody {
			fs.cc.c.since = fs.l.clock() // the wait for the server counts from here
			if c := fs.cc.c; len(c.in) > 0 || c.unread || c.eof {
				fs.l.queue.resume(c) // bytes (or the end) wait already: serve them after this callback
			}
		}
	}
}

// Write queues a piece of a streamed body (copied) and finishes the op once the output is
// under the mark.
func (fs *FetchStream) Write(op *Op, data []byte) {
	switch {
	case !fs.spec.Streamed:
		op.Finish(nil, errFetchWhole)
	case fs.write != nil:
		op.Finish(nil, errWritePending)
	case fs.bodyDone || fs.end != nil:
		op.Finish(nil, errWriteEnded)
	case fs.phase == fetchFailed:
		op.Finish(nil, fs.err)
	case fs.phase == fetchEnded:
		op.Finish(nil, errFetchAnswered)
	case fs.spec.BodyLength >= 0 && fs.sent+int64(len(data)) > fs.spec.BodyLength:
		op.Finish(nil, fmt.Errorf("%s %d bytes written past the body's Content-Length of %d", abi.FileEINVAL, fs.sent+int64(len(data))-fs.spec.BodyLength, fs.spec.BodyLength))
	case fs.phase == fetchConnecting:
		fs.write, fs.writeData = op, append([]byte(nil), data...)
	default:
		fs.writeBody(op, data)
	}
}

// writeBody queues data as the body's next piece (a chunk, unless the length was given).
func (fs *FetchStream) writeBody(op *Op, data []byte) {
	c := fs.cc.c
	c.since = fs.l.clock()
	fs.sent += int64(len(data))
	if len(data) > 0 {
		if fs.spec.BodyLength < 0 {
			line := append(strconv.AppendInt(fs.l.chunkLine[:0], int64(len(data)), 16), "\r\n"...)
			fs.queue(line, data, crlf)
		} else {
			fs.queue(nil, data, nil)
		}
	}
	switch {
	case fs.phase >= fetchEnded: // the connection closed under the write (lost), or the answer ended
		op.Finish(nil, cmp.Or(fs.err, errFetchAnswered))
	case c.outLen() <= fs.l.cfg.WriteHighWater:
		op.Finish(nil, nil)
	default:
		fs.write = op // drained answers it
		fs.l.queue.flush(c)
	}
}

// End ends a streamed body (the last chunk); the op finishes once it is queued.
func (fs *FetchStream) End(op *Op) {
	switch {
	case !fs.spec.Streamed || fs.bodyDone:
		op.Finish(nil, nil)
	case fs.end != nil || fs.write != nil && fs.phase == fetchConnecting:
		op.Finish(nil, errWritePending)
	case fs.phase == fetchFailed:
		op.Finish(nil, fs.err)
	case fs.phase == fetchEnded:
		op.Finish(nil, nil) // the server answered before the body's end, and took what it wanted
	case fs.spec.BodyLength >= 0 && fs.sent != fs.spec.BodyLength:
		err := fmt.Errorf("%s the body ended after %d of its Content-Length of %d bytes", abi.FileEINVAL, fs.sent, fs.spec.BodyLength)
		fs.fail(err)
		op.Finish(nil, err)
	case fs.phase == fetchConnecting:
		fs.end = op
	default:
		fs.bodyDone = true
		fs.cc.c.since = fs.l.clock() // the wait for the head counts from the request's end
		if fs.spec.BodyLength < 0 {
			fs.queue(nil, lastChunk, nil)
		}
		op.Finish(nil, fs.err) // nil, unless the connection closed under the last chunk
	}
}

var lastChunk = http1.AppendLastChunk(nil)

// headEnd ends a head.
var headEnd = []byte("\r\n\r\n")

// Close ends the fetch for the program (its io.close, or its instance's end): what is pending
// fails ECLOSED, and a connection still carrying it closes — one the answer was read to its end
// on is kept already.
func (fs *FetchStream) Close() { fs.fail(errStreamClosed) }

// CloseLater is Close from any goroutine: it runs on the loop in its next turn.
func (fs *FetchStream) CloseLater() { fs.l.post(func(*Loop) { fs.Close() }, nil) }
