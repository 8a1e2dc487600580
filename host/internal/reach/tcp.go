package reach

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// TCP out and in, as Node's net: a connection is a stream (streams.go); a listener hands out
// connections one accept at a time. Names resolve off the loop (on the connect's goroutine).

// defaultConnectTimeout bounds a connect that names no timeout.
const defaultConnectTimeout = 30 * time.Second

// startConnect: in = timeout ms u32, "host:port"; result = a connection record. The grant
// is checked on the loop; the dial (and the name's resolution) runs on a goroutine, and the
// connection is then the loop's.
func (r *Reach) startConnect(op *loop.Op, in []byte) {
	timeout, addr, err := r.connectTarget(in)
	if err != nil {
		op.Finish(nil, err)
		return
	}
	op.GoThen(func(ctx context.Context, _ []byte) (func(), func()) {
		d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return func() { op.Finish(nil, classify(err)) }, nil
		}
		return r.handOver(op, c.(*net.TCPConn))
	}, nil)
}

// connectTarget decodes a connect's input and checks its grant.
func (r *Reach) connectTarget(in []byte) (time.Duration, string, error) {
	if len(in) < 4 {
		return 0, "", errShort
	}
	timeout := time.Duration(binary.LittleEndian.Uint32(in)) * time.Millisecond
	if timeout == 0 {
		timeout = defaultConnectTimeout
	}
	addr := string(in[4:])
	if err := r.allowConnect(addr); err != nil {
		return 0, "", err
	}
	return timeout, addr, nil
}

// handOver takes a connection Go's net opened (a dial, an accept) from Go's poller: its
// descriptor is duplicated and the net.Conn closed, and the loop's reactor adopts the
// duplicate. It returns what runs on the loop (adopt, register, answer with the connection
// record) and what runs instead if the loop has ended (close the descriptor).
func (r *Reach) handOver(op *loop.Op, c *net.TCPConn) (then, orElse func()) {
	local, remote := c.LocalAddr().String(), c.RemoteAddr().String()
	fd, err := detach(c)
	if err != nil {
		return func() { op.Finish(nil, classify(err)) }, nil
	}
	return r.adopt(op, fd, local, remote), func() { unix.Close(fd) }
}

// adopt is what runs on the loop for a connection detached from Go's net: the reactor adopts
// it, and the operation answers with its record.
func (r *Reach) adopt(op *loop.Op, fd int, local, remote string) func() {
	return func() {
		s, err := op.AdoptTCP(fd)
		if err != nil {
			op.Finish(nil, err)
			return
		}
		id, err := r.add(op.Context(), &entry{tcp: s})
		if err != nil {
			op.Finish(nil, err)
			return
		}
		op.Finish(record(id, local, remote), nil)
	}
}

// detach duplicates c's descriptor, non-blocking and close-on-exec, and closes c.
func detach(c *net.TCPConn) (int, error) {
	defer c.Close()
	return dup(c)
}

// dup duplicates c's descriptor, non-blocking and close-on-exec.
func dup(c *net.TCPConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// record encodes a connection record: id u64, local address length u16, local address,
// remote address.
func record(id uint64, local, remote string) []byte {
	out := binary.LittleEndian.AppendUint64(make([]byte, 0, 10+len(local)+len(remote)), id)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(local)))
	return append(append(out, local...), remote...)
}

// portKey names a port-0 listen: the n-th by one instance of the same address. Every
// worker's instance makes the same listens in the same order, so the n-th of each shares the
// port the kernel chose for the first (as the program's HTTP listens do).
type portKey struct {
	addr string
	n    int
}

// listen: in = "host:port"; result = the listener's id u64, then the bound address. Workers
// that listen on the same address share it (SO_REUSEPORT: the kernel spreads connections);
// a worker's new instance takes over the socket its old one listens on (listeners.go).
func (r *Reach) listen(ctx context.Context, in []byte) ([]byte, error) {
	addr := string(in)
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("%q: want host:port, such as 127.0.0.1:7000 or :7000", addr))
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("%q: the port is not a number from 0 to 65535", addr))
	}
	if err := r.AllowListen(host, port); err != nil {
		return nil, coded(abi.FileEACCES, err)
	}
	asked := addr
	key := r.portKeyFor(ctx, addr, port)
	worker, _ := loop.Worker(ctx)
	r.mu.Lock()
	if chosen, ok := r.ports[key]; ok && port == 0 {
		addr = net.JoinHostPort(host, strconv.Itoa(chosen))
	}
	if t := r.shareListener(ctx, listenerKey{worker, addr}); t != nil {
		r.mu.Unlock()
		return r.addListener(ctx, t, asked, port)
	}
	r.mu.Unlock()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) }); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, classify(err)
	}
	bound := ln.Addr().(*net.TCPAddr)
	r.mu.Lock()
	if port == 0 {
		if _, ok := r.ports[key]; !ok {
			r.ports[key] = bound.Port
		}
		addr = net.JoinHostPort(host, strconv.Itoa(bound.Port)) // as the next instance will ask
	}
	t := newTCPListener(ln, listenerKey{worker, addr})
	r.keepListener(ctx, t) // the worker's next instance's listen of addr takes it over
	r.mu.Unlock()
	return r.addListener(ctx, t, asked, port)
}

