package tests

// Attacks on the sendfile(2) path of body_file (host/internal/loop/bodyfile.go sendFile,
// Conn.sockFull), samples/static's path building, and --max-conns holding back raw TCP
// accepts (Op.WhenBelowConnCap).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sfServer starts samples/static on a fresh directory holding files (name: content).
func sfServer(t *testing.T, files map[string][]byte, flags ...string) (*server, string) {
	t.Helper()
	www := t.TempDir()
	for name, b := range files {
		p := filepath.Join(www, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, serverOpts{Module: "static", Workers: 1,
		Flags: append([]string{"--dir", www + ":/www:ro"}, flags...)})
	return s, www
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// procCPU is the CPU time (user + system) process pid has used.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("reading the process's stat: %v", err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// cpuOver is the server's CPU time over d, for a busy-loop check.
func cpuOver(t *testing.T, pid int, d time.Duration) time.Duration {
	before := procCPU(t, pid)
	time.Sleep(d) // bounded: asserting that nothing burns meanwhile
	return procCPU(t, pid) - before
}

// readPrefix reads one response's head from c and then up to n bytes of its body.
func readHeadThen(t *testing.T, c *rawConn, method string, n int64) (*http.Response, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading a response head: %v", err)
	}
	b := make([]byte, n)
	k, err := io.ReadFull(resp.Body, b)
	if err != nil {
		t.Fatalf("reading %d body bytes: %d, %v", n, k, err)
	}
	return resp, b
}

// Many responses pipelined on one connection, mixing sendfile bodies (1 MiB, 64 KiB exactly,
// a suffix range), copied ones (64 KiB - 1, a small file), and bodiless ones (HEAD and 304 of
// the large file), through a small window and a normal one: each response is framed right
// and carries its own bytes, and the last (Connection: close) ends the connection.
func TestSendfileAttackPipelinedMix(t *testing.T) {
	t.Parallel()
	a, b, c, h := randBytes(1<<20), randBytes(64<<10-1), randBytes(64<<10), randBytes(10<<20)
	s, _ := sfServer(t, map[string][]byte{"a.bin": a, "b.bin": b, "c.bin": c, "h.bin": h, "s.txt": []byte("small\n")})
	resp, _ := fetch(t, s, "HEAD", "/a.bin")
	etag := resp.Header.Get("ETag")
	type want struct {
		req, method string
		status      int
		body        []byte
	}
	reqs := []want{
		{"GET /h.bin HTTP/1.1\r\nHost: x\r\n\r\n", "GET", 200, h}, // fills the socket: the rest queue behind it
		{"GET /a.bin HTTP/1.1\r\nHost: x\r\n\r\n", "GET", 200, a},
		{"HEAD /a.bin HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD", 200, nil},
		{"GET /a.bin HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + "\r\n\r\n", "GET", 304, nil},
		{"GET /a.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-70000\r\n\r\n", "GET", 206, a[len(a)-70000:]},
		{"GET /a.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100-65635\r\n\r\n", "GET", 206, a[100:65636]},
		{"GET /b.bin HTTP/1.1\r\nHost: x\r\n\r\n", "GET", 200, b},
		{"GET /c.bin HTTP/1.1\r\nHost: x\r\n\r\n", "GET", 200, c},
		{"GET /s.txt HTTP/1.1\r\nHost: x\r\n\r\n", "GET", 200, []byte("small\n")},
		{"GET /a.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=5-\r\n\r\n", "GET", 206, a[5:]},
		{"GET /a.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET", 200, a},
	}
	var all strings.Builder
	for _, r := range reqs {
		all.WriteString(r.req)
	}
	for _, small := range []bool{true, false} {
		t.Run(fmt.Sprintf("small window %v", small), func(t *testing.T) {
			var cn *rawConn
			if small {
				cn = dialSmallWindow(t, s.Addr)
			} else {
				var err error
				if cn, err = dialRaw(s.Addr); err != nil {
					t.Fatal(err)
				}
				defer cn.Close()
			}
			if err := cn.send(all.String()); err != nil {
				t.Fatal(err)
			}
			for i, r := range reqs {
				resp, body, err := cn.readResponse(r.method, 20*time.Second)
				if err != nil || resp.StatusCode != r.status || !bytes.Equal(body, r.body) {
					st := 0
					if resp != nil {
						st = resp.StatusCode
					}
					t.Fatalf("response %d (%q): %v, status %d, %d body bytes, want %d %d", i, strings.SplitN(r.req, "\r\n", 2)[0], err, st, len(body), r.status, len(r.body))
				}
			}
			if err := cn.expectEOF(ioTimeout); err != nil {
				t.Fatalf("after Connection: close: %v", err)
			}
		})
	}
	t.Run("HTTP/1.0", func(t *testing.T) {
		cn := dialSmallWindow(t, s.Addr)
		if err := cn.send("GET /a.bin HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, body, err := cn.readResponse("GET", 20*time.Second)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, a) {
			t.Fatalf("HTTP/1.0 GET of 1 MiB: %v, %d bytes", err, len(body))
		}
		if err := cn.expectEOF(ioTimeout); err != nil {
			t.Fatal(err)
		}
	})
}

// A client that sends its request and shuts down its sending side (nc -N, or a pipelined
// batch followed by SHUT_WR) is owed every response in full: RATIONALE.md, "A client that
// half-closes still gets its responses". With the file waiting for a full socket, the EOF
// must not cut the response.
func TestSendfileAttackHalfClose(t *testing.T) {
	t.Parallel()
	big := randBytes(12 << 20) // beyond what the socket's send buffer holds (4 MiB at most)
	s, _ := sfServer(t, map[string][]byte{"big.bin": big})
	for _, tc := range []struct {
		name string
		reqs int
	}{{"one request", 1}, {"two pipelined", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			cn := dialSmallWindow(t, s.Addr)
			if err := cn.send(strings.Repeat("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", tc.reqs)); err != nil {
				t.Fatal(err)
			}
			if err := cn.Conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			for i := range tc.reqs {
				resp, body, err := cn.readResponse("GET", 20*time.Second)
				if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, big) {
					t.Fatalf("response %d of %d after a half-close: %v, %d of %d bytes", i+1, tc.reqs, err, len(body), len(big))
				}
			}
			if err := cn.expectEOF(ioTimeout); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The file changes while it is being sent through a small window: it shrinks (the response
// is cut and the connection closed: no hang, no bytes of another length), it grows (an
// append changes the file: the response is cut, never more or other bytes), it is replaced
// by another file of the same size under the same name (the client must not get a mix of the
// two under the first one's ETag: the host keeps the first file open, RATIONALE.md, "Files").
func TestSendfileAttackFileChanges(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	orig := randBytes(size)
	s, www := sfServer(t, map[string][]byte{"shrink.bin": orig, "grow.bin": orig, "swap.bin": orig, "inplace.bin": orig, "s.txt": []byte("small\n")})

	t.Run("shrinks", func(t *testing.T) {
		cn := dialSmallWindow(t, s.Addr)
		cn.send("GET /shrink.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, first := readHeadThen(t, cn, "GET", 300<<10)
		if err := os.Truncate(filepath.Join(www, "shrink.bin"), 1<<20); err != nil {
			t.Fatal(err)
		}
		cn.SetReadDeadline(time.Now().Add(20 * time.Second))
		rest, err := io.ReadAll(resp.Body)
		got := append(first, rest...)
		if isTimeout(err) {
			t.Fatalf("a file that shrank mid-send left the client waiting (%d bytes)", len(got))
		}
		// What the socket took before the truncation is in flight as page references (sendfile):
		// past the new end the kernel may have zeroed it, but the response is cut, so the
		// client knows to throw it away. Before the new end it must be the file's.
		if len(got) >= size || !bytes.Equal(got[:min(len(got), 1<<20)], orig[:min(len(got), 1<<20)]) {
			t.Fatalf("got %d bytes: want a response cut short whose first MiB is the file's", len(got))
		}
		if err := cn.expectEOF(ioTimeout); err != nil {
			t.Fatalf("after the cut response: %v", err)
		}
	})

	t.Run("grows", func(t *testing.T) {
		cn := dialSmallWindow(t, s.Addr)
		cn.send("GET /grow.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /s.txt HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, first := readHeadThen(t, cn, "GET", 300<<10)
		f, err := os.OpenFile(filepath.Join(www, "grow.bin"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(bytes.Repeat([]byte("X"), 1<<20))
		f.Close()
		cn.SetReadDeadline(time.Now().Add(20 * time.Second))
		rest, err := io.ReadAll(resp.Body)
		got := append(first, rest...)
		switch {
		case err == nil && bytes.Equal(got, orig):
			// Sent whole before the append was seen: the pipelined response follows.
			resp2, body, err := cn.readResponse("GET", ioTimeout)
			if err != nil || resp2.StatusCode != 200 || string(body) != "small\n" {
				t.Fatalf("the pipelined response after the grown file: %v %q", err, body)
			}
		case err == nil || !bytes.Equal(got, orig[:len(got)]):
			t.Fatalf("a file that grew mid-send: %v, %d bytes, not a prefix of the original cut short", err, len(got))
		default:
			if err := cn.expectEOF(ioTimeout); err != nil && isTimeout(err) {
				t.Fatalf("the connection stayed open after the cut response: %v", err)
			}
		}
	})

	t.Run("replaced", func(t *testing.T) {
		cn := dialSmallWindow(t, s.Addr)
		cn.send("GET /swap.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, first := readHeadThen(t, cn, "GET", 300<<10)
		other := filepath.Join(www, "other.tmp")
		if err := os.WriteFile(other, randBytes(size), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, filepath.Join(www, "swap.bin")); err != nil {
			t.Fatal(err)
		}
		cn.SetReadDeadline(time.Now().Add(20 * time.Second))
		rest, _ := io.ReadAll(resp.Body)
		got := append(first, rest...)
		if !bytes.Equal(got, orig[:len(got)]) {
			i := 0
			for i < len(got) && got[i] == orig[i] {
				i++
			}
			t.Fatalf("a file replaced mid-send: %d bytes sent as the first file (ETag %s), but from byte %d on they are another file's", len(got), resp.Header.Get("ETag"), i)
		}
	})

	t.Run("rewritten in place", func(t *testing.T) {
		// As cp(1) does over an existing file: O_TRUNC, then the new bytes, same size.
		cn := dialSmallWindow(t, s.Addr)
		cn.send("GET /inplace.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, first := readHeadThen(t, cn, "GET", 300<<10)
		if err := os.WriteFile(filepath.Join(www, "inplace.bin"), bytes.Repeat([]byte("N"), size), 0o644); err != nil {
			t.Fatal(err)
		}
		cn.SetReadDeadline(time.Now().Add(20 * time.Second))
		rest, err := io.ReadAll(resp.Body)
		got := append(first, rest...)
		if err == nil && len(got) == size && !bytes.Equal(got, orig) {
			i := 0
			for i < len(got) && got[i] == orig[i] {
				i++
			}
			zeros := bytes.Count(got[i:], []byte{0}) - bytes.Count(orig[i:], []byte{0})
			t.Fatalf("a file rewritten in place mid-send: a complete 200 (%d bytes, ETag %s) that is not the file: from byte %d on, %d zero bytes and %d of the new file's", len(got), resp.Header.Get("ETag"), i, zeros, bytes.Count(got, []byte("N")))
		}
		t.Logf("rewritten in place: %d bytes, %v", len(got), err)
	})
}

// Clients that reset the connection mid-file (SO_LINGER 0), or close it with the file in
// flight, leave no descriptor behind, no CPU burning, and the server serving.
func TestSendfileAttackResetMidFile(t *testing.T) {
	t.Parallel()
	big := randBytes(4 << 20)
	s, _ := sfServer(t, map[string][]byte{"big.bin": big})
	pid := s.cmd.Process.Pid
	fetch(t, s, "GET", "/big.bin") // warm: the loop's buffers, the page cache
	base := fdCount(t, pid)
	for i := range 20 {
		cn := dialSmallWindow(t, s.Addr)
		cn.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		readHeadThen(t, cn, "GET", int64(64<<10+i*10000))
		if i%2 == 0 {
			cn.Conn.(*net.TCPConn).SetLinger(0)
		}
		cn.Close()
	}
	if cpu := cpuOver(t, pid, 1500*time.Millisecond); cpu > 300*time.Millisecond {
		t.Errorf("the server used %v of CPU in 1.5 s after clients left mid-file: a busy loop", cpu)
	}
	// The client's own descriptors close with the test; the server's must go now.
	fdsBackTo(t, pid, base+1, "after 20 clients reset or left mid-file")
	resp, body := fetch(t, s, "GET", "/big.bin")
	if resp.StatusCode != 200 || !bytes.Equal(body, big) {
		t.Fatalf("after the resets: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// Many clients stop reading with the socket full of a file: the loop waits for their
// writable edges without spinning, answers a fresh client at once meanwhile, and the idle
// timeout closes each stalled one and frees its descriptor.
func TestSendfileAttackStalledClients(t *testing.T) {
	t.Parallel()
	big := randBytes(8 << 20)
	s, _ := sfServer(t, map[string][]byte{"big.bin": big, "s.txt": []byte("small\n")}, "--idle-timeout", "3s", "--access-log")
	pid := s.cmd.Process.Pid
	fetch(t, s, "GET", "/s.txt")
	base := fdCount(t, pid)
	const n = 30
	logged := s.stderr.appearsN("path=/big.bin", n)
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dialSmallWindow(t, s.Addr)
		conns[i].send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		readHeadThen(t, conns[i], "GET", 1000)
	}
	if cpu := cpuOver(t, pid, 1500*time.Millisecond); cpu > 300*time.Millisecond {
		t.Errorf("%d stalled sendfile clients: the server used %v of CPU in 1.5 s", n, cpu)
	}
	start := time.Now()
	resp, body := fetch(t, s, "GET", "/s.txt")
	if resp.StatusCode != 200 || string(body) != "small\n" || time.Since(start) > time.Second {
		t.Errorf("a fresh request beside stalled clients: %d %q in %v", resp.StatusCode, body, time.Since(start))
	}
	select {
	case <-logged:
	case <-time.After(15 * time.Second):
		t.Fatalf("the stalled clients were not all ended by the idle timeout:\n%s", s.stderr)
	}
	for i, cn := range conns {
		cn.SetReadDeadline(time.Now().Add(ioTimeout))
		k, err := io.Copy(io.Discard, cn.br)
		if isTimeout(err) || k >= int64(len(big)) {
			t.Fatalf("stalled client %d: read %d more bytes, %v: not closed", i, k, err)
		}
	}
	fdsBackTo(t, pid, base, "after the stalled clients were closed")
}

// A slow reader that keeps reading is not taken for a stalled one: the idle timeout runs
// from the last bytes the socket took, so a 1 MiB file trickling out over several idle
// timeouts arrives whole.
func TestSendfileAttackSlowReaderNotCut(t *testing.T) {
	t.Parallel()
	big := randBytes(1 << 20)
	s, _ := sfServer(t, map[string][]byte{"big.bin": big}, "--idle-timeout", "1s")
	cn := dialSmallWindow(t, s.Addr)
	cn.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, first := readHeadThen(t, cn, "GET", 1)
	got := first
	buf := make([]byte, 32<<10)
	deadline := time.Now().Add(18 * time.Second)
	for len(got) < len(big) && time.Now().Before(deadline) {
		cn.SetReadDeadline(time.Now().Add(ioTimeout))
		k, err := resp.Body.Read(buf)
		got = append(got, buf[:k]...)
		if err != nil {
			break
		}
		time.Sleep(40 * time.Millisecond) // the client's pace: ~0.8 MB/s at most, 3+ idle timeouts
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("a slow but steady reader got %d of %d bytes (prefix ok: %v)", len(got), len(big), bytes.Equal(got, big[:min(len(got), len(big))]))
	}
}

// Many slow clients at once, each through a small window, pipelining two large responses:
// all get their bytes exact, and no descriptor is left.
func TestSendfileAttackManySlowClients(t *testing.T) {
	t.Parallel()
	big := randBytes(1<<20 + 7)
	s, _ := sfServer(t, map[string][]byte{"big.bin": big})
	pid := s.cmd.Process.Pid
	fetch(t, s, "GET", "/big.bin")
	base := fdCount(t, pid)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan string, n)
	cpu0 := procCPU(t, pid)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: ioTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			}}
			c, err := d.Dial("tcp", s.Addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			cn := &rawConn{Conn: c, br: bufio.NewReaderSize(c, 4096)}
			cn.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1-\r\n\r\n")
			for j, want := range [][]byte{big, big[1:]} {
				resp, body, err := cn.readResponse("GET", 30*time.Second)
				if err != nil || !bytes.Equal(body, want) {
					errs <- fmt.Sprintf("client %d response %d: %v, %d bytes %v", i, j, err, len(body), resp != nil)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("server CPU for %d clients × 2 MiB: %v", n, procCPU(t, pid)-cpu0)
	fdsBackTo(t, pid, base, "after the slow clients")
}

// samples/static's path (root + path.Clean(p)): no spelling of a path reaches outside /www.
func TestSendfileAttackPathEscape(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	www := filepath.Join(base, "www")
	os.MkdirAll(filepath.Join(www, "sub"), 0o755)
	write(t, filepath.Join(www, "index.html"), "home\n")
	write(t, filepath.Join(www, "sub", "f.txt"), "in sub\n")
	write(t, filepath.Join(base, "secret.txt"), "SECRET")
	write(t, filepath.Join(base, "wwwsecret.txt"), "SECRET2")
	os.Mkdir(filepath.Join(base, "www2"), 0o755)
	write(t, filepath.Join(base, "www2", "x.txt"), "SECRET3")
	s := startServer(t, serverOpts{Module: "static", Workers: 1, Flags: []string{"--dir", www + ":/www:ro"}})
	for _, p := range []string{
		"/../secret.txt", "/..%2fsecret.txt", "/%2e%2e/secret.txt", "/%2e%2e%2fsecret.txt",
		"/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "//../secret.txt",
		"/./../secret.txt", "/..", "/../", "/..%2f..%2f..%2fetc%2fpasswd", "/../../../../etc/passwd",
		"secret.txt", "/../wwwsecret.txt", "/..%5csecret.txt", "/../www2/x.txt", "/%2e%2e/www2/x.txt",
		"/sub/..%2f..%2fwww2/x.txt", "/.%2e/secret.txt",
	} {
		cn, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		resp, body, err := cn.roundTrip("GET " + p + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		cn.Close()
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		if bytes.Contains(body, []byte("SECRET")) {
			t.Errorf("GET %s: %d %q: a file outside the grant", p, resp.StatusCode, body)
		}
	}
}

// --max-conns with a raw accept waiting at the cap, and a swap (SIGHUP): once a connection
// closes, the waiting one is served (by the new instance), and none of the held ones is
// lost; shutdown with one waiting ends promptly.
func TestSendfileAttackMaxConnsRawSwap(t *testing.T) {
	s := startServer(t, serverOpts{Module: "tcpattack", Flags: []string{"--max-conns", "2", "--env", "TCPATTACK_LISTEN=1", "--swap-drain-timeout", "3s"}})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := regexp.MustCompile(`tcp worker 0 at (\S+)`).FindStringSubmatch(s.stdout.String())[1]
	pid := s.cmd.Process.Pid
	held := dialAll(t, addr, 2)
	for i, c := range held {
		if g, err := readGreeting(c); err != nil {
			t.Fatalf("connection %d under the cap: %q, %v", i, g, err)
		}
	}
	extra := dialAll(t, addr, 1)[0]
	extra.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := extra.Read(make([]byte, 64)); n > 0 || !isTimeout(err) {
		t.Fatalf("a connection beyond --max-conns was served: %d bytes, %v", n, err)
	}
	reloaded := s.stderr.appears("reloaded")
	s.signal(t, syscall.SIGHUP)
	select {
	case <-reloaded:
	case <-time.After(15 * time.Second):
		t.Fatalf("no reload:\n%s", s.stderr)
	}
	// The old instance keeps its connections until the swap's drain ends (3 s): they close,
	// and the waiting connection must then be served.
	extra.SetReadDeadline(time.Now().Add(12 * time.Second))
	line, err := bufio.NewReader(extra).ReadString('\n')
	if err != nil {
		t.Fatalf("the connection waiting at the cap through a swap: %q, %v\nstderr:\n%s", line, err, s.stderr)
	}
	t.Logf("waiting connection served after the swap: %q", line)
	// A fresh connection now gets a slot too (the held ones are gone with the old instance).
	c2 := dialAll(t, addr, 1)[0]
	if g, err := readGreeting(c2); err != nil {
		t.Fatalf("a new connection after the swap: %q, %v", g, err)
	}
	_ = pid
}

// A raw connection waiting at the cap whose client gives up before a slot frees: once it is
// admitted, its descriptor goes (no leak), and the next waiting one is served.
func TestSendfileAttackMaxConnsWaiterLeft(t *testing.T) {
	s := startServer(t, serverOpts{Module: "tcpattack", Flags: []string{"--max-conns", "2", "--env", "TCPATTACK_LISTEN=1"}})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := regexp.MustCompile(`tcp worker 0 at (\S+)`).FindStringSubmatch(s.stdout.String())[1]
	pid := s.cmd.Process.Pid
	base := fdCount(t, pid)
	held := dialAll(t, addr, 2)
	for _, c := range held {
		if _, err := readGreeting(c); err != nil {
			t.Fatal(err)
		}
	}
	gone := dialAll(t, addr, 3)
	for _, c := range gone {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	next := dialAll(t, addr, 1)[0]
	held[0].Close()
	held[1].Close()
	if g, err := readGreeting(next); err != nil {
		t.Fatalf("the waiting connection behind three that left: %q, %v", g, err)
	}
	next.Close()
	fdsBackTo(t, pid, base, "after waiting connections left and the rest closed")
}

// SIGTERM with a raw accept waiting at the cap and the cap's connections held open: the
// process still ends within its shutdown timeout.
func TestSendfileAttackMaxConnsShutdown(t *testing.T) {
	s := startServer(t, serverOpts{Module: "tcpattack", Flags: []string{"--max-conns", "2", "--env", "TCPATTACK_LISTEN=1", "--shutdown-timeout", "2s"}})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := regexp.MustCompile(`tcp worker 0 at (\S+)`).FindStringSubmatch(s.stdout.String())[1]
	held := dialAll(t, addr, 2)
	for _, c := range held {
		if _, err := readGreeting(c); err != nil {
			t.Fatal(err)
		}
	}
	waiting := dialAll(t, addr, 2)
	waiting[0].SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _ := waiting[0].Read(make([]byte, 8)); n > 0 {
		t.Fatal("served beyond the cap")
	}
	start := time.Now()
	s.signal(t, syscall.SIGTERM)
	code := s.wait(t, 8*time.Second)
	t.Logf("exit %d after %v", code, time.Since(start))
	for i, c := range append(held, waiting...) {
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		_, err := io.Copy(io.Discard, c)
		if isTimeout(err) {
			t.Errorf("connection %d still open after the process ended", i)
		}
	}
}

// A swap (SIGHUP) and then a graceful shutdown (SIGTERM), each while a small-window client is
// in the middle of a large file waiting for socket room: the file still arrives whole (the
// retired instance answers its request; the shutdown lets it finish), then the connection
// closes and the process ends.
func TestSendfileAttackSwapAndShutdownMidFile(t *testing.T) {
	t.Parallel()
	big := randBytes(4 << 20)
	s, _ := sfServer(t, map[string][]byte{"big.bin": big}, "--shutdown-timeout", "15s", "--swap-drain-timeout", "15s")
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		cn := dialSmallWindow(t, s.Addr)
		cn.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, first := readHeadThen(t, cn, "GET", 200<<10)
		var seen <-chan struct{}
		if sig == syscall.SIGHUP {
			seen = s.stderr.appears("reloaded")
		}
		s.signal(t, sig)
		if seen != nil {
			select {
			case <-seen:
			case <-time.After(15 * time.Second):
				t.Fatalf("no reload:\n%s", s.stderr)
			}
		}
		cn.SetReadDeadline(time.Now().Add(15 * time.Second))
		rest, err := io.ReadAll(resp.Body)
		if got := append(first, rest...); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("%v mid-file: %v, %d of %d bytes", sig, err, len(got), len(big))
		}
		if sig == syscall.SIGTERM {
			if err := cn.expectEOF(ioTimeout); err != nil {
				t.Fatalf("after the file, at shutdown: %v", err)
			}
			s.wait(t, 10*time.Second)
		} else if resp2, body, err := cn.roundTrip("GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99999\r\n\r\n"); err != nil || resp2.StatusCode != 206 || !bytes.Equal(body, big[:100000]) {
			t.Fatalf("the next request after the swap: %v %d bytes", err, len(body))
		}
	}
}
