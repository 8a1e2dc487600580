//go:build wasip1

package wasmloop

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
)

// TCP (ABI 1.6), as Node's net: Connect and ListenTCP give *Socket values with Node's events
// as callbacks. A connect reaches only hosts the command line grants (--allow-connect
// HOST[:PORT]); a listen, only addresses --allow-listen names when it is given. Names are
// resolved by the host, off the event loop; refused, timed-out and unresolvable connects
// fail with a *NetError (ECONNREFUSED, ETIMEDOUT, ENOTFOUND, EACCES).

// readPiece is what a socket asks the host for at a time.
const readPiece = 64 << 10

// Socket is one TCP connection, Node's net.Socket. Data flows to OnData as soon as a
// handler is set, until Pause; when the peer ends its side, OnEnd runs and — as Node does by
// default (allowHalfOpen false) — this side ends too once its writes are out, unless OnEnd
// was given with KeepOpen; OnClose runs once the socket is closed, with the error that
// closed it or nil.
type Socket struct {
	s             stream
	local, remote string
	onData        func([]byte)
	onEnd         func()
	onClose       func(error)
	reading       bool // a read is pending
	paused        bool
	holding       bool   // a read answered while paused: held (held, heldErr) for Resume
	held          []byte // its data
	heldErr       error  // its end or failure
	readEnded     bool   // the peer ended its side
	writeEnded    bool   // this side's end has gone out
	allowHalfOpen bool
	closeCalled   bool
	closeReported bool
	gotData       func([]byte, error) // received, bound once
}

func newSocket(rec []byte) (*Socket, error) {
	if len(rec) < 10 {
		return nil, &NetError{Op: "connect", Code: abi.FileEIO, Message: "a short connection record from the host"}
	}
	n := int(binary.LittleEndian.Uint16(rec[8:]))
	if 10+n > len(rec) {
		return nil, &NetError{Op: "connect", Code: abi.FileEIO, Message: "a short connection record from the host"}
	}
	so := &Socket{s: stream{id: binary.LittleEndian.Uint64(rec)}, local: string(rec[10 : 10+n]), remote: string(rec[10+n:])}
	so.s.onWrote = func(err error) { so.destroy(err) }
	so.s.endDone = func() {
		so.writeEnded = true
		if so.readEnded {
			so.destroy(nil)
		}
	}
	return so, nil
}

// Connect opens a connection to addr ("host:port") with a 30 s timeout; fn gets the socket
// or the failure in a later callback.
func Connect(addr string, fn func(*Socket, error)) error { return ConnectTimeout(addr, 0, fn) }

// ConnectTimeout is Connect with a timeout of its own (0: 30 s).
func ConnectTimeout(addr string, timeout time.Duration, fn func(*Socket, error)) error {
	in := binary.LittleEndian.AppendUint32(nil, uint32(min(timeout.Milliseconds(), 1<<32-1)))
	err := Call(abi.FnConnect, append(in, addr...), func(rec []byte, err error) {
		if err != nil {
			fn(nil, netError("connect", err))
			return
		}
		so, err := newSocket(rec)
		fn(so, err)
	})
	return netError("connect", err)
}

// LocalAddr and RemoteAddr are the connection's ends, "ip:port".
func (so *Socket) LocalAddr() string  { return so.local }
func (so *Socket) RemoteAddr() string { return so.remote }

// OnData sets fn to receive the data as it comes, and starts the flow. data is fn's to keep.
func (so *Socket) OnData(fn func(data []byte)) {
	so.onData = fn
	so.s.view = false
	so.pump()
}

// OnDataView is OnData without a copy: data is a view of the buffer the host delivers
// into, valid only until fn returns — copy what you keep (Write copies). It spares an
// allocation per piece, which in Go's wasm code costs about a microsecond per KiB: samples/
// tcpecho streaming 64 KiB pieces went from 1.8 to 0.34 ms of user CPU per MB with it
// (RATIONALE.md, "Reach").
func (so *Socket) OnDataView(fn func(data []byte)) {
	so.onData = fn
	so.s.view = true
	so.pump()
}

