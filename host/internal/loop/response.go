package loop

import (
	"strconv"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/http1"
)

// Responses: the head the guest's respond asks for, framed for the wire (Content-Length,
// chunked, or close-delimited for HTTP/1.0), and body pieces after it.

// respond starts ex's response; with end it is the whole response. The arguments have been
// checked for what does not depend on the exchange (abi_http.go).
func (l *Loop) respond(ex *exchange, status int, hdr []byte, info http1.BlockInfo, body []byte, end bool) int32 {
	noBody := ex.isHead || status == 204 || status == 304
	if status == 204 && info.ContentLength >= 0 {
		return errno(abi.EINVAL)
	}
	if end && !noBody && info.ContentLength >= 0 && info.ContentLength != int64(len(body)) {
		return errno(abi.EINVAL)
	}
	if !end && !noBody && info.ContentLength >= 0 && int64(len(body)) > info.ContentLength {
		return errno(abi.EINVAL)
	}
	hc := ex.hc
	c := hc.c
	if ex.expect100 || end && ex.streaming && !ex.bodyDone {
		// Answered in full before the body was read (or asked for): the rest of it may still
		// come, so the connection cannot be reused, and the response says so. (A response
		// that streams while the body arrives is usually reading it; if it ends first
		// anyway, finish closes the connection after it.)
		ex.expect100, ex.keepAlive = false, false
	}
	closeAfter := !ex.keepAlive || info.ConnectionClose || hc.last
	out := http1.AppendStatusLine(l.outBuf(c), 1, status)
	out = append(out, hdr...)
	if !info.HasDate {
		out = l.httpScratch.date.Append(out, l.now)
	}
	switch {
	case noBody:
		ex.mode = frameNone
		if end && ex.isHead && info.ContentLength < 0 && status != 204 && status != 304 {
			out = appendContentLength(out, int64(len(body)))
		}
	case end && info.ContentLength < 0:
		ex.mode = frameLength
		out = appendContentLength(out, int64(len(body)))
	case info.ContentLength >= 0:
		ex.mode = frameLength
		ex.remaining = info.ContentLength
	case ex.minor >= 1:
		ex.mode = frameChunked
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	default: // HTTP/1.0 cannot be chunked: the body ends when the connection does
		ex.mode = frameClose
		closeAfter = true
	}
	if closeAfter {
		ex.keepAlive = false
		if !info.ConnectionClose {
			out = append(out, "Connection: close\r\n"...)
		}
	} else if ex.minor == 0 {
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	c.out = out
	ex.started, ex.status = true, status
	if ex.mode == frameLength && !end {
		ex.remaining -= int64(len(body))
	}
	l.appendBody(ex, body, end)
	if c.closed() {
		return errno(abi.ECLOSED) // on_close follows
	}
	if end {
		l.finish(ex)
		return l.checkOutput(c)
	}
	return l.queued(c, &ex.needDrain)
}

func appendContentLength(out []byte, n int64) []byte {
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, n, 10)
	return append(out, "\r\n"...)
}

// writeBody appends a piece of a started response's body.
func (l *Loop) writeBody(ex *exchange, data []byte) int32 {
	if ex.mode == frameLength {
		if int64(len(data)) > ex.remaining {
			return errno(abi.EINVAL)
		}
		ex.remaining -= int64(len(data))
	}
	c := ex.hc.c
	l.appendBody(ex, data, false)
	return l.queued(c, &ex.needDrain)
}

// endBody completes a started response.
func (l *Loop) endBody(ex *exchange) {
	c := ex.hc.c
	switch {
	case ex.mode == frameChunked:
		c.out = http1.AppendLastChunk(l.outBuf(c))
	case ex.mode == frameLength && ex.remaining > 0:
		ex.keepAlive = false // short of the declared length: only a close tells the client
	}
	l.finish(ex)
}

// appendBody frames body bytes for the wire; last says no more body follows. Small pieces are
// copied into the connection's buffer, which is written when the callback returns. Pieces of
// directWrite or more are gathered there too while the pending output stays under the
// coalescing limit; the piece that reaches it (or the last one) goes out with them in one
// writev, straight from guest memory. A streamed download spends most of its CPU in writev,
// much of it per call (the loopback's delivery, the client's wake-up): one 256 KiB write
// instead of four 64 KiB ones costs less than the copy that gathers them (RATIONALE.md).
func (l *Loop) appendBody(ex *exchange, data []byte, last bool) {
	if len(data) == 0 || ex.mode == frameNone {
		return
	}
	c := ex.hc.c
	if len(data) >= directWrite {
		limit := min(coalesceMax, l.cfg.WriteHighWater)
		if last || c.outLen()+len(data) >= limit {
			var pre, post []byte
			if ex.mode == frameChunked {
				pre = append(strconv.AppendUint(l.httpScratch.frame[:0], uint64(len(data)), 16), "\r\n"...)
				post = crlf
			}
			l.writeThrough(c, pre, data, post)
			return
		}
		l.outRoom(c, limit-c.outLen()+512) // the whole gathering, chunk framing included
	}
	if ex.mode == frameChunked {
		c.out = http1.AppendChunk(l.outBuf(c), data)
	} else {
		c.out = append(l.outBuf(c), data...)
	}
}

var crlf = []byte("\r\n")
