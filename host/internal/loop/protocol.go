package loop

// protocol is what runs on a connection. The reactor (loop.go, conn.go, output.go) owns the
// socket: it reads, queues and writes output, applies back-pressure, lingers and closes. It
// knows nothing of HTTP or WebSocket: it hands received bytes to the connection's protocol and
// tells it about the few reactor events a protocol must answer. Each connection has one
// protocol object at a time (Conn.proto): an httpConn from accept, replaced by a wsConn when
// the guest accepts a WebSocket handshake. A protocol queues output with the reactor's
// output functions and never calls into the guest from a host function (ABI.md §1).
//
// A raw TCP connection of the program's (Node's net.Socket), accepted or dialled, is the
// third protocol, tcpConn (tcpstream.go): serve finishes the guest's pending read with the
// bytes (wantsInput is false while no read is pending: the program's pause is not asking),
// peerEOF finishes it with the end, drained answers a write that waited for the mark, flushed
// lets a pending end shut the writing side, and closed fails what was pending.
//
// The fourth, clientConn (clientconn.go), is a connection the loop opened to a server for
// the program's plain http:// fetches (fetch.go): it writes the request, parses the answer's
// head strictly (http1.ParseResponseHead) and hands the body to the program's reads with the
// same back-pressure as tcpConn; between fetches it is kept, idle, for the next one.
//
// A request handed in by an embedder's http.Handler is not a new protocol but a new transport
// under the same one: a Pipe (pipe.go) stands in for the socket, and the request is served by
// the same httpConn as one from a listener.
type protocol interface {
	// serve takes received bytes, turns them into guest events, and returns how many it
	// used. It stops early when it cannot take more now (the guest holds a request, the
	// guest paused, the peer is behind on our output); the reactor keeps the rest.
	serve(data []byte) int
	// wantsInput reports whether the reactor should read the socket now, apart from the
	// reactor's own reasons not to (closing, EOF, output above the mark).
	wantsInput() bool
	// duplex reports whether input is read whatever the unsent output: a raw TCP stream's
	// two directions are independent (a peer that does not read may still send), where an
	// HTTP or WebSocket peer that leaves its answers unread is not served more.
	duplex() bool
	// readTarget returns memory the next read may fill directly (a body going straight to
	// the guest's inbox), or nil for the loop's shared read buffer; readInto is then told
	// how many bytes landed there.
	readTarget() []byte
	readInto(n int)
	// resume continues a connection that the guest released outside its own read: a
	// request answered later, a body or socket resumed, a WebSocket accepted.
	resume()
	// peerEOF says the peer shut its write side (a read returned 0).
	peerEOF()
	// drained says the unsent output fell to half the high-water mark.
	drained()
	// flushed says every queued byte was written.
	flushed()
	// sweep applies the protocol's timeouts; now is the loop clock.
	sweep(now int64)
	// listenerClosed says the connection's listener is gone (Node's server.close()).
	listenerClosed()
	// shutdown says the process is draining (SIGTERM, ctx cancelled).
	shutdown()
	// closed says the socket is closed; reason is an abi.Close* value for the guest.
	closed(reason int32)
}
