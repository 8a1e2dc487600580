// Command tcpload is the TCP echo load generator of the wasmloop benchmarks
// (tests/bench/tcpecho.sh). It uses only the standard library and talks only to
// loopback addresses.
//
//	tcpload echo   -addr 127.0.0.1:1357 -conns 64 -size 64 -duration 5s -warmup 1s [-cpu-pid PID]
//	tcpload stream -addr 127.0.0.1:1357 -conns 8 -block 1048576 -duration 5s -warmup 1s [-cpu-pid PID]
//	tcpload check  -addr 127.0.0.1:1357
//	tcpload serve  -addr 127.0.0.1:1357
//
// echo: conns connections, each in its own goroutine, send one size-byte message,
// read until the same number of bytes came back, check them byte for byte, and
// send the next: one message in flight per connection (a closed loop). Round trips
// that complete inside the measured window (after the warm-up) are counted and
// their latencies kept as samples, so p50 and p99 are exact. The hot path does not
// allocate.
//
// stream: conns connections, each with a writer that sends block-byte blocks
// back to back (Write of the whole block) and a reader that reads the echo as it
// comes, checks it against what was sent, and counts the bytes that arrive inside
// the window. Every byte goes both ways: MB/s is the echoed bytes per second, one
// direction (the other direction carries as many).
//
// Both print one line for people and one for scripts:
//
//	RESULT echo rps=… p50_us=… p99_us=… max_us=… errors=… conns=… round_trips=… secs=… server_user_s=… server_sys_s=… client_cpu_s=… machine_idle_pct=…
//	RESULT stream mbps=… bytes=… errors=… conns=… secs=… server_user_s=… server_sys_s=… client_cpu_s=… machine_idle_pct=…
//
// With -cpu-pid, server_user_s and server_sys_s are that process's utime and stime
// (/proc/PID/stat, all its threads) over exactly the measured window, read by this
// process at the window's start and end; -1 without it. client_cpu_s is this
// process's own CPU over the window, machine_idle_pct the machine's idle share
// (/proc/stat).
//
// check: the echo must be exact for messages of 1 byte to 1 MiB, and a client that
// ends its side (shutdown SHUT_WR) must see every byte and then end of file.
//
// serve: a Go echo server (io.Copy per connection), to test tcpload and the
// harness without the servers under test.
//
// Every loop is bounded by the run's duration: the connections carry deadlines
// (window end plus -grace), and -timeout bounds the whole run. Exit status: 0 on
// success, 1 on a failure (any error in echo or stream, a mismatch in check), 2
// for bad usage.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "echo":
		err = runEcho(os.Args[2:])
	case "stream":
		err = runStream(os.Args[2:])
	case "check":
		err = runCheck(os.Args[2:])
	case "serve":
		err = runServe(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "tcpload: unknown mode %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcpload: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  tcpload echo   -addr 127.0.0.1:PORT [-conns 64] [-size 64] [-duration 5s] [-warmup 1s] [-cpu-pid PID]
  tcpload stream -addr 127.0.0.1:PORT [-conns 8] [-block 1048576] [-duration 5s] [-warmup 1s] [-cpu-pid PID]
  tcpload check  -addr 127.0.0.1:PORT
  tcpload serve  -addr 127.0.0.1:PORT
run "tcpload MODE -h" for every flag of a mode
`)
	os.Exit(2)
}

type usageError struct{ error }

func badUsage(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// ---------------------------------------------------------------- common

// load holds the flags of the two load modes.
type load struct {
	addr        string
	conns       int
	duration    time.Duration
	warmup      time.Duration
	grace       time.Duration
	dialTimeout time.Duration
	timeout     time.Duration
	cpuPid      int
	clkTck      int
}

func (l *load) register(fs *flag.FlagSet, conns int) {
	fs.StringVar(&l.addr, "addr", "127.0.0.1:1357", "the echo server, HOST:PORT (a loopback address)")
	fs.IntVar(&l.conns, "conns", conns, "connections")
	fs.DurationVar(&l.duration, "duration", 5*time.Second, "measured window")
	fs.DurationVar(&l.warmup, "warmup", time.Second, "warm-up before the measured window, not counted")
	fs.DurationVar(&l.grace, "grace", 5*time.Second, "how long an operation still in flight at the window's end may take")
	fs.DurationVar(&l.dialTimeout, "dial-timeout", 5*time.Second, "longest one connect may take")
	fs.DurationVar(&l.timeout, "timeout", 5*time.Minute, "longest the whole run may take")
	fs.IntVar(&l.cpuPid, "cpu-pid", 0, "also report this process's utime and stime (/proc/PID/stat) over the measured window")
	fs.IntVar(&l.clkTck, "clk-tck", 100, "clock ticks per second of /proc/PID/stat (getconf CLK_TCK)")
}

func (l *load) check(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return badUsage("unexpected arguments %q", fs.Args())
	}
	if err := loopback(l.addr); err != nil {
		return err
	}
	if l.conns < 1 || l.conns > 10000 {
		return badUsage("-conns must be 1..10000")
	}
	if l.duration <= 0 || l.warmup < 0 || l.grace <= 0 || l.dialTimeout <= 0 || l.timeout <= 0 {
		return badUsage("-duration, -grace, -dial-timeout and -timeout must be positive, -warmup not negative")
	}
	if l.cpuPid < 0 || l.clkTck < 1 {
		return badUsage("-cpu-pid must not be negative, -clk-tck must be positive")
	}
	return nil
}

// loopback refuses any address that is not a literal loopback IP with a port.
func loopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return badUsage("-addr %q: %v", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return badUsage("-addr %q: bad port", addr)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return badUsage("-addr %q: only a literal loopback address (127.x.y.z, ::1) is allowed", addr)
	}
	return nil
}

// signalContext: the run's context, ended by -timeout, SIGINT or SIGTERM.
func signalContext(timeout time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	return ctx, func() { stop(); cancel() }
}

// dialAll opens n connections, all at once, each bounded by -dial-timeout. It
// returns the ones that opened (nil where one failed) and the errors.
func (l *load) dialAll(ctx context.Context) ([]*net.TCPConn, []error) {
	conns := make([]*net.TCPConn, l.conns)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	d := net.Dialer{Timeout: l.dialTimeout}
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := d.DialContext(ctx, "tcp", l.addr)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			tc := c.(*net.TCPConn)
			_ = tc.SetNoDelay(true)
			conns[i] = tc
		}()
	}
	wg.Wait()
	return conns, errs
}

func closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func payload(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// window is the measured interval, with the deadline of everything in flight.
type window struct{ start, end, deadline time.Time }

func (l *load) window() window {
	s := time.Now().Add(l.warmup)
	e := s.Add(l.duration)
	return window{s, e, e.Add(l.grace)}
}

// cpuWindow snapshots CPU at the window's start and end (it sleeps until each).
func (l *load) cpuWindow(ctx context.Context, w window) (a, b cpuSnap) {
	sleepUntil(ctx, w.start)
	a = snapCPU(l.cpuPid)
	sleepUntil(ctx, w.end)
	b = snapCPU(l.cpuPid)
	return a, b
}

// cpuFields: "server_user_s=… server_sys_s=… client_cpu_s=… machine_idle_pct=…".
func (l *load) cpuFields(a, b cpuSnap) string {
	user, sys := -1.0, -1.0
	if l.cpuPid > 0 && a.srvOK && b.srvOK {
		user = float64(b.srvUser-a.srvUser) / float64(l.clkTck)
		sys = float64(b.srvSys-a.srvSys) / float64(l.clkTck)
	}
	idle := -1.0
	if a.sysOK && b.sysOK && b.busy+b.idle > a.busy+a.idle {
		idle = 100 * float64(b.idle-a.idle) / float64(b.busy+b.idle-a.busy-a.idle)
	}
	return fmt.Sprintf("server_user_s=%.2f server_sys_s=%.2f client_cpu_s=%.2f machine_idle_pct=%.1f",
		user, sys, (b.self - a.self).Seconds(), idle)
}

// ---------------------------------------------------------------- echo

func runEcho(args []string) error {
	fs := flag.NewFlagSet("tcpload echo", flag.ExitOnError)
	var l load
	l.register(fs, 64)
	size := fs.Int("size", 64, "message bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := l.check(fs); err != nil {
		return err
	}
	if *size < 1 || *size > 1<<20 {
		return badUsage("-size must be 1..1048576")
	}
	ctx, stop := signalContext(l.timeout)
	defer stop()

	conns, dialErrs := l.dialAll(ctx)
	defer closeAll(conns)
	if len(dialErrs) == l.conns {
		return fmt.Errorf("no connection could be opened: %v", dialErrs[0])
	}
	w := l.window()
	type stats struct {
		n, errs int
		lat     []uint32 // microseconds
		first   error
	}
	all := make([]stats, l.conns)
	var wg sync.WaitGroup
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &all[i]
			st.lat = make([]uint32, 0, 1<<14)
			msg := payload(*size, uint64(i)+1)
			got := make([]byte, *size)
			_ = c.SetDeadline(w.deadline)
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(w.end) {
					return
				}
				err := func() error {
					if _, err := c.Write(msg); err != nil {
						return fmt.Errorf("write: %w", err)
					}
					if _, err := io.ReadFull(c, got); err != nil {
						return fmt.Errorf("read: %w", err)
					}
					if !bytes.Equal(got, msg) {
						return errors.New("the echo differs from what was sent")
					}
					return nil
				}()
				if err != nil {
					st.errs++
					st.first = err
					return // one error ends this connection: the count shows it
				}
				done := time.Now()
				if !done.Before(w.start) && done.Before(w.end) {
					st.n++
					st.lat = append(st.lat, uint32(min(done.Sub(t).Microseconds(), 1<<32-1)))
				}
			}
		}()
	}
	cpuA, cpuB := l.cpuWindow(ctx, w)
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted or timed out: %v", context.Cause(ctx))
	}

	var n, errs int
	var first error
	var lat []uint32
	for i := range all {
		n += all[i].n
		errs += all[i].errs
		if first == nil {
			first = all[i].first
		}
		lat = append(lat, all[i].lat...)
	}
	errs += len(dialErrs)
	if first == nil && len(dialErrs) > 0 {
		first = dialErrs[0]
	}
	slices.Sort(lat)
	secs := l.duration.Seconds()
	rps := float64(n) / secs
	fmt.Printf("echo: %d conns, %d-byte messages, %v measured after %v warm-up: %.0f round-trips/s (%d), p50 %d µs, p99 %d µs, max %d µs, %d errors\n",
		l.conns-len(dialErrs), *size, l.duration, l.warmup, rps, n, pct(lat, 50), pct(lat, 99), pct(lat, 100), errs)
	if first != nil {
		fmt.Printf("echo: first error: %v\n", first)
	}
	fmt.Printf("RESULT echo rps=%.1f p50_us=%d p99_us=%d max_us=%d errors=%d conns=%d round_trips=%d secs=%.3f %s\n",
		rps, pct(lat, 50), pct(lat, 99), pct(lat, 100), errs, l.conns-len(dialErrs), n, secs, l.cpuFields(cpuA, cpuB))
	if errs > 0 {
		return fmt.Errorf("%d errors", errs)
	}
	return nil
}

// pct: the exact p-th percentile (nearest rank) of sorted samples.
func pct(sorted []uint32, p float64) uint32 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// ---------------------------------------------------------------- stream

func runStream(args []string) error {
	fs := flag.NewFlagSet("tcpload stream", flag.ExitOnError)
	var l load
	l.register(fs, 8)
	block := fs.Int("block", 1<<20, "bytes of each write")
	readSize := fs.Int("read", 256<<10, "bytes of the read buffer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := l.check(fs); err != nil {
		return err
	}
	if *block < 1 || *block > 64<<20 || *readSize < 1 || *readSize > 64<<20 {
		return badUsage("-block and -read must be 1..64 MiB")
	}
	ctx, stop := signalContext(l.timeout)
	defer stop()

	conns, dialErrs := l.dialAll(ctx)
	defer closeAll(conns)
	if len(dialErrs) == l.conns {
		return fmt.Errorf("no connection could be opened: %v", dialErrs[0])
	}
	w := l.window()
	type stats struct {
		bytes int64
		errs  int
		first error
	}
	all := make([]stats, l.conns)
	var mu sync.Mutex
	fail := func(st *stats, err error) {
		mu.Lock()
		defer mu.Unlock()
		st.errs++
		if st.first == nil {
			st.first = err
		}
	}
	// ended: an error that only says the window (and its grace) is over.
	ended := func(err error) bool {
		var ne net.Error
		return !time.Now().Before(w.end) && (errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed))
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		if c == nil {
			continue
		}
		st := &all[i]
		data := payload(*block, uint64(i)+1)
		_ = c.SetDeadline(w.deadline)
		wg.Add(2)
		go func() { // the writer: whole blocks, back to back, until the window ends
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(w.end) {
				if _, err := c.Write(data); err != nil {
					if !ended(err) {
						fail(st, fmt.Errorf("write: %w", err))
					}
					return
				}
			}
		}()
		go func() { // the reader: the echo, checked against what was sent, until the window ends
			defer wg.Done()
			defer c.Close() // unblocks the writer
			_ = c.SetReadDeadline(w.end)
			buf := make([]byte, *readSize)
			off := 0 // where in data the next echoed byte belongs
			for ctx.Err() == nil {
				n, err := c.Read(buf)
				if n > 0 {
					t := time.Now()
					for p := buf[:n]; len(p) > 0; {
						k := min(len(p), len(data)-off)
						if !bytes.Equal(p[:k], data[off:off+k]) {
							fail(st, errors.New("the echo differs from what was sent"))
							return
						}
						p, off = p[k:], (off+k)%len(data)
					}
					if !t.Before(w.start) && t.Before(w.end) {
						st.bytes += int64(n)
					}
				}
				if err != nil {
					if !ended(err) {
						fail(st, fmt.Errorf("read: %w", err))
					}
					return
				}
			}
		}()
	}
	cpuA, cpuB := l.cpuWindow(ctx, w)
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted or timed out: %v", context.Cause(ctx))
	}
	var total int64
	var errs int
	var first error
	for i := range all {
		total += all[i].bytes
		errs += all[i].errs
		if first == nil {
			first = all[i].first
		}
	}
	errs += len(dialErrs)
	if first == nil && len(dialErrs) > 0 {
		first = dialErrs[0]
	}
	secs := l.duration.Seconds()
	mbps := float64(total) / secs / 1e6
	fmt.Printf("stream: %d conns, %d-byte blocks, %v measured after %v warm-up: %.1f MB/s echoed (%d bytes), %d errors\n",
		l.conns-len(dialErrs), *block, l.duration, l.warmup, mbps, total, errs)
	if first != nil {
		fmt.Printf("stream: first error: %v\n", first)
	}
	fmt.Printf("RESULT stream mbps=%.2f bytes=%d errors=%d conns=%d secs=%.3f %s\n",
		mbps, total, errs, l.conns-len(dialErrs), secs, l.cpuFields(cpuA, cpuB))
	if errs > 0 {
		return fmt.Errorf("%d errors", errs)
	}
	return nil
}

// ---------------------------------------------------------------- CPU

type cpuSnap struct {
	srvUser, srvSys int64 // ticks
	srvOK           bool
	self            time.Duration // this process, user+system
	busy, idle      int64         // whole machine, /proc/stat ticks
	sysOK           bool
}

func sleepUntil(ctx context.Context, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
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
					s.srvUser, s.srvSys, s.srvOK = u, st, e1 == nil && e2 == nil
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

// ---------------------------------------------------------------- check

func runCheck(args []string) error {
	fs := flag.NewFlagSet("tcpload check", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:1357", "the echo server, HOST:PORT (a loopback address)")
	timeout := fs.Duration("timeout", 20*time.Second, "longest each check may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected arguments %q", fs.Args())
	}
	if err := loopback(*addr); err != nil {
		return err
	}
	// One connection, messages of several sizes one after the other, each read back whole.
	c, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(*timeout))
	for _, size := range []int{1, 64, 1400, 65536, 1 << 20} {
		if err := echoOnce(c, payload(size, uint64(size))); err != nil {
			c.Close()
			return fmt.Errorf("%d-byte message: %w", size, err)
		}
	}
	c.Close()
	// A client that ends its side: every byte, then end of file.
	c, err = net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(*timeout))
	msg := payload(300_000, 7)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("half-close: read: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("half-close: write: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("half-close: %d bytes came back before end of file, %d sent (or other bytes)", len(got), len(msg))
	}
	fmt.Println("check: 1, 64, 1400, 65536 and 1048576-byte messages echo exactly; after the client's FIN, all 300000 bytes and then end of file")
	return nil
}

// echoOnce writes msg (from another goroutine: a large message does not fit the
// socket buffers of both sides) and reads it back whole.
func echoOnce(c net.Conn, msg []byte) error {
	werr := make(chan error, 1)
	go func() { _, err := c.Write(msg); werr <- err }()
	got := make([]byte, len(msg))
	_, rerr := io.ReadFull(c, got)
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("read: %w", rerr)
	}
	if !bytes.Equal(got, msg) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}

// ---------------------------------------------------------------- serve

func runServe(args []string) error {
	fs := flag.NewFlagSet("tcpload serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:1357", "where to listen (a loopback address)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopback(*addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("Server running at tcp://%s/\n", ln.Addr())
	ctx, stop := signalContext(24 * time.Hour)
	defer stop()
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
	}
}
