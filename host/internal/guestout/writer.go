package guestout

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
)

// DefaultLimit is the buffer limit New uses when given 0: enough for a burst of several
// thousand log lines while the reader is briefly away, small beside a guest's memory.
const DefaultLimit = 1 << 20

// Writer is a guest's output stream: an io.Writer whose Write never waits for the destination.
// It is safe for concurrent use, so one Writer serves every worker writing to the same
// destination, and it must be closed (Close) to write what it holds and stop its goroutine.
type Writer struct {
	dst   io.Writer
	limit int

	mu   sync.Mutex
	wake sync.Cond // on mu: there is something for the drain to do
	held ring

	// midLine says the last byte accepted was not a newline, and lineStart is where that
	// unfinished line began: if its end has to be dropped, so is its beginning, while it is
	// still held.
	midLine   bool
	lineStart uint64
	// dropped counts the lines dropped since the drain last caught up. Nonzero, it is a gap:
	// Write drops everything until the drain has written what came before and reported it.
	dropped int64
	// skipping says the rest of a dropped line is still to come; Write drops up to its newline.
	skipping bool

	closing   bool  // Close was called: Write refuses, the drain finishes and stops
	abandoned bool  // Close gave up waiting: the drain stops as soon as it can
	err       error // the destination's first error, after which nothing more is written
	done      chan struct{}

	// out is the drain's own: what it is writing, copied out of held so that Write never
	// waits for the destination and the space is free again at once.
	out []byte
}

// chunk is the most the drain writes in one call: PIPE_BUF on Linux, which a pipe writes in
// one piece even when other processes write to it too.
const chunk = 4096

// New returns a Writer that writes to dst through a buffer of at most limit bytes (0 means
// DefaultLimit), and starts the goroutine that does the writing: the only one that ever waits
// for dst.
func New(dst io.Writer, limit int) *Writer {
	if limit <= 0 {
		limit = DefaultLimit
	}
	w := &Writer{dst: dst, limit: limit, done: make(chan struct{}), out: make([]byte, chunk)}
	w.wake.L = &w.mu
	go w.drain()
	return w
}

// Write adds p to the output and returns len(p), without waiting for the destination. What
// does not fit in the buffer is dropped, in whole lines, and counted (see the package
// documentation); a line written in one call stays whole. Write returns an error only after
// Close (os.ErrClosed) or once the destination has failed (its error), and then takes nothing.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.closing {
		return 0, os.ErrClosed
	}
	n := len(p)
	if w.skipping {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, nil
		}
		w.skipping = false
		p = p[i+1:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if w.dropped == 0 {
		room := w.limit - w.held.len()
		if len(p) <= room {
			w.accept(p)
			return n, nil
		}
		if keep := bytes.LastIndexByte(p[:room], '\n') + 1; keep > 0 {
			w.accept(p[:keep])
			p = p[keep:]
		}
		if w.midLine && w.lineStart >= w.held.r {
			w.held.truncate(w.lineStart)
			w.midLine = false
		}
		// A gap opens: the drain reports it once it has written what precedes it, which may
		// be nothing at all.
		w.wake.Signal()
	}
	w.drop(p)
	return n, nil
}

// accept appends p to the buffer, which has room for it, and wakes the drain.
func (w *Writer) accept(p []byte) {
	start := w.held.w
	w.held.append(p, w.limit)
	switch i := bytes.LastIndexByte(p, '\n'); {
	case i == len(p)-1:
		w.midLine = false
	case i >= 0:
		w.midLine, w.lineStart = true, start+uint64(i+1)
	case !w.midLine:
		w.midLine, w.lineStart = true, start
	}
	w.wake.Signal()
}

// drop counts the lines in p, which begins a line or continues one already counted or cut
// short, and skips the rest of its last line if p does not end it.
func (w *Writer) drop(p []byte) {
	w.dropped += int64(bytes.Count(p, []byte{'\n'}))
	if p[len(p)-1] != '\n' {
		w.dropped++
		w.skipping = true
	}
}

// Close writes what the buffer holds, and the report of a last gap, then stops the drain
// goroutine. It returns the destination's error if it had one. If ctx ends first (the
// destination is not being read), Close returns ctx.Err() at once: what was still held is
// lost, and the drain goroutine stays blocked in the destination's Write until that returns
// (at the latest when the process exits), then stops without writing more. Writes after Close
// return os.ErrClosed. Close may be called more than once.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	w.wake.Signal()
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.mu.Lock()
		w.abandoned = true
		w.mu.Unlock()
		select {
		case <-w.done: // finished meanwhile after all
		default:
			return ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
