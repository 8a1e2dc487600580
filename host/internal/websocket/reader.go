package websocket

import (
	"encoding/binary"

	"github.com/gobwas/ws"

	"github.com/wasmloop/wasmloop/host/internal/defaults"
)

// DefaultMaxMessage is the message size cap a Reader uses when MaxMessage
// is zero or negative: the default of the WSMaxMessage setting.
const DefaultMaxMessage = defaults.WSMaxMessage

// Kind says what an Event is.
type Kind uint8

// Event kinds.
const (
	None    Kind = iota // no complete event yet: feed more bytes
	Message             // a complete text or binary message
	Ping                // a ping; answer with a pong carrying Payload
	Pong                // a pong
	Close               // a close frame; no events follow it
)

// String names the kind for logs and test output.
func (k Kind) String() string {
	switch k {
	case None:
		return "None"
	case Message:
		return "Message"
	case Ping:
		return "Ping"
	case Pong:
		return "Pong"
	case Close:
		return "Close"
	}
	return "Kind(?)"
}

// Event is one thing a client said. Payload is owned by the Reader and is
// valid only until the next call to Next or Reset.
type Event struct {
	Kind Kind
	// Op is ws.OpText or ws.OpBinary for a Message, the control opcode
	// otherwise, and 0 for None.
	Op ws.OpCode
	// Payload is the unmasked (and, for a compressed message,
	// decompressed) message, the ping or pong payload, or the close reason.
	// A text Message's Payload is always valid UTF-8, and so is a reason.
	Payload []byte
	// Code is the close code of a Close event. A close frame without a body
	// is reported as 1005 (ws.StatusNoStatusRcvd), which RFC 6455 §7.4.1
	// forbids sending: reply to it with an empty close body or 1000, never
	// by echoing Code (AppendClose drops 1005 for that reason).
	Code ws.StatusCode
}

// Reader parses the frames a client sends (RFC 6455 §5) from the
// connection's buffer, incrementally and without touching a socket. The zero
// value is ready to use. A Reader is not safe for concurrent use.
type Reader struct {
	// MaxMessage caps a message's size in bytes, counting the compressed
	// and, separately, the decompressed size of a compressed message. Zero or
	// negative means DefaultMaxMessage. Beyond it Next fails with 1009.
	MaxMessage int64
	// Deflate says permessage-deflate (RFC 7692) was negotiated, with no
	// context takeover in either direction (see AppendAccept). Without it
	// any RSV bit is a protocol error.
	Deflate bool
	// Inflater decompresses compressed messages; nil makes the Reader allocate its own on the
	// first one. Readers used from one goroutine may share one.
	Inflater *Inflater

	err    *Error // sticky
	closed bool   // a Close event was returned

	// The frame whose payload is being read.
	inFrame bool
	fin     bool
	op      ws.OpCode
	mask    [4]byte
	remain  int64 // payload bytes still to come
	off     int   // payload bytes already read, for the mask phase

	// The data message being assembled; msgOp is 0 when none is.
	msgOp      ws.OpCode
	compressed bool
	msgLen     int64 // wire payload bytes so far
	msg        []byte
	text       utf8State
	zbuf       []byte // compressed payload of a compressed message

	ctl  [125]byte // payload of the current control frame
	ctlN int
}

// Reset forgets all state (a partial frame or message, a sticky error, a
// close) and keeps MaxMessage, Deflate and the buffers for reuse.
func (r *Reader) Reset() {
	*r = Reader{MaxMessage: r.MaxMessage, Deflate: r.Deflate,
		Inflater: r.Inflater, msg: r.msg[:0], zbuf: r.zbuf[:0]}
}

// Trim lets go of buffers larger than max bytes, between messages (it does nothing while a
// message is being assembled): a connection that once received a large message does not
// keep its memory while idle.
func (r *Reader) Trim(max int) {
	if r.msgOp != 0 {
		return
	}
	if cap(r.msg) > max {
		r.msg = nil
	}
	if cap(r.zbuf) > max {
		r.zbuf = nil
	}
}

// Held is the memory the Reader holds for messages, in bytes: what a partial message costs.
func (r *Reader) Held() int { return cap(r.msg) + cap(r.zbuf) }

