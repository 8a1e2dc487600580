package tests

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

// A fetch whose server goes silent fails ETIMEDOUT after --fetch-idle-timeout, on both
// clients (the loop's own for http://, Go's for https://), whether the server never answers
// or stops in the middle of the body; a server that is slow but never silent that long is
// waited for. Without the bound a server that never answers held the fetch, and whatever
// waited on it, for ever.
func TestFetchIdleTimeout(t *testing.T) {
	const idle = "400ms"
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })

	// http://, the loop's client.
	up := startRawUp(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		line, err := readHead(br)
		if err != nil {
			return
		}
		switch {
		case strings.Contains(line, "/silent"):
		case strings.Contains(line, "/midbody"):
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
		case strings.Contains(line, "/slow"): // a byte every 100 ms: never idle for 400
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
			for i := range 8 {
				time.Sleep(100 * time.Millisecond) // the pace is what is tested
				if _, err := fmt.Fprint(c, string(rune('a'+i))); err != nil {
					return
				}
			}
		}
		io.Copy(io.Discard, br) // silent until the connection closes
	})

	// https://, Go's client, through a test CA.
	tlsUp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/midbody" {
			w.Header().Set("Content-Length", "10")
			w.Write([]byte("abc"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)
	pemFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsUp.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", pemFile)

	s := startServer(t, serverOpts{Module: "reach", Flags: []string{"--fetch-idle-timeout", idle,
		"--allow-connect", up.addr, "--allow-connect", strings.TrimPrefix(tlsUp.URL, "https://")}})
	for _, c := range []struct{ name, url, want string }{
		{"http, no answer", up.url("/silent"), "ERR ETIMEDOUT"},
		{"http, silent mid-body", up.url("/midbody"), "ERR ETIMEDOUT"},
		{"http, slow but never idle", up.url("/slow"), "200\nabcdefgh"},
		{"https, no answer", tlsUp.URL + "/silent", "ERR ETIMEDOUT"},
		{"https, silent mid-body", tlsUp.URL + "/midbody", "ERR ETIMEDOUT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, got, err := askGuest(s, "/fetch?url="+q(c.url), 20*time.Second)
			if err != nil {
				t.Fatalf("the guest did not answer: %v", err)
			}
			if !strings.HasPrefix(got, c.want) {
				t.Errorf("got %q, want it to begin %q", got, c.want)
			}
			if strings.HasPrefix(c.want, "ERR") && !strings.Contains(got, "--fetch-idle-timeout") {
				t.Errorf("the error does not name the setting: %q", got)
			}
		})
	}
}
