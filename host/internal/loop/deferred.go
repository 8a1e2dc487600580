package loop

import (
	"slices"

	"github.com/wasmloop/wasmloop/abi"
)

// Work that cannot be done where it arises waits in the loop's deferred queues, each named
// for what it delivers. Two rules make them necessary: a host function never calls into the
// guest (ABI.md §1), so a close or drain noticed during a callback is delivered after it; and
// a connection is never read or resumed while the loop's shared read buffer may hold the bytes
// being served, so that waits for the top of the turn.
//
// One turn of the loop (Loop.run) goes:
//
//  1. tasks posted by other goroutines (messages, shutdown), then settle;
//  2. the poller's wait, then its events: writes, reads, accepts;
//  3. readAgain and acceptAgain: connections and listeners that used their share of a
//     wake-up and have more waiting (fairness between connections);
//  4. timers that are due;
//  5. settle.
//
// settle drains, in this order and until all are empty: closeNotices (on_close and
// on_ws_close), resumes (each followed by the notices it caused), flushes, results (the
// on_host_result of operations the loop finished, each followed by its notices and flushes),
// then drainNotices (on_drain, likewise). afterCallback delivers closeNotices
// alone, after every guest callback.
type deferred struct {
	closeNotices []closeNote  // on_close / on_ws_close to deliver after the current callback
	resumes      []*Conn      // connections the guest released outside their own read
	flushes      []*Conn      // connections with output to write
	drainNotices []abi.Handle // on_drain to deliver, once the output is flushed
	results      []opResult   // finished loop operations' on_host_result (op.go)
	reads        []*Conn      // connections with bytes left unread after their share
	accepts      []*listener  // listeners with connections left in the backlog
}

// queueSet records which of the per-connection queues hold a connection, so that each holds
// it at most once.
type queueSet uint8

const (
	inResumes queueSet = 1 << iota
	inFlushes
	inReads
)

// closeNote is an on_close (a request) or on_ws_close (a socket: code and text) to deliver.
type closeNote struct {
	in     *instance // the instance to tell
	h      abi.Handle
	reason int32
	code   int32
	text   string
}

func (q *deferred) resume(c *Conn) {
	if c.queued&inResumes == 0 {
		c.queued |= inResumes
		q.resumes = append(q.resumes, c)
	}
}

func (q *deferred) flush(c *Conn) {
	if c.queued&inFlushes == 0 && !c.closed() {
		c.queued |= inFlushes
		q.flushes = append(q.flushes, c)
	}
}

func (q *deferred) readAgain(c *Conn) {
	if c.queued&inReads == 0 {
		c.queued |= inReads
		q.reads = append(q.reads, c)
	}
}

func (q *deferred) acceptAgain(ln *listener) { q.accepts = append(q.accepts, ln) }

func (q *deferred) closeNotice(n closeNote) { q.closeNotices = append(q.closeNotices, n) }

func (q *deferred) drainNotice(h abi.Handle) { q.drainNotices = append(q.drainNotices, h) }

// drainQueued reports whether on_drain for h is queued and not yet delivered. Asked only at
// a peer's EOF, where a scan of the few queued notices costs less than a flag to keep.
func (q *deferred) drainQueued(h abi.Handle) bool { return slices.Contains(q.drainNotices, h) }

func (q *deferred) result(r opResult) { q.results = append(q.results, r) }

// afterCallback delivers the close notices queued during a callback. It may run nested inside
// a connection's serve, so it never reads or resumes connections: that waits for settle.
func (l *Loop) afterCallback() {
	for len(l.queue.closeNotices) > 0 {
		n := l.queue.closeNotices[0]
		l.queue.closeNotices = l.queue.closeNotices[1:]
		if n.h.Kind() == abi.KindSocket {
			l.deliverWSClose(n)
		} else {
			l.deliverClose(n)
		}
	}
	l.queue.closeNotices = l.queue.closeNotices[:0]
}

// settle runs, at the top of the loop only, the work callbacks left (see deferred), until
// none is left.
func (l *Loop) settle() {
	q := &l.queue
	for {
		l.afterCallback() // notices queued outside any callback (a sweep, an EOF) too
		for len(q.resumes) > 0 && !l.stopped {
			c := q.resumes[0]
			q.resumes = q.resumes[1:]
			c.queued &^= inResumes
			if !c.closed() {
				c.proto.resume()
			}
			l.afterCallback()
		}
		q.resumes = q.resumes[:0]
		l.flushQueued()
		l.deliverResults()
		if l.stopped || len(q.drainNotices) == 0 && len(q.closeNotices) == 0 && len(q.resumes) == 0 && len(q.results) == 0 {
			return
		}
		l.deliverDrains()
	}
}

func (l *Loop) flushQueued() {
	q := &l.queue
	for i := 0; i < len(q.flushes); i++ {
		c := q.flushes[i]
		q.flushes[i] = nil
		c.queued &^= inFlushes
		if !c.closed() {
			l.flush(c)
		}
	}
	q.flushes = q.flushes[:0]
}

// readPending gives the listeners and connections that used their share of the last wake-up
// their next turn.
func (l *Loop) readPending() {
	q := &l.queue
	if len(q.accepts) > 0 {
		lns := q.accepts
		q.accepts = nil
		for _, ln := range lns {
			if !ln.closed {
				l.acceptAll(ln)
			}
		}
	}
	if len(q.reads) == 0 {
		return
	}
	// Take the list first: a connection that uses its share again requeues itself.
	cs := q.reads
	q.reads = nil
	for _, c := range cs {
		c.queued &^= inReads
		if !c.closed() {
			l.readConn(c)
		}
	}
}

// deliverDrains calls on_drain for the requests and sockets queued by their protocols.
func (l *Loop) deliverDrains() {
	q := &l.queue
	for len(q.drainNotices) > 0 && !l.stopped {
		h := q.drainNotices[0]
		q.drainNotices = q.drainNotices[1:]
		var in *instance
		if h.Kind() == abi.KindSocket {
			if w, ok := l.sockets.get(h); ok {
				in = w.in
			}
		} else if ex, ok := l.exchanges.get(h); ok {
			in = ex.in
		}
		if !in.live() {
			continue
		}
		rc, err := in.g.OnDrain(h)
		l.checkResult(in, abi.ExportOnDrain, rc, err)
		l.afterCallback()
		l.flushQueued()
	}
	q.drainNotices = q.drainNotices[:0]
}