// OnEnd sets fn to run when the peer has ended its side (it sends no more).
func (so *Socket) OnEnd(fn func()) { so.onEnd = fn }

// KeepOpen keeps this side open after the peer ends, until End (Node's allowHalfOpen).
func (so *Socket) KeepOpen() { so.allowHalfOpen = true }

// OnClose sets fn to run once, when the socket has closed: err is nil after both sides
// ended or Close, else what broke it.
func (so *Socket) OnClose(fn func(err error)) { so.onClose = fn }

// Write queues data and reports whether the queue is below its mark (64 KiB); when false,
// wait for OnDrain before writing more. Once the socket is ended (End, or the peer's end
// without KeepOpen) or closed, Write drops data and answers false.
func (so *Socket) Write(data []byte) bool { return so.s.write(data) }

// OnDrain runs fn once the queue is below the mark: now, if it is. A socket that is ended or
// closed never drains: fn does not run (as Node emits no 'drain' after end); one waiting
// when the socket closes runs then, once, and finds Write answering false.
func (so *Socket) OnDrain(fn func()) { so.s.drain(fn) }

// Writable reports whether the socket still takes writes (Node's socket.writable): false
// once End or Close was called, the peer ended without KeepOpen, or the socket closed. A
// Write that answered false means "wait for OnDrain" only while Writable is true.
func (so *Socket) Writable() bool { return !so.s.closed && !so.s.ending }

// End ends this side once the queue is out: the peer reads the end (a FIN).
func (so *Socket) End() { so.s.end() }

// Pause stops the flow of data: the host stops reading, and the peer's writes back up.
// Nothing reaches OnData or OnEnd until Resume (a piece already asked for is held); a
// failure still reaches OnClose.
func (so *Socket) Pause() { so.paused = true }

// Resume continues the flow: a piece held since Pause is delivered first, now.
func (so *Socket) Resume() {
	so.paused = false
	if so.holding {
		data, err := so.held, so.heldErr
		so.held, so.heldErr, so.holding = nil, nil, false
		so.received(data, err)
		return
	}
	so.pump()
}

// SetNoDelay turns Nagle's algorithm off (true, Go's default) or on.
func (so *Socket) SetNoDelay(on bool) error {
	v := uint32(0)
	if on {
		v = 1
	}
	return so.option(abi.OptNoDelay, v)
}

// SetKeepAlive sends keep-alive probes every period, in whole seconds (rounded up); 0 turns
// them off.
func (so *Socket) SetKeepAlive(period time.Duration) error {
	return so.option(abi.OptKeepAlive, abi.KeepAliveSeconds(period))
}

func (so *Socket) option(opt byte, v uint32) error {
	in := binary.LittleEndian.AppendUint32(append(so.s.idBytes(), opt), v)
	_, err := CallSync(abi.FnSetOption, in)
	return netError("option", err)
}

// Close closes the socket at once; queued writes are dropped. OnClose runs with nil.
func (so *Socket) Close() { so.destroy(nil) }

func (so *Socket) destroy(err error) {
	if so.closeReported {
		return
	}
	so.closeReported = true
	so.s.close()
	if so.onClose != nil {
		so.onClose(err)
	}
}

// pump keeps one read pending while data flows.
func (so *Socket) pump() {
	if so.reading || so.paused || so.readEnded || so.s.closed || so.onData == nil {
		return
	}
	if so.gotData == nil {
		so.gotData = so.received // made once: a closure per read costs an allocation
	}
	so.reading = true
	if err := so.s.read(readPiece, so.gotData); err != nil {
		so.reading = false
		so.destroy(err)
	}
}

