// Package guestout is the path a guest's stdout and stderr take to the host's: a Writer that
// the guest's fd_write calls (made by wazero on the worker's event-loop goroutine) can never
// block, because it only copies into a bounded buffer that one goroutine of its own drains to
// the real destination.
//
// Why. Writing straight to os.Stdout from an event loop means that a reader who stops reading
// (`wasmloop run app.wasm | sleep 60`, a full pipe to a stalled log shipper) stops the loop: the
// worker serves nothing more, and a graceful shutdown waits for it until the timeout. Output
// that cannot be written is worth less than the requests the worker would otherwise serve, so
// under pressure the Writer drops output instead, and says so.
//
// Whole lines. What is dropped is always whole lines: a line that does not fit is dropped
// with the part of it still in the buffer, and the rest of it, in later writes, up to its
// newline. Lines written in one Write call are never cut and never interleaved with other
// callers' output (the buffer takes each call whole or not at all, line by line). The only
// half line that can reach the destination is one whose beginning had already gone to it when
// its end had to be dropped; the report that follows starts on a line of its own. A line
// written in pieces, over several calls, can have other callers' output inside it, as when
// they write to a file directly, and is then tracked as one line with it.
//
// One gap at a time. Once output has been dropped, everything written is dropped (and counted)
// until the drain has written all that came before the first drop; the drain then writes one
// line to the destination itself, where the missing lines would have been:
//
//	wasmloop: 123 lines of guest output dropped (more than 1048576 bytes were waiting to be written)
//
// and output is taken again from there on. Dropping until the drain has caught up, rather
// than whenever a line does not fit, keeps each gap one stretch of the stream with one report
// at its place, needs no markers inside the buffer, and does not bury a slow reader under a
// report for every other line. Nothing is ever reordered: what reaches the destination is the
// output in the order it was written, with gaps, each followed by its report.
//
// Bounded. The buffer holds at most the limit given to New (DefaultLimit, 1 MiB, by default):
// it grows as needed up to that and is then reused, so a Write allocates nothing once the
// buffer has grown. The drain copies at most 4 KiB at a time out of it into a buffer of its
// own, cut after a newline, so each write to the destination is whole lines of at most
// PIPE_BUF bytes (Linux's), which a pipe that several writers share (other processes, or
// stdout and stderr with 2>&1) keeps in one piece. A line longer than the limit is always dropped: the limit should be
// larger than any line the guest means to be read.
package guestout
