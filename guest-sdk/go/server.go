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
	h := hostListen(p, n, int32(port), 0)
	if h < 0 {
		return abi.Errno(h)
	}
	s.h = h
	servers.put(h, s)
	return nil
}

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
