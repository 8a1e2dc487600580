package tests

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fetch fetches path with the given request header fields (name, value pairs) and returns the
// answer with its body read.
func fetch(t *testing.T, s *server, method, path string, fields ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		req.Header.Set(fields[i], fields[i+1])
	}
	resp, err := client(nil).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, body
}

// The host's file functions on a writable grant, a read-only one and paths outside both, and
// the grants as WASI preopens.
func TestFiles(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	data, ro, scratch := filepath.Join(base, "data"), filepath.Join(base, "ro"), filepath.Join(base, "scratch")
	for _, d := range []string{data, ro, scratch} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(data, "config.txt"), "answer=42")
	write(t, filepath.Join(ro, "readme.txt"), "read me")
	write(t, filepath.Join(base, "outside.txt"), "SECRET outside the grant")
	if err := os.Symlink("../outside.txt", filepath.Join(data, "escape")); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOpts{Module: "files", Flags: []string{"--dir", data + ":/data", "--dir", ro + ":/ro:ro", "--dir", scratch + ":/scratch"}})
	if !strings.Contains(s.stdout.String(), "config: answer=42") {
		t.Errorf("os.ReadFile through WASI at start-up: %q", s.stdout.String())
	}

	_, body := fetch(t, s, "GET", "/run")
	want := []string{
		"1: ok ",                  // remove what a run before left (nothing: RemoveAll)
		"2: ok ",                  // mkdir -p
		"3: mkdir /data/work/a: ", // exists
		"4: ok ",                  // write
		"5: ok ",                  // append
		"6: ok hello, world",      // read it whole
		"7: ok world",             // a range past the end is short
		"8: ok note.txt 12 dir=false",
		"9: ok ",                               // rename
		"10: ok b/",                            // list
		"11: readFile /data/work/a/note.txt: ", // moved away
		"12: remove /data/work/a: ",            // not empty
		"13: ok ",                              // rm -r
		"14: stat /data/work: ",
		"15: readFile /data/../../etc/passwd: ", // ".." is cleaned away: /etc/passwd is not granted
		"16: readFile /data/escape: ",           // a link out of the grant
		"17: rename /data/config.txt: ",         // into a read-only grant
		"18: rename /data/config.txt: ",         // into another grant
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("GET /run: %d lines, want %d:\n%s", len(lines), len(want), body)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("step %d: %q, want it to begin %q", i+1, lines[i], w)
		}
	}
	for i, kind := range map[int]string{2: "[exist]", 10: "[notexist]", 13: "[notexist]", 14: "[permission]", 15: "[permission]", 16: "[permission]"} {
		if !strings.Contains(lines[i], kind) {
			t.Errorf("step %d: %q, want %s", i+1, lines[i], kind)
		}
	}
	for _, secret := range []string{"SECRET", "root:"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("a path outside the grants was read:\n%s", body)
		}
	}
	if !strings.Contains(lines[14], "add --dir HOST_PATH:/etc") {
		t.Errorf("the refusal does not say what to do: %q", lines[14])
	}
	if !strings.Contains(lines[16], "read-only") {
		t.Errorf("a rename into a read-only grant: %q", lines[16])
	}
	if !strings.Contains(lines[17], "different granted directories") {
		t.Errorf("a rename between grants: %q", lines[17])
	}
	if _, err := os.Stat(filepath.Join(data, "work")); !os.IsNotExist(err) {
		t.Errorf("/data/work is still there on the host: %v", err)
	}

	_, body = fetch(t, s, "GET", "/ro")
	lines = strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "read-only") || !strings.Contains(lines[0], "[permission]") ||
		lines[1] != "2: ok read me" || !strings.Contains(lines[2], "[permission]") || !strings.Contains(lines[3], "absolute path") {
		t.Errorf("GET /ro:\n%s", body)
	}
	if _, err := os.Stat(filepath.Join(ro, "x.txt")); !os.IsNotExist(err) {
		t.Errorf("a file was written in the read-only grant: %v", err)
	}
	_, body = fetch(t, s, "GET", "/wasi")
	if !strings.HasPrefix(string(body), "wasi write: ") || strings.Contains(string(body), "<nil>") {
		t.Errorf("os.WriteFile through WASI: %q, want an error (the preopens are read-only)", body)
	}
	// The host logged the first refusal of each kind, once.
	if n := strings.Count(s.stderr.String(), "refused a file operation"); n < 1 || n > 3 {
		t.Errorf("refusals logged %d times:\n%s", n, s.stderr.String())
	}
}

