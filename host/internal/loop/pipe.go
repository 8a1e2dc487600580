package loop

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
)

// Pipe is an in-memory connection between a goroutine outside the loops (an embedder's
// http.Handler, host/handler.go) and one worker, where a socketpair(2) stood before. The
// worker serves its end as it serves a socket — the same Conn, the same protocol, the same
// back-pressure — and only the few calls that touch the descriptor (read, write, writev,
// shutdown, close) go to the pipe instead (conn.go). The other end is a plain reader and
// writer for the goroutine.
//
// What the pipe saves is the kernel: a socketpair cost a write, an epoll wake-up and a read
// each way, plus a poller registration per connection, which made the Handler spend more CPU
// in system calls than in everything else (RATIONALE.md, "Requests handed in"). Readiness
// works as the edge-triggered poller does: the loop reads or writes until the pipe says
// EAGAIN, which arms a notice, and the other end's next write or read posts that notice to the
// loop (notePipe), batched with the loop's other tasks and waking it only when it sleeps.
//
// Each direction holds at most pipeWindow bytes, as a socket's buffer does: a writer that
// finds it full waits (the goroutine on the condition variable, the loop on the notice), so
// nothing in between grows without bound.
type Pipe struct {
	l *Loop // the worker that serves it; set before the pipe is shared

	mu   sync.Mutex
	cond sync.Cond // the outside end waits here for bytes, room, or an end

	toLoop   []byte // written outside, not yet read by the loop: toLoop[toOff:]
	toOff    int
	fromLoop []byte // written by the loop, not yet read outside: fromLoop[fromOff:]
	fromOff  int
	consumed int64       // bytes the loop has read from toLoop, ever (Consumed)
	alone    atomic.Bool // BorrowAlone: the outside end's notices may run the loop's turn

	outsideShut   bool // the outside end writes no more (CloseWrite or Close)
	outsideClosed bool // the outside end is closed: the loop's writes fail
	loopShut      bool // the loop writes no more (its shutdown or close)
	loopClosed    bool // the loop closed its end: the outside's writes fail

	c         *Conn // the loop's connection, once attached (loop goroutine only)
	wantRead  bool  // the loop found nothing to read: tell it when bytes or the end come
	wantWrite bool  // the loop found no room: tell it when there is room again
	noted     bool  // queued in the loop's pipe notices (Loop.pipeNotes)
	waiting   int   // outside goroutines waiting on cond
}

// pipeWindow is the most each direction holds, about what a Unix socket's buffers held.
const pipeWindow = 128 << 10

// errPipeClosed is what the outside end's calls return once it closed itself.
var errPipeClosed = net.ErrClosed

// --- the outside end (any goroutine) ---

// Read reads what the program wrote. It waits for bytes and returns io.EOF once the program
// closed or shut its end and everything before that was read.
func (p *Pipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	for {
		if p.outsideClosed {
			p.mu.Unlock()
			return 0, errPipeClosed
		}
		if pending := len(p.fromLoop) - p.fromOff; pending > 0 {
			n := copy(b, p.fromLoop[p.fromOff:])
			p.fromOff += n
			if p.fromOff == len(p.fromLoop) {
				p.fromLoop, p.fromOff = keepSmall(p.fromLoop), 0
			}
			note := p.wantWrite && len(p.fromLoop)-p.fromOff <= pipeWindow/2
			if note {
				p.wantWrite = false
			}
			note = p.noteLocked(note)
			p.mu.Unlock()
			if note {
				p.l.notePipe(p)
			}
			return n, nil
		}
		if p.loopShut {
			p.mu.Unlock()
			return 0, io.EOF
		}
		if len(b) == 0 {
			p.mu.Unlock()
			return 0, nil
		}
		p.wait()
	}
}

