package loop

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

// A raw TCP connection of the program's (Node's net.Socket; ABI.md §10), served by the loop's
// reactor as an HTTP connection is: the socket is one of the loop's connections, and tcpConn
// is the protocol on it. The guest's stream functions are Ops (op.go): a read is pending
// until the reactor has bytes for it (the reactor reads the socket only while a read is
// pending — the program's pause is simply not asking, and the kernel's buffers push back on
// the peer); a write is queued on the connection's output and answered at once while the
// output is under the high-water mark, or when it drains; an end shuts the writing side once
// the output is out. Each answer reaches the guest after the callback that asked.

// TCPStream is the handle reach keeps for a connection the loop serves.
type TCPStream struct {
	l *Loop
	t *tcpConn
}

// tcpConn is the protocol of a raw TCP connection: at most one read, one write and one end
// pending, each an Op.
type tcpConn struct {
	l       *Loop
	c       *Conn
	in      *instance // the program's instance that opened it (swap.go: holds, expire)
	read    *Op       // waiting for bytes; readMax is what it asked for
	readMax int
	// reading: a read is pending from the program's call until its answer is handed to the
	// program (Op.OnHandOver), as a fetch body's is: a second read meanwhile is EBUSY.
	reading bool
	write   *Op // its bytes are queued: waiting for the output to drain
	end     *Op // waiting for the output to be written, then the shutdown
	ended   bool
	reason  int32 // why the connection closed (abi.Close*), once it has
}

// Stream errors, in the "CODE message" form of reach's results.
var (
	errStreamClosed = fmt.Errorf("%s the stream was closed", abi.ReachECLOSED)
	errStreamReset  = fmt.Errorf("%s the peer reset the connection", abi.ReachECONNRESET)
	errReadPending  = fmt.Errorf("%s a read of this stream is pending: wait for its answer", abi.ReachEBUSY)
	errWritePending = fmt.Errorf("%s a write of this stream is pending: wait for its answer", abi.ReachEBUSY)
	errWriteEnded   = fmt.Errorf("%s the stream's writing side has ended", abi.ReachECLOSED)
)

// WhenBelowConnCap runs f on the loop now if this worker holds fewer connections than its
// share of Config.MaxConns, or else once one of them closes. A raw connection accepted while
// the worker is at the cap waits there, as an HTTP connection waits in the kernel's backlog.
// If the worker stops first, f runs then (AdoptTCP refuses a stopped worker).
func (o *Op) WhenBelowConnCap(f func()) {
	l := o.l
	if !l.atConnCap() || l.stopped {
		f()
		return
	}
	l.roomWaiters = append(l.roomWaiters, f)
}

// admitWaiters gives the room closed connections left to the raw connections waiting for it
// (WhenBelowConnCap), oldest first. One waits until it runs, so teardown finds it.
func (l *Loop) admitWaiters() {
	for len(l.roomWaiters) > 0 && !l.atConnCap() && !l.stopped {
		f := l.roomWaiters[0]
		l.roomWaiters[0] = nil
		l.roomWaiters = l.roomWaiters[1:]
		f()
	}
}

// AdoptTCP makes the connected, non-blocking socket fd one of the loop's connections, served
// as a raw TCP stream. On the loop's goroutine; on failure fd is closed.
func (o *Op) AdoptTCP(fd int) (*TCPStream, error) {
	l := o.l
	if l.stopped {
		unix.Close(fd)
		return nil, errStreamClosed
	}
	if err := l.addSocket(fd); err != nil {
		return nil, fmt.Errorf("%s %v", abi.FileEIO, err)
	}
	// The program writes one piece at a time and is answered only under the mark, so the
	// output never passes the mark by more than a piece: --max-output, which a small value
	// would make cut a connection whose program obeys the back-pressure, is at least that.
	c := &Conn{fd: fd, since: l.clock(), unread: true, maxOut: l.cfg.WriteHighWater + abi.MaxStreamWrite}
	t := &tcpConn{l: l, c: c, in: o.in}
	o.in.rawConns++
	c.proto = t
	l.conns[fd] = c
	l.opened()
	l.rawConns++
	return &TCPStream{l, t}, nil
}

// Read asks for up to max bytes; the op finishes with them, with nothing at the peer's end,
// or with the error that closed the connection.
func (s *TCPStream) Read(op *Op, max int) {
	t := s.t
	op.conn = t
	switch {
	case t.c.closed():
		op.Finish(nil, t.closedErr())
	case t.reading:
		op.Finish(nil, errReadPending)
	default:
		t.read, t.readMax, t.reading = op, max, true
		op.OnHandOver(func() { t.reading = false })
		c := t.c
		if len(c.in) > 0 || c.unread || c.eof {
			s.l.queue.resume(c) // bytes (or the end) wait already: serve them after this callback
		}
	}
}

// Write queues data (copied) and finishes the op once the output is under the mark.
func (s *TCPStream) Write(op *Op, data []byte) {
	t, l, c := s.t, s.l, s.t.c
	op.conn = t
	switch {
	case c.closed():
		op.Finish(nil, t.closedErr())
		return
	case t.write != nil:
		op.Finish(nil, errWritePending)
		return
	case t.ended || t.end != nil:
		op.Finish(nil, errWriteEnded)
		return
	}
	if len(data) >= directWrite {
		l.writeThrough(c, nil, data, nil)
	} else {
		l.outRoom(c, len(data))
		c.out = append(c.out, data...)
		l.queue.flush(c)
	}
	if c.closed() || l.checkOutput(c) != 0 {
		op.Finish(nil, t.closedErr())
		return
	}
	if c.outLen() <= l.cfg.WriteHighWater {
		op.Finish(nil, nil)
		return
	}
	t.write = op // drained answers it
	l.queue.flush(c)
}

