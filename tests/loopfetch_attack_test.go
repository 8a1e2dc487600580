package tests

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Attacks on the loop's own HTTP/1.1 client (host/internal/loop/fetch.go, clientconn.go),
// end to end: the reach guest's /fetch and the fetchattack guest's paths
// (tests/testdata/guests/fetchattack) against upstreams that misbehave on purpose.

// rawUp is an upstream that runs handle on each accepted connection (n counts them from 0).
type rawUp struct {
	ln    net.Listener
	addr  string
	conns atomic.Int32
}

func startRawUp(t *testing.T, handle func(n int, c net.Conn)) *rawUp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUp{ln: ln, addr: ln.Addr().String()}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			n := int(u.conns.Add(1)) - 1
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(n, c)
			}()
		}
	}()
	return u
}

func (u *rawUp) url(path string) string { return "http://" + u.addr + path }

// readHead reads one request head (through its empty line) and returns its request line.
func readHead(br *bufio.Reader) (string, error) {
	first := ""
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return first, err
		}
		if first == "" {
			first = strings.TrimSpace(line)
			continue
		}
		if line == "\r\n" {
			return first, nil
		}
	}
}

// askGuest is guestGet with a bound of its own and the error returned, not fatal.
func askGuest(s *server, path string, d time.Duration) (*http.Response, string, error) {
	c := &http.Client{Timeout: d, Transport: &http.Transport{}}
	resp, err := c.Get(s.URL(path))
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// An upload the server answers early (413) without reading it: the answer reaches the
// program, and the write left pending when the answer ended is answered too (a failure: the
// server takes no more) — whether the server then closes the connection or keeps draining it.
func TestLoopFetchAttackEarlyAnswerUpload(t *testing.T) {
	for _, closeAfter := range []bool{true, false} {
		t.Run(fmt.Sprintf("close=%v", closeAfter), func(t *testing.T) {
			up := startRawUp(t, func(_ int, c net.Conn) {
				br := bufio.NewReader(c)
				if _, err := readHead(br); err != nil {
					return
				}
				ans := "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n"
				if closeAfter {
					ans += "Connection: close\r\n"
				}
				if _, err := io.WriteString(c, ans+"\r\ntoo big!"); err != nil {
					return
				}
				if closeAfter {
					c.(*net.TCPConn).CloseWrite()
				}
				// Read on slowly, as a server that lingers does, so that the upload stays
				// above the host's mark for a while but the answer is not reset.
				buf := make([]byte, 4096)
				for {
					c.SetReadDeadline(time.Now().Add(20 * time.Second))
					if _, err := br.Read(buf); err != nil {
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
			s := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up.addr}})
			_, got, err := askGuest(s, "/upload?n="+strconv.Itoa(64<<20)+"&url="+q(up.url("/up")), 8*time.Second)
			if err != nil {
				t.Fatalf("the program never answered (%v): its upload's pending write was never answered after the 413 ended the fetch", err)
			}
			if !strings.HasPrefix(got, "413 too big! | writer: ERR") {
				t.Errorf("got %q, want the 413, then the writer told its write failed", got)
			}
		})
	}
}

// The same, for a program that does nothing more: the process must exit once the upload's
// answer is in, not wait for ever on the write the answer left pending.
func TestLoopFetchAttackEarlyAnswerUploadExits(t *testing.T) {
	up := startRawUp(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
		c.(*net.TCPConn).CloseWrite()
		buf := make([]byte, 4096) // read on slowly: the upload stays above the host's mark
		for {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := br.Read(buf); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	p := startProc(t, nil, "", "run", "--cache-dir", cacheDir, "--workers", "1", "--allow-connect", up.addr,
		"--env", "FETCH_URL="+up.url("/up"), "--env", "UPLOAD_N="+strconv.Itoa(64<<20), wasm["fetchattack"])
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the program, with nothing left to do after its upload was answered 413, did not exit within 10 s\nstdout:\n%s", p.stdout)
	}
	if !strings.Contains(p.stdout.String(), "oneshot: 413 too big! | writer: ERR") {
		t.Errorf("stdout %q, want the 413 and the writer's failure", p.stdout)
	}
}

// A program that fetched once and has nothing more to do exits, although the connection its
// fetch left is kept open.
func TestLoopFetchAttackExitsWithKeptConnection(t *testing.T) {
	up := startScripted(t, func(string, int) ([]byte, bool) {
		return []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkept"), false
	})
	r := runWasmloop(t, "", 20*time.Second, "run", "--cache-dir", cacheDir, "--workers", "1", "--allow-connect", up.addr,
		"--env", "FETCH_URL="+up.url("/x"), wasm["fetchattack"])
	if r.code != 0 || strings.Count(r.stdout, "oneshot: 200\nkept") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and the answer", r.code, r.stdout, r.stderr)
	}
	if r.elapsed > 10*time.Second {
		t.Errorf("took %v to exit", r.elapsed)
	}
}

// The answer's field lines reach the program in the ABI's form, "Name: value\r\n" (ABI.md §10):
// a field sent without a space after its colon, or with whitespace around its value (both
// valid HTTP: OWS), is not lost or changed on the way, as it was not through Go's client.
func TestLoopFetchAttackFieldForms(t *testing.T) {
	answers := map[string]string{
		"/nospace": "HTTP/1.1 200 OK\r\nLocation:/there\r\nContent-Length: 2\r\n\r\nok",
		"/padded":  "HTTP/1.1 200 OK\r\nLocation: \t/there \t\r\nContent-Length: 2\r\n\r\nok",
		"/plain":   "HTTP/1.1 200 OK\r\nLocation: /there\r\nContent-Length: 2\r\n\r\nok",
	}
	up := startScripted(t, func(line string, _ int) ([]byte, bool) {
		return []byte(answers[strings.Fields(line)[1]]), false
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	for _, path := range []string{"/plain", "/nospace", "/padded"} {
		resp, body, err := askGuest(s, "/fetch?url="+q(up.url(path)), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if body != "200\nok" || resp.Header.Get("X-Upstream-Location") != "/there" {
			t.Errorf("%s: body %q, the program saw Location %q; want \"/there\"", path, body, resp.Header.Get("X-Upstream-Location"))
		}
	}
}

// Bytes a server sends after a complete answer are not the answer to the program's next fetch
// on that connection: neither when they come with the answer, nor when they come a little
// after it, while the program is busy (the reactor has not looked at the socket since).
func TestLoopFetchAttackJunkAfterAnswer(t *testing.T) {
	const junk = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
	busy := make(chan struct{})
	up := startRawUp(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := readHead(br)
			if err != nil {
				return
			}
			switch {
			case strings.Contains(line, "/same"):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"+junk)
			case strings.Contains(line, "/late"):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
				<-busy // the program has the answer and is busy in its callback for 300 ms
				io.WriteString(c, junk)
			default:
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
			}
		}
	})
	s := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up.addr}})
	go afterLog(s, "busy after "+up.url("/late"), 0, busy)
	for _, first := range []string{"/same", "/late"} {
		_, got, err := askGuest(s, "/twofetch?sleep=300&a="+q(up.url(first))+"&b="+q(up.url("/next")), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if got != "200\nfirst | 200\nreal" {
			t.Errorf("after %s: %q, want the next fetch answered by the server, not by the bytes it sent unasked", first, got)
		}
	}
}

// A kept connection the server closed while the program was busy does not fail the program's
// next request, whatever its method: the server closed it before the request, as Go's
// transport notices at once (its read loop), and a new connection carries the request. A GET
// is retried on a new connection anyway; a POST, which is not, must not be sent on it.
func TestLoopFetchAttackServerClosedIdle(t *testing.T) {
	busy := make(chan struct{}, 2)
	up := startRawUp(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := readHead(br)
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "POST") {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nposted")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			if strings.Contains(line, "/closeidle") {
				<-busy // then, while the program is busy, the server's idle timeout closes it
				return
			}
		}
	})
	s := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up.addr}})
	for _, method := range []string{"GET", "POST"} {
		go afterLog(s, "busy after "+up.url("/closeidle"), strings.Count(s.stdout.String(), "busy after "), busy)
		_, got, err := askGuest(s, "/twofetch?sleep=300&method="+method+"&a="+q(up.url("/closeidle"))+"&b="+q(up.url("/b")), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		want := "200\nok | 200\nok"
		if method == "POST" {
			want = "200\nok | 200\nposted"
		}
		if got != want {
			t.Errorf("%s on a connection the server had closed while idle: %q, want %q", method, got, want)
		}
	}
}