// addListener registers owner's entry for the socket t (which counts owner as a user) and
// returns the listen's result.
func (r *Reach) addListener(owner context.Context, t *tcpListener, asked string, port int) ([]byte, error) {
	e := &entry{lst: t, gone: make(chan struct{})}
	if port == 0 {
		e.zero = asked
	}
	id, err := r.add(owner, e)
	if err != nil {
		r.releaseListener(owner, t, false)
		return nil, err
	}
	return append(binary.LittleEndian.AppendUint64(nil, id), t.ln.Addr().String()...), nil
}

// AllowListen checks a listen on host (empty: every interface) and port against the listen
// grants; with none given, any is allowed — the program's own port, as before there were
// grants. The program's HTTP listen asks the same.
func (r *Reach) AllowListen(host string, port int) error {
	if r.cfg.Listen == nil || r.cfg.Listen.Allows(host, port) {
		return nil
	}
	e := &notGranted{"listen on", hostPort(host, port), "--allow-listen"}
	r.refused("listen", e.Error())
	return e
}

// portKeyFor counts owner's port-0 listens of addr.
func (r *Reach) portKeyFor(owner context.Context, addr string, port int) portKey {
	if port != 0 {
		return portKey{addr: addr}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.streams {
		if e.owner == owner && e.lst != nil && e.zero == addr {
			n++
		}
	}
	return portKey{addr, n}
}

// startAccept: in = the listener's id; result = the next connection's record. The accept
// waits on a goroutine for the socket's next connection (listeners.go); the connection is then
// the loop's (handOver).
func (r *Reach) startAccept(op *loop.Op, in []byte) {
	e, _ := r.opStream(op, in)
	if e == nil {
		return
	}
	if e.lst == nil {
		op.Finish(nil, coded(abi.FileEINVAL, errors.New("the stream is not a listener")))
		return
	}
	if err := e.begin(false); err != nil {
		op.Finish(nil, err)
		return
	}
	op.GoThen(func(ctx context.Context, _ []byte) (func(), func()) {
		defer e.end(false)
		select {
		case a := <-e.lst.next():
			if a.err != nil {
				return func() { op.Finish(nil, classify(a.err)) }, nil
			}
			adopt := r.adopt(op, a.fd, a.local, a.remote)
			back := func() { e.lst.requeue(a) }
			return func() {
				// At the worker's share of --max-conns the connection waits for one to close.
				op.WhenBelowConnCap(func() {
					// The instance may have been retired or closed (its retiring context
					// ends then, on the loop), or closed its listener, since the connection
					// was taken for it: the connection is then the next accept's.
					if e.accepting() {
						adopt()
						return
					}
					back()
					op.Finish(nil, classify(net.ErrClosed))
				})
			}, back
		case <-e.gone:
		case <-ctx.Done():
		}
		return func() { op.Finish(nil, classify(net.ErrClosed)) }, nil
	}, nil)
}

// setOption: in = id u64, option u8, value u32.
func (r *Reach) setOption(ctx context.Context, in []byte) ([]byte, error) {
	id, rest, err := idOf(in)
	if err != nil {
		return nil, err
	}
	if len(rest) < 5 {
		return nil, errShort
	}
	e, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.tcp == nil {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("stream %d is not a TCP connection", id))
	}
	v := binary.LittleEndian.Uint32(rest[1:])
	switch rest[0] {
	case abi.OptNoDelay:
		err = e.tcp.SetNoDelay(v != 0)
	case abi.OptKeepAlive:
		err = e.tcp.SetKeepAlive(int(min(v, 1<<20)))
	default:
		return nil, coded(abi.FileEINVAL, fmt.Errorf("option %d", rest[0]))
	}
	if err != nil {
		return nil, classify(err)
	}
	return nil, nil
}

// lookup: in = a host name; result = its addresses, one per line. A name no connect grant
// names is refused: a lookup is a message to the resolver, and what it asks tells.
func (r *Reach) lookup(ctx context.Context, in []byte) ([]byte, error) {
	name := string(in)
	if name == "" || strings.ContainsAny(name, " \n\r\x00") {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("%q is not a host name", name))
	}
	if !r.cfg.Connect.AllowsHost(name) {
		e := &notGranted{"lookup of", name, "--allow-connect"}
		r.refused("lookup", e.Error())
		return nil, coded(abi.FileEACCES, e)
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		return nil, classify(err)
	}
	if len(addrs) == 0 {
		return nil, coded(abi.ReachENOTFOUND, fmt.Errorf("%s has no address", name))
	}
	return []byte(strings.Join(addrs, "\n")), nil
}
