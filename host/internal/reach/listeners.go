package reach

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// A program's TCP listening sockets, each shared by the instances of one worker that listen on
// its address. A swap starts the new instance beside the old one and then retires the old; if
// each had a socket of its own, closing the old one's would reset the connections waiting in
// its backlog (Linux resets a closed listener's queue). So the new instance's n-th listen on
// an address takes the socket of the worker's old instance's n-th listen there, as the
// program's HTTP listeners are handed over (loop/swap.go), and a socket closes when no
// instance uses it.
//
// An instance that ends without a swap — a trap, after which the worker starts a new one —
// has no successor listening yet. Its sockets then stay open for listenGrace, taking
// connections into their backlogs, so that the replacement's listens take them over as a
// swap's would (a socket closes at once when the program closes it, or when the program
// ends: Reach.Close).
//
// Accepts run on one goroutine per socket (pump), which takes each connection out of Go's
// net (detach) and hands it to one waiting accept operation of any of its instances. A
// connection that reaches an instance retired meanwhile goes back to the socket for the next
// accept (requeue): it is the new program's.

// listenerKey names the sockets a worker listens on at one address (a port-0 listen's with
// the port the kernel chose, tcp.go).
type listenerKey struct {
	worker int
	addr   string
}

// tcpListener is one listening socket and the instances that use it.
type tcpListener struct {
	ln     net.Listener
	key    listenerKey
	owners []context.Context // the instances whose entries use it (under Reach.mu)

	start    sync.Once
	accepted chan accepted // the next connection, to one waiting accept
	closed   chan struct{} // closed with the socket

	// grace, while no instance uses the socket, closes it at the end of listenGrace unless
	// another instance takes it first (under Reach.mu).
	grace  *time.Timer
	graces int // graces begun, so that a stopped grace's late timer does not end a later one
}

// listenGrace is how long a socket whose instance ended stays open for the worker's next
// instance: a replacement after a trap starts in milliseconds, or in seconds for a large
// module compiled anew.
const listenGrace = 10 * time.Second

// accepted is what one accept of the socket gave: a connection's descriptor, detached from
// Go's net, and its addresses; or an error.
type accepted struct {
	fd            int
	local, remote string
	err           error
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
// holds one connection ahead at most: the others wait in the kernel's backlog, where the
// socket's backlog limit applies.
func (t *tcpListener) pump() {
	for {
		c, err := t.ln.Accept()
		var a accepted
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case outOfDescriptors(err):
			if !t.pause() {
				return
			}
			continue // the connection waits in the backlog
		case err != nil:
			a.err = err
		default:
			tc := c.(*net.TCPConn)
			a.local, a.remote = tc.LocalAddr().String(), tc.RemoteAddr().String()
			for a.fd, err = dup(tc); outOfDescriptors(err); a.fd, err = dup(tc) {
				if !t.pause() {
					tc.Close()
					return
				}
			}
			tc.Close()
			if err != nil {
				continue // the connection is gone; the program waits for the next
			}
		}
		if !t.hand(a) {
			return
		}
	}
}

// pause waits a little for descriptors to free, rather than spin; false if the socket closed.
func (t *tcpListener) pause() bool {
	select {
	case <-time.After(50 * time.Millisecond):
		return true
	case <-t.closed:
		return false
	}
}

func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// hand gives a to the next accept, or closes its connection if the socket closes first.
func (t *tcpListener) hand(a accepted) bool {
	select {
	case t.accepted <- a:
		return true
	case <-t.closed:
		if a.err == nil {
			unix.Close(a.fd)
		}
		return false
	}
}

// requeue gives a connection an accept took for an instance retired meanwhile to the next
// accept, on a goroutine of its own (the loop must not wait for it).
func (t *tcpListener) requeue(a accepted) { go t.hand(a) }

// accepting reports, on the loop, whether the listener entry e still takes connections: its
// instance is not retired or closed, and it was not closed.
func (e *entry) accepting() bool {
	if rc := loop.Retiring(e.owner); rc != nil && rc.Err() != nil {
		return false
	}
	select {
	case <-e.gone:
		return false
	default:
		return true
	}
}

// shareListener returns the socket of another instance of the worker that owner's next
// listen on key's address takes over (the n-th of its listens there takes the n-th socket),
// and counts owner as its user; nil if there is none. r.mu is held.
func (r *Reach) shareListener(owner context.Context, key listenerKey) *tcpListener {
	for _, t := range r.listeners[key] {
		if !t.usedBy(owner) {
			t.owners = append(t.owners, owner)
			if t.grace != nil {
				t.grace.Stop()
				t.grace = nil
			}
			return t
		}
	}
	return nil
}

func (t *tcpListener) usedBy(owner context.Context) bool {
	for _, o := range t.owners {
		if o == owner {
			return true
		}
	}
	return false
}

// keepListener records t, a new socket used by owner, after the key's others. r.mu is held.
func (r *Reach) keepListener(owner context.Context, t *tcpListener) {
	t.owners = append(t.owners, owner)
	r.listeners[t.key] = append(r.listeners[t.key], t)
}

// releaseListener ends owner's use of t. When no instance uses it, the socket closes; or,
// with linger (the instance ended: a trap, not a close or a swap), after listenGrace unless
// the worker's next instance takes it meanwhile.
func (r *Reach) releaseListener(owner context.Context, t *tcpListener, linger bool) {
	r.mu.Lock()
	for i, o := range t.owners {
		if o == owner {
			t.owners = append(t.owners[:i], t.owners[i+1:]...)
			break
		}
	}
	last := len(t.owners) == 0
	if last && linger && !r.closed {
		if t.grace == nil {
			t.graces++
			n := t.graces
			t.grace = time.AfterFunc(listenGrace, func() { r.expire(t, n) })
		}
		last = false
	}
	if last {
		r.forget(t)
	}
	r.mu.Unlock()
	if last {
		t.close()
	}
}

// expire closes t if no instance took it during its n-th grace.
func (r *Reach) expire(t *tcpListener, n int) {
	r.mu.Lock()
	unused := len(t.owners) == 0 && t.grace != nil && t.graces == n
	if unused {
		t.grace = nil
		r.forget(t)
	}
	r.mu.Unlock()
	if unused {
		t.close()
	}
}

// forget removes t from the sockets of its key. r.mu is held.
func (r *Reach) forget(t *tcpListener) {
	list := r.listeners[t.key]
	for i, s := range list {
		if s == t {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.listeners, t.key)
	} else {
		r.listeners[t.key] = list
	}
}

// close closes the socket; its pump ends, closing a connection it held.
func (t *tcpListener) close() {
	close(t.closed)
	t.ln.Close()
}

// closeUnused closes every socket no instance uses (those in their grace): the program ended.
// r.mu is held; the sockets close after.
func (r *Reach) closeUnused() []*tcpListener {
	var unused []*tcpListener
	for _, list := range r.listeners {
		for _, t := range list {
			if len(t.owners) == 0 {
				if t.grace != nil {
					t.grace.Stop()
					t.grace = nil
				}
				unused = append(unused, t)
			}
		}
	}
	for _, t := range unused {
		r.forget(t)
	}
	return unused
}