// A large answer head trickled in small pieces costs the worker work in proportion to the
// head, not to its square: the client must not scan the whole head again at every piece
// (http1.ParseRequest keeps its place for the same reason). 8 MiB in 4 KiB pieces.
func TestLoopFetchAttackHeadTrickle(t *testing.T) {
	const size = 8 << 20
	line := "X-Pad: " + strings.Repeat("p", 41) + "\r\n" // 50 bytes
	head := "HTTP/1.1 200 OK\r\n" + strings.Repeat(line, size/len(line)) + "Content-Length: 2\r\n\r\nok"
	var sendTime atomic.Int64
	up := startRawUp(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		start := time.Now()
		for i := 0; i < len(head); i += 4096 {
			if _, err := io.WriteString(c, head[i:min(i+4096, len(head))]); err != nil {
				return
			}
			time.Sleep(500 * time.Microsecond)
		}
		sendTime.Store(int64(time.Since(start)))
		readHead(br) // until the client closes
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	before := procCPU(t, s.cmd.Process.Pid)
	_, got, err := askGuest(s, "/fetch?url="+q(up.url("/big")), 60*time.Second)
	used := procCPU(t, s.cmd.Process.Pid) - before
	if err != nil {
		t.Fatal(err)
	}
	if got != "200\nok" {
		t.Fatalf("got %q", truncate(got, 200))
	}
	t.Logf("the worker used %v of CPU for a head of %d bytes sent in %v", used, len(head), time.Duration(sendTime.Load()))
	if used > 1500*time.Millisecond { // quadratic: 2.2–2.3 s; linear: about 0.46 s (2026-12-06)
		t.Errorf("the worker used %v of CPU to read one %d-byte head sent in 4 KiB pieces: the head is scanned again from its start at each piece (quadratic)", used, len(head))
	}
}

// A chunked answer whose every byte comes in a segment of its own — chunk lines, extensions,
// data, the last chunk and trailers — reads whole, and the connection is kept.
func TestLoopFetchAttackChunkedByteByByte(t *testing.T) {
	answer := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n" +
		"5;name=\"va;lue\"\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
	up := startRawUp(t, func(_ int, c net.Conn) {
		c.(*net.TCPConn).SetNoDelay(true)
		br := bufio.NewReader(c)
		for {
			line, err := readHead(br)
			if err != nil {
				return
			}
			if strings.Contains(line, "/small") {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall")
				continue
			}
			for i := range len(answer) {
				if _, err := io.WriteString(c, answer[i:i+1]); err != nil {
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	for range 2 {
		if got := guestGet(t, s, "/fetch?url="+q(up.url("/bytes"))); got != "200\nhello 0123456789" {
			t.Errorf("got %q", got)
		}
	}
	if got := guestGet(t, s, "/fetch?url="+q(up.url("/small"))); got != "200\nsmall" {
		t.Errorf("after: %q", got)
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (kept after each chunked answer)", n)
	}
}

// procRSS is the process's resident set in bytes (Linux).
func procRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// A body far larger than a read, read slowly: the host buffers no more than a read's worth,
// so the server's writes block (the kernel's buffers push back) and the worker's memory stays
// flat; every byte arrives in order.
func TestLoopFetchAttackSlowReaderBackPressure(t *testing.T) {
	const size = 256 << 20
	var written atomic.Int64
	up := startRawUp(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
		buf := make([]byte, 64<<10)
		pr := &patternReader{}
		for sent := 0; sent < size; {
			k := min(len(buf), size-sent)
			pr.Read(buf[:k])
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			n, err := c.Write(buf[:k])
			sent += n
			written.Store(int64(sent))
			if err != nil {
				return
			}
		}
	})
	s := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up.addr}})
	base := procRSS(t, s.cmd.Process.Pid)
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, got, err := askGuest(s, "/slowread?piece=65536&every=1&url="+q(up.url("/huge")), 120*time.Second)
		done <- result{got, err}
	}()
	// Once the server is blocked in a write, the host holds only what the kernels hold.
	var peak int64
	deadline := time.After(110 * time.Second)
	for {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			n, sum := checksum(io.LimitReader(&patternReader{}, size))
			if want := "200 " + strconv.Itoa(int(n)) + " " + hex.EncodeToString(sum); r.body != want {
				t.Errorf("got %q, want %q", r.body, want)
			}
			t.Logf("RSS %d MiB at the start, peak %d MiB", base>>20, peak>>20)
			if peak-base > 96<<20 {
				t.Errorf("the worker's RSS grew by %d MiB while a %d MiB body was read slowly", (peak-base)>>20, size>>20)
			}
			return
		case <-deadline:
			t.Fatalf("no answer; %d bytes written", written.Load())
		case <-time.After(50 * time.Millisecond):
			peak = max(peak, procRSS(t, s.cmd.Process.Pid))
		}
	}
}

