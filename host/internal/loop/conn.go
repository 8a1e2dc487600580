package loop

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/poll"
)

// connPhase is where a connection is in its life. It only moves forward.
type connPhase uint8

const (
	connOpen      connPhase = iota // reading and serving
	connClosing                    // close once the pending output is written; read nothing more
	connLingering                  // our side is shut; input is discarded until EOF or lingerTime
	connClosed                     // the descriptor is closed
)

// Conn is one connection, as the reactor sees it: a socket (or a pipe handed in by an
// embedder: pipe.go), its unconsumed input and unsent output, and the protocol that runs on
// it. An idle keep-alive connection holds no buffers: bytes are read into the loop's shared
// buffer and only a partial message is copied into the connection's own.
type Conn struct {
	fd    int   // the socket; -1 for a pipe
	pipe  *Pipe // the pipe in place of a socket, or nil
	slot  int   // a pipe's index in Loop.pipes
	phase connPhase
	proto protocol // HTTP/1.1 until a WebSocket is accepted (protocol.go)
	// ln is the listener the connection came from; its handle is current even after an
	// instance replacement gave the listener a new one.
	ln *listener

	in     []byte // received bytes not yet consumed (owned), nil when empty
	out    []byte // bytes to send; out[outOff:] is still pending
	outOff int

	// since is when the connection's current wait began on the loop clock (the first byte
	// of a request head, the last body bytes, the end of the last response...): the sweep
	// compares it with the timeout of whatever the protocol is waiting for.
	since int64
	wrote int64 // loop clock of the last write progress, while output is pending

	sent int64 // bytes written to it, counted only for the access log (Config.AccessLog)

	// maxOut, when above Config.MaxOutput, is the connection's own cap on unsent output
	// (outputCap): a raw TCP connection's, whose protocol bounds its output itself.
	maxOut int

	eof     bool // the peer shut its write side (read returned 0)
	hangup  bool // the poller reported a hang-up: read on to EOF
	unread  bool // bytes may wait in the kernel: reading stopped before EAGAIN
	stalled bool // serving stopped because the output is above the mark
	// sockFull: the socket refused a file body sent straight to it (sendFile) with no
	// output pending here; only the writable edge says when the program may go on.
	sockFull bool
	serving  bool // inside proto.serve for this connection (see consume)
	// outbound: a connection the loop opened for the program's fetches (clientconn.go), not
	// counted among the worker's connections
	outbound bool
	queued   queueSet
}

func (c *Conn) outLen() int { return len(c.out) - c.outOff }

// closed reports whether the descriptor is gone.
func (c *Conn) closed() bool { return c.phase == connClosed }

// addConn serves an accepted socket.
func (l *Loop) addConn(fd int, ln *listener) {
	if l.addSocket(fd) != nil {
		return
	}
	poll.SetNoDelay(fd)
	l.conns[fd] = l.newConn(fd, ln)
}

// addSocket registers fd with the poller and makes room for its connection in l.conns, which
// the caller fills; on failure fd is closed.
func (l *Loop) addSocket(fd int) error {
	if err := l.poll.Add(fd); err != nil {
		unix.Close(fd)
		return err
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*Conn, len(l.conns)+64)...)
	}
	return nil
}

// newConn makes the connection every protocol starts on: HTTP/1.1, for ln's server.
func (l *Loop) newConn(fd int, ln *listener) *Conn {
	c := &Conn{fd: fd, ln: ln, since: l.clock()}
	c.proto = l.newHTTPConn(c, ln.stream)
	l.opened()
	return c
}

// opened counts a connection that opened.
func (l *Loop) opened() {
	l.nconns++
	if l.stats != nil {
		l.stats.ConnsOpen.Add(1)
	}
}

// eachConn calls f for every open connection, sockets and pipes.
func (l *Loop) eachConn(f func(*Conn)) {
	for _, c := range l.conns {
		if c != nil {
			f(c)
		}
	}
	for i := 0; i < len(l.pipes); i++ {
		c := l.pipes[i]
		f(c)
		if i < len(l.pipes) && l.pipes[i] != c {
			i-- // f closed it, and the last pipe took its slot
		}
	}
}

// The few calls that touch the descriptor, which a pipe answers in its place.

func (c *Conn) read(b []byte) (int, error) {
	if c.pipe != nil {
		return c.pipe.read(b)
	}
	return unix.Read(c.fd, b)
}

