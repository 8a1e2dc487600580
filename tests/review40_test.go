package tests

// Review 40: attacks on FetchIdleTimeout (8898659) with testdata/guests/review40.

import (
	"bufio"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"review40", "./tests/testdata/guests/review40", true})
}

// Fixed with this test (a bug of 8898659, host/internal/reach/fetch.go): --fetch-idle-timeout
// is documented as a bound on "more of the body while the program reads it" (host.Config.FetchIdleTimeout; RATIONALE:
// "a program that does not read (back-pressure) is not timed out by it"), and the loop's
// client (http://) keeps that: it counts only while a read is pending. Go's client (https://)
// does not: for a body of known length up to 64 KiB, fetchState.run's prefetch reads the body
// on its own as soon as the head is in, through idleBody (fetch.go:163), whose timer runs
// whether or not the program has asked for anything. A program that takes the head and reads
// the body later gets ETIMEDOUT for a pause of its own — on https only.
func TestReview40FetchIdleTimeoutCountsOnlyWhileTheProgramReads(t *testing.T) {
	const idle = "400ms"
	// The server sends the head and 3 bytes, is silent 700 ms (past idle), then sends the rest;
	// the program reads the body only after 1500 ms, when all of it is there.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	pause := 700 * time.Millisecond

	up := startRawUp(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
		select {
		case <-time.After(pause): // the server's silence is what is tested
		case <-release:
			return
		}
		fmt.Fprint(c, "defghij")
		io.Copy(io.Discard, br)
	})
	tlsUp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.Write([]byte("abc"))
		w.(http.Flusher).Flush()
		select {
		case <-time.After(pause):
		case <-r.Context().Done():
			return
		case <-release:
			return
		}
		w.Write([]byte("defghij"))
	}))
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)
	pemFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsUp.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", pemFile)

	s := startServer(t, serverOpts{Module: "review40", Flags: []string{"--fetch-idle-timeout", idle,
		"--allow-connect", up.addr, "--allow-connect", strings.TrimPrefix(tlsUp.URL, "https://")}})
	for _, c := range []struct{ name, url string }{
		{"http (loop's client)", up.url("/x")},
		{"https (Go's client)", tlsUp.URL + "/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, got, err := askGuest(s, "/lateread?ms=1500&url="+q(c.url), 20*time.Second)
			if err != nil {
				t.Fatalf("the guest did not answer: %v", err)
			}
			if got != "200\nabcdefghij" {
				t.Errorf("a program that read the body only once all of it had come got %q, want \"200\\nabcdefghij\": the idle bound ran while it had no read pending", got)
			}
		})
	}
}
