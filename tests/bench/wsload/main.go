// Command wsload is the WebSocket load generator of the wasmloop benchmarks
// (tests/bench/ws.sh). It speaks RFC 6455 as a client through gobwas/ws.
//
//	wsload echo -url ws://127.0.0.1:1337/ -conns 256 -duration 10s -warmup 2s -size 32 [-text]
//	wsload idle -url ws://127.0.0.1:1337/ -conns 19000 -sources 127.0.0.2-127.0.0.9 [-verify 100]
//	wsload serve -addr 127.0.0.1:1337 -workers 2
//
// echo: conns connections, each in its own goroutine, send one masked binary
// (or text) message of size bytes, wait for its echo, check that it came back
// byte for byte with the same type, and repeat. Round trips completed in the
// measured window (after the warm-up) are counted; their latencies are kept
// as samples, so p50 and p99 are exact. The client hot path does not
// allocate: the masked frame is built once per connection and sent with one
// write, and echoes are parsed from a reused bufio.Reader into a reused
// buffer. It prints one human line and one machine line:
//
//	RESULT echo rps=<float> p50_us=<int> p99_us=<int> errors=<int> conns=<int> round_trips=<int> secs=<float> reconnects=<int> workers=<id>:<conns>,...
//
// idle: conns connections, opened at most -concurrency at a time, their
// local addresses spread round-robin over -sources (each source has its own
// ~28k ephemeral ports), a refused, reset or timed-out attempt retried with
// backoff. The X-Worker header of every 101 is tallied. Then (with -verify N)
// a small message goes over N random connections, whose echoes are checked,
// and it prints
//
//	RESULT idle conns=<established> failed=<n> workers=<w0>:<count0>,... verified=<ok>/<n> secs=<float>
//	READY
//
// and holds every connection, reading nothing and with no goroutine per
// connection, until stdin reaches end of file (unless -stdin=false) or
// SIGTERM/SIGINT. Before closing them it probes every connection without
// blocking (recv MSG_PEEK|MSG_DONTWAIT: would block = still open and quiet)
// and verifies N again, and prints
//
//	RESULT idle-end alive=<n> closed=<n> reset=<n> data=<n> verified=<ok>/<n>
//
// serve: a Go echo server (gobwas/ws, a goroutine per connection) with the
// same behaviour as samples/wsecho, X-Worker round-robin over -workers; for
// testing wsload and the harness without wasmloop.
//
// Every mode raises its soft RLIMIT_NOFILE to the hard limit and refuses a
// -conns that cannot fit under it. Every wait is bounded: -dial-timeout per
// connection attempt (TCP connect and handshake), -timeout for the whole run.
// Exit status: 0 on success, 1 on a failure (in echo: any error; in idle: no
// connection established or a verification failed), 2 for bad usage.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fdReserve: descriptors left for the runtime (netpoller), stdio and slack.
const fdReserve = 32

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "echo":
		err = runEcho(os.Args[2:])
	case "idle":
		err = runIdle(os.Args[2:])
	case "serve":
		err = runServe(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "wsload: unknown mode %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(os.Stderr, "wsload: %v\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "wsload: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  wsload echo  -url ws://HOST:PORT/PATH [-conns 256] [-duration 10s] [-warmup 2s] [-size 32] [-text]
  wsload idle  -url ws://HOST:PORT/PATH [-conns N] [-sources 127.0.0.2-127.0.0.9] [-verify N] [-stdin=false]
  wsload serve [-addr 127.0.0.1:1337] [-workers 2]
run "wsload MODE -h" for every flag of a mode
`)
	os.Exit(2)
}

type usageError struct{ error }

func badUsage(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// ---------------------------------------------------------------- common

// common holds the flags every client mode has.
type common struct {
	url         string
	conns       int
	sources     string
	dialTimeout time.Duration
	timeout     time.Duration
	retries     int
	concurrency int

	u       *url.URL
	dialers []*net.Dialer // one per source address (one default dialer without -sources)
}

func (c *common) register(fs *flag.FlagSet, conns int) {
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:1337/", "WebSocket URL (ws:// only)")
	fs.IntVar(&c.conns, "conns", conns, "connections")
	fs.StringVar(&c.sources, "sources", "", "local source addresses, round-robin: a range A-B and/or a comma-separated list (default: the kernel's choice)")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 10*time.Second, "longest one attempt may take: TCP connect plus WebSocket handshake")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "longest the whole run may take")
	fs.IntVar(&c.retries, "retries", 4, "retries of a failed connection attempt (backoff 100 ms, doubling)")
	fs.IntVar(&c.concurrency, "concurrency", 200, "connection attempts in flight at once")
}

func (c *common) check() error {
	u, err := url.ParseRequestURI(c.url)
	if err != nil {
		return badUsage("-url %q: %v", c.url, err)
	}
	if u.Scheme != "ws" {
		return badUsage("-url %q: only ws:// is supported", c.url)
	}
	c.u = u
	if c.conns < 1 {
		return badUsage("-conns must be at least 1")
	}
	if c.dialTimeout <= 0 || c.timeout <= 0 {
		return badUsage("-dial-timeout and -timeout must be positive")
	}
	if c.retries < 0 {
		return badUsage("-retries must not be negative")
	}
	if c.concurrency < 1 {
		return badUsage("-concurrency must be at least 1")
	}
	ips, err := parseSources(c.sources)
	if err != nil {
		return badUsage("-sources: %v", err)
	}
	if len(ips) == 0 {
		c.dialers = []*net.Dialer{{}}
	}
	for _, ip := range ips {
		c.dialers = append(c.dialers, &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}})
	}
	return nil
}

// parseSources: "127.0.0.2-127.0.0.9", "127.0.0.2,127.0.0.5", or both mixed.
func parseSources(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo)).To4()
		if a == nil {
			return nil, fmt.Errorf("%q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(hi)).To4()
		if b == nil {
			return nil, fmt.Errorf("%q is not an IPv4 address", hi)
		}
		x, y := binary.BigEndian.Uint32(a), binary.BigEndian.Uint32(b)
		if y < x || y-x >= 65536 {
			return nil, fmt.Errorf("bad range %q", part)
		}
		for v := x; ; v++ {
			ip := make(net.IP, 4)
			binary.BigEndian.PutUint32(ip, v)
			out = append(out, ip)
			if v == y {
				break
			}
		}
	}
	return out, nil
}

// raiseFDLimit sets the soft RLIMIT_NOFILE to the hard limit and returns how
// many more descriptors this process may open (limit - open - reserve), and
// the limit.
func raiseFDLimit() (room, limit int, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			rl = want
		}
	}
	limit = int(min(rl.Cur, 1<<30))
	open := fdReserve
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		open = len(ents) + fdReserve
	} else {
		open = 3 + 2*fdReserve
	}
	return max(limit-open, 0), limit, nil
}

func checkFDs(conns int) error {
	room, limit, err := raiseFDLimit()
	if err != nil {
		return err
	}
	if conns > room {
		return fmt.Errorf("conns %d exceeds the descriptor limit %d (RLIMIT_NOFILE, soft raised to hard; at most %d connections fit in one process: run several, or raise the hard limit)", conns, limit, room)
	}
	return nil
}

// transient: worth another attempt (refused, reset, timed out, address in use).
func transient(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// dialResult is one established connection.
type dialResult struct {
	conn   net.Conn
	br     *bufio.Reader // non-nil only if the server sent bytes right after the 101
	worker string        // the X-Worker header of the 101, "?" without one
}

// dial opens connection number i: source i mod len(sources), bounded by
// -dial-timeout per attempt, retried with backoff while the error looks
// transient and ctx allows. It returns the last error and how many attempts failed.
func (c *common) dial(ctx context.Context, i int) (dialResult, int, error) {
	nd := c.dialers[i%len(c.dialers)]
	var last error
	for attempt := 0; attempt <= c.retries; attempt++ {
		if attempt > 0 {
			backoff := time.Duration(100<<(attempt-1)) * time.Millisecond
			backoff += time.Duration(rand.Int64N(int64(backoff / 2)))
			select {
			case <-ctx.Done():
				return dialResult{}, attempt, errors.Join(last, ctx.Err())
			case <-time.After(backoff):
			}
		}
		worker := "?"
		d := ws.Dialer{
			NetDial: nd.DialContext,
			OnHeader: func(k, v []byte) error {
				if bytes.EqualFold(k, []byte("X-Worker")) {
					worker = string(v)
				}
				return nil
			},
		}
		actx, cancel := context.WithTimeout(ctx, c.dialTimeout)
		conn, br, _, err := d.Dial(actx, c.url)
		cancel()
		if err == nil {
			return dialResult{conn: conn, br: br, worker: worker}, attempt, nil
		}
		last = err
		if ctx.Err() != nil || !transient(err) {
			return dialResult{}, attempt + 1, err
		}
	}
	return dialResult{}, c.retries + 1, last
}

// tally: "0:120,1:136" sorted by worker id (numerically where possible).
func tally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		x, ex := strconv.Atoi(keys[a])
		y, ey := strconv.Atoi(keys[b])
		if ex == nil && ey == nil {
			return x < y
		}
		if (ex == nil) != (ey == nil) {
			return ex == nil
		}
		return keys[a] < keys[b]
	})
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		// Keep the machine line one field: no spaces, commas or colons in an id.
		id := strings.Map(func(r rune) rune {
			if r <= ' ' || r == ',' || r == ':' || r == '=' || r > '~' {
				return '_'
			}
			return r
		}, k)
		fmt.Fprintf(&sb, "%s:%d", id, m[k])
	}
	if sb.Len() == 0 {
		return "-"
	}
	return sb.String()
}

// ---------------------------------------------------------------- frames

// frameConn is one client connection with preallocated frames and buffers.
type frameConn struct {
	conn  net.Conn
	br    *bufio.Reader
	op    ws.OpCode
	frame []byte // the whole masked frame, built once
	want  []byte // the payload the echo must carry
	got   []byte // reused receive buffer
	ctl   []byte // control frame payloads
}

func newFrameConn(r dialResult, op ws.OpCode, payload []byte) *frameConn {
	fc := &frameConn{conn: r.conn, op: op, want: payload}
	var src io.Reader = r.conn
	if r.br != nil && r.br.Buffered() > 0 {
		pending, _ := r.br.Peek(r.br.Buffered())
		src = io.MultiReader(bytes.NewReader(slices.Clone(pending)), r.conn)
		ws.PutReader(r.br)
	}
	fc.br = bufio.NewReaderSize(src, max(4096, len(payload)+ws.MaxHeaderSize))
	fc.frame = buildFrame(op, payload)
	fc.got = make([]byte, 0, len(payload))
	fc.ctl = make([]byte, 125)
	return fc
}

// buildFrame: header and masked payload in one slice, sent with one write.
// The mask is random per frame built (one per connection, reused for every
// send of it: the server must unmask either way).
func buildFrame(op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	var b bytes.Buffer
	b.Grow(ws.HeaderSize(h) + len(payload))
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	masked := slices.Clone(payload)
	ws.Cipher(masked, h.Mask, 0)
	b.Write(masked)
	return b.Bytes()
}

// readHeader parses a server frame header from br without allocating.
func readHeader(br *bufio.Reader) (ws.Header, error) {
	var h ws.Header
	b, err := br.Peek(2)
	if err != nil {
		return h, err
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7f; {
	case l < 126:
		h.Length = int64(l)
	case l == 126:
		n = 4
	default:
		n = 10
	}
	if h.Masked {
		n += 4
	}
	if n > 2 {
		if b, err = br.Peek(n); err != nil {
			return h, err
		}
		switch n - boolInt(h.Masked)*4 {
		case 4:
			h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		case 10:
			v := binary.BigEndian.Uint64(b[2:10])
			if v>>63 != 0 {
				return h, ws.ErrHeaderLengthMSB
			}
			h.Length = int64(v)
		}
		if h.Masked {
			copy(h.Mask[:], b[n-4:n])
		}
	}
	_, err = br.Discard(n)
	return h, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var errMismatch = errors.New("echo differs from what was sent")

// roundTrip sends the frame and reads the echo (reassembling fragments,
// answering pings), and checks type and bytes.
func (fc *frameConn) roundTrip() error {
	if _, err := fc.conn.Write(fc.frame); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return fc.readEcho()
}

func (fc *frameConn) readEcho() error {
	fc.got = fc.got[:0]
	first := true
	for {
		h, err := readHeader(fc.br)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if h.Masked {
			return errors.New("protocol: the server sent a masked frame")
		}
		if h.Rsv != 0 {
			return errors.New("protocol: RSV bits set (no extension was negotiated)")
		}
		if h.OpCode.IsControl() {
			if h.Length > 125 || !h.Fin {
				return errors.New("protocol: bad control frame")
			}
			p := fc.ctl[:h.Length]
			if _, err := io.ReadFull(fc.br, p); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			switch h.OpCode {
			case ws.OpPing:
				if err := wsutil.WriteClientMessage(fc.conn, ws.OpPong, p); err != nil {
					return fmt.Errorf("write pong: %w", err)
				}
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(p)
				return fmt.Errorf("server sent close %d %q", code, reason)
			}
			continue
		}
		if first != (h.OpCode != ws.OpContinuation) {
			return fmt.Errorf("protocol: unexpected opcode %d", h.OpCode)
		}
		if first && h.OpCode != fc.op {
			return fmt.Errorf("echo has opcode %d, sent %d", h.OpCode, fc.op)
		}
		first = false
		if int64(len(fc.got))+h.Length > int64(len(fc.want)) {
			return fmt.Errorf("%w: longer than the %d bytes sent", errMismatch, len(fc.want))
		}
		n := len(fc.got)
		fc.got = fc.got[:n+int(h.Length)]
		if _, err := io.ReadFull(fc.br, fc.got[n:]); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if h.Fin {
			break
		}
	}
	if !bytes.Equal(fc.got, fc.want) {
		return fmt.Errorf("%w (%d bytes back, %d sent)", errMismatch, len(fc.got), len(fc.want))
	}
	return nil
}

func makePayload(size int, text bool, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, size)
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := range p {
		if text {
			p[i] = alnum[r.IntN(len(alnum))]
		} else {
			p[i] = byte(r.Uint32())
		}
	}
	return p
}

// ---------------------------------------------------------------- echo

func runEcho(args []string) error {
	fs := flag.NewFlagSet("wsload echo", flag.ExitOnError)
	var c common
	c.register(fs, 256)
	duration := fs.Duration("duration", 10*time.Second, "measured window")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up before the measured window, not counted")
	size := fs.Int("size", 32, "message payload bytes")
	text := fs.Bool("text", false, "send text messages (ASCII) instead of binary")
	grace := fs.Duration("grace", 5*time.Second, "how long a round trip still in flight at the end may take")
	cpuPid := fs.Int("cpu-pid", 0, "also report this process's CPU seconds (utime+stime, /proc/PID/stat) over the measured window")
	clkTck := fs.Int("clk-tck", 100, "clock ticks per second of /proc/PID/stat (getconf CLK_TCK)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected arguments %q", fs.Args())
	}
	if err := c.check(); err != nil {
		return err
	}
	if *duration <= 0 || *warmup < 0 || *grace <= 0 {
		return badUsage("-duration and -grace must be positive, -warmup not negative")
	}
	if *cpuPid < 0 || *clkTck < 1 {
		return badUsage("-cpu-pid must not be negative, -clk-tck must be positive")
	}
	if *size < 0 || *size > 64<<20 {
		return badUsage("-size must be 0..64 MiB")
	}
	if err := checkFDs(c.conns); err != nil {
		return err
	}
	op := ws.OpBinary
	kind := "binary"
	if *text {
		op, kind = ws.OpText, "text"
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// Connect everything first, at most -concurrency at a time.
	t0 := time.Now()
	fcs := make([]*frameConn, c.conns)
	workers := map[string]int{}
	var mu sync.Mutex
	var dialErrs []error
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	for i := range c.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, _, err := c.dial(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				dialErrs = append(dialErrs, err)
				return
			}
			workers[r.worker]++
			fcs[i] = newFrameConn(r, op, makePayload(*size, *text, uint64(i)+1))
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		closeAll(fcs)
		return fmt.Errorf("interrupted or timed out while connecting: %v", context.Cause(ctx))
	}
	connected := c.conns - len(dialErrs)
	fmt.Fprintf(os.Stderr, "wsload: %d of %d connections up in %.2fs\n", connected, c.conns, time.Since(t0).Seconds())
	if len(dialErrs) > 0 {
		fmt.Fprintf(os.Stderr, "wsload: %d connections failed; first: %v\n", len(dialErrs), dialErrs[0])
	}
	if connected == 0 {
		return fmt.Errorf("no connection could be established")
	}

	// Every goroutine knows the window; nothing is shared on the hot path.
	start := time.Now()
	mStart := start.Add(*warmup)
	mEnd := mStart.Add(*duration)
	deadline := mEnd.Add(*grace)
	type stats struct {
		n, errs, reconnects int
		lat                 []uint32 // microseconds
		first               error
	}
	all := make([]stats, c.conns)
	for i, fc := range fcs {
		if fc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &all[i]
			st.lat = make([]uint32, 0, 4096)
			fail := func(err error) {
				st.errs++
				if st.first == nil {
					st.first = err
				}
			}
			for {
				_ = fc.conn.SetDeadline(deadline)
				for {
					t := time.Now()
					if !t.Before(mEnd) || ctx.Err() != nil {
						fc.conn.Close()
						return
					}
					if err := fc.roundTrip(); err != nil {
						fail(err)
						break
					}
					done := time.Now()
					if !done.Before(mStart) && done.Before(mEnd) {
						st.n++
						st.lat = append(st.lat, uint32(min(done.Sub(t).Microseconds(), 1<<32-1)))
					}
				}
				// The connection failed: replace it while the window lasts.
				fc.conn.Close()
				for {
					if time.Now().After(mEnd) || ctx.Err() != nil {
						return
					}
					rctx, rcancel := context.WithDeadline(ctx, mEnd)
					r, _, err := c.dial(rctx, i)
					rcancel()
					if err == nil {
						st.reconnects++
						nfc := newFrameConn(r, fc.op, fc.want)
						*fc = *nfc
						break
					}
					if time.Now().Before(mEnd) {
						fail(fmt.Errorf("reconnect: %w", err))
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
		}()
	}
	// CPU over exactly the measured window: the server's (-cpu-pid), our
	// own, and the whole machine's idle share.
	var cpuA, cpuB cpuSnap
	sleepUntil(ctx, mStart)
	cpuA = snapCPU(*cpuPid)
	sleepUntil(ctx, mEnd)
	cpuB = snapCPU(*cpuPid)
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted or timed out: %v", context.Cause(ctx))
	}

	var n, errs, reconnects int
	var first error
	var lat []uint32
	for i := range all {
		n += all[i].n
		errs += all[i].errs
		reconnects += all[i].reconnects
		if first == nil {
			first = all[i].first
		}
		lat = append(lat, all[i].lat...)
		all[i].lat = nil
	}
	errs += len(dialErrs)
	if first == nil && len(dialErrs) > 0 {
		first = dialErrs[0]
	}
	slices.Sort(lat)
	secs := duration.Seconds()
	rps := float64(n) / secs
	p50, p99 := pct(lat, 50), pct(lat, 99)
	fmt.Printf("echo: %d conns, %d-byte %s messages, %v measured after %v warm-up: %.0f round-trips/s (%d), p50 %d µs, p99 %d µs, max %d µs, %d errors, %d reconnects; workers %s\n",
		connected, *size, kind, *duration, *warmup, rps, n, p50, p99, pct(lat, 100), errs, reconnects, tally(workers))
	if first != nil {
		fmt.Printf("echo: first error: %v\n", first)
	}
	srvCPU := -1.0
	if *cpuPid > 0 && cpuA.srvOK && cpuB.srvOK {
		srvCPU = float64(cpuB.srvTicks-cpuA.srvTicks) / float64(*clkTck)
	}
	idlePct := -1.0
	if cpuA.sysOK && cpuB.sysOK && cpuB.busy+cpuB.idle > cpuA.busy+cpuA.idle {
		idlePct = 100 * float64(cpuB.idle-cpuA.idle) / float64(cpuB.busy+cpuB.idle-cpuA.busy-cpuA.idle)
	}
	fmt.Printf("RESULT echo rps=%.1f p50_us=%d p99_us=%d errors=%d conns=%d round_trips=%d secs=%.3f reconnects=%d workers=%s server_cpu_s=%.2f client_cpu_s=%.2f machine_idle_pct=%.1f\n",
		rps, p50, p99, errs, connected, n, secs, reconnects, tally(workers),
		srvCPU, (cpuB.self - cpuA.self).Seconds(), idlePct)
	if errs > 0 {
		return fmt.Errorf("%d errors", errs)
	}
	return nil
}

type cpuSnap struct {
	srvTicks   int64
	srvOK      bool
	self       time.Duration // this process, user+system
	busy, idle int64         // whole machine, /proc/stat ticks
	sysOK      bool
}

func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
}

func snapCPU(pid int) (s cpuSnap) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if pid > 0 {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			// Field 2 (comm) may hold spaces and ')': count from the last ')'.
			if i := bytes.LastIndexByte(b, ')'); i >= 0 {
				f := strings.Fields(string(b[i+1:]))
				if len(f) > 12 { // f[0] is field 3 (state); utime=14, stime=15
					u, e1 := strconv.ParseInt(f[11], 10, 64)
					st, e2 := strconv.ParseInt(f[12], 10, 64)
					s.srvTicks, s.srvOK = u+st, e1 == nil && e2 == nil
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		f := strings.Fields(string(line))
		if len(f) >= 9 && f[0] == "cpu" {
			var v [8]int64
			for i := range v {
				v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
			}
			// user nice system idle iowait irq softirq steal
			s.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
			s.idle = v[3] + v[4]
			s.sysOK = true
		}
	}
	return s
}

// pct: the exact p-th percentile (nearest rank) of sorted samples.
func pct(sorted []uint32, p float64) uint32 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

func closeAll(fcs []*frameConn) {
	for _, fc := range fcs {
		if fc != nil {
			fc.conn.Close()
		}
	}
}

// ---------------------------------------------------------------- idle

func runIdle(args []string) error {
	fs := flag.NewFlagSet("wsload idle", flag.ExitOnError)
	var c common
	c.register(fs, 1000)
	verify := fs.Int("verify", 0, "after connecting and again before closing: echo a small message over this many random connections")
	useStdin := fs.Bool("stdin", true, "also stop holding when stdin reaches end of file (false: only on SIGTERM/SIGINT or -timeout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected arguments %q", fs.Args())
	}
	if err := c.check(); err != nil {
		return err
	}
	if *verify < 0 {
		return badUsage("-verify must not be negative")
	}
	if err := checkFDs(c.conns); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	stopCh := make(chan string, 2)
	go func() { s := <-sigs; stopCh <- s.String() }()
	if *useStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stopCh <- "stdin closed"
		}()
	}
	ctx, cancelStop := context.WithCancelCause(ctx)
	defer cancelStop(nil)
	go func() {
		select {
		case why := <-stopCh:
			cancelStop(errors.New(why))
		case <-ctx.Done():
		}
	}()

	// A fixed pool of dialing goroutines; connections are only kept as
	// values, no goroutine stays behind for any of them.
	t0 := time.Now()
	results := make([]dialResult, c.conns)
	var next atomic.Int64
	var failed, retried atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(c.concurrency, c.conns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= c.conns || ctx.Err() != nil {
					return
				}
				r, tries, err := c.dial(ctx, i)
				if err == nil {
					retried.Add(int64(tries))
					results[i] = r
					continue
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	progressDone := make(chan struct{})
	go func() { // a progress line every 5 s on stderr
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "wsload: %d of %d attempted, %d failed, %.0fs\n",
					min(next.Load(), int64(c.conns)), c.conns, failed.Load(), time.Since(t0).Seconds())
			}
		}
	}()
	wg.Wait()
	close(progressDone)
	secs := time.Since(t0).Seconds()
	if ctx.Err() != nil {
		closeResults(results)
		return fmt.Errorf("stopped while connecting (%v) after %.1fs", context.Cause(ctx), secs)
	}

	workers := map[string]int{}
	var live []int
	for i := range results {
		if results[i].conn != nil {
			workers[results[i].worker]++
			live = append(live, i)
		}
	}
	established := len(live)
	if p := firstErr.Load(); p != nil {
		fmt.Fprintf(os.Stderr, "wsload: %d connections failed; first: %v\n", failed.Load(), *p)
	}
	fmt.Fprintf(os.Stderr, "wsload: %d of %d connections up in %.2fs (%.0f/s), %d failed attempts retried\n",
		established, c.conns, secs, float64(established)/secs, retried.Load())
	vOK, vN, vErr := verifySome(results, live, *verify, c.dialTimeout)
	if vErr != nil {
		fmt.Fprintf(os.Stderr, "wsload: verify: %v\n", vErr)
	}
	fmt.Printf("RESULT idle conns=%d failed=%d workers=%s verified=%d/%d secs=%.2f\n",
		established, failed.Load(), tally(workers), vOK, vN, secs)
	fmt.Println("READY")

	// Hold.
	<-ctx.Done()
	why := context.Cause(ctx)
	timedOut := errors.Is(why, context.DeadlineExceeded)
	fmt.Fprintf(os.Stderr, "wsload: stop holding: %v\n", why)
	alive, closed, reset, data := probeAll(results, live)
	eOK, eN, eErr := verifySome(results, live, *verify, c.dialTimeout)
	if eErr != nil {
		fmt.Fprintf(os.Stderr, "wsload: verify at the end: %v\n", eErr)
	}
	fmt.Printf("RESULT idle-end alive=%d closed=%d reset=%d data=%d verified=%d/%d\n", alive, closed, reset, data, eOK, eN)
	closeResults(results)
	switch {
	case timedOut:
		return fmt.Errorf("-timeout %v reached while holding", c.timeout)
	case established == 0:
		return errors.New("no connection could be established")
	case vOK != vN || eOK != eN:
		return errors.New("verification failed")
	}
	return nil
}

func closeResults(rs []dialResult) {
	for i := range rs {
		if rs[i].conn != nil {
			rs[i].conn.Close()
		}
		if rs[i].br != nil {
			ws.PutReader(rs[i].br)
		}
	}
}

// verifySome echoes a small text message over n random live connections,
// 50 at a time, each bounded by timeout. Returns how many were right.
func verifySome(rs []dialResult, live []int, n int, timeout time.Duration) (ok, tried int, first error) {
	n = min(n, len(live))
	if n == 0 {
		return 0, 0, nil
	}
	pick := slices.Clone(live)
	rand.Shuffle(len(pick), func(a, b int) { pick[a], pick[b] = pick[b], pick[a] })
	pick = pick[:n]
	var good atomic.Int64
	var mu sync.Mutex
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for _, i := range pick {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := &rs[i]
			msg := []byte("verify " + strconv.Itoa(i))
			err := func() error {
				_ = r.conn.SetDeadline(time.Now().Add(timeout))
				defer r.conn.SetDeadline(time.Time{})
				var src io.Reader = r.conn
				if r.br != nil {
					src = r.br // bytes the server sent right after the 101 come first
				}
				fc := &frameConn{conn: r.conn, br: bufio.NewReaderSize(src, 256), op: ws.OpText,
					frame: buildFrame(ws.OpText, msg), want: msg, got: make([]byte, 0, len(msg)), ctl: make([]byte, 125)}
				if err := fc.roundTrip(); err != nil {
					return err
				}
				if fc.br.Buffered() > 0 {
					return errors.New("unexpected bytes after the echo")
				}
				return nil
			}()
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("connection %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			good.Add(1)
		}()
	}
	wg.Wait()
	return int(good.Load()), n, first
}

// probeAll asks the kernel, without blocking or reading, what each connection
// has: nothing (open and quiet), end of file (the server closed it), a reset,
// or bytes waiting (the server sent something, e.g. a ping or a close frame).
func probeAll(rs []dialResult, live []int) (alive, closed, reset, data int) {
	var b [1]byte
	for _, i := range live {
		sc, ok := rs[i].conn.(syscall.Conn)
		if !ok {
			continue
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			continue
		}
		var n int
		var rerr error
		_ = raw.Read(func(fd uintptr) bool {
			n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return true
		})
		switch {
		case rerr == syscall.EAGAIN:
			alive++
		case rerr != nil:
			reset++
		case n == 0:
			closed++
		default:
			data++
		}
	}
	return
}

// ---------------------------------------------------------------- serve

func runServe(args []string) error {
	fs := flag.NewFlagSet("wsload serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:1337", "listen address")
	workers := fs.Int("workers", 2, "X-Worker values to hand out, round-robin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *workers < 1 {
		return badUsage("-workers must be at least 1")
	}
	if _, _, err := raiseFDLimit(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var n atomic.Uint64
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, "wsload echo server: connect with WebSocket\n")
				return
			}
			id := strconv.Itoa(int(n.Add(1)-1) % *workers)
			u := ws.HTTPUpgrader{Header: http.Header{"X-Worker": {id}}}
			conn, _, _, err := u.Upgrade(r, w)
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				for {
					msg, op, err := wsutil.ReadClientData(conn)
					if err != nil {
						return
					}
					if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
						return
					}
				}
			}()
		}),
	}
	fmt.Printf("Server running at http://%s/\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