// A program that aborts a fetch in the middle of its body, and fetches again from the same
// server, gets the second answer whole: the aborted connection is not reused with the rest of
// the first body on it.
func TestLoopFetchAttackAbortThenFetch(t *testing.T) {
	big := strings.Repeat("B", 300<<10)
	up := startScripted(t, func(line string, _ int) ([]byte, bool) {
		return []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big), false
	})
	s := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up.addr}})
	for _, n := range []int{1, 100, 64 << 10} {
		_, got, err := askGuest(s, "/abort?n="+strconv.Itoa(n)+"&url="+q(up.url("/big")), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		first, second, _ := strings.Cut(got, " | ")
		k, err := strconv.Atoi(strings.TrimPrefix(first, "first: "))
		if err != nil || k < 1 || k > n || second != "second: 200\n"+big {
			t.Errorf("abort after %d: %q, want the second answer whole", n, truncate(got, 200))
		}
	}
}

// Timeouts while connecting (a listener whose backlog is full: the handshake never
// completes), while waiting for the head, and in the body each fail the fetch ETIMEDOUT in
// about the time asked; the worker goes on.
func TestLoopFetchAttackTimeouts(t *testing.T) {
	hold := make(chan struct{})
	up := startRawUp(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		line, err := readHead(br)
		if err != nil {
			return
		}
		switch {
		case strings.Contains(line, "/headpart"):
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-A: 1\r\n")
		case strings.Contains(line, "/bodypart"):
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
		case strings.Contains(line, "/ok"):
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return
		}
		select {
		case <-hold:
		case <-time.After(20 * time.Second):
		}
	})
	t.Cleanup(func() { close(hold) })
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	for _, path := range []string{"/never", "/headpart", "/bodypart"} {
		// Only the fetch's own timeout can give ETIMEDOUT: the server holds each connection
		// for 20 s, longer than the test's client waits (ioTimeout).
		got := guestGet(t, s, "/fetch?timeout=300&url="+q(up.url(path)))
		if !strings.HasPrefix(got, "ERR ETIMEDOUT") {
			t.Errorf("%s: %q, want ERR ETIMEDOUT", path, got)
		}
	}
	if got := guestGet(t, s, "/fetch?url="+q(up.url("/ok"))); got != "200\nok" {
		t.Errorf("after the timeouts: %q", got)
	}
}

