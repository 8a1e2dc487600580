package loop

import (
	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
)

// Requests an embedder hands in through an http.Handler (host/handler.go) arrive as
// connections: the handler's goroutine keeps one end of a socketpair and a worker serves the
// other exactly as a connection accepted by the program's first HTTP server, with the same
// parser, limits, streaming and back-pressure (the kernel's socket buffers stand between the
// ResponseWriter and the loop). Nothing in the reactor knows the difference.

// ServeConn gives fd, the loop's end of a socketpair, to the next worker in turn. The group
// owns fd from then on: it is served, or closed if that worker has no server open, is
// draining or has ended (the handler then reads EOF before any answer). ServeConn reports
// false when the program has ended.
func (g *Group) ServeConn(fd int) bool {
	target := g.nextLoop()
	if !target.post(func(l *Loop) { l.serveConn(fd) }) {
		unix.Close(fd)
		return false
	}
	return true
}

func (l *Loop) serveConn(fd int) {
	ln := l.firstServer()
	if ln == nil || l.draining || l.stopped {
		unix.Close(fd)
		return
	}
	l.addConn(fd, ln)
}

// firstServer is the open listener in this worker's lowest slot (the program's first server,
// unless it closed that one and opened others), which serves the requests handed in.
func (l *Loop) firstServer() *listener {
	var first *listener
	l.listeners.each(func(_ abi.Handle, ln *listener) {
		if first == nil && !ln.closed {
			first = ln
		}
	})
	return first
}
