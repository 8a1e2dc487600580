package tests

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// proxyBody is the size of the bodies sent each way through samples/proxy.
const proxyBody = 100 << 20

// startProxy runs samples/proxy in front of upstream (a base URL on 127.0.0.1).
func startProxy(t *testing.T, upstream string) *server {
	t.Helper()
	return startServer(t, serverOpts{Module: "proxy", Workers: 2, Flags: []string{
		"--env", "UPSTREAM=" + upstream, "--allow-connect", strings.TrimPrefix(upstream, "http://")}})
}

// samples/proxy in front of a Go net/http server: 100 MiB down and up, checksummed; the
// upstream's status and fields come through, hop-by-hop fields do not; an upstream that is
// gone is a 502.
func TestProxy(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		io.Copy(w, io.LimitReader(&patternReader{}, n))
	})
	mux.HandleFunc("/sum", func(w http.ResponseWriter, r *http.Request) {
		n, sum := checksum(r.Body)
		fmt.Fprintf(w, "%s %d %x", r.Method, n, sum)
	})
	mux.HandleFunc("/fields", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Forwarded", r.Header.Get("X-Forwarded-Host"))
		w.Header().Set("X-Seen-Custom", r.Header.Get("X-Custom"))
		w.Header().Set("X-Seen-Keep-Alive", r.Header.Get("Keep-Alive"))
		// Every field of the client's comes as sent, an empty one included (Request.Headers
		// cuts them all from one string).
		w.Header().Set("X-Seen-Fields", fmt.Sprintf("%q %q %q", r.Header["X-Empty"], r.Header["X-After"], r.Header["X-Twice"]))
		// A GET without a body goes on without one: no chunked empty body.
		w.Header().Set("X-Seen-Framing", fmt.Sprintf("%d %q", r.ContentLength, r.TransferEncoding))
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	})
	up := httptest.NewServer(mux)
	defer up.Close()
	s := startProxy(t, up.URL)
	c := client(nil)
	c.Timeout = 2 * time.Minute

	for _, chunked := range []string{"", "1"} {
		resp, err := c.Get(s.URL("/download?n=" + strconv.Itoa(proxyBody) + "&chunked=" + chunked))
		if err != nil {
			t.Fatal(err)
		}
		n, sum := checksum(resp.Body)
		resp.Body.Close()
		if want := patternSum(proxyBody); n != proxyBody || !bytes.Equal(sum, want[:]) {
			t.Errorf("download (chunked %q): %d bytes, checksum %s", chunked, n, okIf(bytes.Equal(sum, want[:])))
		}
	}
	for _, chunked := range []bool{false, true} {
		_, want := checksum(io.LimitReader(&patternReader{}, proxyBody))
		req, _ := http.NewRequest("PUT", s.URL("/sum"), io.LimitReader(&patternReader{}, proxyBody))
		if !chunked {
			req.ContentLength = proxyBody
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := fmt.Sprintf("PUT %d %x", proxyBody, want); string(body) != got {
			t.Errorf("upload (chunked %v): %q, want %q", chunked, body, got)
		}
	}
	req, _ := http.NewRequest("GET", s.URL("/fields"), nil)
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header["X-Empty"] = []string{""}
	req.Header["X-After"] = []string{"after the empty one"}
	req.Header["X-Twice"] = []string{"one", "two"}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 418 || string(body) != "short and stout" || h.Get("X-Seen-Custom") != "kept" ||
		h.Get("X-Seen-Keep-Alive") != "" || h.Get("X-Seen-Framing") != "0 []" ||
		h.Get("X-Seen-Fields") != `[""] ["after the empty one"] ["one" "two"]` || h.Get("X-Seen-Forwarded") != s.Addr || h.Get("X-Seen-Host") != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("/fields: %d %q %v", resp.StatusCode, body, h)
	}
	up.Close()
	// The proxy's transport may still hold a connection the upstream closed as it went (Go's
	// client notices an idle connection's end on its own goroutine): the request then fails
	// on it (EOF) rather than on a new dial (connection refused). Either way it is a 502.
	if resp, body := httpGet(t, c, s.URL("/gone")); resp.StatusCode != 502 ||
		!strings.Contains(string(body), "connection refused") && !strings.Contains(string(body), ": EOF") {
		t.Errorf("upstream gone: %d %q, want 502 saying the connection was refused or ended", resp.StatusCode, body)
	}
}

// okIf says "ok" or "wrong".
func okIf(ok bool) string {
	if ok {
		return "ok"
	}
	return "wrong"
}

// samples/proxy in front of samples/hello: a wasmloop guest behind a wasmloop guest.
func TestProxyToHello(t *testing.T) {
	hello := startServer(t, serverOpts{Module: "hello"})
	s := startProxy(t, "http://"+hello.Addr)
	for range 3 {
		if resp, body := httpGet(t, client(nil), s.URL("/")); resp.StatusCode != 200 || string(body) != "Hello World\n" {
			t.Errorf("GET / through the proxy: %d %q", resp.StatusCode, body)
		}
	}
}

// samples/proxy in front of nginx: 100 MiB down (a static file) and up (a WebDAV PUT, whose
// file is checked on disk).
func TestProxyToNginx(t *testing.T) {
	nginx := requireTool(t, "nginx", "nginx-light")
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	os.MkdirAll(filepath.Join(www, "up"), 0o755)
	f, err := os.Create(filepath.Join(www, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(f, io.LimitReader(&patternReader{}, proxyBody))
	f.Close()
	port := freePort(t)
	conf := fmt.Sprintf(`daemon off; master_process off; worker_processes 1;
pid %[1]s/nginx.pid; error_log %[1]s/error.log;
events {}
http {
	access_log off;
	client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d;
		root %[1]s/www;
		client_max_body_size 0;
		location /up/ { dav_methods PUT; }
	}
}
`, dir, port)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if !eventually(10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nginx did not listen on %s: %s", addr, out.String())
	}
	s := startProxy(t, "http://"+addr)
	c := client(nil)
	c.Timeout = 2 * time.Minute
	resp, err := c.Get(s.URL("/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	n, sum := checksum(resp.Body)
	resp.Body.Close()
	if want := patternSum(proxyBody); resp.StatusCode != 200 || n != proxyBody || !bytes.Equal(sum, want[:]) {
		t.Errorf("GET /big.bin from nginx: %d, %d bytes, checksum %s", resp.StatusCode, n, okIf(bytes.Equal(sum, want[:])))
	}
	req, _ := http.NewRequest("PUT", s.URL("/up/copy.bin"), io.LimitReader(&patternReader{}, proxyBody))
	req.ContentLength = proxyBody
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 && resp.StatusCode != 204 {
		t.Fatalf("PUT through the proxy to nginx: %d", resp.StatusCode)
	}
	got, err := os.Open(filepath.Join(www, "up", "copy.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	n, sum = checksum(got)
	if want := patternSum(proxyBody); n != proxyBody || !bytes.Equal(sum, want[:]) {
		t.Errorf("the file nginx stored: %d bytes, checksum %s", n, okIf(bytes.Equal(sum, want[:])))
	}
}
