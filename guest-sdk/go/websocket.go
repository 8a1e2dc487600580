//go:build wasip1

package wasmloop

import (
	"unsafe"

	"github.com/wasmloop/wasmloop/abi"
)

//go:wasmimport wasmloop_v1 ws_accept
func hostWSAccept(req int64, proto unsafe.Pointer, protoLen uint32, hdr unsafe.Pointer, hdrLen uint32, flags int32) int64

//go:wasmimport wasmloop_v1 ws_send
func hostWSSend(ws int64, data unsafe.Pointer, size uint32, flags int32) int32

//go:wasmimport wasmloop_v1 ws_close
func hostWSClose(ws int64, code int32, reason unsafe.Pointer, reasonLen uint32) int32

// WebSocket is one accepted WebSocket connection (RFC 6455), the `ws` package's WebSocket in
// Node. The host runs the protocol — framing, masking, fragments, ping and pong, the closing
// handshake, UTF-8 checks, compression — and the program sees whole messages. Like every
// callback, its functions run one at a time on the worker that accepted it.
type WebSocket struct {
	h        int64
	protocol string

	onOpen    func()
	onMessage func(data []byte, binary bool)
	onClose   func(code int, reason string)
	onDrain   []func()
	full      bool
	closing   bool // Close was called: nothing more may be sent
	closed    bool // OnClose ran, or Terminate: the handle is gone
}

var sockets registry[WebSocket]

// UpgradeOptions are the choices a program makes when it accepts a WebSocket.
type UpgradeOptions struct {
	// Protocol is the subprotocol to answer with; it must be one the client offered
	// (Request.WebSocketProtocols), or "" for none.
	Protocol string
	// Compress turns on permessage-deflate (RFC 7692) when the client offered it.
	Compress bool
}

// IsWebSocket reports whether the request is a WebSocket opening handshake that the host
// checked and found valid: Response.Upgrade may accept it. (An invalid one never reaches the
// program: the host answers it with 400.)
func (r Request) IsWebSocket() bool {
	return r.x != nil && r.x.gen == r.gen && abi.HeadFlags(r.x.src)&abi.HeadWebSocket != 0
}

