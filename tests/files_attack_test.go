package tests

// Attacks on the granted directories (--dir): the host's file functions (host/internal/files)
// driven by any path a guest can spell (testdata/guests/filesattack), body_file from a guest
// that sends a file without Content-Length, and samples/static's answers for names the
// system refuses (too long, a link loop).

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"filesattack", "./tests/testdata/guests/filesattack", true})
}

// faOp runs one operation of the filesattack guest (route /op/NAME or /many, /send) with the
// query's name, value pairs and returns the answer's body.
func faOp(t *testing.T, s *server, route string, kv ...string) string {
	t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	// No keep-alive: a connection left idle would hold a descriptor in the server, which
	// TestFilesAttackManyAtOnce counts.
	resp, err := client(&http.Transport{DisableKeepAlives: true}).Get(s.URL(route + "?" + q.Encode()))
	if err != nil {
		t.Fatalf("%s %q: %v", route, kv, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %q: reading the body: %v", route, kv, err)
	}
	return string(b)
}

// faLayout is a writable grant /data, a read-only grant /ro and, beside them, a directory
// no grant holds; /data holds links that lead into the other two.
type faLayout struct {
	base, data, ro, outside string
}

func newFALayout(t *testing.T) faLayout {
	t.Helper()
	base := t.TempDir()
	l := faLayout{base: base, data: filepath.Join(base, "data"), ro: filepath.Join(base, "ro"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{l.data, l.ro, filepath.Join(l.outside, "od")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(l.ro, "r.txt"), "RO")
	write(t, filepath.Join(l.outside, "s.txt"), "SECRET")
	write(t, filepath.Join(l.outside, "od", "keep.txt"), "SECRET kept")
	write(t, filepath.Join(l.data, "h.txt"), "hello")
	for name, target := range map[string]string{
		"dang":   "../outside/new.txt", // dangling, out of the grant: a create must not follow it
		"toro":   "../ro",              // into the read-only grant's directory, by the side door
		"outdir": "../outside/od",
		"outabs": filepath.Join(l.outside, "s.txt"),
		"loop":   "loop",
	} {
		if err := os.Symlink(target, filepath.Join(l.data, name)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l faLayout) start(t *testing.T) *server {
	return startServer(t, serverOpts{Module: "filesattack", Flags: []string{"--dir", l.data + ":/data", "--dir", l.ro + ":/ro:ro"}})
}

// Every operation that changes something, aimed through links out of the writable grant and
// at the read-only one: each is refused as a permission error, and nothing outside /data
// changes on the host.
func TestFilesAttackNoWriteOutside(t *testing.T) {
	t.Parallel()
	l := newFALayout(t)
	s := l.start(t)
	for _, c := range [][]string{
		{"/op/write", "p", "/data/dang", "data", "x"},
		{"/op/append", "p", "/data/dang", "data", "x"},
		{"/op/write", "p", "/data/toro/new.txt", "data", "x"},
		{"/op/write", "p", "/data/toro/r.txt", "data", "x"},
		{"/op/append", "p", "/data/outdir/keep.txt", "data", "x"},
		{"/op/write", "p", "/data/outabs", "data", "x"},
		{"/op/mkdir", "p", "/data/toro/d"},
		{"/op/mkdir", "p", "/data/outdir/d/e", "all", "1"},
		{"/op/remove", "p", "/data/outdir/keep.txt"},
		{"/op/remove", "p", "/data/toro/r.txt"},
		{"/op/rename", "p", "/data/h.txt", "q", "/data/outdir/h.txt"},
		{"/op/rename", "p", "/data/outdir/keep.txt", "q", "/data/k.txt"},
		{"/op/rename", "p", "/data/h.txt", "q", "/data/toro/h.txt"},
		{"/op/append", "p", "/ro/r.txt", "data", "x"},
		{"/op/write", "p", "/ro/new.txt", "data", "x"},
		{"/op/mkdir", "p", "/ro/d", "all", "1"},
		{"/op/remove", "p", "/ro/r.txt"},
		{"/op/remove", "p", "/ro/r.txt", "all", "1"},
		{"/op/rename", "p", "/ro/r.txt", "q", "/ro/moved.txt"},
		{"/op/rename", "p", "/ro/r.txt", "q", "/data/r.txt"},
		{"/op/write", "p", "/data/../outside/s.txt", "data", "x"},
	} {
		got := faOp(t, s, c[0], c[1:]...)
		if !strings.HasPrefix(got, "err EACCES [permission] ") {
			t.Errorf("%s %q: %q, want a permission error", c[0], c[1:], got)
		}
	}
	// Removing a link to a directory outside removes the link, not what it points at.
	if got := faOp(t, s, "/op/remove", "p", "/data/outdir", "all", "1"); got != "ok " {
		t.Errorf("remove -r /data/outdir (a link): %q", got)
	}
	for name, want := range map[string]string{
		filepath.Join(l.outside, "s.txt"):          "SECRET",
		filepath.Join(l.outside, "od", "keep.txt"): "SECRET kept",
		filepath.Join(l.ro, "r.txt"):               "RO",
		filepath.Join(l.data, "h.txt"):             "hello",
	} {
		if b, err := os.ReadFile(name); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q untouched", name, b, err, want)
		}
	}
	for _, name := range []string{filepath.Join(l.outside, "new.txt"), filepath.Join(l.ro, "new.txt"), filepath.Join(l.ro, "d"),
		filepath.Join(l.outside, "od", "d"), filepath.Join(l.ro, "h.txt"), filepath.Join(l.ro, "moved.txt"), filepath.Join(l.outside, "od", "h.txt")} {
		if _, err := os.Lstat(name); !os.IsNotExist(err) {
			t.Errorf("%s exists on the host (%v): a change escaped its grant", name, err)
		}
	}
}

// Paths the system refuses for their form — a NUL byte, a name past NAME_MAX, a directory
// moved into itself — are the guest's mistake: EINVAL with a message that names the problem,
// not EIO ("anything else the system reported") nor a message about something else.
func TestFilesAttackMalformedPaths(t *testing.T) {
	t.Parallel()
	l := newFALayout(t)
	s := l.start(t)
	nul := faOp(t, s, "/op/read", "p", "/data/h.txt\x00.png")
	if !strings.HasPrefix(nul, "err EINVAL ") || strings.Contains(nul, "want an absolute path") || !strings.Contains(nul, "NUL") {
		t.Errorf("readFile of an absolute path with a NUL byte: %q; want EINVAL saying the NUL byte is the problem", nul)
	}
	long := "/data/" + strings.Repeat("a", 300)
	for _, c := range [][]string{
		{"/op/stat", "p", long},
		{"/op/statsync", "p", long},
		{"/op/read", "p", long},
		{"/op/write", "p", long, "data", "x"},
		{"/op/mkdir", "p", long + "/b", "all", "1"},
		{"/op/list", "p", long},
	} {
		got := faOp(t, s, c[0], c[1:]...)
		if !strings.HasPrefix(got, "err EINVAL ") || !strings.Contains(got, "too long") {
			t.Errorf("%s of a 300-byte name: %.80q…; want EINVAL, file name too long", c[0], got)
		}
	}
	if got := faOp(t, s, "/op/mkdir", "p", "/data/a/b", "all", "1"); got != "ok " {
		t.Fatalf("mkdir -p /data/a/b: %q", got)
	}
	if got := faOp(t, s, "/op/rename", "p", "/data/a", "q", "/data/a/b/c"); !strings.HasPrefix(got, "err EINVAL ") {
		t.Errorf("rename of a directory into itself: %q, want EINVAL", got)
	}
	// A loop of links is its own kind.
	if got := faOp(t, s, "/op/read", "p", "/data/loop"); !strings.HasPrefix(got, "err ELOOP ") {
		t.Errorf("readFile of a link loop: %q, want ELOOP", got)
	}
}

// Names with bytes a path seldom holds — a newline, a byte that is not UTF-8, a space, a
// backslash, a percent escape, a colon, a name of exactly 255 bytes — are written, listed and
// read back as themselves.
func TestFilesAttackOddNames(t *testing.T) {
	t.Parallel()
	l := newFALayout(t)
	s := l.start(t)
	names := []string{"new\nline", "bad\xffutf8", "with space", `back\slash`, "%2e%2e", "co:lon", "-dash", strings.Repeat("n", 255)}
	for _, n := range names {
		if got := faOp(t, s, "/op/write", "p", "/data/odd/"+n, "data", "content of "+n); !strings.HasPrefix(got, "err ENOENT") {
			t.Fatalf("writeFile into a missing directory: %q, want ENOENT", got)
		}
	}
	if got := faOp(t, s, "/op/mkdir", "p", "/data/odd"); got != "ok " {
		t.Fatalf("mkdir: %q", got)
	}
	for _, n := range names {
		if got := faOp(t, s, "/op/write", "p", "/data/odd/"+n, "data", "content of "+n); got != "ok " {
			t.Errorf("writeFile %q: %q", n, got)
		}
		if got := faOp(t, s, "/op/read", "p", "/data/odd/"+n); got != "ok content of "+n {
			t.Errorf("readFile %q: %q", n, got)
		}
		if b, err := os.ReadFile(filepath.Join(l.data, "odd", n)); err != nil || string(b) != "content of "+n {
			t.Errorf("on the host, %q: %q %v", n, b, err)
		}
	}
	got := faOp(t, s, "/op/list", "p", "/data/odd")
	for _, n := range names {
		if !strings.Contains(got, strconv.Quote(n)) {
			t.Errorf("readDir /data/odd lacks %q: %.200q", n, got)
		}
	}
}

// Far more operations at once than the host runs (16): every one completes, and no
// descriptor stays open after them, nor after body_file calls that fail.
func TestFilesAttackManyAtOnce(t *testing.T) {
	t.Parallel()
	l := newFALayout(t)
	s := l.start(t)
	pid := s.cmd.Process.Pid
	base := fdCount(t, pid)
	for i := 0; i < 3; i++ {
		if got := faOp(t, s, "/many", "p", "/data/h.txt", "n", "1000"); got != "done 1000 ok 1000" {
			t.Fatalf("1000 stats at once: %q", got)
		}
		if got := faOp(t, s, "/many", "p", "/data/outdir/keep.txt", "n", "500"); got != "done 500 ok 0" {
			t.Fatalf("500 refused stats at once: %q", got)
		}
	}
	for _, p := range []string{"/data/dang", "/data/outdir/keep.txt", "/data/outabs", "/data/loop", "/data/missing", "/data/../outside/s.txt", "/data", "/data/h.txt"} {
		resp, err := client(&http.Transport{DisableKeepAlives: true}).Get(s.URL("/send?" + url.Values{"p": {p}, "n": {"100"}}.Encode()))
		if err != nil {
			continue // a response cut short is what a failed send may look like
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "SECRET") {
			t.Errorf("body_file %s sent a file outside the grant: %q", p, b)
		}
	}
	if !strings.Contains(s.stdout.String(), "send /data/outdir/keep.txt: EDENIED") || !strings.Contains(s.stdout.String(), "send /data/outabs: EDENIED") {
		t.Errorf("body_file through a link out of the grant: want EDENIED; log:\n%s", s.stdout.String())
	}
	fdsBackTo(t, pid, base, "after many file operations and failed body_file calls")
}

// A response sent with SendFile and no Content-Length is chunked: when the file cannot be
// sent (missing, or shorter than the length asked), the client must be able to tell — the
// body must not end with the last chunk as a complete one does. (The SDK ended the response
// on such a failure; it now aborts it. A head still queued then goes with the connection.)
func TestFilesAttackChunkedSendFileFailureVisible(t *testing.T) {
	t.Parallel()
	l := newFALayout(t)
	s := l.start(t)
	for _, q := range []url.Values{
		{"p": {"/data/missing.txt"}, "n": {"10"}},
		{"p": {"/data/h.txt"}, "off": {"2"}, "n": {"100"}}, // 3 bytes there, 100 promised
	} {
		cn, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := cn.send("GET /send?" + q.Encode() + " HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		cn.SetReadDeadline(time.Now().Add(ioTimeout))
		resp, err := http.ReadResponse(cn.br, &http.Request{Method: "GET"})
		if err != nil {
			cn.Close() // the connection closed before a whole head: visible
			continue
		}
		b, err := io.ReadAll(resp.Body)
		cn.Close()
		if err == nil {
			t.Errorf("send %v failed on the host, but the client got a complete %d response with %q: the failure is invisible (want the chunked body cut)", q, resp.StatusCode, b)
		}
	}
}

// samples/static answers 404 for names the system refuses — a component past NAME_MAX, a
// loop of links, a chain of links too long — and does not log a line per such request, which
// any client could send by the thousand.
func TestFilesAttackStaticRefusedNames(t *testing.T) {
	t.Parallel()
	www := t.TempDir()
	os.Mkdir(filepath.Join(www, "sub"), 0o755)
	write(t, filepath.Join(www, "f.txt"), "file")
	os.Symlink("loop1", filepath.Join(www, "loop2"))
	os.Symlink("loop2", filepath.Join(www, "loop1"))
	prev := "f.txt"
	for i := 0; i < 50; i++ { // past os.Root's 8 links and the kernel's 40
		name := "chain" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		os.Symlink(prev, filepath.Join(www, name))
		prev = name
	}
	s := startServer(t, serverOpts{Module: "static", Flags: []string{"--dir", www + ":/www:ro"}})
	long := strings.Repeat("a", 300)
	for _, p := range []string{"/" + long, "/sub/" + long, "/" + long + "/", "/" + long + "/x", "/loop1", "/loop1/", "/" + prev} {
		resp, body := fetch(t, s, "GET", p)
		if resp.StatusCode != 404 {
			t.Errorf("GET %.40s…: %d %q, want 404", p, resp.StatusCode, body)
		}
	}
	if resp, body := fetch(t, s, "GET", "/f.txt"); resp.StatusCode != 200 || string(body) != "file" {
		t.Errorf("GET /f.txt: %d %q", resp.StatusCode, body)
	}
	if out := s.stdout.String(); strings.Contains(out, "stat /www/") {
		t.Errorf("the server logs a line per request for a refused name:\n%.600s", out)
	}
}

// The grants as WASI preopens (os.ReadFile, blocking): no spelling of a path and no link
// reads a file outside them, and a link out is refused as a permission error — what it is,
// and what the async functions say — rather than an I/O error, which would send the
// program's author looking at the disk.
func TestFilesAttackWASIPreopens(t *testing.T) {
	t.Parallel()
	l := newFALayout(t)
	os.Mkdir(filepath.Join(l.data, "sub"), 0o755)
	os.Symlink("../h.txt", filepath.Join(l.data, "sub", "in"))
	os.Symlink("../../outside/s.txt", filepath.Join(l.data, "sub", "out"))
	s := l.start(t)
	for p, want := range map[string]string{"/data/h.txt": "ok hello", "/data/sub/in": "ok hello", "/ro/r.txt": "ok RO"} {
		if got := faOp(t, s, "/wasi", "p", p); got != want {
			t.Errorf("os.ReadFile(%s): %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"/data/outabs", "/data/outdir/keep.txt", "/data/sub/out", "/data/dang"} {
		if got := faOp(t, s, "/wasi", "p", p); !strings.HasPrefix(got, "err [permission] ") {
			t.Errorf("os.ReadFile(%s), a link out of the grant: %q, want a permission error", p, got)
		}
	}
	for _, p := range []string{"/data/../outside/s.txt", "/data/sub/../../outside/s.txt", "/ro/../outside/s.txt",
		filepath.Join(l.outside, "s.txt"), "../outside/s.txt", "/data/loop"} {
		if got := faOp(t, s, "/wasi", "p", p); !strings.HasPrefix(got, "err") || strings.Contains(got, "SECRET") {
			t.Errorf("os.ReadFile(%s): %q, want an error", p, got)
		}
	}
}

// A 5 GiB file (sparse: it costs no disk) through samples/static and the range read: offsets
// past 4 GiB and a Content-Length past 32 bits come out right, with sendfile and without.
func TestFilesAttackPast4GiB(t *testing.T) {
	t.Parallel()
	www := t.TempDir()
	const size, mid = 5 << 30, 4 << 30
	f, err := os.Create(filepath.Join(www, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Skipf("no sparse 5 GiB file here: %v", err)
	}
	f.WriteAt([]byte("MID!"), mid)
	f.WriteAt([]byte("TAIL"), size-4)
	f.Close()
	s := startServer(t, serverOpts{Module: "static", Flags: []string{"--dir", www + ":/www:ro"}})
	resp, body := fetch(t, s, "HEAD", "/big.bin")
	if resp.StatusCode != 200 || resp.ContentLength != size || len(body) != 0 {
		t.Errorf("HEAD: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	for _, c := range []struct {
		rng, crange string
		want        []byte
	}{
		{"bytes=4294967294-4294967299", "bytes 4294967294-4294967299/5368709120", []byte("\x00\x00MID!")},
		{"bytes=-4", "bytes 5368709116-5368709119/5368709120", []byte("TAIL")},
	} {
		resp, body := fetch(t, s, "GET", "/big.bin", "Range", c.rng)
		if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != c.crange || string(body) != string(c.want) {
			t.Errorf("Range %s: %d %q %q", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), body)
		}
	}
	// 128 KiB from 4 GiB: the sendfile path, from an offset past 32 bits.
	resp, body = fetch(t, s, "GET", "/big.bin", "Range", "bytes=4294967296-4295098367")
	if resp.StatusCode != 206 || len(body) != 128<<10 || string(body[:4]) != "MID!" || strings.Trim(string(body[4:]), "\x00") != "" {
		t.Errorf("128 KiB from 4 GiB: %d, %d bytes, head %q", resp.StatusCode, len(body), body[:min(len(body), 8)])
	}
	if resp, body := fetch(t, s, "GET", "/big.bin", "Range", "bytes=5368709120-"); resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */5368709120" {
		t.Errorf("a range at the end: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Range"), body)
	}
}

// If-None-Match decides alone when present (RFC 9110 §13.2.2): a stale tag with a matching
// If-Modified-Since is a 200, and a 304 carries the validators and no body, HEAD too.
func TestFilesAttackStaticConditionals(t *testing.T) {
	t.Parallel()
	s, _ := sfServer(t, map[string][]byte{"a.txt": []byte("abc")})
	resp, _ := fetch(t, s, "GET", "/a.txt")
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp, body := fetch(t, s, "GET", "/a.txt", "If-None-Match", `"stale"`, "If-Modified-Since", lastMod); resp.StatusCode != 200 || string(body) != "abc" {
		t.Errorf("stale If-None-Match with a matching If-Modified-Since: %d %q, want 200", resp.StatusCode, body)
	}
	for _, m := range []string{"GET", "HEAD"} {
		for _, f := range [][]string{{"If-None-Match", "W/" + etag}, {"If-None-Match", "*"}, {"If-Modified-Since", lastMod, "Range", "bytes=0-0"}} {
			cn, err := dialRaw(s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			// Pipelined behind a 304: if it carried a body, the next response would be garbled.
			req := m + " /a.txt HTTP/1.1\r\nHost: x\r\n" + f[0] + ": " + f[1] + "\r\n"
			if len(f) > 2 {
				req += f[2] + ": " + f[3] + "\r\n"
			}
			req += "\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
			cn.send(req)
			resp, body, err := cn.readResponse(m, ioTimeout)
			if err != nil || resp.StatusCode != 304 || len(body) != 0 || resp.Header.Get("ETag") != etag || resp.Header.Get("Last-Modified") != lastMod {
				t.Errorf("%s with %q: %v %v %q", m, f, resp, err, body)
			}
			resp, body, err = cn.readResponse("GET", ioTimeout)
			if err != nil || resp.StatusCode != 200 || string(body) != "abc" {
				t.Errorf("%s with %q, then GET: %v %v %q", m, f, resp, err, body)
			}
			cn.Close()
		}
	}
}

// A final slash says "a directory", as POSIX has it: a write to "/data/newdir/" creates no
// file named newdir, and a read, stat or remove of "/data/h.txt/" (or "/data/h.txt/.") does
// not act on the file h.txt.
func TestFilesAttackTrailingSlash(t *testing.T) {
	t.Parallel()
	l := newFALayout(t)
	s := l.start(t)
	for _, c := range [][]string{
		{"/op/write", "p", "/data/newdir/", "data", "x"},
		{"/op/append", "p", "/data/newdir/", "data", "x"},
		{"/op/write", "p", "/data/h.txt/", "data", "x"},
		{"/op/read", "p", "/data/h.txt/"},
		{"/op/read", "p", "/data/h.txt/."},
		{"/op/readat", "p", "/data/h.txt/", "n", "3"},
		{"/op/stat", "p", "/data/h.txt/"},
		{"/op/statsync", "p", "/data/h.txt/"},
		{"/op/remove", "p", "/data/h.txt/"},
		{"/op/remove", "p", "/data/h.txt/", "all", "1"},
		{"/op/rename", "p", "/data/h.txt/", "q", "/data/g.txt"},
	} {
		if got := faOp(t, s, c[0], c[1:]...); !strings.HasPrefix(got, "err ") {
			t.Errorf("%s %q: %q, want an error (not a directory)", c[0], c[1:], got)
		}
	}
	if _, err := os.Lstat(filepath.Join(l.data, "newdir")); !os.IsNotExist(err) {
		t.Errorf("a write to /data/newdir/ left something at newdir: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(l.data, "h.txt")); err != nil || string(b) != "hello" {
		t.Errorf("h.txt after the attempts: %q %v", b, err)
	}
	// A directory with a final slash works as without.
	for _, c := range [][]string{
		{"/op/mkdir", "p", "/data/m/"},
		{"/op/mkdir", "p", "/data/m/n/o/", "all", "1"},
		{"/op/write", "p", "/data/m/f.txt", "data", "x"},
		{"/op/stat", "p", "/data/m/"},
		{"/op/list", "p", "/data/m/"},
		{"/op/rename", "p", "/data/m/", "q", "/data/m2/"},
		{"/op/remove", "p", "/data/m2/", "all", "1"},
	} {
		if got := faOp(t, s, c[0], c[1:]...); !strings.HasPrefix(got, "ok ") {
			t.Errorf("%s %q: %q", c[0], c[1:], got)
		}
	}
}