// Write writes to the program, waiting while the window toward it is full. It fails with
// EPIPE once the program closed its end.
func (p *Pipe) Write(b []byte) (int, error) {
	written := 0
	p.mu.Lock()
	for len(b) > 0 {
		switch {
		case p.outsideClosed:
			p.mu.Unlock()
			return written, errPipeClosed
		case p.outsideShut:
			p.mu.Unlock()
			return written, errors.New("write after CloseWrite")
		case p.loopClosed:
			p.mu.Unlock()
			return written, unix.EPIPE
		}
		room := pipeWindow - (len(p.toLoop) - p.toOff)
		if room <= 0 {
			p.wait()
			continue
		}
		if p.toOff > 0 && len(p.toLoop)+min(room, len(b)) > cap(p.toLoop) {
			p.toLoop, p.toOff = append(p.toLoop[:0], p.toLoop[p.toOff:]...), 0
		}
		n := min(room, len(b))
		p.toLoop = append(p.toLoop, b[:n]...)
		b, written = b[n:], written+n
		note := p.noteLocked(p.wantRead)
		p.wantRead = p.wantRead && !note
		if note {
			p.mu.Unlock()
			p.l.notePipe(p)
			p.mu.Lock()
		}
	}
	p.mu.Unlock()
	return written, nil
}

// CloseWrite tells the program that nothing more comes (its read returns EOF, as after a
// socket's shutdown(SHUT_WR)); what it writes can still be read.
func (p *Pipe) CloseWrite() error {
	p.mu.Lock()
	if p.outsideClosed {
		p.mu.Unlock()
		return errPipeClosed
	}
	p.outsideShut = true
	note := p.noteLocked(true)
	p.mu.Unlock()
	if note {
		p.l.notePipe(p)
	}
	return nil
}

// Close closes the outside end: the program hears the end of its input (and its writes
// fail), and any goroutine waiting in Read or Write returns. Safe to call more than once.
func (p *Pipe) Close() error {
	p.mu.Lock()
	if p.outsideClosed {
		p.mu.Unlock()
		return nil
	}
	p.outsideClosed, p.outsideShut = true, true
	p.fromLoop, p.fromOff = nil, 0
	p.cond.Broadcast()
	note := p.noteLocked(true)
	p.mu.Unlock()
	if note {
		p.l.notePipe(p)
	}
	return nil
}

// BorrowAlone says whether the request the outside end writes next is the only one its
// sender has in progress. If so, and the worker sleeps in its wait with nothing queued, the
// writer serves it itself, on its own goroutine (borrow.go), and finds the answer in the pipe
// as its Write returns: one request at a time, 34 → 9 µs. Requests that arrive together are
// left to the worker's thread, which serves them in batches: borrowed turns taken in turn by
// many callers cost more CPU and latency under load (RATIONALE.md, "Embedding").
func (p *Pipe) BorrowAlone(alone bool) { p.alone.Store(alone) }

// Consumed is how many bytes the loop has read of what the outside end wrote. What the loop
// had not read when it closed its end is dropped unread, so a count that did not move since a
// request was written says the program never saw a byte of it: only then may the request be
// sent again on another connection without the program possibly acting on it twice.
func (p *Pipe) Consumed() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.consumed
}

// wait waits on cond, counted so that the loop's end wakes the outside only when someone
// waits. p.mu is held.
func (p *Pipe) wait() {
	p.waiting++
	p.cond.Wait()
	p.waiting--
}

// noteLocked decides whether the outside end must post a notice now: only when asked (want)
// and the pipe is not queued with the loop already. p.mu is held.
func (p *Pipe) noteLocked(want bool) bool {
	if !want || p.noted {
		return false
	}
	p.noted = true
	return true
}

// keepSmall empties a buffer for reuse, unless a burst made it large.
func keepSmall(b []byte) []byte {
	if cap(b) > 16<<10 {
		return nil
	}
	return b[:0]
}

// --- the loop's end (the loop's goroutine only) ---

// read is read(2) on the pipe: bytes, EAGAIN (and a notice armed), or 0 at the end.
func (p *Pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pending := len(p.toLoop) - p.toOff; pending > 0 {
		n := copy(b, p.toLoop[p.toOff:])
		p.toOff += n
		p.consumed += int64(n)
		if p.toOff == len(p.toLoop) {
			// Emptied: the next bytes raise a notice, as a new edge would. The loop's
			// short-read shortcut (readConn) relies on this.
			p.toLoop, p.toOff = keepSmall(p.toLoop), 0
			p.wantRead = true
		}
		p.wakeOutside()
		return n, nil
	}
	if p.outsideShut {
		return 0, nil
	}
	p.wantRead = true
	return 0, unix.EAGAIN
}

