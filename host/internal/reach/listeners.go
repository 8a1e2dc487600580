package reach

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// A program's TCP listening sockets, each shared by the instances of one worker that listen on
// its address. A swap starts the new instance beside the old one and then retires the old; if
// each had a socket of its own, closing the old one's would reset the connections waiting in
// its backlog (Linux resets a closed listener's queue). So the new instance's listen on an
// address the worker's old instance holds takes the same socket, as the program's HTTP
// listeners are handed over (loop/swap.go), and the socket closes when no instance uses it.
//
// Accepts run on one goroutine per socket (pump), which hands each connection to one
// waiting accept operation of any of its instances: a retired instance's operations stop
// waiting when its listener entry closes, and the connection goes to the instance that still
// asks.

// listenerKey names a socket: the worker, and the address listened on (a port-0 listen's
// with the port the kernel chose, tcp.go).
type listenerKey struct {
	worker int
	addr   string
}

// tcpListener is one listening socket and the instances' entries that use it.
type tcpListener struct {
	ln     net.Listener
	key    listenerKey
	owners []context.Context // the instances whose entries use it (under Reach.mu)

	start    sync.Once
	accepted chan accepted // the pump's next connection, to one waiting accept
	closed   chan struct{} // closed with the socket
}

// accepted is what one accept of the socket gave.
type accepted struct {
	c   *net.TCPConn
	err error
}

func newTCPListener(ln net.Listener, key listenerKey) *tcpListener {
	return &tcpListener{ln: ln, key: key, accepted: make(chan accepted), closed: make(chan struct{})}
}

// next returns the channel the next connection arrives on, starting the pump the first time.
func (t *tcpListener) next() <-chan accepted {
	t.start.Do(func() { go t.pump() })
	return t.accepted
}

// pump accepts until the socket closes, handing each connection to one waiting accept. It
// accepts one connection ahead at most: the others wait in the kernel's backlog, where the
// socket's backlog limit applies.
func (t *tcpListener) pump() {
	for {
		c, err := t.ln.Accept()
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
			// Out of descriptors: wait a little rather than spin; the connection waits in
			// the backlog.
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-t.closed:
				return
			}
		}
		var a accepted
		if err != nil {
			a.err = err
		} else {
			a.c = c.(*net.TCPConn)
		}
		select {
		case t.accepted <- a:
		case <-t.closed:
			if a.c != nil {
				a.c.Close()
			}
			return
		}
	}
}

// shareListener returns the socket key names if an instance other than owner uses it, and
// counts owner as its user; nil otherwise. r.mu is held.
func (r *Reach) shareListener(owner context.Context, key listenerKey) *tcpListener {
	t := r.listeners[key]
	if t == nil {
		return nil
	}
	for _, o := range t.owners {
		if o == owner {
			return nil // a second listen of one instance's: a socket of its own, as before
		}
	}
	t.owners = append(t.owners, owner)
	return t
}

// keepListener records t, used by owner, under its key (the first socket of the key wins:
// the instance's second listen of an address is not shared). r.mu is held.
func (r *Reach) keepListener(owner context.Context, t *tcpListener) {
	t.owners = append(t.owners, owner)
	if _, taken := r.listeners[t.key]; !taken {
		r.listeners[t.key] = t
	}
}

// releaseListener ends owner's use of t, and closes the socket when no instance uses it.
func (r *Reach) releaseListener(owner context.Context, t *tcpListener) {
	r.mu.Lock()
	for i, o := range t.owners {
		if o == owner {
			t.owners = append(t.owners[:i], t.owners[i+1:]...)
			break
		}
	}
	last := len(t.owners) == 0
	if last && r.listeners[t.key] == t {
		delete(r.listeners, t.key)
	}
	r.mu.Unlock()
	if last {
		close(t.closed)
		t.ln.Close()
	}
}
