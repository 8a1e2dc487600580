package tests

// End-to-end tests of streaming (ABI 1.1) against samples/stream: request bodies delivered as
// they arrive, with pause and resume; responses written with back-pressure (Full/OnDrain);
// Expect: 100-continue on a streamed body; and the host's memory staying bounded while 100 MiB
// bodies go through it. Also 10,000 concurrent keep-alive connections on one server.
//
// The transfer, slow-reader and 10,000-connection tests are not parallel: they measure peak
// memory and latency, which other tests running at the same time would blur, and they are
// heavy enough to slow those tests down.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func init() {
	// samples/stream joins the guests TestMain builds and prewarms.
	guestBuilds = append(guestBuilds, guestBuild{"stream", "./samples/stream", true})
}

const (
	bigSize         = 100 << 20       // the size of the large transfers: 100 MiB
	rssBound        = 128 << 20       // the most peak RSS (VmHWM) the server may reach
	transferTimeout = 2 * time.Minute // bound on one 100 MiB transfer
)

// patternBlock is the content of /download from offset 0: byte i is i % 251.
var patternBlock = func() []byte {
	b := make([]byte, 251*256)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

// patternReader produces /download's content without end.
type patternReader struct{ off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], patternBlock[r.off%251:])
		n += k
		r.off += int64(k)
	}
	return n, nil
}

// patternSum is the sha256 of the first n bytes of /download's content.
func patternSum(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, io.LimitReader(&patternReader{}, n))
	return [32]byte(h.Sum(nil))
}

// randomBody is n pseudo-random bytes, the same for the same seed.
func randomBody(seed byte, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n)
}

// randomSum is the sha256 of randomBody(seed, n).
func randomSum(seed byte, n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, randomBody(seed, n))
	return [32]byte(h.Sum(nil))
}

// uploadAnswer is what /upload answers for a body of n bytes with sha256 sum.
func uploadAnswer(n int64, sum [32]byte) string { return fmt.Sprintf("%d %x\n", n, sum) }

// peakRSS reads the process's peak resident set size (VmHWM) from /proc, in bytes; ok is
// false where there is no /proc (not Linux).
func peakRSS(t testing.TB, p *proc) (rss int64, ok bool) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return 0, false
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatalf("reading the server's /proc status: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, found := strings.CutPrefix(line, "VmHWM:"); found {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parsing %q: %v", line, err)
			}
			return kb << 10, true
		}
	}
	t.Fatalf("no VmHWM in the server's /proc status:\n%s", status)
	return 0, false
}