// End shuts the writing side once the output is out (Node's socket.end()).
func (s *TCPStream) End(op *Op) {
	t, c := s.t, s.t.c
	op.conn = t
	switch {
	case c.closed():
		op.Finish(nil, t.closedErr())
	case t.ended:
		op.Finish(nil, nil)
	case t.end != nil:
		op.Finish(nil, errWritePending)
	default:
		t.end = op
		if c.outLen() == 0 {
			t.flushed()
		} else {
			s.l.queue.flush(c)
		}
	}
}

// SetNoDelay turns Nagle's algorithm off (on true) or on.
func (s *TCPStream) SetNoDelay(on bool) error {
	if s.t.c.closed() {
		return s.t.closedErr()
	}
	v := 0
	if on {
		v = 1
	}
	return unix.SetsockoptInt(s.t.c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, v)
}

// SetKeepAlive turns TCP keep-alive probes on, every secs seconds after secs idle, or off
// (secs 0).
func (s *TCPStream) SetKeepAlive(secs int) error {
	if s.t.c.closed() {
		return s.t.closedErr()
	}
	return poll.SetKeepAlive(s.t.c.fd, secs)
}

// Close closes the connection at once, on the loop's goroutine (the program's io.close):
// pending operations fail ECLOSED, and so do those finished and not yet delivered — bytes
// read in this turn never reach a program that has closed the socket since.
func (s *TCPStream) Close() {
	if !s.t.c.closed() {
		s.l.closeConn(s.t.c, abi.CloseHost)
	}
}

// CloseLater is Close from any goroutine (reach closes a stream when its instance ends): the
// close runs on the loop, in its next turn.
func (s *TCPStream) CloseLater() { s.l.post(func(*Loop) { s.Close() }, nil) }

// closedErr is what an operation on the closed connection fails with.
func (t *tcpConn) closedErr() error {
	if t.reason == abi.ClosePeer {
		return errStreamReset
	}
	return errStreamClosed
}

// The protocol (protocol.go).

func (t *tcpConn) serve(data []byte) int {
	op := t.read
	if op == nil {
		return 0
	}
	n := min(len(data), t.readMax)
	t.read = nil
	// The bytes go out in one of the loop's pooled buffers, back in the pool once the guest
	// has them (a fresh one per read made a stream's host garbage as fast as its bytes).
	op.pooled = true
	op.Finish(append(t.l.getBufN(n), data[:n]...), nil)
	return n
}

func (t *tcpConn) wantsInput() bool   { return t.read != nil }
func (t *tcpConn) duplex() bool       { return true }
func (t *tcpConn) readTarget() []byte { return nil }
func (t *tcpConn) readInto(int)       {}

// resume serves what waits (buffered bytes, then the kernel's), and the peer's end once
// nothing is left before it.
func (t *tcpConn) resume() {
	t.l.serveBuffered(t.c)
	t.deliverEOF()
}

func (t *tcpConn) peerEOF() { t.deliverEOF() }

// deliverEOF finishes a pending read with nothing once the peer ended and every byte before
// its end was read.
func (t *tcpConn) deliverEOF() {
	if c := t.c; t.read != nil && c.eof && len(c.in) == 0 && !c.closed() {
		op := t.read
		t.read = nil
		op.Finish(nil, nil)
	}
}

func (t *tcpConn) drained() {
	if op := t.write; op != nil {
		t.write = nil
		op.Finish(nil, nil)
	}
}

// flushed shuts the writing side if an end waits for the output.
func (t *tcpConn) flushed() {
	op := t.end
	if op == nil {
		return
	}
	t.end = nil
	t.ended = true
	if err := t.c.shutdownWrite(); err != nil && !errors.Is(err, unix.ENOTCONN) {
		t.l.closeConn(t.c, abi.ClosePeer)
		op.Finish(nil, t.closedErr())
		return
	}
	op.Finish(nil, nil)
}

func (t *tcpConn) sweep(int64)     {}
func (t *tcpConn) listenerClosed() {}

// shutdown: the process drains. A raw connection has no request to finish and no idle state
// to wait for, so the drain does not wait for it (alive); it stays open while the worker
// finishes its requests — a handler may be using it — and closes, after what the kernel
// takes of its output, when the worker ends.
func (t *tcpConn) shutdown() {}

// closed fails what was pending, and what finished but waits for the end of the callback to
// be delivered: after a close the program hears nothing more of the connection but that.
func (t *tcpConn) closed(reason int32) {
	t.reason = reason
	t.l.rawConns--
	t.in.rawConns--
	err := t.closedErr()
	q := t.l.queue.results
	for i := range q {
		if r := &q[i]; r.op.conn == t && !r.failed {
			if r.op.pooled {
				t.l.putBuf(r.res)
				r.op.pooled = false
			}
			r.res, r.failed = []byte(err.Error()), true
		}
	}
	for _, op := range [...]*Op{t.read, t.write, t.end} {
		if op != nil {
			op.Finish(nil, err)
		}
	}
	t.read, t.write, t.end = nil, nil, nil
}
