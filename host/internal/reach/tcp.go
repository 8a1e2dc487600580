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
)

// TCP out and in, as Node's net: a connection is a stream (streams.go); a listener hands out
// connections one accept at a time. Names resolve off the loop (on the connect's goroutine).

// defaultConnectTimeout bounds a connect that names no timeout.
const defaultConnectTimeout = 30 * time.Second

// connect: in = timeout ms u32, "host:port"; result = a connection record.
func (r *Reach) connect(ctx context.Context, in []byte) ([]byte, error) {
	if len(in) < 4 {
		return nil, errShort
	}
	timeout := time.Duration(binary.LittleEndian.Uint32(in)) * time.Millisecond
	if timeout == 0 {
		timeout = defaultConnectTimeout
	}
	addr := string(in[4:])
	if err := r.allowConnect(addr); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, classify(err)
	}
	return r.record(ctx, c.(*net.TCPConn))
}

// record registers c and encodes its connection record: id u64, local address length u16,
// local address, remote address.
func (r *Reach) record(ctx context.Context, c *net.TCPConn) ([]byte, error) {
	local, remote := c.LocalAddr().String(), c.RemoteAddr().String()
	id, err := r.add(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	out := binary.LittleEndian.AppendUint64(make([]byte, 0, 10+len(local)+len(remote)), id)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(local)))
	return append(append(out, local...), remote...), nil
}

// portKey names a port-0 listen: the n-th by one instance of the same address. Every
// worker's instance makes the same listens in the same order, so the n-th of each shares the
// port the kernel chose for the first (as the program's HTTP listens do).
type portKey struct {
	addr string
	n    int
}

// listen: in = "host:port"; result = the listener's id u64, then the bound address. Workers
// that listen on the same address share it (SO_REUSEPORT: the kernel spreads connections).
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
	r.mu.Lock()
	if chosen, ok := r.ports[key]; ok && port == 0 {
		addr = net.JoinHostPort(host, strconv.Itoa(chosen))
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
	bound := ln.Addr().String()
	if port == 0 {
		r.mu.Lock()
		if _, ok := r.ports[key]; !ok {
			r.ports[key] = ln.Addr().(*net.TCPAddr).Port
		}
		r.mu.Unlock()
	}
	id, err := r.add(ctx, nil, ln)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		r.mu.Lock()
		r.streams[id].zero = asked
		r.mu.Unlock()
	}
	return append(binary.LittleEndian.AppendUint64(nil, id), bound...), nil
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
		if e.owner == owner && e.ln != nil && e.zero == addr {
			n++
		}
	}
	return portKey{addr, n}
}

// accept: in = the listener's id; result = the next connection's record.
func (r *Reach) accept(ctx context.Context, in []byte) ([]byte, error) {
	id, _, err := idOf(in)
	if err != nil {
		return nil, err
	}
	e, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.ln == nil {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("stream %d is not a listener", id))
	}
	if err := e.begin(false); err != nil {
		return nil, err
	}
	defer e.end(false)
	for {
		c, err := e.ln.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors: wait a little rather than spin; the connection waits in
				// the backlog.
				select {
				case <-time.After(50 * time.Millisecond):
					continue
				case <-ctx.Done():
				}
			}
			return nil, classify(err)
		}
		return r.record(ctx, c.(*net.TCPConn))
	}
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
	c, ok := e.s.(*net.TCPConn)
	if !ok {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("stream %d is not a TCP connection", id))
	}
	v := binary.LittleEndian.Uint32(rest[1:])
	switch rest[0] {
	case abi.OptNoDelay:
		err = c.SetNoDelay(v != 0)
	case abi.OptKeepAlive:
		err = c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: v != 0, Idle: time.Duration(v) * time.Second, Interval: time.Duration(v) * time.Second})
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
