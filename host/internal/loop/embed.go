package loop

import "github.com/wasmloop/wasmloop/abi"

// Requests an embedder hands in through an http.Handler (host/handler.go) arrive as
// connections: the handler's goroutine holds the outside end of a Pipe (pipe.go) and a worker
// serves the other exactly as a connection accepted by the program's first HTTP server, with
// the same parser, limits, streaming and back-pressure (the pipe's window stands between the
// ResponseWriter and the loop). Nothing in the reactor above the pipe knows the difference.

// ServePipe opens an in-memory connection to the next worker in turn, which serves it as a
// connection accepted by the program's first HTTP server (servePipe). It returns nil when the
// program has ended. A worker that has no server open, is draining or ends closes its end:
// the outside end then reads EOF.
func (g *Group) ServePipe() *Pipe {
	p := &Pipe{l: g.nextLoop()}
	p.cond.L = &p.mu
	p.noted = true
	if !p.l.notePipe(p) {
		return nil
	}
	return p
}

// servePipe attaches a handed-in pipe as a connection of this worker's first HTTP server, or
// closes it if there is none, the loop is draining or has stopped.
func (l *Loop) servePipe(p *Pipe) {
	ln := l.firstServer()
	if ln == nil || l.draining || l.stopped {
		p.close()
		return
	}
	c := l.newConn(-1, ln)
	c.pipe = p
	p.c = c
	c.slot = len(l.pipes)
	l.pipes = append(l.pipes, c)
	// The outside may have written, or even closed, before the attachment: serve it as
	// after an edge.
	l.pipeReady(c)
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
