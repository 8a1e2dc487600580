//go:build wasip1

package wasmloop

import (
	"github.com/wasmloop/wasmloop/abi"
)

// Handler answers one request. It may end the response before returning or keep res and end
// it later; either way the next request on the same connection waits for the end.
type Handler func(req Request, res Response)

// Server is an HTTP/1.1 server, Node's http.Server.
type Server struct {
	handler Handler
	h       int64
	stream  bool
}

var (
	servers registry[Server]
	open    registry[exchange] // exchanges still open after their handler returned
)

// CreateServer returns a server that calls handler for every request. It does not listen yet.
func CreateServer(handler Handler) *Server { return &Server{handler: handler} }

// Listen starts accepting connections on host:port (an IP literal or "localhost"). Every
// worker that listens on the same address shares it: the kernel spreads connections over them.
// A listening server keeps the process alive until it is closed or unreferenced.
func (s *Server) Listen(port int, host string) error {
	if s.h != 0 {
		return abi.ESTATE
	}
	p, n := stringPtr(host)
	var flags int32
	if s.stream {
		flags = abi.ListenStreamBody
	}
	h := hostListen(p, n, int32(port), flags)
	if h < 0 {
		return abi.Errno(h)
	}
	s.h = h
	servers.put(h, s)
	return nil
}

// StreamBodies makes request bodies arrive through Request.OnData and OnEnd as they are
// received, instead of being buffered for Request.Body. Call it before Listen. A streamed body
// can be paused (Request.Pause), which stops the host reading the connection, so a client
// sending faster than the program consumes is slowed by TCP itself.
func (s *Server) StreamBodies() { s.stream = true }

// Close stops accepting connections; open ones are served to the end.
func (s *Server) Close() error {
	if s.h == 0 {
		return abi.ESTATE
	}
	servers.del(s.h)
	rc := hostClose(s.h)
	s.h = 0
	return errnoOrNil(rc)
}

// Unref lets the process exit even while the server listens (Node's server.unref()).
func (s *Server) Unref() { hostRef(s.h, 0) }

// Ref undoes Unref.
func (s *Server) Ref() { hostRef(s.h, 1) }

func errnoOrNil(rc int32) error {
	if rc < 0 {
		return abi.Errno(rc)
	}
	return nil
}
