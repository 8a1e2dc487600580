// Package websocket is wasmloop's WebSocket protocol engine (RFC 6455, with
// permessage-deflate from RFC 7692): the opening-handshake check and
// response, a frame reader that turns a client's bytes into events, and
// the append-style helpers that frame what the server sends.
//
// Pure. Nothing here touches a socket, a goroutine or a clock. The event
// loop reads whatever the kernel has into the connection's buffer and hands
// it over; the package answers with events, consumed byte counts and bytes
// to write. That makes every rule testable byte by byte, and means no byte
// read past a request head is ever lost in a library's private bufio
// reader, which is what happens when a raw socket is given to ws.Upgrade or
// wsutil.
//
// Incremental. Reader.Next takes the bytes not yet consumed, returns at
// most one event and how much it used. A partial header is left in the
// buffer (it is at most 14 bytes); a partial payload is consumed, unmasked
// into the Reader's own buffer and checked as it arrives, so no payload byte
// is looked at twice and a message trickled in one byte per packet costs
// linear work. "Not enough bytes yet" is the event None, never an error.
//
// Fail fast. Each rule is checked on the byte that breaks it: a reserved
// opcode or RSV bit on the header's first byte, an unmasked frame or an
// oversized control frame on the second, an oversized message as soon as
// its length is read (before its payload arrives), invalid UTF-8 in a text
// message on the first byte that cannot continue a valid sequence, even when
// the sequence is split across fragments. The same events and the same
// error come out whether the input arrives whole or one byte at a time;
// the tests and the fuzz target check exactly that. Errors carry the close
// code to send (1002 protocol error, 1007 invalid data, 1009 too big) and
// are preallocated, so a hostile client costs no allocation.
//
// No allocation on the hot path. A reused Reader parses an unfragmented,
// uncompressed message without allocating: its buffer grows to the largest
// message seen and is reused. Payloads are valid until the next call.
//
// What gobwas/ws does for us, and what it leaves to us. We take from it the
// vocabulary (ws.OpCode, ws.Header, ws.StatusCode and its range checks,
// ws.CheckCloseFrameData), the masking loop (ws.Cipher, applied with an
// offset to partial payloads), header sizing (ws.HeaderSize), and from
// wsflate the permessage-deflate stream handling: wsflate.Writer strips the
// 0x00 0x00 0xff 0xff tail and wsflate.Reader restores it, around
// compress/flate. Its readers and upgrader expect a blocking io.Reader, so
// they are used only in tests, as the independent client to interoperate
// with. gobwas/ws deliberately leaves correctness to its user and has no
// size limits by default, so this package enforces the rest itself:
// masking from clients, RSV bits, reserved opcodes, control frames final
// and at most 125 bytes, continuation order with control frames allowed
// between fragments, UTF-8 across fragments, close-frame bodies (length,
// code, reason), 64-bit lengths with the top bit set, and MaxMessage on
// both the compressed and the decompressed size.
//
// Compression. The handshake accepts the first acceptable permessage-deflate
// offer and always answers with server_no_context_takeover and
// client_no_context_takeover, so each message is compressed and
// decompressed on its own: no 32 KiB window is kept per connection between
// messages, and a message can be decompressed from its frames alone. A
// compressed text message is validated as UTF-8 once decompressed, at its
// end; its compressed size is capped as it arrives and its decompressed size
// while it is inflated.
package websocket