// writev is writev(2) on the pipe: as much as the window takes, EAGAIN (and a notice armed)
// when it takes nothing, EPIPE once the outside end is closed.
func (p *Pipe) writev(iov [][]byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.outsideClosed {
		return 0, unix.EPIPE
	}
	if p.fromOff > 0 {
		p.fromLoop, p.fromOff = append(p.fromLoop[:0], p.fromLoop[p.fromOff:]...), 0
	}
	room := pipeWindow - len(p.fromLoop)
	n := 0
	for _, b := range iov {
		take := min(room-n, len(b))
		p.fromLoop = append(p.fromLoop, b[:take]...)
		n += take
		if take < len(b) {
			break
		}
	}
	if n == 0 && room <= 0 {
		p.wantWrite = true
		return 0, unix.EAGAIN
	}
	if n > 0 {
		p.wakeOutside()
	}
	return n, nil
}

func (p *Pipe) write(b []byte) (int, error) {
	one := [1][]byte{b}
	return p.writev(one[:])
}

// shutdownWrite is shutdown(SHUT_WR): the outside end reads EOF after what was written.
func (p *Pipe) shutdownWrite() {
	p.mu.Lock()
	p.loopShut = true
	p.wakeOutside()
	p.mu.Unlock()
}

// close is close(2): the outside end reads what was written, then EOF, and its writes fail.
func (p *Pipe) close() {
	p.mu.Lock()
	if p.closeLocked() {
		p.l.readied = true
	}
	p.mu.Unlock()
}

// closeLocked closes the loop's end and reports whether it woke a goroutine. p.mu is held.
func (p *Pipe) closeLocked() bool {
	p.loopShut, p.loopClosed = true, true
	p.toLoop, p.toOff = nil, 0
	if p.waiting > 0 {
		p.cond.Broadcast()
		return true
	}
	return false
}

// peekEOF reports, consuming nothing, whether the next read would return the end.
func (p *Pipe) peekEOF() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outsideShut && len(p.toLoop) == p.toOff
}

// wakeOutside wakes the goroutines waiting on the outside end. Go's scheduler puts a woken
// goroutine on this thread's processor, which the loop must then give up before it sleeps
// (Loop.readied). p.mu is held.
func (p *Pipe) wakeOutside() {
	if p.waiting > 0 {
		p.cond.Broadcast()
		p.l.readied = true
	}
}

// --- the loop's side of notices ---

// notePipe queues p's notice (its attachment, or a change the loop asked to hear of) for the
// loop's next turn, waking the loop only if it sleeps. It reports false when the loop has
// ended; a pipe attached to it was closed then.
func (l *Loop) notePipe(p *Pipe) bool {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		p.mu.Lock()
		p.closeLocked() // the loop closed what was attached as it ended
		p.mu.Unlock()
		return false
	}
	if p.alone.Load() && l.borrowLocked() {
		l.mu.Unlock()
		one := [1]*Pipe{p}
		l.runBorrowed(func(l *Loop) { l.runPipeNotes(one[:]) })
		return true
	}
	l.pipeNotes = append(l.pipeNotes, p)
	l.wakeLocked()
	l.mu.Unlock()
	return true
}

// runPipeNotes attaches the pipes handed to this loop and serves those whose outside end
// did what the loop waited for: as handleEvent does for a socket's readiness.
func (l *Loop) runPipeNotes(notes []*Pipe) {
	for i, p := range notes {
		notes[i] = nil
		p.mu.Lock()
		p.noted = false
		p.mu.Unlock()
		c := p.c
		if c == nil {
			l.servePipe(p)
			continue
		}
		if c.closed() || l.stopped { // a stopped loop reads nothing more; teardown closes it
			continue
		}
		l.pipeReady(c)
	}
}

// pipeReady serves a pipe as handleEvent serves a socket's readiness: write what waits, then
// read. An outside end that closed outright (the client left, or the handler is done) is
// closed at once, as a socket is when a write fails, though input may still wait unread: a
// socket's full close looks like a half close until then, but a pipe can tell the two apart.
func (l *Loop) pipeReady(c *Conn) {
	p := c.pipe
	p.mu.Lock()
	shut, gone := p.outsideShut, p.outsideClosed
	p.mu.Unlock()
	if gone {
		l.closeConn(c, abi.ClosePeer)
		return
	}
	if c.outLen() > 0 {
		l.flush(c)
	}
	if shut {
		c.hangup = true
	}
	if !c.closed() {
		l.readConn(c)
	}
}
