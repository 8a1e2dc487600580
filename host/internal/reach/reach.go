// Package reach is what a program reaches beyond its own port: outbound HTTP (fetch: plain
// http:// on the loop's own client, loopfetch.go; the rest through Go's net/http client),
// TCP connections out and in — only where its grants allow (--allow-connect, --allow-listen;
// grants.go). Like the file functions, these are the host's own functions (ABI.md §10): a
// call starts an operation and returns; the result reaches the guest as an event, never
// inside the call that started it. What blocks — a dial, an accept, a lookup, a fetch on Go's
// client and its body's reads — runs on a goroutine; a TCP connection, once dialled or
// accepted, is handed to its worker's event loop (tcp.go, handOver), whose reactor serves
// its reads, writes and end (loop.TCPStream), as it serves a fetch on the loop's own client
// (loop.FetchStream).
//
// A fetch's bodies and a TCP connection are streams, named by an id (streams.go): read one
// piece at a time (the program asks for the next when it is ready: that is its
// back-pressure, and the host never holds more than one piece per stream), written one piece
// at a time (the answer comes once the peer or the connection's output took it), ended,
// closed. A stream belongs to the instance that opened it: another instance cannot use its
// id, and it closes when its instance ends (a swap, a trap).
package reach

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// maxStreams bounds the streams and listeners a program has open: each holds a descriptor or
// a connection of the transport.
const maxStreams = 8192

// maxHeld bounds the bytes read and not yet handed to the guest, across the program, as the
// file functions' budget does (files.maxHeld): a read reserves its buffer before it waits.
const maxHeld = 256 << 20

// Config is what a program may reach and how.
type Config struct {
	Connect Grants // hosts fetch and connect may reach; none: nothing
	Listen  Grants // addresses listen may bind; nil: any (as the program's HTTP listen)
	// Transport carries fetches; nil: a clone of http.DefaultTransport whose dials and
	// proxies obey Connect.
	Transport http.RoundTripper
	// IdleTimeout bounds a fetch's wait for its server on Go's client: for the head once the
	// request is sent (our Transport's ResponseHeaderTimeout), and for each read of the body.
	// 0 or negative: no bound.
	IdleTimeout time.Duration
}

// Reach is one program's grants and open streams. Safe for concurrent use.
type Reach struct {
	cfg      Config
	client   *http.Client
	envProxy bool // the environment names a proxy for http:// (loopfetch.go)

	mu      sync.Mutex
	streams map[uint64]*entry
	nextID  uint64
	ports   map[portKey]int // the port the kernel chose for each port-0 listen (tcp.go)
	closed  bool            // Close ran: the program ended, and no socket lingers
	// listeners are the TCP listening sockets by worker and address, which a swap's new
	// instance shares with the old (listeners.go)
	listeners map[listenerKey][]*tcpListener

	held        *semaphore.Weighted
	refusedOnce sync.Map
	log         atomic.Pointer[slog.Logger]
}

// entry is one open stream or listener and who may use it.
type entry struct {
	owner context.Context   // the instance's: its end closes the entry
	s     stream            // a fetch on Go's client; nil for anything else
	hf    *loop.FetchStream // a fetch on the loop's own client (loopfetch.go)
	tcp   *loop.TCPStream   // a TCP connection, served by its loop's reactor
	lst   *tcpListener      // a TCP listener: the socket, maybe shared (listeners.go)
	gone  chan struct{}     // a listener's: closed with the entry, ending its accept's wait
	zero  string            // a port-0 listener: the address asked for (tcp.go, portKey)
	stop  func() bool       // unregisters the close on owner's end
	// stopRetire unregisters a listener's close when its instance is retired by a swap
	// (loop.Retiring): the new program listens on the address, and the old one takes no
	// more connections.
	stopRetire func() bool

	mu               sync.Mutex
	reading, writing bool // an operation of that kind is pending (one at a time)
}

// stream is what a fetch and a TCP connection both are.
type stream interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	CloseWrite() error
	Close() error
}

// New makes a program's Reach.
func New(cfg Config) *Reach {
	r := &Reach{cfg: cfg, streams: map[uint64]*entry{}, ports: map[portKey]int{}, listeners: map[listenerKey][]*tcpListener{},
		held: semaphore.NewWeighted(maxHeld)}
	r.client = r.newClient()
	r.envProxy = envProxied()
	return r
}