// Many fetches at once from two workers, each to one of two upstreams, with bodies of every
// framing: each answer is its own (no answer crosses to another fetch), and the kept
// connections stay bounded.
func TestLoopFetchAttackManyConcurrent(t *testing.T) {
	up := startScripted(t, func(line string, _ int) ([]byte, bool) {
		path := strings.Fields(line)[1]
		id := strings.TrimPrefix(path, "/c/")
		body := strings.Repeat(id+",", 50)
		if len(id) > 0 && id[len(id)-1]%2 == 0 {
			return []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)), false
		}
		return []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body), false
	})
	s := startServer(t, serverOpts{Module: "reach", Workers: 2, Flags: []string{"--allow-connect", up.addr}})
	const total = 400
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	var bad atomic.Int32
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id := strconv.Itoa(i)
			resp, err := c.Get(s.URL("/fetch?url=" + q(up.url("/c/"+id))))
			if err != nil {
				if bad.Add(1) < 5 {
					t.Errorf("fetch %s: %v", id, err)
				}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "200\n" + strings.Repeat(id+",", 50); string(b) != want {
				if bad.Add(1) < 5 {
					t.Errorf("fetch %s: %q", id, truncate(string(b), 120))
				}
			}
		}()
	}
	wg.Wait()
	if n := up.conns.Load(); n > 2*256 {
		t.Errorf("%d connections opened for %d fetches", n, total)
	}
	t.Logf("%d connections opened for %d fetches", up.conns.Load(), total)
}