func (r *Reader) maxMessage() int64 {
	if r.MaxMessage <= 0 {
		return DefaultMaxMessage
	}
	return r.MaxMessage
}

// Next parses from buf, which holds the bytes received after those that
// earlier calls consumed. It returns the first complete event and the
// number of bytes of buf it used; the caller drops buf[:consumed] and calls
// again with the rest plus whatever arrives next, until Kind is None.
//
// When buf holds no complete event Next consumes what it can (a partial
// payload is unmasked and checked as it arrives) or nothing (a partial
// frame header), and returns Kind None: "not enough bytes yet" is a state,
// never an error. Every rule is checked on the first byte that breaks it,
// so a doomed message is refused before the rest of it arrives, and the
// same events and error come out whether the bytes arrive whole or one at
// a time. After an error Next keeps returning it until Reset; after a Close
// event it consumes and ignores everything (RFC 6455 §5.5.1).
func (r *Reader) Next(buf []byte) (ev Event, consumed int, err *Error) {
	if r.err != nil {
		return Event{}, 0, r.err
	}
	if r.closed {
		return Event{}, len(buf), nil
	}
	n := 0
	for {
		if !r.inFrame {
			hn, e := r.header(buf[n:])
			if e != nil {
				r.err = e
				return Event{}, 0, e
			}
			if hn == 0 {
				return Event{}, n, nil
			}
			n += hn
		}
		if r.remain > 0 {
			take := len(buf) - n
			if int64(take) > r.remain {
				take = int(r.remain)
			}
			if take == 0 {
				return Event{}, n, nil
			}
			if e := r.payload(buf[n : n+take]); e != nil {
				r.err = e
				return Event{}, 0, e
			}
			n += take
			if r.remain > 0 {
				return Event{}, n, nil
			}
		}
		ev, e := r.endFrame()
		if e != nil {
			r.err = e
			return Event{}, 0, e
		}
		if ev.Kind != None {
			return ev, n, nil
		}
	}
}

// header checks and parses a frame header at the start of b. It returns 0
// with a nil error when b holds only part of a valid header; every rule is
// checked on the byte that carries it.
func (r *Reader) header(b []byte) (int, *Error) {
	if len(b) == 0 {
		return 0, nil
	}
	b0 := b[0]
	fin := b0&0x80 != 0
	rsv := (b0 >> 4) & 7
	op := ws.OpCode(b0 & 0x0F)
	if op.IsReserved() {
		return 0, errOpcode
	}
	if rsv != 0 {
		// Only RSV1, only with deflate, only on a message's first frame
		// (RFC 7692 §6: never on control frames or continuations).
		if rsv != 4 || !r.Deflate || !(op == ws.OpText || op == ws.OpBinary) {
			return 0, errRsv
		}
	}
	if op.IsControl() {
		if !fin {
			return 0, errCtlFragmented
		}
	} else if op == ws.OpContinuation {
		if r.msgOp == 0 {
			return 0, errContinuation
		}
	} else if r.msgOp != 0 {
		return 0, errInterleaved
	}
	if len(b) < 2 {
		return 0, nil
	}
	b1 := b[1]
	if b1&0x80 == 0 {
		return 0, errUnmasked
	}
	length := int64(b1 & 0x7F)
	if op.IsControl() && length > ws.MaxControlFramePayloadSize {
		return 0, errCtlTooLong
	}
	hn := 2
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		length = int64(binary.BigEndian.Uint16(b[2:]))
		hn = 4
	case 127:
		if len(b) < 3 {
			return 0, nil
		}
		if b[2]&0x80 != 0 {
			return 0, errLength64
		}
		if len(b) < 10 {
			return 0, nil
		}
		length = int64(binary.BigEndian.Uint64(b[2:]))
		hn = 10
	}
	if !op.IsControl() {
		sofar := int64(0)
		if op == ws.OpContinuation {
			sofar = r.msgLen
		}
		if length > r.maxMessage()-sofar {
			return 0, errTooBig
		}
	}
	if len(b) < hn+4 {
		return 0, nil
	}
	copy(r.mask[:], b[hn:hn+4])
	r.inFrame, r.fin, r.op, r.remain, r.off = true, fin, op, length, 0
	switch {
	case op.IsControl():
		r.ctlN = 0
	case op != ws.OpContinuation:
		r.msgOp, r.compressed, r.msgLen = op, rsv != 0, 0
		r.msg, r.zbuf, r.text = r.msg[:0], r.zbuf[:0], utf8State{}
	}
	if !op.IsControl() {
		r.msgLen += length
	}
	return hn + 4, nil
}