// checkPeakRSS logs the server's peak RSS and fails the test if it passed rssBound.
func checkPeakRSS(t testing.TB, p *proc, when string) {
	t.Helper()
	rss, ok := peakRSS(t, p)
	if !ok {
		t.Logf("peak RSS %s: not measured (no /proc on %s)", when, runtime.GOOS)
		return
	}
	t.Logf("server peak RSS (VmHWM) %s: %.1f MiB", when, mib(rss))
	if rss > rssBound {
		t.Errorf("server peak RSS %s is %.1f MiB, want at most %.0f MiB", when, mib(rss), mib(rssBound))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// logRate logs a transfer's size, time and throughput.
func logRate(t testing.TB, what string, n int64, d time.Duration) {
	t.Helper()
	t.Logf("%s: %.0f MiB in %v (%.0f MiB/s)", what, mib(n), d.Round(time.Millisecond), mib(n)/d.Seconds())
}

// runCurl runs curl with args (bounded by transferTimeout) and returns its standard output.
func runCurl(t testing.TB, curl string, args ...string) string {
	t.Helper()
	stdout, _ := runCurl2(t, curl, args...)
	return stdout
}

// runCurl2 is runCurl returning standard error as well.
func runCurl2(t testing.TB, curl string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, curl, append([]string{"-sS", "--max-time", strconv.Itoa(int(transferTimeout / time.Second))}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, truncate(stdout.String(), 500), stderr.String())
	}
	return stdout.String(), stderr.String()
}

// bigClient is a net/http client for the large transfers.
func bigClient() *http.Client {
	return &http.Client{Transport: &http.Transport{}, Timeout: transferTimeout}
}

// TestStreamTransfers sends 100 MiB through the host in every direction — uploads with curl
// and net/http, downloads with both, an echo with net/http — on one server, and checks the
// server's peak memory afterwards: with bodies streamed and writes paced by Full/OnDrain the
// host never holds more than a few pieces of a body.
func TestStreamTransfers(t *testing.T) {
	s := startServer(t, serverOpts{Module: "stream"})
	checkPeakRSS(t, s.proc, "after start")
	hc := bigClient()
	defer hc.CloseIdleConnections()

	t.Run("upload curl", func(t *testing.T) {
		curl := requireTool(t, "curl", "curl")
		file := filepath.Join(t.TempDir(), "upload.bin")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(f, h), randomBody(1, bigSize)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// -T streams the file as a PUT with a Content-Length; the sample's /upload takes
		// PUT as well as POST. curl sends Expect: 100-continue for a body this large (made
		// explicit here) and waits for the 100 Continue a streaming server sends once the
		// handler has returned without pausing; -v shows it arrive.
		got, trace := runCurl2(t, curl, "-v", "-H", "Expect: 100-continue", "--expect100-timeout", "60", "-T", file, s.URL("/upload"))
		logRate(t, "curl -T upload", bigSize, time.Since(start))
		if want := uploadAnswer(bigSize, [32]byte(h.Sum(nil))); got != want {
			t.Errorf("/upload answered %q, want %q", got, want)
		}
		if !strings.Contains(trace, "< HTTP/1.1 100 Continue") {
			t.Errorf("curl did not get a 100 Continue:\n%s", trace)
		}
	})

	t.Run("upload net/http chunked", func(t *testing.T) {
		req, err := http.NewRequest("POST", s.URL("/upload"), randomBody(2, bigSize))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // unknown: net/http sends it chunked, straight from the reader
		req.TransferEncoding = []string{"chunked"}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		logRate(t, "net/http chunked upload", bigSize, time.Since(start))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d, err %v, body %q", resp.StatusCode, err, body)
		}
		if want := uploadAnswer(bigSize, randomSum(2, bigSize)); string(body) != want {
			t.Errorf("/upload answered %q, want %q", body, want)
		}
	})

	wantDownload := patternSum(bigSize)
	url := s.URL("/download?size=" + strconv.Itoa(bigSize))

	t.Run("download curl", func(t *testing.T) {
		curl := requireTool(t, "curl", "curl")
		file := filepath.Join(t.TempDir(), "download.bin")
		start := time.Now()
		out := runCurl(t, curl, "-o", file, "-w", "%{http_code} %{size_download}", url)
		logRate(t, "curl download", bigSize, time.Since(start))
		if want := "200 " + strconv.Itoa(bigSize); out != want {
			t.Errorf("curl -w says %q, want %q", out, want)
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			t.Fatal(err)
		}
		if n != bigSize || [32]byte(h.Sum(nil)) != wantDownload {
			t.Errorf("downloaded %d bytes with sha256 %x, want %d with %x", n, h.Sum(nil), bigSize, wantDownload)
		}
	})

	t.Run("download net/http", func(t *testing.T) {
		start := time.Now()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != bigSize {
			t.Fatalf("status %d, Content-Length %d; want 200, %d", resp.StatusCode, resp.ContentLength, bigSize)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		logRate(t, "net/http download", n, time.Since(start))
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		if n != bigSize || [32]byte(h.Sum(nil)) != wantDownload {
			t.Errorf("downloaded %d bytes with sha256 %x, want %d with %x", n, h.Sum(nil), bigSize, wantDownload)
		}
	})

	t.Run("echo net/http", func(t *testing.T) {
		// The request body is sent while the echo is read: net/http's client returns the
		// response as soon as its head arrives (the sample answers with the first piece)
		// and keeps writing the body meanwhile. Neither side could buffer 100 MiB: the
		// server pauses the body whenever the client lags behind reading the echo.
		req, err := http.NewRequest("POST", s.URL("/echo"), randomBody(3, bigSize))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = bigSize
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		logRate(t, "net/http echo (both ways at once)", n, time.Since(start))
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		if want := randomSum(3, bigSize); n != bigSize || [32]byte(h.Sum(nil)) != want {
			t.Errorf("echoed %d bytes with sha256 %x, want %d with %x", n, h.Sum(nil), bigSize, want)
		}
	})

	checkPeakRSS(t, s.proc, "after the transfers")
}

// TestStreamSmallBodies covers the edges of the streamed paths with small bodies: empty, a
// body that arrives whole with the head (one OnData, then OnEnd), one larger than the inbox,
// both framings; empty and tiny downloads; and the sample's errors.
func TestStreamSmallBodies(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "stream"})
	c := client(nil)
	defer c.CloseIdleConnections()
	for _, size := range []int64{0, 1, 11, 64 << 10, 200 << 10} {
		for _, chunked := range []bool{false, true} {
			framing := "Content-Length"
			if chunked {
				framing = "chunked"
			}
			for _, path := range []string{"/upload", "/echo"} {
				t.Run(fmt.Sprintf("POST %s %d %s", path, size, framing), func(t *testing.T) {
					data, _ := io.ReadAll(randomBody(byte(size), size))
					body := postBytes(t, c, s.URL(path), data, chunked)
					want := string(data)
					if path == "/upload" {
						want = uploadAnswer(size, sha256.Sum256(data))
					}
					if string(body) != want {
						t.Errorf("got %d bytes (sha256 %x), want %d (sha256 %x)", len(body), sha256.Sum256(body), len(want), sha256.Sum256([]byte(want)))
					}
				})
			}
		}
	}
	for _, size := range []int{0, 1, 251, 65537, 1 << 20} {
		t.Run("GET /download?size="+strconv.Itoa(size), func(t *testing.T) {
			resp, body := httpGet(t, c, s.URL("/download?size="+strconv.Itoa(size)))
			if resp.StatusCode != 200 || resp.ContentLength != int64(size) {
				t.Fatalf("status %d, Content-Length %d; want 200, %d", resp.StatusCode, resp.ContentLength, size)
			}
			want, _ := io.ReadAll(io.LimitReader(&patternReader{}, int64(size)))
			if !bytes.Equal(body, want) {
				t.Errorf("got %d bytes (sha256 %x), want %d (sha256 %x)", len(body), sha256.Sum256(body), size, sha256.Sum256(want))
			}
		})
	}
	for _, tt := range []struct{ target string }{{"/download?size=x"}, {"/nowhere"}} {
		t.Run("GET "+tt.target, func(t *testing.T) {
			resp, _ := httpGet(t, c, s.URL(tt.target))
			if resp.StatusCode != 400 && resp.StatusCode != 404 {
				t.Errorf("status %d, want 400 or 404", resp.StatusCode)
			}
		})
	}
	t.Run("pipelined after streamed bodies", func(t *testing.T) {
		// Six requests in one write: what follows a streamed body (one that fits the inbox,
		// a chunked one, one larger than the inbox) is the next request, and HEAD of a
		// Content-Length download sends the head alone.
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		big, _ := io.ReadAll(randomBody(9, 100_000))
		reqs := []struct{ req, wantBody string }{
			{"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", uploadAnswer(5, sha256.Sum256([]byte("hello")))},
			{get("/download?size=3"), "\x00\x01\x02"},
			{"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "abc"},
			{"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + string(big), uploadAnswer(100_000, sha256.Sum256(big))},
			{"HEAD /download?size=1000000 HTTP/1.1\r\nHost: x\r\n\r\n", ""},
			{get("/download?size=2"), "\x00\x01"},
		}
		var all strings.Builder
		for _, r := range reqs {
			all.WriteString(r.req)
		}
		if err := c.send(all.String()); err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs {
			resp, body, err := c.readResponse(methodOf(r.req), ioTimeout)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if resp.StatusCode != 200 || string(body) != r.wantBody {
				t.Fatalf("response %d: status %d body %q, want 200 %q", i, resp.StatusCode, truncate(string(body), 100), r.wantBody)
			}
			if methodOf(r.req) == "HEAD" && resp.Header.Get("Content-Length") != "1000000" {
				t.Errorf("HEAD: Content-Length %q, want 1000000", resp.Header.Get("Content-Length"))
			}
		}
	})

	t.Run("keep-alive after an upload", func(t *testing.T) {
		// One connection: a streamed upload, then more requests on the same connection.
		conn, resp, body := rawRequest(t, s.Addr, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
		if want := uploadAnswer(5, sha256.Sum256([]byte("hello"))); resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("status %d body %q, want 200 %q", resp.StatusCode, body, want)
		}
		resp, body, err := conn.roundTrip("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
		if want := uploadAnswer(3, sha256.Sum256([]byte("abc"))); err != nil || resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("second request: %v, body %q, want %q", err, body, want)
		}
		resp, body, err = conn.roundTrip(get("/download?size=3"))
		if err != nil || resp.StatusCode != 200 || string(body) != "\x00\x01\x02" {
			t.Fatalf("third request: %v, body %q", err, body)
		}
	})
}

// TestStreamEchoBackPressure sends 100 MiB to /echo without reading the echo: the server
// must pause the body once its output is full, so that TCP stops the sender well short of the
// whole body (a server that kept reading would have to buffer it, or drop the connection at
// its output cap). Reading the echo then lets the rest through, intact.
func TestStreamEchoBackPressure(t *testing.T) {
	s := startServer(t, serverOpts{Module: "stream"})
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(bigSize) + "\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	wrote := make(chan error, 1)
	go func() {
		c.SetWriteDeadline(time.Now().Add(transferTimeout))
		buf := make([]byte, 64<<10)
		body := randomBody(5, bigSize)
		for {
			n, err := io.ReadFull(body, buf)
			if n > 0 {
				k, werr := c.Write(buf[:n])
				sent.Add(int64(k))
				if werr != nil {
					wrote <- werr
					return
				}
			}
			if err != nil {
				wrote <- nil // the whole body is out
				return
			}
		}
	}()

	// Do not read: the sender must stall.
	var stalledAt int64
	stalled := eventually(15*time.Second, func() bool {
		before := sent.Load()
		time.Sleep(500 * time.Millisecond)
		stalledAt = sent.Load()
		return stalledAt == before && stalledAt > 0
	})
	if !stalled || stalledAt >= bigSize/2 {
		t.Fatalf("with the echo unread, the sender did not stall (sent %.1f MiB of %.0f)", mib(sent.Load()), mib(bigSize))
	}
	t.Logf("with the echo unread, the sender stalled after %.1f MiB of %.0f (kernel buffers both ways plus the host's mark)", mib(stalledAt), mib(bigSize))
	checkPeakRSS(t, s.proc, "while the sender is stalled")

	start := time.Now()
	c.SetReadDeadline(time.Now().Add(transferTimeout))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	logRate(t, "the echo, read after the stall", n, time.Since(start))
	if err != nil {
		t.Fatalf("after %d bytes: %v", n, err)
	}
	if want := randomSum(5, bigSize); n != bigSize || [32]byte(h.Sum(nil)) != want {
		t.Errorf("echoed %d bytes with sha256 %x, want %d with %x", n, h.Sum(nil), bigSize, want)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Errorf("sending the body: %v", err)
		}
	case <-time.After(ioTimeout):
		t.Error("the sender did not finish after the echo was read")
	}
	checkPeakRSS(t, s.proc, "after the echo")
}

