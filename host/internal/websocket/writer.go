package websocket

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// AppendFrame appends one server frame: unmasked (RFC 6455 §5.1), RSV bits
// clear, with the shortest length encoding. The header is the one
// ws.WriteHeader would write (tests check this byte for byte), built in
// place so that framing a message allocates nothing beyond growing dst.
//
// A control frame (close, ping, pong) must be final and carry at most 125
// bytes; AppendFrame panics otherwise, since sending one would make any
// conforming client fail the connection. Callers framing untrusted payloads
// as control frames must check the length first.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte, fin bool) []byte {
	if op.IsControl() && (!fin || len(payload) > ws.MaxControlFramePayloadSize) {
		panic("websocket: control frame must be final and at most 125 bytes")
	}
	return appendFrame(dst, fin, 0, op, payload)
}

// AppendHeader appends the header of one final, unmasked data frame (op is ws.OpText or
// ws.OpBinary) of length payload bytes, RSV bits clear: the caller sends the payload after
// it, which lets a large payload go to the socket without being copied behind its header.
func AppendHeader(dst []byte, op ws.OpCode, length int) []byte {
	return appendHeader(dst, true, 0, op, int64(length))
}

// appendFrame writes a header with the given RSV bits (RSV1 = 4) and the
// payload.
func appendFrame(dst []byte, fin bool, rsv byte, op ws.OpCode, payload []byte) []byte {
	return append(appendHeader(dst, fin, rsv, op, int64(len(payload))), payload...)
}

func appendHeader(dst []byte, fin bool, rsv byte, op ws.OpCode, length int64) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: length}
	b0 := h.Rsv<<4 | byte(h.OpCode)
	if h.Fin {
		b0 |= 0x80
	}
	switch ws.HeaderSize(h) {
	case 2:
		return append(dst, b0, byte(h.Length))
	case 4:
		dst = append(dst, b0, 126)
		return binary.BigEndian.AppendUint16(dst, uint16(h.Length))
	default:
		dst = append(dst, b0, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(h.Length))
	}
}

// AppendClose appends a close frame with code and reason (RFC 6455 §5.5.1).
// Code 0 and the codes that must never be sent (1005, 1006 and 1015; see
// ValidCloseCode) give an empty body, which is how to answer a Close event
// whose Code is 1005. The reason is cut to the 123 bytes a control frame
// leaves for it, at a character boundary, and invalid UTF-8 in it is
// replaced by U+FFFD so the peer does not fail the connection over it.
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if code == 0 || code.IsProtocolReserved() {
		return append(dst, byte(ws.OpClose)|0x80, 0)
	}
	var body [ws.MaxControlFramePayloadSize]byte
	binary.BigEndian.PutUint16(body[:], uint16(code))
	n := 2
	for _, c := range reason {
		if utf8.RuneLen(c) > len(body)-n {
			break
		}
		n += utf8.EncodeRune(body[n:], c)
	}
	return appendFrame(dst, true, 0, ws.OpClose, body[:n])
}