// WebSocketProtocols returns the subprotocols the client offered, in its order of preference.
func (r Request) WebSocketProtocols() []string {
	h := r.head()
	if h == nil {
		return nil
	}
	var out []string
	for _, f := range h.Headers {
		if string(f.Name) != "sec-websocket-protocol" {
			continue
		}
		v := f.Value
		for len(v) > 0 {
			i := 0
			for i < len(v) && v[i] != ',' {
				i++
			}
			if p := trimOWS(v[:i]); len(p) > 0 {
				out = append(out, string(p))
			}
			if i == len(v) {
				break
			}
			v = v[i+1:]
		}
	}
	return out
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// Upgrade accepts a WebSocket handshake (Request.IsWebSocket): the host answers
// "101 Switching Protocols", with the header fields set by SetHeader, and the request ends.
// Register the socket's handlers before the callback returns: OnOpen's function runs after
// it, then messages arrive. To refuse the handshake, answer the request with an HTTP status
// instead. Errors: ESTATE (not a WebSocket handshake, already answered, or the server is
// shutting down), EINVAL (Protocol was not offered, or a bad header field), ECLOSED.
func (r Response) Upgrade(opts UpgradeOptions) (*WebSocket, error) {
	x := r.live()
	switch {
	case x == nil || x.ended || x.sent:
		return nil, abi.ESTATE
	case x.closed:
		return nil, abi.ECLOSED
	}
	var flags int32
	if opts.Compress {
		flags |= abi.WSAcceptDeflate
	}
	pp, pn := stringPtr(opts.Protocol)
	hp, hn := bytesPtr(x.hdr)
	h := hostWSAccept(x.h, pp, pn, hp, hn, flags)
	if h < 0 {
		return nil, abi.Errno(h)
	}
	x.sent, x.ended = true, true
	x.finished()
	w := &WebSocket{h: h, protocol: opts.Protocol}
	sockets.put(h, w)
	return w, nil
}

// Protocol is the subprotocol the socket was accepted with, or "".
func (w *WebSocket) Protocol() string { return w.protocol }

// OnOpen sets the function that runs once the socket is open, before any message.
func (w *WebSocket) OnOpen(fn func()) { w.onOpen = fn }

// OnMessage sets the function that receives each message, whole (the host reassembles
// fragments and decompresses). binary is false for a text message, whose data is valid
// UTF-8. data is valid only during the call: copy what you keep.
func (w *WebSocket) OnMessage(fn func(data []byte, binary bool)) { w.onMessage = fn }

// OnClose sets the function that runs once when the connection has closed: code and reason
// are the peer's close frame (1005 when it gave no code), or the code the host closed with
// (1002 protocol error, 1007 invalid data, 1009 message too big), or 1006 when the connection
// ended without a closing handshake.
func (w *WebSocket) OnClose(fn func(code int, reason string)) { w.onClose = fn }

// Send sends data as one message, binary or text (text must be valid UTF-8, else EINVAL).
// It returns at once; the host queues what the peer has not read yet (see Full).
func (w *WebSocket) Send(data []byte, binary bool) error {
	var flags int32
	if binary {
		flags = abi.WSBinary
	}
	p, n := bytesPtr(data)
	return w.sent(hostWSSend(w.h, p, n, flags))
}

// SendText sends s as one text message.
func (w *WebSocket) SendText(s string) error {
	p, n := stringPtr(s)
	return w.sent(hostWSSend(w.h, p, n, 0))
}

func (w *WebSocket) sent(rc int32) error {
	if w.closed {
		return abi.ECLOSED
	}
	if rc == abi.AboveMark {
		w.full = true
		return nil
	}
	return errnoOrNil(rc)
}

// Full reports that the peer has more unread output queued than the host's high-water mark:
// stop sending until OnDrain's function runs (past a hard cap the host closes the socket).
func (w *WebSocket) Full() bool { return w.full }

// OnDrain registers fn to run once, when the queued output falls back below the mark; if the
// socket is not Full, fn runs right away. A socket closed or closing never drains: fn does
// not run (Send answers an error then), as a TCP socket's OnDrain after End or Close.
func (w *WebSocket) OnDrain(fn func()) {
	if w.closed || w.closing {
		return
	}
	if !w.full {
		fn()
		return
	}
	w.onDrain = append(w.onDrain, fn)
}

// Close starts the closing handshake with code (1000 normal, 1001 going away, 3000–4999 the
// application's own; 0 sends no code) and a reason of at most 123 bytes. Nothing more can be
// sent; OnClose's function runs when the peer answers (or after a few seconds without an
// answer, with 1006).
func (w *WebSocket) Close(code int, reason string) error {
	if w.closed {
		return abi.ECLOSED
	}
	if code < 0 || code > 4999 {
		return abi.EINVAL
	}
	p, n := stringPtr(reason)
	rc := hostWSClose(w.h, int32(code), p, n)
	if rc == 0 {
		w.closing = true
	}
	return errnoOrNil(rc)
}

// Terminate closes the connection at once, without a closing handshake; OnClose's function
// does not run.
func (w *WebSocket) Terminate() {
	if w.closed {
		return
	}
	hostClose(w.h)
	w.gone()
}

// Pause stops reading the socket: messages wait in the kernel, and TCP slows the peer.
func (w *WebSocket) Pause() { hostPause(w.h, 1) }

// Resume undoes Pause.
func (w *WebSocket) Resume() { hostPause(w.h, 0) }

func (w *WebSocket) gone() {
	w.closed = true
	sockets.del(w.h)
	w.onDrain = nil
}

// wsBuf holds a message larger than the inbox while it is delivered; it is reused.
var wsBuf []byte

//go:wasmexport wasmloop_on_ws_open
func exportOnWSOpen(h int64) int32 {
	rc := doOnWSOpen(h)
	yieldToGoroutines()
	return rc
}

func doOnWSOpen(h int64) int32 {
	recycleRetired()
	if w := sockets.get(h); w != nil && w.onOpen != nil {
		w.onOpen()
	}
	return 0
}

//go:wasmexport wasmloop_on_ws_message
func exportOnWSMessage(h int64, size int32, flags int32) int32 {
	rc := doOnWSMessage(h, size, flags)
	yieldToGoroutines()
	return rc
}

func doOnWSMessage(h int64, size int32, flags int32) int32 {
	recycleRetired()
	w := sockets.get(h)
	if w == nil || size < 0 {
		return 0
	}
	data := inbox[:min(int(size), len(inbox))]
	if flags&abi.WSMore != 0 {
		if cap(wsBuf) < int(size) {
			wsBuf = make([]byte, size)
		}
		data = wsBuf[:size]
		n := copy(data, inbox[:])
		for n < int(size) {
			rc := hostBodyRead(h, unsafe.Pointer(&data[n]), uint32(int(size)-n))
			if rc <= 0 {
				return 0 // cannot happen: the host holds the whole message
			}
			n += int(rc)
		}
	}
	if w.onMessage != nil {
		w.onMessage(data, flags&abi.WSBinary != 0)
	}
	if cap(wsBuf) > 1<<20 {
		wsBuf = nil // one huge message does not pin its memory
	}
	return 0
}

//go:wasmexport wasmloop_on_ws_close
func exportOnWSClose(h int64, code int32, size int32) int32 {
	rc := doOnWSClose(h, code, size)
	yieldToGoroutines()
	return rc
}

func doOnWSClose(h int64, code int32, size int32) int32 {
	recycleRetired()
	w := sockets.get(h)
	if w == nil {
		return 0
	}
	w.gone()
	if w.onClose != nil {
		reason := ""
		if size > 0 && int(size) <= len(inbox) {
			reason = string(inbox[:size])
		}
		w.onClose(int(code), reason)
	}
	return 0
}

// socketDrained runs the drain functions of a socket (on_drain names sockets too).
func socketDrained(h int64) {
	w := sockets.get(h)
	if w == nil {
		return
	}
	w.full = false
	fns := w.onDrain
	w.onDrain = w.onDrain[len(fns):]
	for _, f := range fns {
		f()
	}
}