// TestStreamLines reads the timer-driven stream: ten lines, sent 100 ms apart, so they must
// arrive spread over time rather than all at the end.
func TestStreamLines(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "stream"})
	for _, path := range []string{"/", "/lines"} {
		t.Run("GET "+path, func(t *testing.T) {
			c := client(nil)
			defer c.CloseIdleConnections()
			start := time.Now()
			resp, err := c.Get(s.URL(path))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("Transfer-Encoding %q, want chunked", resp.TransferEncoding)
			}
			br := bufio.NewReader(resp.Body)
			var lines []string
			var at []time.Duration
			for {
				line, err := br.ReadString('\n')
				if line != "" {
					lines = append(lines, line)
					at = append(at, time.Since(start))
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("after %d lines: %v", len(lines), err)
				}
			}
			var want []string
			for i := 1; i <= 10; i++ {
				want = append(want, "line "+strconv.Itoa(i)+"\n")
			}
			if strings.Join(lines, "") != strings.Join(want, "") {
				t.Fatalf("got %q, want %q", lines, want)
			}
			spread := at[len(at)-1] - at[0]
			t.Logf("first line after %v, last after %v: spread %v", at[0].Round(time.Millisecond), at[len(at)-1].Round(time.Millisecond), spread.Round(time.Millisecond))
			if spread < 500*time.Millisecond {
				t.Errorf("the lines arrived within %v of each other (at %v), want at least 500ms between the first and the last", spread, at)
			}
		})
	}
}

