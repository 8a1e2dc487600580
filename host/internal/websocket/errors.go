package websocket

import (
	"strconv"

	"github.com/gobwas/ws"
)

// Error is a rejection. A handshake rejection has an HTTP Status (400, 426,
// or 500 for a server-side misuse of AppendAccept) and Code 0; the server
// answers with AppendResponse and closes. A frame rejection has Status 0
// and the RFC 6455 §7.4.1 close Code the server should send (with
// AppendClose) before closing. Functions return the package's preallocated
// values, so a hostile peer costs no allocation; callers must not modify
// them.
type Error struct {
	Status int           // HTTP status for handshake rejections, else 0
	Code   ws.StatusCode // close code for frame rejections, else 0
	Reason string        // short human text for logs and close reasons
}

// Error formats the rejection for logs.
func (e *Error) Error() string {
	if e.Status != 0 {
		return "websocket: " + strconv.Itoa(e.Status) + " " + e.Reason
	}
	return "websocket: close " + strconv.Itoa(int(e.Code)) + " " + e.Reason
}

// AppendResponse appends the complete HTTP/1.1 response that answers a
// rejected handshake: the status line, "Connection: close" and an empty
// body. A 426 also carries "Sec-WebSocket-Version: 13" (RFC 6455 §4.4) and
// the Upgrade field RFC 9110 §15.5.22 requires. For a frame rejection
// (Status 0) it appends nothing: use AppendClose with Code instead.
func (e *Error) AppendResponse(dst []byte) []byte {
	switch e.Status {
	case 0:
		return dst
	case 400:
		dst = append(dst, "HTTP/1.1 400 Bad Request\r\n"...)
	case 426:
		dst = append(dst, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nContent-Length: 0\r\n\r\n"...)
		return dst
	default:
		dst = append(dst, "HTTP/1.1 500 Internal Server Error\r\n"...)
	}
	return append(dst, "Connection: close\r\nContent-Length: 0\r\n\r\n"...)
}

func bad(reason string) *Error { return &Error{Status: 400, Reason: reason} }

func fail(code ws.StatusCode, reason string) *Error { return &Error{Code: code, Reason: reason} }

// Handshake rejections, one value per rule so tests and logs can tell which
// fired.
var (
	errMethod        = bad("method must be GET")
	errVersion       = bad("HTTP/1.1 required")
	errNoUpgrade     = bad("Upgrade lacks websocket")
	errNoConnection  = bad("Connection lacks upgrade")
	errKey           = bad("missing or invalid Sec-WebSocket-Key")
	errDupKey        = bad("repeated Sec-WebSocket-Key")
	errWSVersion     = &Error{Status: 426, Reason: "Sec-WebSocket-Version must be 13"}
	errProtocols     = bad("malformed Sec-WebSocket-Protocol")
	errExtensions    = bad("malformed Sec-WebSocket-Extensions")
	errBody          = bad("upgrade request with a body")
	errNotChecked    = &Error{Status: 500, Reason: "Upgrade without a valid key"}
	errNotOffered    = &Error{Status: 500, Reason: "subprotocol not offered by client"}
	errNoDeflate     = &Error{Status: 500, Reason: "permessage-deflate not negotiated"}
	errExtraHeaders  = &Error{Status: 500, Reason: "malformed extra header block"}
	errReservedField = &Error{Status: 500, Reason: "extra header block sets a handshake field"}
)

// Frame rejections (RFC 6455 §7.4.1 codes).
var (
	errUnmasked      = fail(ws.StatusProtocolError, "unmasked client frame")
	errRsv           = fail(ws.StatusProtocolError, "reserved bits set")
	errOpcode        = fail(ws.StatusProtocolError, "reserved opcode")
	errCtlFragmented = fail(ws.StatusProtocolError, "fragmented control frame")
	errCtlTooLong    = fail(ws.StatusProtocolError, "control frame payload over 125 bytes")
	errContinuation  = fail(ws.StatusProtocolError, "continuation without a message")
	errInterleaved   = fail(ws.StatusProtocolError, "data frame inside a fragmented message")
	errLength64      = fail(ws.StatusProtocolError, "64-bit length with the top bit set")
	errCloseLen1     = fail(ws.StatusProtocolError, "close payload of one byte")
	errCloseCode     = fail(ws.StatusProtocolError, "invalid close code")
	errUTF8          = fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
	errCloseUTF8     = fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in close reason")
	errInflate       = fail(ws.StatusInvalidFramePayloadData, "invalid compressed data")
	errTooBig        = fail(ws.StatusMessageTooBig, "message too big")
	errTooBigInflate = fail(ws.StatusMessageTooBig, "decompressed message too big")
)