// received takes a read's answer.
func (so *Socket) received(data []byte, err error) {
	so.reading = false
	if so.closeReported {
		return // closed since the read was asked for: nothing more reaches the program
	}
	if so.paused && (err == nil || err == io.EOF) {
		// Asked for before Pause (a read is pending while data flows): held for Resume, so
		// that no data or end reaches the program while it is paused (a failure is not
		// held: OnClose hears it now). A view is copied: the next event overwrites it.
		if so.s.view && len(data) > 0 {
			data = append([]byte(nil), data...)
		}
		so.held, so.heldErr, so.holding = data, err, true
		return
	}
	switch {
	case err == io.EOF:
		so.readEnded = true
		if so.onEnd != nil {
			so.onEnd()
		}
		if so.writeEnded {
			so.destroy(nil)
		} else if !so.allowHalfOpen {
			so.End()
		}
	case err != nil:
		so.destroy(err)
	default:
		so.onData(data)
		so.pump()
	}
}

// TCPServer accepts connections, Node's net.Server.
type TCPServer struct {
	id     uint64
	addr   string
	closed bool
	onConn func(*Socket)
}

// ListenTCP listens on addr ("host:port"; port 0 lets the kernel choose, shared by every
// worker) and calls onConnection with each connection. Workers listening on the same address
// share it: the kernel spreads connections among them.
func ListenTCP(addr string, onConnection func(*Socket)) (*TCPServer, error) {
	res, err := CallSync(abi.FnNetListen, []byte(addr))
	if err != nil {
		return nil, netError("listen", err)
	}
	if len(res) < 8 {
		return nil, &NetError{Op: "listen", Code: abi.FileEIO, Message: "a short answer from the host"}
	}
	srv := &TCPServer{id: binary.LittleEndian.Uint64(res), addr: string(res[8:]), onConn: onConnection}
	if err := srv.accept(); err != nil {
		srv.Close()
		return nil, err
	}
	return srv, nil
}

// Addr is the address the server listens on, with the port the kernel chose for port 0.
func (srv *TCPServer) Addr() string { return srv.addr }

// acceptRetry is how long the server waits after an accept failed for a reason other than
// its end (a connection that went before it was taken, say) before it accepts again.
const acceptRetry = 50 * time.Millisecond

func (srv *TCPServer) accept() error {
	in := binary.LittleEndian.AppendUint64(nil, srv.id)
	err := Call(abi.FnAccept, in, func(rec []byte, err error) {
		if srv.closed {
			return
		}
		if err != nil {
			var ne *NetError
			if errors.As(netError("accept", err), &ne) && (ne.Code == abi.ReachECLOSED || ne.Code == abi.ReachEBADID) {
				// The listener ended: the host closed it (a swap retired this instance, or
				// the program is ending). Nothing to report.
				srv.Close()
				return
			}
			Log("wasmloop: accept on " + srv.addr + ": " + netError("accept", err).Error() + " (accepting again)")
			SetTimeout(func() {
				if !srv.closed {
					if err := srv.accept(); err != nil {
						Log("wasmloop: accept on " + srv.addr + ": " + err.Error())
						srv.Close()
					}
				}
			}, acceptRetry)
			return
		}
		if so, err := newSocket(rec); err == nil {
			srv.onConn(so)
		}
		if !srv.closed {
			if err := srv.accept(); err != nil {
				Log("wasmloop: accept on " + srv.addr + ": " + err.Error())
				srv.Close()
			}
		}
	})
	return netError("accept", err)
}

// Close stops listening; open connections stay open.
func (srv *TCPServer) Close() {
	if srv.closed {
		return
	}
	srv.closed = true
	CallSync(abi.FnStreamClose, binary.LittleEndian.AppendUint64(nil, srv.id))
}

// LookupHost resolves name to its addresses on the host, off the event loop (Node's
// dns.lookup with all: true); fn gets them in a later callback. Only names that an
// --allow-connect grant names may be looked up.
func LookupHost(name string, fn func(addrs []string, err error)) error {
	err := Call(abi.FnLookup, []byte(name), func(res []byte, err error) {
		if err != nil {
			fn(nil, netError("lookup", err))
			return
		}
		fn(strings.Split(string(res), "\n"), nil)
	})
	return netError("lookup", err)
}