// TestStreamExpectContinue sends the head of an upload with Expect: 100-continue and waits
// for "100 Continue" before sending the body, as a careful client does.
func TestStreamExpectContinue(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{Module: "stream"})
	tests := []struct {
		name    string
		size    int
		chunked bool
	}{
		{"Content-Length 11", 11, false},
		{"Content-Length 1MiB", 1 << 20, false},
		{"chunked 1MiB", 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, _ := io.ReadAll(randomBody(7, int64(tt.size)))
			c, err := dialRaw(s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			head := "POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
			if tt.chunked {
				head += "Transfer-Encoding: chunked\r\n\r\n"
			} else {
				head += "Content-Length: " + strconv.Itoa(tt.size) + "\r\n\r\n"
			}
			if err := c.send(head); err != nil {
				t.Fatal(err)
			}
			resp, _, err := c.readResponse("POST", ioTimeout)
			if err != nil {
				t.Fatalf("waiting for 100 Continue: %v", err)
			}
			if resp.StatusCode != 100 || resp.Proto != "HTTP/1.1" {
				t.Fatalf("got %s %s before the body, want HTTP/1.1 100 Continue", resp.Proto, resp.Status)
			}
			body := string(data)
			if tt.chunked {
				var b strings.Builder
				for rest := data; len(rest) > 0; {
					n := min(len(rest), 100_000)
					fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
					rest = rest[n:]
				}
				b.WriteString("0\r\n\r\n")
				body = b.String()
			}
			if err := c.send(body); err != nil {
				t.Fatal(err)
			}
			resp, got, err := c.readResponse("POST", ioTimeout)
			if err != nil {
				t.Fatalf("reading the final response: %v", err)
			}
			if want := uploadAnswer(int64(tt.size), sha256.Sum256(data)); resp.StatusCode != 200 || string(got) != want {
				t.Fatalf("final response %d %q, want 200 %q", resp.StatusCode, got, want)
			}
			// The connection stays usable.
			resp, got, err = c.roundTrip(get("/download?size=2"))
			if err != nil || resp.StatusCode != 200 || string(got) != "\x00\x01" {
				t.Fatalf("next request on the connection: %v, %v, %q", resp, err, got)
			}
		})
	}

	t.Run("answered without the body", func(t *testing.T) {
		// A handler that answers at once (404 here) does not ask for the body: the answer
		// comes without a 100 Continue before it.
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.send("POST /nowhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, _, err := c.readResponse("POST", ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 404 {
			t.Fatalf("status %d, want 404 (and no 100 Continue)", resp.StatusCode)
		}
	})
}

