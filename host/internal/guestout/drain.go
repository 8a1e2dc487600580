package guestout

import (
	"io"
	"strconv"
)

// drain is the Writer's goroutine: it writes what the buffer holds to the destination, chunk
// by chunk, and the report of each gap once what precedes the gap is written. It alone waits
// for the destination, and it holds the lock only to take a chunk out of the buffer, so a
// stuck destination costs Write nothing.
func (w *Writer) drain() {
	defer close(w.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for w.held.len() == 0 && w.dropped == 0 && !w.closing {
			w.wake.Wait()
		}
		var out []byte
		switch {
		case w.abandoned:
			return
		case w.held.len() > 0:
			out = w.out[:w.held.take(w.out)]
		case w.dropped > 0:
			// The gap closes here: what Write accepts from now on is written after the
			// report, since this goroutine writes both.
			out = appendReport(w.out[:0], w.dropped, w.limit, w.midLine)
			w.dropped, w.midLine = 0, false
		default: // closing, and all written
			return
		}
		w.mu.Unlock()
		n, err := w.dst.Write(out)
		if err == nil && n < len(out) {
			err = io.ErrShortWrite
		}
		w.mu.Lock()
		if err != nil {
			// As with a bufio.Writer, the first error ends the stream: what is held is lost,
			// and Write and Close report the error from now on.
			w.err = err
			w.held.truncate(w.held.r)
			w.dropped = 0
			return
		}
	}
}

// appendReport appends the line that stands where lines were dropped; after a line cut short
// (midLine), it starts on a line of its own.
func appendReport(b []byte, lines int64, limit int, midLine bool) []byte {
	if midLine {
		b = append(b, '\n')
	}
	b = append(b, "wasmloop: "...)
	b = strconv.AppendInt(b, lines, 10)
	if lines == 1 {
		b = append(b, " line"...)
	} else {
		b = append(b, " lines"...)
	}
	b = append(b, " of guest output dropped (more than "...)
	b = strconv.AppendInt(b, int64(limit), 10)
	return append(b, " bytes were waiting to be written)\n"...)
}