// SetLogger sets where the first refusal of each kind is logged (nil: nowhere).
func (r *Reach) SetLogger(l *slog.Logger) { r.log.Store(l) }

// refused logs the first refusal of each kind once.
func (r *Reach) refused(kind, msg string) {
	l := r.log.Load()
	if l == nil {
		return
	}
	if _, logged := r.refusedOnce.LoadOrStore(kind, true); !logged {
		l.Warn("refused (the first of its kind; others are not logged): " + msg)
	}
}

// add registers e, an open stream or listener, for owner and returns its id; it is closed
// when owner ends.
func (r *Reach) add(owner context.Context, e *entry) (uint64, error) {
	r.mu.Lock()
	if len(r.streams) >= maxStreams {
		r.mu.Unlock()
		e.close()
		return 0, coded(abi.ReachEMFILE, fmt.Errorf("the program has %d streams open, the most it may", maxStreams))
	}
	r.nextID++
	id := r.nextID
	e.owner = owner
	r.streams[id] = e
	// Under r.mu: a close that runs at once (owner ended already) waits for the stops.
	e.stop = context.AfterFunc(owner, func() { r.close(id) })
	if rc := loop.Retiring(owner); e.lst != nil && rc != nil {
		e.stopRetire = context.AfterFunc(rc, func() { r.close(id) })
	}
	r.mu.Unlock()
	return id, nil
}

// get finds the entry id for owner: another instance's id is as unknown as a closed one.
func (r *Reach) get(owner context.Context, id uint64) (*entry, error) {
	r.mu.Lock()
	e := r.streams[id]
	r.mu.Unlock()
	if e == nil || e.owner != owner {
		return nil, coded(abi.ReachEBADID, fmt.Errorf("no stream %d", id))
	}
	return e, nil
}

// close closes and forgets id; pending operations on it fail. From any goroutine: a TCP
// connection closes in its loop's next turn.
func (r *Reach) close(id uint64) {
	if e := r.remove(id); e != nil {
		r.drop(e)
	}
}

// drop closes what e holds, and ends its instance's use of a listener's socket: one the
// instance's end (not its close of the listener, nor a swap's retiring) let go of lingers
// for the worker's next instance (listeners.go).
func (r *Reach) drop(e *entry) {
	e.close()
	if e.lst != nil {
		r.releaseListener(e.owner, e.lst, e.owner.Err() != nil)
	}
}

// remove forgets id and returns its entry, or nil.
func (r *Reach) remove(id uint64) *entry {
	r.mu.Lock()
	e := r.streams[id]
	delete(r.streams, id)
	r.mu.Unlock()
	if e == nil {
		return nil
	}
	e.stop()
	if e.stopRetire != nil {
		e.stopRetire()
	}
	return e
}

// close closes what e holds, from any goroutine.
func (e *entry) close() {
	switch {
	case e.s != nil:
		e.s.Close()
	case e.hf != nil:
		e.hf.CloseLater()
	case e.tcp != nil:
		e.tcp.CloseLater()
	case e.lst != nil:
		close(e.gone) // the socket closes when no instance uses it (Reach.releaseListener)
	}
}

// Close closes every stream of every instance, and every listening socket (the program
// ended).
func (r *Reach) Close() {
	r.mu.Lock()
	r.closed = true
	for _, t := range r.closeUnused() {
		defer t.close()
	}
	ids := make([]uint64, 0, len(r.streams))
	for id := range r.streams {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		r.close(id)
	}
}

// Open is the number of streams and listeners open (for tests and metrics).
func (r *Reach) Open() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

// begin marks a read (or write) of e pending, or fails EBUSY when one is.
func (e *entry) begin(write bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	flag := &e.reading
	if write {
		flag = &e.writing
	}
	if *flag {
		return coded(abi.ReachEBUSY, fmt.Errorf("a %s of this stream is pending: wait for its answer", map[bool]string{false: "read", true: "write"}[write]))
	}
	*flag = true
	return nil
}

func (e *entry) end(write bool) {
	e.mu.Lock()
	if write {
		e.writing = false
	} else {
		e.reading = false
	}
	e.mu.Unlock()
}

// idOf decodes the id u64 that begins in.
func idOf(in []byte) (uint64, []byte, error) {
	if len(in) < 8 {
		return 0, nil, errShort
	}
	return binary.LittleEndian.Uint64(in), in[8:], nil
}
