package loop

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
)

// clientConn is the protocol of a connection the loop opened to a server for fetches
// (fetch.go): it carries one fetch at a time, and between fetches it is kept, idle, for the
// next fetch to the same address (the loop's kept connections, below), as Go's transport
// keeps its idle connections. Such a connection is the program's reach, not one of its
// clients: it does not count against --max-conns, in the open connections, or as work that
// keeps the loop alive (a kept connection must not keep a finished program running).
type clientConn struct {
	l    *Loop
	c    *Conn
	addr string
	fs   *FetchStream // the fetch it carries; nil while kept
}

// The loop's kept connections: at most maxKeptPerAddr for each address, each closed after
// keptIdleTime without a fetch (DefaultTransport's IdleConnTimeout) — or when the server
// closes it, which the reactor hears as it would any peer's close.
const (
	maxKeptPerAddr = 256
	keptIdleTime   = 90 * time.Second
)

// newClientConn makes the connected, non-blocking socket fd one of the loop's connections, a
// clientConn to addr; on failure fd is closed.
func (l *Loop) newClientConn(fd int, addr string) (*clientConn, error) {
	if err := l.addSocket(fd); err != nil {
		return nil, err
	}
	c := &Conn{fd: fd, since: l.clock(), unread: true, outbound: true}
	cc := &clientConn{l: l, c: c, addr: addr}
	c.proto = cc
	l.conns[fd] = c
	return cc, nil
}

// takeIdle takes the connection to addr kept last, or returns nil.
func (l *Loop) takeIdle(addr string) *clientConn {
	for kept := l.kept[addr]; len(kept) > 0; kept = l.kept[addr] {
		cc := kept[len(kept)-1]
		kept[len(kept)-1] = nil
		l.setKept(addr, kept[:len(kept)-1])
		if !cc.c.closed() && !cc.c.eof && len(cc.c.in) == 0 && quiet(cc.c) {
			return cc
		}
		l.closeConn(cc.c, abi.CloseHost) // closed already, or on its way (its close is queued)
	}
	return nil
}

// putIdle keeps cc for the next fetch to its address, or closes it if the loop keeps enough.
func (l *Loop) putIdle(cc *clientConn) {
	kept := l.kept[cc.addr]
	if len(kept) >= maxKeptPerAddr || l.stopped || cc.c.closed() {
		l.closeConn(cc.c, abi.CloseHost)
		return
	}
	cc.c.since = l.clock()
	if l.kept == nil {
		l.kept = map[string][]*clientConn{}
	}
	l.kept[cc.addr] = append(kept, cc)
	if c := cc.c; len(c.in) > 0 || c.unread {
		l.queue.resume(c) // the server's close (or bytes it should not send) may wait already
	}
}

// dropIdle forgets cc, closed while kept.
func (l *Loop) dropIdle(cc *clientConn) {
	kept := l.kept[cc.addr]
	for i, k := range kept {
		if k == cc {
			kept = append(kept[:i], kept[i+1:]...)
			kept[len(kept):cap(kept)][0] = nil
			l.setKept(cc.addr, kept)
			return
		}
	}
}

// setKept stores the kept connections to addr, forgetting the address when there are none.
func (l *Loop) setKept(addr string, kept []*clientConn) {
	if len(kept) == 0 {
		delete(l.kept, addr)
		return
	}
	l.kept[addr] = kept
}

// headScratch is the buffer an answer's head is parsed into, before its copy for the program.
func (l *Loop) headScratch() []byte {
	if cap(l.headBuf) < 2 {
		l.headBuf = make([]byte, 2, 1024)
	}
	return l.headBuf[:2]
}

// keepHeadScratch keeps a parse's buffer if it grew, unless it grew large: one huge head must
// not pin its memory for the life of the loop.
func (l *Loop) keepHeadScratch(b []byte) {
	if cap(b) > cap(l.headBuf) && cap(b) <= 64<<10 {
		l.headBuf = b[:0]
	}
}