// TestStreamSlowReader downloads 100 MiB at about 2 MiB/s for 3 s, then hangs up. Meanwhile
// another connection to the same (single) worker keeps being served promptly, and the host
// does not buffer what the slow client has not read. (The prompt requests are small
// downloads: the sample's GET / is the line stream, which takes a second by design.)
func TestStreamSlowReader(t *testing.T) {
	s := startServer(t, serverOpts{Module: "stream"}) // one worker: both clients share its loop
	const (
		rate    = 2 << 20 // bytes per second
		readFor = 3 * time.Second
		quick   = 500 * time.Millisecond
	)

	slow, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.send(get("/download?size=" + strconv.Itoa(bigSize))); err != nil {
		t.Fatal(err)
	}
	slow.SetReadDeadline(time.Now().Add(readFor + ioTimeout))
	resp, err := http.ReadResponse(slow.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != bigSize {
		t.Fatalf("status %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}

	type result struct {
		n   int64
		err error
	}
	slowDone := make(chan result, 1)
	go func() {
		start := time.Now()
		buf := make([]byte, 32<<10)
		want := make([]byte, len(buf))
		pat := &patternReader{}
		var n int64
		for time.Since(start) < readFor {
			allowed := int64(time.Since(start).Seconds()*rate) - n
			if allowed <= 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			k, err := resp.Body.Read(buf[:min(int64(len(buf)), allowed)])
			pat.Read(want[:k])
			if !bytes.Equal(buf[:k], want[:k]) {
				slowDone <- result{n, fmt.Errorf("wrong bytes at offset %d", n)}
				return
			}
			n += int64(k)
			if err != nil {
				slowDone <- result{n, err}
				return
			}
		}
		slow.Close()
		slowDone <- result{n, nil}
	}()

	// Meanwhile: 50 requests, one every 50 ms, on another connection.
	other, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var worst time.Duration
	for i := range 50 {
		start := time.Now()
		if err := other.send(get("/download?size=1000")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, body, err := other.readResponse("GET", ioTimeout)
		took := time.Since(start)
		worst = max(worst, took)
		if err != nil || resp.StatusCode != 200 || len(body) != 1000 {
			t.Fatalf("request %d while the slow client reads: %v, %v, %d bytes", i, resp, err, len(body))
		}
		if took > quick {
			t.Errorf("request %d took %v while the slow client reads, want at most %v", i, took, quick)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("50 requests during the slow download: the slowest took %v", worst.Round(time.Microsecond))

	r := <-slowDone
	if r.err != nil {
		t.Fatalf("the slow client, after %d bytes: %v", r.n, r.err)
	}
	t.Logf("the slow client read %.1f MiB in %v", mib(r.n), readFor)
	if r.n < rate || r.n > 2*rate*int64(readFor/time.Second) {
		t.Errorf("the slow client read %d bytes in %v, want about %d", r.n, readFor, rate*int64(readFor/time.Second))
	}
	checkPeakRSS(t, s.proc, "after the slow download")

	// Once the slow client is gone the server serves on, and still has its memory.
	if resp, body, err := other.roundTrip(get("/download?size=10")); err != nil || resp.StatusCode != 200 || len(body) != 10 {
		t.Fatalf("after the slow client closed: %v, %v, %q", resp, err, body)
	}
}

// TestTenThousandConnections holds 10,000 keep-alive connections to one server (two workers)
// open at once: every one sends a request and gets 200, all of them before any reads its
// answer, then all do it again on the same connections.
func TestTenThousandConnections(t *testing.T) {
	const conns = 10_000
	if runtime.GOOS != "linux" {
		t.Skip("needs the loopback addresses 127.0.0.2-9 for enough source ports (Linux routes all of 127/8 to lo)")
	}
	// One descriptor per connection here, and one per connection in the server (which
	// inherits the limit).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	const need = conns + 1000
	if lim.Max < need {
		msg := fmt.Sprintf("RLIMIT_NOFILE hard limit is %d, the test needs %d descriptors", lim.Max, need)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Set it even if Go's runtime already raised the soft limit at start-up: an explicit
	// Setrlimit also stops os/exec from giving the server the original soft limit back.
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raising RLIMIT_NOFILE to %d: %v", lim.Max, err)
	}

	s := startServer(t, serverOpts{Module: "whoami", Workers: 2})
	start := time.Now()
	deadline := start.Add(60 * time.Second)

	// forEach runs fn for every connection index with a few hundred goroutines, and stops
	// at the first error.
	const par = 256
	var failed atomic.Pointer[error]
	forEach := func(phase string, fn func(i int) error) {
		t.Helper()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range par {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for failed.Load() == nil {
					i := int(next.Add(1)) - 1
					if i >= conns {
						return
					}
					if err := fn(i); err != nil {
						err = fmt.Errorf("%s, connection %d (%d s into the test): %w", phase, i, int(time.Since(start).Seconds()), err)
						failed.CompareAndSwap(nil, &err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			t.Fatal(*err)
		}
		t.Logf("%s: done %v into the test", phase, time.Since(start).Round(time.Millisecond))
	}

	cs := make([]*rawConn, conns)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	forEach("dial", func(i int) error {
		d := net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))},
			Deadline:  deadline,
		}
		c, err := d.Dial("tcp", s.Addr)
		if err != nil {
			return err
		}
		c.SetDeadline(deadline)
		cs[i] = &rawConn{Conn: c, br: bufio.NewReader(c)}
		return nil
	})

	var workers [2]atomic.Int64
	for round := 1; round <= 2; round++ {
		forEach(fmt.Sprintf("round %d: send", round), func(i int) error {
			_, err := io.WriteString(cs[i], "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			return err
		})
		forEach(fmt.Sprintf("round %d: receive", round), func(i int) error {
			resp, err := http.ReadResponse(cs[i].br, nil)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "worker ") || resp.Close {
				return fmt.Errorf("status %d, close %v, body %q", resp.StatusCode, resp.Close, body)
			}
			if w, err := strconv.Atoi(resp.Header.Get("X-Worker")); err == nil && w >= 0 && w < 2 && round == 1 {
				workers[w].Add(1)
			}
			return nil
		})
	}
	elapsed := time.Since(start)
	t.Logf("%d connections × 2 requests in %v; first requests served by worker 0: %d, worker 1: %d",
		conns, elapsed.Round(time.Millisecond), workers[0].Load(), workers[1].Load())
	if workers[0].Load()+workers[1].Load() != conns {
		t.Errorf("only %d responses named their worker", workers[0].Load()+workers[1].Load())
	}
	if workers[0].Load() == 0 || workers[1].Load() == 0 {
		t.Errorf("the connections did not spread over both workers: %d and %d", workers[0].Load(), workers[1].Load())
	}
	if elapsed > 60*time.Second {
		t.Errorf("took %v, want at most 60s", elapsed)
	}
	if rss, ok := peakRSS(t, s.proc); ok { // per-connection state is the host's business: logged, not bounded
		t.Logf("server peak RSS (VmHWM) with 10,000 connections: %.1f MiB", mib(rss))
	}
}

// An answer given before the request body was read reaches a client that is still sending:
// the host shuts its side and drains the rest instead of resetting the connection, and the
// answer says Connection: close.
func TestEarlyAnswerReachesUploadingClient(t *testing.T) {
	stream := startServer(t, serverOpts{Module: "stream"})
	limited := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--body-limit", "1k"}})
	for _, tc := range []struct {
		name   string
		url    string
		status int
	}{
		{"streamed body, unknown path", stream.URL("/nowhere"), 404},
		{"buffered body over the limit", limited.URL("/echo"), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 10; i++ {
				req, _ := http.NewRequest("POST", tc.url, randomBody(byte(i), 20<<20))
				req.ContentLength = 20 << 20
				resp, err := client(nil).Do(req)
				if err != nil {
					t.Fatalf("try %d: %v (the answer was lost)", i, err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.status || !resp.Close {
					t.Fatalf("try %d: status %d, Connection: close %v; want %d and close", i, resp.StatusCode, resp.Close, tc.status)
				}
			}
		})
	}
}
