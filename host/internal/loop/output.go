package loop

import (
	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
)

// The reactor's output path: protocols append to a connection's output buffer (outBuf) or
// hand a large piece to writeThrough; flush writes what is pending when the callback is over
// or the socket is writable again. Between the two sit the high-water mark (the guest is
// told to wait: aboveMark, then the protocol's drained) and the hard cap (checkOutput).

// outBuf returns c's output buffer to append to, starting one if there is none.
func (l *Loop) outBuf(c *Conn) []byte {
	if c.out == nil {
		c.out = l.getBuf()
		c.wrote = l.clock() // output starts: the stall clock starts with it
	}
	return c.out
}

// flush writes pending output until it is gone or the socket is full; the writable edge
// brings the loop back for the rest.
func (l *Loop) flush(c *Conn) {
	if c.sockFull && c.outLen() == 0 {
		return // a file body filled the socket: drained waits for the writable edge
	}
	for c.outLen() > 0 {
		n, err := c.write(c.out[c.outOff:])
		if n > 0 {
			l.countSent(c, n)
		}
		if n > 0 {
			c.outOff += n
			c.wrote = l.clock()
			continue
		}
		if err == unix.EAGAIN {
			l.checkDrain(c)
			l.checkStall(c)
			return
		}
		if err == unix.EINTR {
			continue
		}
		l.closeConn(c, abi.ClosePeer)
		return
	}
	if c.out != nil {
		l.putBuf(c.out)
		c.out, c.outOff = nil, 0
	}
	l.checkDrain(c)
	l.checkStall(c)
	if c.phase == connOpen {
		c.proto.flushed()
	}
	if c.phase == connClosing {
		l.lingerClose(c)
	}
}

// checkStall stops serving a connection whose unsent output is above the mark and resumes
// it once the output is at half the mark again.
func (l *Loop) checkStall(c *Conn) {
	switch {
	case !c.stalled && c.outLen() > l.cfg.WriteHighWater:
		c.stalled = true // serve and reading stop; the writable edge brings us back
	case c.stalled && c.outLen() <= l.cfg.WriteHighWater/2:
		c.stalled = false
		c.unread = true
		l.queue.resume(c)
	}
}

// checkDrain tells the protocol once the output has fallen to half the high-water mark
// (hysteresis, so a writer is not woken per segment): a guest told to wait gets on_drain.
func (l *Loop) checkDrain(c *Conn) {
	if c.outLen() <= l.cfg.WriteHighWater/2 {
		c.proto.drained()
	}
}

// aboveMark is called after output was queued for a request or socket: past the high-water
// mark it tries to write at once, and if the output stays above, tells the guest to wait for
// on_drain (needDrain is the request's or the socket's flag).
func (l *Loop) aboveMark(c *Conn, needDrain *bool) int32 {
	if c.outLen() <= l.cfg.WriteHighWater {
		return 0
	}
	l.flush(c)
	if c.closed() {
		return errno(abi.ECLOSED)
	}
	if c.outLen() <= l.cfg.WriteHighWater {
		return 0
	}
	*needDrain = true
	return abi.AboveMark
}

// checkOutput closes a connection whose unsent output passed the hard cap: a peer that does
// not read must not make the host grow without bound.
func (l *Loop) checkOutput(c *Conn) int32 {
	if c.outLen() > l.outputCap(c) {
		l.logf("closing a connection with %d bytes unsent (cap %d)", c.outLen(), l.outputCap(c))
		l.closeConn(c, abi.CloseHost)
		return errno(abi.ECLOSED)
	}
	return 0
}

// outputCap is the unsent output past which c is closed: Config.MaxOutput, or a larger cap
// of the connection's own (Conn.maxOut).
func (l *Loop) outputCap(c *Conn) int { return max(l.cfg.MaxOutput, c.maxOut) }

// queued is what a host function that queued output returns: ECLOSED if the connection went,
// the cap's verdict, then the mark's (see aboveMark).
func (l *Loop) queued(c *Conn, needDrain *bool) int32 {
	if c.closed() {
		return errno(abi.ECLOSED)
	}
	l.queue.flush(c)
	if rc := l.checkOutput(c); rc != 0 {
		return rc
	}
	return l.aboveMark(c, needDrain)
}

// directWrite is the piece size from which the host writes straight from guest memory to the
// socket instead of copying into the connection's buffer first.
const directWrite = 16 << 10