// The protocol (protocol.go).

func (cc *clientConn) serve(data []byte) int {
	if cc.fs == nil { // kept: a server sends nothing unasked
		cc.l.closeConn(cc.c, abi.CloseHost)
		return 0
	}
	return cc.fs.serve(data)
}

// wantsInput: a kept connection is read to hear its close; a fetch's, for the head, and for
// the body only while the program has a read pending (its back-pressure).
func (cc *clientConn) wantsInput() bool {
	fs := cc.fs
	switch {
	case fs == nil:
		return true
	case fs.phase == fetchHead:
		return true
	case fs.phase == fetchBody:
		return fs.read != nil
	}
	return false
}

// duplex: the answer is read while the request is still going out (a server may answer an
// upload before its end).
func (cc *clientConn) duplex() bool       { return true }
func (cc *clientConn) readTarget() []byte { return nil }
func (cc *clientConn) readInto(int)       {}

// resume serves what waits (buffered bytes, then the kernel's), and the server's close once
// nothing is left before it.
func (cc *clientConn) resume() {
	cc.l.serveBuffered(cc.c)
	cc.checkEOF()
}

func (cc *clientConn) peerEOF() { cc.checkEOF() }

// checkEOF acts on the server's close: it closes a kept connection, and one whose answer's
// head is not whole (closed hears why); in a body, once the program has read every byte
// before the close, it ends a body delimited by the close and fails any other.
func (cc *clientConn) checkEOF() {
	c := cc.c
	if !c.eof || c.closed() {
		return
	}
	fs := cc.fs
	switch {
	case fs == nil || fs.phase != fetchBody:
	case len(c.in) > 0:
		return // bytes of the body wait for the program's next read
	case fs.framing == http1.BodyToClose:
		if fs.read != nil {
			fs.ended(false)
		}
		return // else the end is the next read's
	}
	cc.l.closeConn(c, abi.ClosePeer)
}

func (cc *clientConn) drained() {
	if cc.fs != nil {
		cc.c.since = cc.l.clock() // the server is taking the request
	}
	if fs := cc.fs; fs != nil && fs.write != nil {
		op := fs.write
		fs.write = nil
		op.Finish(nil, nil)
	}
}

func (cc *clientConn) flushed() {}

// sweep closes a connection kept longer than keptIdleTime, and fails a fetch whose server
// has been silent past FetchIdleTimeout while the fetch waits for it.
func (cc *clientConn) sweep(now int64) {
	// c.wrote: a server taking a streamed upload slowly, a piece at a time, is not silent.
	fs, idle := cc.fs, time.Duration(now-max(cc.c.since, cc.c.wrote))
	switch {
	case fs == nil:
		if idle > keptIdleTime {
			cc.l.closeConn(cc.c, abi.CloseHost)
		}
	case idle > cc.l.cfg.FetchIdleTimeout && fs.waitsOnServer():
		fs.fail(fmt.Errorf("%s the server sent nothing for %v while the fetch waited for it (--fetch-idle-timeout)", abi.ReachETIMEDOUT, cc.l.cfg.FetchIdleTimeout))
	}
}

func (cc *clientConn) listenerClosed() {}
func (cc *clientConn) shutdown()       {}

// closed: a kept connection is forgotten; a fetch's is lost to it (a retry, or the failure).
func (cc *clientConn) closed(reason int32) {
	fs := cc.fs
	if fs == nil {
		cc.l.dropIdle(cc)
		return
	}
	cc.fs = nil
	fs.lost(reason)
}

// quiet reports whether the server has sent nothing on a kept connection since its last
// answer, nor closed it: the reactor hears of either only at its next poll, and a program
// that was busy in a callback meanwhile would otherwise take bytes sent unasked for the next
// fetch's answer (response desync), or send a POST into a closed connection. One peek per
// reuse, as Go's transport has a read pending on every idle connection.
func quiet(c *Conn) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(c.fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == unix.EAGAIN
}
