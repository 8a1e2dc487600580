package loop

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzServe feeds arbitrary bytes, split at arbitrary points, to a connection served by the
// hello guest, as a peer would send them, then hangs up. Whatever the bytes, the host must
// not panic, every byte it sends back must parse as a sequence of HTTP/1.1 responses (the
// guest's 200s, or the host's own 4xx/5xx and then a close), and no request may stay open.
func FuzzServe(f *testing.F) {
	for _, seed := range []string{
		benchRequest,
		benchRequest + benchRequest,
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + benchRequest,
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
	} {
		f.Add([]byte(seed), uint16(7))
	}
	l := guestLoop(f, buildSample(f, "hello"))
	ln := listenerOf(f, l)
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Skip(err)
		}
		unix.SetNonblock(fds[0], true)
		unix.SetNonblock(fds[1], true)
		defer unix.Close(fds[1])
		l.addConn(fds[0], ln)
		c := l.conns[fds[0]]
		step := int(split%512) + 1
		var wire []byte
		buf := make([]byte, 64<<10)
		pump := func() {
			l.readConn(c)
			l.settle()
			for {
				n, _ := unix.Read(fds[1], buf)
				if n <= 0 {
					break
				}
				wire = append(wire, buf[:n]...)
			}
			if !c.closed {
				l.flush(c)
			}
		}
		for i := 0; i < len(in) && !c.closed; i += step {
			unix.Write(fds[1], in[i:min(i+step, len(in))])
			pump()
		}
		unix.Shutdown(fds[1], unix.SHUT_WR)
		for i := 0; i < 8 && !c.closed; i++ {
			pump()
		}
		if !c.closed {
			l.closeConn(c, 0)
			l.settle()
		}
		if n := l.exchanges.len(); n != 0 {
			t.Fatalf("%d requests still open after the peer left", n)
		}
		br := bufio.NewReader(bytes.NewReader(wire))
		for {
			if _, err := br.Peek(1); err == io.EOF {
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("unparseable output: %v\n%q", err, wire)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 100 {
				continue
			}
			if resp.StatusCode != 200 && (resp.StatusCode < 400 || !resp.Close) {
				t.Fatalf("status %d (close %v) in %q", resp.StatusCode, resp.Close, wire)
			}
		}
	})
}