func (c *Conn) write(b []byte) (int, error) {
	if c.pipe != nil {
		return c.pipe.write(b)
	}
	return unix.Write(c.fd, b)
}

func (c *Conn) writev(iov [][]byte) (int, error) {
	if c.pipe != nil {
		return c.pipe.writev(iov)
	}
	return poll.Writev(c.fd, iov)
}

func (c *Conn) shutdownWrite() error {
	if c.pipe != nil {
		c.pipe.shutdownWrite()
		return nil
	}
	return unix.Shutdown(c.fd, unix.SHUT_WR)
}

// peekEOF reports, without consuming anything, whether the next read would return EOF.
func (c *Conn) peekEOF() bool {
	if c.pipe != nil {
		return c.pipe.peekEOF()
	}
	var b [1]byte
	n, _, err := unix.Recvfrom(c.fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return n == 0 && err == nil
}

// checkReset closes a connection whose peer reset it after its EOF. Nothing is read after
// an EOF, so only a failing write would notice, and a response that writes nothing more (it
// waits on its program) would hold the dead connection until then.
// It reports whether it closed c. It is also asked when the EOF is seen, which may be on the
// reset's own event.
func (l *Loop) checkReset(c *Conn) bool {
	if c.pipe != nil {
		return false
	}
	// After the EOF a read answers 0 even once the connection is reset; the reset is the
	// socket's pending error (EPIPE or ECONNRESET).
	if soErr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soErr != 0 {
		l.closeConn(c, abi.ClosePeer)
		return true
	}
	return false
}

// peerEnded records the peer's EOF and tells the protocol, unless the peer has reset the
// connection since (checkReset closes it).
func (l *Loop) peerEnded(c *Conn) {
	c.eof, c.unread = true, false
	if !l.checkReset(c) {
		c.proto.peerEOF()
	}
}

// readConn reads until EAGAIN, this connection's share of the wake-up, or a message that
// must be answered before the next one is read.
func (l *Loop) readConn(c *Conn) {
	budget := readPerWake
	for l.reading(c) {
		if budget <= 0 {
			c.unread = true
			l.queue.readAgain(c)
			return
		}
		var direct []byte
		if c.phase == connOpen {
			direct = c.proto.readTarget()
		}
		var buf []byte
		if direct != nil {
			buf = direct
		} else if len(c.in) == 0 {
			buf = l.readBuf
		} else {
			if cap(c.in)-len(c.in) < 4096 {
				grown := make([]byte, len(c.in), 2*cap(c.in)+4096)
				copy(grown, c.in)
				l.putBuf(c.in)
				c.in = grown
			}
			buf = c.in[len(c.in):cap(c.in)]
		}
		n, err := c.read(buf)
		if n > 0 && l.stats != nil {
			l.stats.BytesIn.Add(uint64(n))
		}
		if n > 0 && c.phase == connLingering {
			budget -= n // discarded: the connection is closing
			continue
		}
		if n > 0 {
			budget -= n
			if direct != nil {
				c.serving = true
				c.proto.readInto(n)
				c.serving = false
			} else if len(c.in) == 0 {
				l.consume(c, buf[:n], true)
			} else {
				c.in = c.in[:len(c.in)+n]
				l.consume(c, c.in, false)
			}
			if n < len(buf) && !c.hangup {
				// A short read took everything the socket held, and bytes that arrive later
				// raise a new edge: the read that would only say EAGAIN is one syscall per
				// request saved. A hang-up is the exception: its edge came with this wake-up,
				// so read on to see the EOF.
				c.unread = false
				return
			}
			continue
		}
		switch {
		case err == unix.EAGAIN:
			c.unread = false
			return
		case err == unix.EINTR:
			continue
		case err == nil && c.phase == connLingering:
			l.closeConn(c, abi.CloseHost)
			return
		case err == nil: // EOF: the peer will send no more
			l.peerEnded(c)
			return
		default:
			l.closeConn(c, abi.ClosePeer)
			return
		}
	}
	if c.phase == connOpen && !c.eof {
		c.unread = true // reading resumes when the protocol takes input again
		if c.hangup && len(c.in) == 0 && c.peekEOF() {
			// The peer hung up while the protocol takes no input (the guest holds a
			// request), and its EOF is all the kernel holds: it asked for nothing more.
			l.peerEnded(c)
		}
	}
}

// reading reports whether the loop should read the connection now: not once it is closing,
// not while the client leaves its responses unread (the kernel's buffers then push back) —
// unless the protocol's directions are independent — and not while the protocol takes no
// input.
func (l *Loop) reading(c *Conn) bool {
	switch c.phase {
	case connLingering:
		return true
	case connOpen:
		return !c.eof && (c.proto.duplex() || !l.behind(c)) && c.proto.wantsInput()
	}
	return false
}

// behind reports a connection whose peer leaves more than the mark of our output unread.
// Serving and reading stop; marking it stalled makes the flush that brings the output back
// under half the mark resume it, whether or not a write ever had to wait.
func (l *Loop) behind(c *Conn) bool {
	if c.outLen() <= l.cfg.WriteHighWater {
		return false
	}
	c.stalled, c.unread = true, true
	return true
}

// consume hands data to the protocol and keeps what it did not take. fromShared says data is
// the loop's read buffer, which the next read overwrites.
func (l *Loop) consume(c *Conn, data []byte, fromShared bool) {
	c.serving = true
	used := c.proto.serve(data)
	c.serving = false
	if c.closed() {
		return
	}
	rest := data[used:]
	switch {
	case len(rest) == 0:
		if c.in != nil {
			l.putBuf(c.in)
			c.in = nil
		}
	case fromShared:
		if cap(rest) > 0 && c.in == nil {
			c.in = l.getBuf()
		}
		c.in = append(c.in[:0], rest...)
	default:
		c.in = c.in[:copy(c.in, rest)]
	}
}

// serveBuffered serves the input already buffered for c, then reads what the kernel holds
// (no new edge will come for it): how a protocol continues in resume.
func (l *Loop) serveBuffered(c *Conn) {
	if len(c.in) > 0 {
		l.consume(c, c.in, false)
	}
	if l.reading(c) && c.unread {
		l.readConn(c)
	}
}

// closeWhenWritten moves c to closing: nothing more is read or served, and it closes once its
// pending output is written (lingerClose).
func (l *Loop) closeWhenWritten(c *Conn) {
	if c.phase == connOpen {
		c.phase = connClosing
		l.queue.flush(c)
	}
}

// lingerTime bounds how long a closing connection's input is drained.
const lingerTime = 500 * time.Millisecond

// lingerClose closes a connection whose last response is written. Closing a socket with
// unread input makes the kernel send a reset, which can destroy the response before the client
// reads it (a 413 to a client still uploading is the usual victim). So, like Go's net/http,
// shut our side first, discard what still arrives, and close at EOF or after lingerTime.
func (l *Loop) lingerClose(c *Conn) {
	if c.eof || c.phase == connLingering {
		l.closeConn(c, abi.CloseHost)
		return
	}
	c.phase = connLingering
	c.since = l.clock()
	if c.in != nil {
		l.putBuf(c.in)
		c.in = nil
	}
	if c.shutdownWrite() != nil {
		l.closeConn(c, abi.CloseHost)
		return
	}
	l.readConn(c)
}

// closeConn closes at once. The protocol hears of it (closed) and tells the guest after the
// current callback, never from inside a host function.
func (l *Loop) closeConn(c *Conn, reason int32) {
	if c.closed() {
		return
	}
	c.phase = connClosed
	if p := c.pipe; p != nil {
		p.close()
		last := l.pipes[len(l.pipes)-1]
		last.slot = c.slot
		l.pipes[c.slot] = last
		l.pipes[len(l.pipes)-1] = nil
		l.pipes = l.pipes[:len(l.pipes)-1]
	} else {
		unix.Close(c.fd)
		l.conns[c.fd] = nil
	}
	if c.outbound {
		c.proto.closed(reason)
		l.freeConnBufs(c)
		return
	}
	l.nconns--
	if l.stats != nil {
		l.stats.ConnsOpen.Add(-1)
	}
	if l.cfg.MaxConns > 0 {
		l.listeners.each(func(_ abi.Handle, ln *listener) {
			if ln.full {
				ln.full = false
				l.queue.acceptAgain(ln)
			}
		})
		if len(l.roomWaiters) > 0 && !l.stopped {
			l.addHostTimer(0, l.admitWaiters) // after this close is complete, not inside it
		}
	}
	c.proto.closed(reason)
	l.freeConnBufs(c)
}

// freeConnBufs gives a closed connection's buffers back to the pool.
func (l *Loop) freeConnBufs(c *Conn) {
	if c.in != nil {
		l.putBuf(c.in)
		c.in = nil
	}
	if c.out != nil {
		l.putBuf(c.out)
		c.out = nil
	}
}
