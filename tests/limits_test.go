package tests

import (
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Slowloris: 500 connections dribbling one header byte per second are closed by the header
// timeout (with 408), while normal requests keep being served meanwhile.
func TestSlowlorisClosedByHeaderTimeout(t *testing.T) {
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--header-timeout", "2s"}})
	const n = 500
	var closed, answered408 atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "))
			// Dribble one byte a second, at most 10 s, reading whatever comes back.
			got := make(chan string, 1)
			go func() {
				buf := make([]byte, 512)
				c.SetReadDeadline(time.Now().Add(12 * time.Second))
				var all []byte
				for {
					k, err := c.Read(buf)
					all = append(all, buf[:k]...)
					if err != nil {
						got <- string(all)
						return
					}
				}
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for j := 0; j < 10; j++ {
				select {
				case resp := <-got:
					closed.Add(1)
					if strings.HasPrefix(resp, "HTTP/1.1 408 ") {
						answered408.Add(1)
					}
					return
				case <-tick.C:
					c.Write([]byte("a"))
				}
			}
		}()
	}
	// Normal requests are served while the slow connections hang on.
	for i := 0; i < 20; i++ {
		_, body := httpGet(t, client(nil), s.URL("/"))
		if !strings.HasPrefix(string(body), "worker 0") {
			t.Fatalf("normal request %d: %q", i, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if closed.Load() != n || answered408.Load() != n {
		t.Fatalf("%d of %d slow connections closed, %d with 408, in %v", closed.Load(), n, answered408.Load(), time.Since(start))
	}
	if el := time.Since(start); el > 9*time.Second {
		t.Fatalf("closing took %v with a 2 s header timeout", el)
	}
}

func TestIdleAndBodyTimeouts(t *testing.T) {
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--idle-timeout", "500ms", "--body-timeout", "500ms"}})
	t.Run("idle keep-alive connection is closed", func(t *testing.T) {
		c, resp, _ := rawRequest(t, s.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		defer c.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if err := c.expectEOF(3 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stalled body gets 408", func(t *testing.T) {
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
		resp, _, err := c.readResponse("POST", 3*time.Second)
		if err != nil || resp.StatusCode != 408 {
			t.Fatalf("resp %v, err %v", resp, err)
		}
		if err := c.expectEOF(time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// At --max-conns the host stops accepting: established connections keep being served, a new
// one waits in the backlog unanswered, and is served once another connection closes.
func TestMaxConns(t *testing.T) {
	s := startServer(t, serverOpts{Module: "whoami", Flags: []string{"--max-conns", "4"}})
	var held []*rawConn
	for i := 0; i < 4; i++ {
		c, resp, _ := rawRequest(t, s.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("conn %d: status %d", i, resp.StatusCode)
		}
		held = append(held, c)
	}
	extra, err := dialRaw(s.Addr) // the kernel completes the handshake; the host does not accept
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, _, err := extra.readResponse("GET", 700*time.Millisecond); err == nil {
		t.Fatal("a connection beyond --max-conns was served")
	}
	for i, c := range held {
		if resp, _, err := c.roundTrip("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("established conn %d at the cap: %v %v", i, resp, err)
		}
	}
	held[0].Close()
	resp, _, err := extra.readResponse("GET", 5*time.Second)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a connection closed, the waiting one got %v, %v", resp, err)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}

// --max-conns counts a program's raw TCP connections too: at the cap an accepted connection
// waits unserved (as an HTTP one waits in the backlog) and is served once another closes.
func TestMaxConnsRawTCP(t *testing.T) {
	s := startServer(t, serverOpts{Module: "tcpattack", Flags: []string{"--max-conns", "2", "--env", "TCPATTACK_LISTEN=1"}})
	s.awaitStdout(t, "tcp worker 0 at ", ioTimeout)
	addr := regexp.MustCompile(`tcp worker 0 at (\S+)`).FindStringSubmatch(s.stdout.String())[1]
	held := dialAll(t, addr, 2)
	for i, c := range held {
		if g, err := readGreeting(c); err != nil {
			t.Fatalf("connection %d under the cap: %q, %v", i, g, err)
		}
	}
	extra := dialAll(t, addr, 1)[0]
	extra.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	if n, err := extra.Read(make([]byte, 64)); n > 0 || !isTimeout(err) {
		t.Fatalf("a connection beyond --max-conns was served: %d bytes, %v", n, err)
	}
	held[0].Close()
	if g, err := readGreeting(extra); err != nil {
		t.Fatalf("after a connection closed, the waiting one got %q, %v", g, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