// payload takes the next part of the current frame's payload, unmasking it
// into the Reader's buffers and validating text as it goes.
func (r *Reader) payload(p []byte) *Error {
	var dst []byte
	switch {
	case r.op.IsControl():
		dst = r.ctl[r.ctlN : r.ctlN+len(p)]
		r.ctlN += len(p)
	case r.compressed:
		r.zbuf = append(r.zbuf, p...)
		dst = r.zbuf[len(r.zbuf)-len(p):]
	default:
		r.msg = append(r.msg, p...)
		dst = r.msg[len(r.msg)-len(p):]
	}
	if r.op.IsControl() {
		copy(dst, p)
	}
	ws.Cipher(dst, r.mask, r.off)
	r.off += len(p)
	r.remain -= int64(len(p))
	if r.msgOp == ws.OpText && !r.compressed && !r.op.IsControl() {
		if ok, _ := r.text.feed(dst); !ok {
			return errUTF8
		}
	}
	return nil
}

// endFrame finishes the frame whose payload is complete, returning the
// event it completes (Kind None for a non-final data frame).
func (r *Reader) endFrame() (Event, *Error) {
	r.inFrame = false
	switch r.op {
	case ws.OpPing:
		return Event{Kind: Ping, Op: ws.OpPing, Payload: r.ctl[:r.ctlN]}, nil
	case ws.OpPong:
		return Event{Kind: Pong, Op: ws.OpPong, Payload: r.ctl[:r.ctlN]}, nil
	case ws.OpClose:
		return r.closeEvent()
	}
	if !r.fin {
		return Event{}, nil
	}
	op := r.msgOp
	r.msgOp = 0
	if r.compressed {
		if e := r.inflate(); e != nil {
			return Event{}, e
		}
		if op == ws.OpText {
			if ok, _ := r.text.feed(r.msg); !ok {
				return Event{}, errUTF8
			}
		}
	}
	if op == ws.OpText && !r.text.complete() {
		return Event{}, errUTF8
	}
	return Event{Kind: Message, Op: op, Payload: r.msg}, nil
}

// closeEvent validates a close frame's body (RFC 6455 §5.5.1, §7.4).
func (r *Reader) closeEvent() (Event, *Error) {
	p := r.ctl[:r.ctlN]
	switch len(p) {
	case 0:
		r.closed = true
		return Event{Kind: Close, Op: ws.OpClose, Payload: p, Code: ws.StatusNoStatusRcvd}, nil
	case 1:
		return Event{}, errCloseLen1
	}
	code := ws.StatusCode(binary.BigEndian.Uint16(p))
	if !ValidCloseCode(code) {
		return Event{}, errCloseCode
	}
	var s utf8State
	if ok, _ := s.feed(p[2:]); !ok || !s.complete() {
		return Event{}, errCloseUTF8
	}
	r.closed = true
	return Event{Kind: Close, Op: ws.OpClose, Payload: p[2:], Code: code}, nil
}

// ValidCloseCode reports whether a peer may send code in a close frame.
// It follows ws.CheckCloseFrameData (which refuses codes below 1000, 1004,
// the reserved 1005, 1006 and 1015, and unassigned codes in 1000..2999)
// with two differences that Autobahn's 7.7.x/7.9.x cases and the IANA
// registry agree on: 1012, 1013 and 1014 (registered after RFC 6455) are
// accepted, and codes from 5000 up, which RFC 6455 §7.4.2 does not define,
// are refused.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1012 && code <= 1014:
		return true
	case code >= 5000:
		return false
	}
	return ws.CheckCloseFrameData(code, "") == nil
}