// coalesceMax caps how much body output is gathered in a connection's buffer before it is
// written (see appendBody); the high-water mark caps it too.
const coalesceMax = 256 << 10

// outRoom makes room for n more bytes in c's output buffer. One that must grow moves to a
// pooled buffer of at least twice its size, so a streaming connection stops allocating.
func (l *Loop) outRoom(c *Conn, n int) {
	out := l.outBuf(c)
	if cap(out)-len(out) >= n {
		return
	}
	grown := l.getBufN(max(2*cap(out), len(out)-c.outOff+n))
	grown = append(grown, out[c.outOff:]...)
	l.putBuf(out)
	c.out, c.outOff = grown, 0
}

// writeThrough sends the connection's pending output, then pre, data and post, with one
// writev, and keeps in the connection's buffer only what the socket did not take. A large body
// piece thus goes from guest memory to the kernel without a copy in the host (copying it into
// a growing buffer cost an allocation per piece and half the CPU of a download).
func (l *Loop) writeThrough(c *Conn, pre, data, post []byte) {
	pending := c.outLen()
	iov := l.iov[:0]
	for _, b := range [...][]byte{c.out[c.outOff:], pre, data, post} {
		if len(b) > 0 {
			iov = append(iov, b)
		}
	}
	if c.out == nil {
		c.wrote = l.clock() // output starts: the stall clock starts with it
	}
	n, err := c.writev(iov)
	if n > 0 {
		l.countSent(c, n)
		c.wrote = l.clock()
	}
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		clear(iov)
		l.iov = iov[:0]
		l.closeConn(c, abi.ClosePeer)
		return
	}
	n = max(n, 0)
	rest := len(pre) + len(data) + len(post) + pending - n
	if rest > l.outputCap(c) { // do not copy what the cap would refuse anyway
		clear(iov)
		l.iov = iov[:0]
		l.logf("closing a connection with %d bytes unsent (cap %d)", rest, l.outputCap(c))
		l.closeConn(c, abi.CloseHost)
		return
	}
	if n < pending {
		// Not even the pending output went: it stays, and the new bytes follow it (copying
		// it again with every piece made a full socket cost quadratic time).
		c.outOff += n
		l.outRoom(c, rest-(pending-n))
		c.out = append(append(append(c.out, pre...), data...), post...)
	} else {
		// The pending output went; keep what the socket left of the new bytes.
		n -= pending
		out := c.out
		if rest > cap(out) {
			l.putBuf(out)
			out = l.getBufN(rest)
		}
		out = out[:0]
		if rest > 0 {
			for _, b := range [...][]byte{pre, data, post} {
				skip := min(n, len(b))
				n -= skip
				out = append(out, b[skip:]...)
			}
		} else if out != nil {
			l.putBuf(out)
			out = nil
		}
		c.out, c.outOff = out, 0
	}
	clear(iov)
	l.iov = iov[:0]
	if rest > 0 {
		l.queue.flush(c)
	}
}

const (
	pooledBuf  = 4 << 10 // buffers of this capacity are kept for reuse
	maxBigBuf  = 1 << 20 // larger buffers are not kept
	maxBigBufs = 16
)

func (l *Loop) getBuf() []byte {
	if n := len(l.bufs); n > 0 {
		b := l.bufs[n-1]
		l.bufs = l.bufs[:n-1]
		return b
	}
	return make([]byte, 0, pooledBuf)
}

// getBufN returns an empty buffer with room for n bytes.
func (l *Loop) getBufN(n int) []byte {
	if n <= pooledBuf {
		return l.getBuf()
	}
	for i, b := range l.bigBufs {
		if cap(b) >= n {
			l.bigBufs[i] = l.bigBufs[len(l.bigBufs)-1]
			l.bigBufs = l.bigBufs[:len(l.bigBufs)-1]
			return b
		}
	}
	return make([]byte, 0, max(n, 64<<10))
}

// putBuf keeps buffers for reuse: many small ones, and a few large ones for streaming
// connections; one huge response does not pin its memory for the life of the loop.
func (l *Loop) putBuf(b []byte) {
	switch {
	case cap(b) == pooledBuf && len(l.bufs) < 1024:
		l.bufs = append(l.bufs, b[:0])
	case cap(b) > pooledBuf && cap(b) <= maxBigBuf && len(l.bigBufs) < maxBigBufs:
		l.bigBufs = append(l.bigBufs, b[:0])
	}
}