// rfc850 and asctime spell an IMF-fixdate in HTTP's two obsolete date formats.
func rfc850(imf string) string {
	d, _ := time.Parse(http.TimeFormat, imf)
	return d.Format(time.RFC850)
}

func asctime(imf string) string {
	d, _ := time.Parse(http.TimeFormat, imf)
	return d.Format(time.ANSIC)
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// samples/static against net/http's client and curl: types, validators, 304, ranges, 404
// for what is missing or outside the grant, and a large file streamed whole.
func TestStatic(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	www := filepath.Join(base, "public")
	if err := os.MkdirAll(filepath.Join(www, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(www, "index.html"), "<h1>home</h1>\n")
	write(t, filepath.Join(www, "sub", "index.html"), "<h1>sub</h1>\n")
	write(t, filepath.Join(www, "hello.txt"), "0123456789abcdefghij")
	write(t, filepath.Join(base, "secret.txt"), "SECRET")
	big := make([]byte, 3<<20+12345)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(www, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"abs": filepath.Join(base, "secret.txt"), "rel": "../secret.txt", "passwd": "/etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(www, name)); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, serverOpts{Module: "static", Workers: 2, Flags: []string{"--dir", www + ":/www:ro"}})

	resp, body := fetch(t, s, "GET", "/")
	if resp.StatusCode != 200 || string(body) != "<h1>home</h1>\n" || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("GET /: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = fetch(t, s, "GET", "/hello.txt")
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp.StatusCode != 200 || string(body) != "0123456789abcdefghij" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		resp.ContentLength != 20 || etag == "" || lastMod == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("GET /hello.txt: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if _, err := time.Parse(http.TimeFormat, lastMod); err != nil {
		t.Errorf("Last-Modified %q: %v", lastMod, err)
	}
	for _, c := range []struct {
		fields []string
		status int
		body   string
		crange string
	}{
		{[]string{"If-None-Match", etag}, 304, "", ""},
		{[]string{"If-None-Match", `"other", ` + etag}, 304, "", ""},
		{[]string{"If-None-Match", `"other"`}, 200, "0123456789abcdefghij", ""},
		{[]string{"If-Modified-Since", lastMod}, 304, "", ""},
		{[]string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200, "0123456789abcdefghij", ""},
		{[]string{"Range", "bytes=0-9"}, 206, "0123456789", "bytes 0-9/20"},
		{[]string{"Range", "bytes=15-"}, 206, "fghij", "bytes 15-19/20"},
		{[]string{"Range", "bytes=-3"}, 206, "hij", "bytes 17-19/20"},
		{[]string{"Range", "bytes=5-1000"}, 206, "56789abcdefghij", "bytes 5-19/20"},
		{[]string{"Range", "bytes=20-"}, 416, "range not satisfiable\n", "bytes */20"},
		{[]string{"Range", "bytes=0-1,5-6"}, 200, "0123456789abcdefghij", ""},
		{[]string{"Range", "bytes=0-4", "If-Range", etag}, 206, "01234", "bytes 0-4/20"},
		{[]string{"Range", "bytes=0-4", "If-Range", `"old"`}, 200, "0123456789abcdefghij", ""},
		{[]string{"Range", "bytes=5-99999999999999999999999"}, 206, "56789abcdefghij", "bytes 5-19/20"},
		{[]string{"Range", "bytes=-99999999999999999999999"}, 206, "0123456789abcdefghij", "bytes 0-19/20"},
		{[]string{"Range", "bytes=+5-9"}, 200, "0123456789abcdefghij", ""},
		{[]string{"Range", "bytes=5-+9"}, 200, "0123456789abcdefghij", ""},
		{[]string{"If-Modified-Since", rfc850(lastMod)}, 304, "", ""},
		{[]string{"If-Modified-Since", asctime(lastMod)}, 304, "", ""},
	} {
		resp, body := fetch(t, s, "GET", "/hello.txt", c.fields...)
		if resp.StatusCode != c.status || string(body) != c.body || resp.Header.Get("Content-Range") != c.crange {
			t.Errorf("GET /hello.txt with %q: %d %q, Content-Range %q; want %d %q %q",
				c.fields, resp.StatusCode, body, resp.Header.Get("Content-Range"), c.status, c.body, c.crange)
		}
	}
	resp, body = fetch(t, s, "HEAD", "/hello.txt")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 20 {
		t.Errorf("HEAD /hello.txt: %d, Content-Length %d, %d body bytes", resp.StatusCode, resp.ContentLength, len(body))
	}
	resp, body = fetch(t, s, "GET", "/big.bin")
	if resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(big) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("GET /big.bin: %d, %d of %d bytes, %q", resp.StatusCode, len(body), len(big), resp.Header.Get("Content-Type"))
	}
	resp, body = fetch(t, s, "GET", "/big.bin", "Range", "bytes=1000000-2999999")
	if resp.StatusCode != 206 || !bytes.Equal(body, big[1000000:3000000]) {
		t.Errorf("GET /big.bin, 2 MB from 1 MB: %d, %d bytes", resp.StatusCode, len(body))
	}
	client := client(nil)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if resp, err := client.Get(s.URL("/sub")); err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != "./sub/" {
		t.Errorf("GET /sub: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := client.Get(s.URL("/sub?a=1")); err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != "./sub/?a=1" {
		t.Errorf("GET /sub?a=1: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// A redirect never leaves the host, however the path is spelt.
	for _, p := range []string{"//evil.example/..", "/\\evil.example/..", "//evil.example/%2e%2e", "/.//evil.example/.."} {
		_, resp, _ := rawRequest(t, s.Addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		loc := resp.Header.Get("Location")
		if resp.StatusCode != 301 || !strings.HasPrefix(loc, "./") || strings.Contains(loc, "evil") {
			t.Errorf("GET %s: %d, Location %q; want 301 to a relative ./ path", p, resp.StatusCode, loc)
		}
	}
	if resp, _ := fetch(t, s, "GET", "/hello.txt", "Range", "bytes=20-"); len(resp.Header.Values("Content-Type")) != 1 {
		t.Errorf("416: Content-Type %q, want one", resp.Header.Values("Content-Type"))
	}
	if resp, body := fetch(t, s, "GET", "/sub/"); resp.StatusCode != 200 || string(body) != "<h1>sub</h1>\n" {
		t.Errorf("GET /sub/: %d %q", resp.StatusCode, body)
	}
	if resp, _ := fetch(t, s, "POST", "/hello.txt"); resp.StatusCode != 405 {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}

	// Missing, and outside the grant in every spelling: 404, and never the secret.
	curl := requireTool(t, "curl", "curl")
	for _, p := range []string{"/missing.txt", "/../secret.txt", "/../../../../etc/passwd", "/%2e%2e/secret.txt",
		"/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/..%2fsecret.txt", "/sub/../../secret.txt", "/abs", "/rel", "/passwd", "/hello.txt/x"} {
		out, err := exec.Command(curl, "-s", "--path-as-is", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", s.URL(p)).Output()
		if err != nil {
			t.Errorf("curl %s: %v", p, err)
			continue
		}
		got := string(out)
		if !strings.HasSuffix(got, "\n404") || strings.Contains(got, "SECRET") || strings.Contains(got, "root:") {
			t.Errorf("GET %s: %q, want 404", p, got)
		}
	}
	// curl's own range and validator handling agree.
	out, err := exec.Command(curl, "-s", "--max-time", "10", "-r", "2-4", s.URL("/hello.txt")).Output()
	if err != nil || string(out) != "234" {
		t.Errorf("curl -r 2-4: %q %v", out, err)
	}
	out, err = exec.Command(curl, "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: "+etag, s.URL("/hello.txt")).Output()
	if err != nil || string(out) != "304" {
		t.Errorf("curl with If-None-Match: %q %v", out, err)
	}
}

// dialSmallWindow opens a raw connection whose receive buffer is a few KiB, set before the
// handshake so the window the server sees stays small: a large body fills the server's socket
// many times over, and each time the server waits for room.
func dialSmallWindow(t *testing.T, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: ioTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return cmp.Or(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// TestStaticSendfile: a large file goes from the page cache to the socket (sendfile), and
// the socket filling up is handled as a full output is — the program waits for room, a
// pipelined request is answered after the file, a client that stops reading is closed after
// the idle timeout, and one that leaves mid-file costs the worker nothing.
func TestStaticSendfile(t *testing.T) {
	t.Parallel()
	www := t.TempDir()
	big := make([]byte, 5<<20+321)
	rand.Read(big)
	for _, name := range []string{"big.bin", "stop.bin", "leave.bin"} {
		if err := os.WriteFile(filepath.Join(www, name), big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(www, "hello.txt"), "0123456789abcdefghij")
	s := startServer(t, serverOpts{Module: "static", Workers: 1,
		Flags: []string{"--dir", www + ":/www:ro", "--idle-timeout", "1s", "--access-log"}})

	t.Run("slow reader, pipelined", func(t *testing.T) {
		c := dialSmallWindow(t, s.Addr)
		// Three requests at once: each head after the first is queued while the socket is
		// (or may be) full of the file before it.
		if err := c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" +
			"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000001-4000000\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, body, err := c.readResponse("GET", 60*time.Second)
		if err != nil || resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(big) {
			t.Fatalf("GET /big.bin through a small window: %v, %d of %d bytes", err, len(body), len(big))
		}
		resp, body, err = c.readResponse("GET", ioTimeout)
		if err != nil || resp.StatusCode != 200 || string(body) != "0123456789abcdefghij" {
			t.Fatalf("the pipelined GET /hello.txt after it: %v %q", err, body)
		}
		resp, body, err = c.readResponse("GET", 60*time.Second)
		if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, big[1000001:4000001]) {
			t.Fatalf("a 3 MB range from the middle: %v, %d bytes", err, len(body))
		}
		resp, body, err = c.readResponse("GET", 60*time.Second)
		if err != nil || resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(big) {
			t.Fatalf("the file again: %v, %d of %d bytes", err, len(body), len(big))
		}
	})

	t.Run("client stops reading", func(t *testing.T) {
		logged := s.stderr.appears("request method=GET path=/stop.bin")
		c := dialSmallWindow(t, s.Addr)
		if err := c.send("GET /stop.bin HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// Nothing is read: the socket stays full, and the idle timeout (1 s) ends the
		// response, which the access log records.
		select {
		case <-logged:
		case <-time.After(30 * time.Second):
			t.Fatalf("a client that reads nothing was not closed:\n%s", s.stderr)
		}
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		n, err := io.Copy(io.Discard, c.br)
		if isTimeout(err) {
			t.Fatalf("the connection is still open after the response was cut (%d bytes read)", n)
		}
		if n >= int64(len(big)) {
			t.Fatalf("read %d bytes, the whole file: the response was not cut", n)
		}
	})

	t.Run("client leaves mid-file", func(t *testing.T) {
		for range 3 {
			c := dialSmallWindow(t, s.Addr)
			if err := c.send("GET /leave.bin HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			if _, err := io.CopyN(io.Discard, c.br, 200<<10); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		resp, body := fetch(t, s, "GET", "/leave.bin")
		if resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(big) {
			t.Fatalf("after three clients left mid-file: %d, %d bytes", resp.StatusCode, len(body))
		}
	})
}

// answer is a response as a client saw it: its status, Content-Length and body, or the
// failure.
type answer struct {
	status int
	length int64
	body   string
	err    error
}

// getAnswer GETs url on a goroutine and delivers what came back.
func getAnswer(url string) <-chan answer {
	got := make(chan answer, 1)
	go func() {
		resp, err := client(nil).Get(url)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, resp.ContentLength, string(body), err}
	}()
	return got
}

// Response.StatFile holds the file it stats for the response's SendFile: a file renamed over
// between the stat, which the head is made from, and the send goes out as the version the
// head describes (Go's http.ServeFile and nginx stat the file they opened; a stat and an
// open by path, as Node's send makes them, would send the new bytes under the old length).
func TestStatFileHoldsItsVersion(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	write(t, filepath.Join(data, "config.txt"), "x")
	const first, second = "the first version, as its head says", "v2"
	page := filepath.Join(data, "page.txt")
	write(t, page, first)
	s := startServer(t, serverOpts{Module: "files", Flags: []string{"--dir", data + ":/data"}})

	for i, want := range []string{first, second} {
		got := getAnswer(s.URL("/hold?name=/data/page.txt"))
		line := fmt.Sprintf("held /data/page.txt %d", len(want))
		if !eventually(ioTimeout, func() bool { return strings.Contains(s.stdout.String(), line) }) {
			t.Fatalf("round %d: no %q in the log:\n%s", i, line, s.stdout.String())
		}
		if i == 0 { // the head is made: now the file is replaced, as a deployment does
			write(t, page+".new", second)
			if err := os.Rename(page+".new", page); err != nil {
				t.Fatal(err)
			}
		}
		if _, body := fetch(t, s, "GET", "/release"); string(body) != "released\n" {
			t.Fatalf("round %d: /release answered %q", i, body)
		}
		a := <-got // the client's own timeout bounds this
		if a.err != nil || a.status != 200 || a.length != int64(len(want)) || a.body != want {
			t.Errorf("round %d: %d, Content-Length %d, %q, %v; want 200 and %q", i, a.status, a.length, a.body, a.err, want)
		}
	}
	if strings.Contains(s.stdout.String(), "release:") || strings.Contains(s.stderr.String(), "release:") {
		t.Errorf("a SendFile failed:\n%s\n%s", s.stdout.String(), s.stderr.String())
	}
}