// HEAD answered with a Content-Length (and no body), interim answers up to the bound and one
// past it, and a 101 (whose connection is not kept).
func TestLoopFetchAttackBodilessAndInterim(t *testing.T) {
	interim := func(n int) string { return strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", n) }
	answers := map[string]string{
		"/head":      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
		"/head-te":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"/interim5":  interim(5) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/interim6":  interim(6) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/switching": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nraw bytes of another protocol",
		"/ok":        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	}
	up := startScripted(t, func(line string, _ int) ([]byte, bool) {
		path := strings.Fields(line)[1]
		return []byte(answers[path]), path == "/interim6" || path == "/switching"
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", up.addr}})
	for _, c := range []struct{ path, want string }{
		{"/fetch?method=HEAD&url=" + q(up.url("/head")), "200\n"},
		{"/fetch?method=HEAD&url=" + q(up.url("/head-te")), "200\n"},
		{"/fetch?url=" + q(up.url("/ok")), "200\nok"},
		{"/fetch?url=" + q(up.url("/interim5")), "200\nok"},
		{"/fetch?url=" + q(up.url("/interim6")), "ERR EIO"},
		{"/fetch?url=" + q(up.url("/ok")), "200\nok"},
		{"/fetch?url=" + q(up.url("/switching")), "101\n"},
		{"/fetch?url=" + q(up.url("/ok")), "200\nok"},
	} {
		if got := guestGet(t, s, c.path); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want %q", c.path, got, c.want)
		}
	}
	// The HEADs and the first answers share one connection; the 6 interims and the 101 each
	// end theirs.
	if n := up.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// The fields reach the program as the ABI says ("Name: value\r\n", the value without the
// whitespace around it): as the SDK cuts them, a field without a space after its colon is
// lost, and one with whitespace around its value keeps it.
func TestLoopFetchAttackFieldValues(t *testing.T) {
	up := startScripted(t, func(string, int) ([]byte, bool) {
		return []byte("HTTP/1.1 200 OK\r\nX-Nospace:a\r\nX-Padded: \t b \t\r\nX-Plain: c\r\nContent-Length: 0\r\n\r\n"), false
	})
	s := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up.addr}})
	_, got, err := askGuest(s, "/fields?url="+q(up.url("/f")), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"X-Nospace"="a"`, `"X-Padded"="b"`, `"X-Plain"="c"`} {
		if !strings.Contains(got, want) {
			t.Errorf("the program got the fields\n%s\nwithout %s", got, want)
		}
	}
}

// An instance that crashes with a fetch in its body: the host closes the fetch's connection
// (the server sees its end; it is not kept with the rest of the body on it), and the next
// instance's fetches to the same server are answered.
func TestLoopFetchAttackCrashWithFetchInFlight(t *testing.T) {
	closed := make(chan struct{}, 4)
	up := startRawUp(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := readHead(br)
			if err != nil {
				closed <- struct{}{}
				return
			}
			if strings.Contains(line, "/ok") {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err = br.ReadByte() // the client's close, or a request on a connection it should have dropped
			if err == nil {
				t.Errorf("a request came on the connection of the fetch the crash ended")
			}
			closed <- struct{}{}
			return
		}
	})
	s := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up.addr}})
	if _, _, err := askGuest(s, "/crash?url="+q(up.url("/held")), ioTimeout); err == nil {
		t.Log("the crashed request was answered")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection of the fetch in flight at the crash was not closed within 10 s")
	}
	for i := range 3 {
		if _, got, err := askGuest(s, "/twofetch?sleep=0&a="+q(up.url("/ok"))+"&b="+q(up.url("/ok")), ioTimeout); err != nil || got != "200\nok | 200\nok" {
			t.Errorf("fetch %d after the crash: %q, %v", i, got, err)
		}
	}
}

// A connect that never completes (a listener whose backlog is full) times out as asked.
func TestLoopFetchAttackConnectTimeout(t *testing.T) {
	addr := fullBacklog(t) // tcp_attack_test.go
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", addr}})
	// The dial's own bound is 30 s, past the test's client's (ioTimeout): ETIMEDOUT is the
	// fetch's timeout.
	got := guestGet(t, s, "/fetch?timeout=400&url="+q("http://"+addr+"/"))
	if !strings.HasPrefix(got, "ERR ETIMEDOUT") {
		t.Errorf("%q, want ERR ETIMEDOUT", got)
	}
}

// The connections a program's fetches keep open are not its clients: they do not count
// against --max-conns, so a worker at the cap with kept connections still serves new clients
// once old ones leave.
func TestLoopFetchAttackKeptNotCountedInMaxConns(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(2)
	up := startScripted(t, func(line string, _ int) ([]byte, bool) {
		if strings.Contains(line, "/pair") {
			arrived.Done()
			arrived.Wait() // both fetches are in flight at once: two connections are kept
		}
		return []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), false
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--max-conns", "2", "--allow-connect", up.addr}})
	var wg sync.WaitGroup
	var firsts [2]*rawConn
	for i := range firsts {
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		firsts[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body, err := c.roundTrip(get("/fetch?url=" + q(up.url("/pair"))))
			if err != nil || resp.StatusCode != 200 || string(body) != "200\nok" {
				t.Errorf("fetch %d: %v %q", i, err, body)
			}
		}()
	}
	wg.Wait()
	if n := up.conns.Load(); n != 2 {
		t.Fatalf("%d upstream connections, want 2", n)
	}
	for _, c := range firsts {
		c.Close()
	}
	for i := range 2 {
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.send(get("/fetch?url=" + q(up.url("/again")))); err != nil {
			t.Fatal(err)
		}
		resp, body, err := c.readResponse("GET", 5*time.Second)
		if err != nil || resp.StatusCode != 200 || string(body) != "200\nok" {
			t.Errorf("new client %d with 2 kept upstream connections at --max-conns 2: %v %q", i, err, body)
		}
	}
}

// A program that fetches from its own worker: the client and the server side of the
// exchange are both the one loop's, and neither waits for the other.
func TestLoopFetchAttackFetchesItself(t *testing.T) {
	up := startScripted(t, func(string, int) ([]byte, bool) {
		return []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ninner"), false
	})
	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--allow-connect", "127.0.0.1"}})
	inner := s.URL("/fetch?url=" + q(up.url("/x")))
	for range 3 {
		if got := guestGet(t, s, "/fetch?url="+q(inner)); got != "200\n200\ninner" {
			t.Errorf("got %q", got)
		}
	}
	// Byte by byte: a body read one byte per read, to its end.
	big := strings.Repeat("0123456789", 300)
	up2 := startScripted(t, func(string, int) ([]byte, bool) {
		return []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big)), false
	})
	s2 := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up2.addr}})
	sum := sha256.Sum256([]byte(big))
	if _, got, err := askGuest(s2, "/slowread?piece=1&every=0&url="+q(up2.url("/b")), 30*time.Second); err != nil || got != "200 3000 "+hex.EncodeToString(sum[:]) {
		t.Errorf("read a byte at a time: %q, %v", got, err)
	}
}

// A server that answers an upload early and then resets the connection (it closes with the
// upload unread, as a server without a lingering close does): the answer came whole before
// the reset, so the program gets it whole; only its writes fail.
func TestLoopFetchAttackEarlyAnswerThenReset(t *testing.T) {
	answered := make(chan struct{})
	up := startRawUp(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
		<-answered // the answer has reached the program, then the reset
		c.(*net.TCPConn).SetLinger(0)
	})
	s := startServer(t, serverOpts{Module: "fetchattack", Flags: []string{"--allow-connect", up.addr}})
	for i := range 5 {
		go afterLog(s, "upload answered 413", i, answered)
		_, got, err := askGuest(s, "/upload?n="+strconv.Itoa(64<<20)+"&url="+q(up.url("/up")), 8*time.Second)
		if err != nil {
			t.Fatalf("attempt %d: the program never answered: %v", i, err)
		}
		if !strings.HasPrefix(got, "413 too big! | writer: ERR") {
			t.Errorf("attempt %d: %q, want the whole 413 answer, then the writer's failure", i, got)
		}
	}
}

// afterLog sends on ch once the program has logged line more than seen times — or, so that
// no server waits for ever, after ioTimeout: a server that must act at a point in the
// program's work (busy in a callback, holding an answer) waits for the line saying so.
func afterLog(s *server, line string, seen int, ch chan<- struct{}) {
	eventually(ioTimeout, func() bool { return strings.Count(s.stdout.String(), line) > seen })
	ch <- struct{}{}
}
