package tests

// Attacks on wasmloop:fs.statForBody (ABI 1.8, Response.StatFile): the host opens the file a
// response's head is made from and holds the descriptor on the request's exchange for its
// body_file. These tests drive it from a guest that misuses it (testdata/guests/statfileattack)
// and count, in /proc/PID/fd, the descriptors the server holds on the granted files: a held
// descriptor must be closed exactly when the response ends, however it ends.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"statfileattack", "./tests/testdata/guests/statfileattack", true})
}

// sfaStart starts the statfileattack guest with dir granted as /data.
func sfaStart(t *testing.T, dir string) *server {
	t.Helper()
	return startServer(t, serverOpts{Module: "statfileattack", Flags: []string{"--dir", dir + ":/data"}})
}

// sfaHeld lists the server's open descriptors on files under dir (the grant's own directory,
// which the host keeps open, is not counted).
func sfaHeld(t *testing.T, s *server, dir string) []string {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatalf("listing %s: %v", fdDir, err)
	}
	var held []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if strings.HasPrefix(target, dir+"/") {
			held = append(held, e.Name()+" -> "+target)
		}
	}
	return held
}

// sfaNoneHeld fails the test unless the server holds no descriptor on a file under dir
// within a few seconds.
func sfaNoneHeld(t *testing.T, s *server, dir, after string) {
	t.Helper()
	var held []string
	if !eventually(3*time.Second, func() bool { held = sfaHeld(t, s, dir); return len(held) == 0 }) {
		t.Errorf("after %s the server still holds %d descriptor(s) on granted files: %q", after, len(held), held)
	}
}

// sfaGet does one GET on a connection of its own and returns the status and body.
func sfaGet(t *testing.T, s *server, path string) (int, string) {
	t.Helper()
	resp, err := client(&http.Transport{DisableKeepAlives: true}).Get(s.URL(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func sfaLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/PID/fd (Linux)")
	}
}

// A WebSocket handshake whose handler called StatFile before accepting it: ws_accept ends
// the request (its handle goes stale), so the file held for it must be closed then. The host's
// acceptWS (host/internal/loop/websocket.go) removes and recycles the exchange without
// dropFile, and the descriptor stays open for the life of the process: each such handshake,
// from any client, leaks one, until the server runs out (EMFILE) and can accept no one.
func TestStatFileAttackWebSocketUpgradeClosesHeldFile(t *testing.T) {
	t.Parallel()
	sfaLinux(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "page.txt"), "held for a request that becomes a WebSocket")
	s := sfaStart(t, dir)
	const n = 5
	for i := range n {
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		resp, _, err := func() (*http.Response, []byte, error) {
			if err := c.send(fmt.Sprintf(wsHandshake, "/ws?p=/data/page.txt")); err != nil {
				return nil, nil, err
			}
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			return resp, nil, err
		}()
		if err != nil || resp.StatusCode != 101 {
			c.Close()
			t.Fatalf("handshake %d: %v %v, want 101", i, resp, err)
		}
		c.Close()
	}
	if !eventually(ioTimeout, func() bool { return strings.Count(s.stdout.String(), "ws upgraded") == n }) {
		t.Fatalf("the guest did not log %d upgrades:\n%s", n, s.stdout.String())
	}
	sfaNoneHeld(t, s, dir, strconv.Itoa(n)+" WebSocket handshakes accepted after StatFile, and closed")
}

// The held file is the response's, "for its body_file of the same path (from any offset)
// ... closed when the response ends, or when another path is sent" (ABI.md §9): a response
// that sends its file in two body_file calls (a part, then the rest — as a multipart range
// answer or a guest that interleaves its own bytes does) must send both from the version
// its head describes. The host (BodyFile, host/internal/loop/bodyfile.go) closes the held
// file as soon as one body_file completes without waiting for room, so the second opens
// the path again: a file renamed over in between goes out as the first half of the old
// version and the second half of the new one, under the old one's Content-Length — exactly
// what statForBody exists to prevent.
func TestStatFileAttackHeldFileCoversEveryPart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	page := filepath.Join(dir, "page.txt")
	const first, second = "AAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	write(t, page, first)
	s := sfaStart(t, dir)

	got := getAnswer(s.URL("/parts?p=/data/page.txt"))
	if !eventually(ioTimeout, func() bool { return strings.Contains(s.stdout.String(), "parts half") }) {
		t.Fatalf("no \"parts half\" in the log:\n%s", s.stdout.String())
	}
	// Half of the head's version is out; now the file is replaced, as a deployment does.
	write(t, page+".new", second)
	if err := os.Rename(page+".new", page); err != nil {
		t.Fatal(err)
	}
	if _, body := sfaGet(t, s, "/rest"); body != "rest 10" {
		t.Errorf("/rest: %q, want \"rest 10\" (the second half of the held file)", body)
	}
	a := <-got // the client's own timeout bounds this
	if a.err != nil || a.status != 200 || a.length != int64(len(first)) || a.body != first {
		t.Errorf("%d, Content-Length %d, %q, %v; want 200 and %q: the version its head describes, whole", a.status, a.length, a.body, a.err, first)
	}
}

// A streamed response for which StatFile holds a file it has not sent (yet): when the client
// goes (a full close), the guest must hear on_close as it does for the same response without
// StatFile — the held file is not output in flight. peerEOF (host/internal/loop/httpconn.go)
// takes any kept file for a send waiting for room and keeps the connection (hc.last), so
// the guest is never told, and the exchange, its connection and the descriptor stay until
// the guest happens to write.
func TestStatFileAttackClientGoneWhileFileHeld(t *testing.T) {
	t.Parallel()
	sfaLinux(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "page.txt"), "held, never sent")
	s := sfaStart(t, dir)
	for _, p := range []string{"", "/data/page.txt"} {
		c, err := dialRaw(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.send(get("/stream?p=" + p)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("/stream?p=%s: %v", p, err)
		}
		line := make([]byte, len("streaming\n"))
		if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "streaming\n" {
			t.Fatalf("/stream?p=%s: %q %v", p, line, err)
		}
		c.Close() // the client goes
		want := "stream closed " + p + "\n"
		if !eventually(5*time.Second, func() bool { return strings.Contains(s.stdout.String(), want) }) {
			t.Errorf("/stream?p=%q: the client closed, and the guest never heard (no %q in the log)", p, strings.TrimSpace(want))
		}
	}
	sfaNoneHeld(t, s, dir, "the client of a streamed response holding a file went")
}

// Guards: every other way a response holding a file can end closes the descriptor, once.
// StatFile twice (the first file is let go), StatFile and no SendFile, a client that goes
// while the guest holds the request, a handler that panics holding one, and calls naming
// no request of the caller's, a stale one, or things that are not regular files (a FIFO
// must not block the loop: the next request is answered).
func TestStatFileAttackDescriptorsClosed(t *testing.T) {
	t.Parallel()
	sfaLinux(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.txt"), "aaaa")
	write(t, filepath.Join(dir, "b.txt"), "bbbbbbbb")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	s := sfaStart(t, dir)

	if st, body := sfaGet(t, s, "/twice?p=/data/a.txt&q=/data/b.txt"); st != 200 || body != "bbbbbbbb" {
		t.Errorf("/twice: %d %q", st, body)
	}
	if st, body := sfaGet(t, s, "/twice?p=/data/a.txt&q=/data/a.txt"); st != 200 || body != "aaaa" {
		t.Errorf("/twice, the same file: %d %q", st, body)
	}
	sfaNoneHeld(t, s, dir, "StatFile twice, then SendFile")
	if st, body := sfaGet(t, s, "/nosend?p=/data/a.txt"); st != 200 || body != "size 4" {
		t.Errorf("/nosend: %d %q", st, body)
	}
	sfaNoneHeld(t, s, dir, "StatFile without SendFile")

	// The client goes while the guest holds the request: on_close, and the file closes.
	c, err := dialRaw(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(get("/hang?p=/data/b.txt")); err != nil {
		t.Fatal(err)
	}
	if !eventually(ioTimeout, func() bool { return strings.Contains(s.stdout.String(), "hung /data/b.txt") }) {
		t.Fatalf("no \"hung\" in the log:\n%s", s.stdout.String())
	}
	if held := sfaHeld(t, s, dir); len(held) != 1 {
		t.Errorf("while /hang holds b.txt: %q, want one descriptor", held)
	}
	c.Close()
	if !eventually(ioTimeout, func() bool { return strings.Contains(s.stdout.String(), "hang closed") }) {
		t.Errorf("the guest did not hear that the /hang client went")
	}
	sfaNoneHeld(t, s, dir, "the client of a request holding a file went")

	// Handles that are not an open request of the caller's: refused, nothing held.
	for h, want := range map[string]string{
		"0":                    "err EINVAL ",
		"1":                    "err EINVAL ",
		"last":                 "err EINVAL ", // the request /raw answered before, ended
		"18446744073709551615": "err EINVAL ",
		"self":                 "ok 4",
	} {
		if _, body := sfaGet(t, s, "/raw?p=/data/a.txt&h="+h); !strings.HasPrefix(body, want) {
			t.Errorf("/raw h=%s: %q, want %q…", h, body, want)
		}
	}
	// What is not a regular file is answered as wasmloop:fs.stat answers it, and nothing
	// waits on a FIFO.
	for p, want := range map[string]string{
		"/data/fifo":                        "ok 0",
		"/data/sub":                         "ok ",
		"/data/missing":                     "err ENOENT ",
		"/data/../../etc/hosts":             "err EACCES ",
		"/data/a.txt%00":                    "err EINVAL ",
		"relative":                          "err EINVAL ",
		"/data/" + strings.Repeat("n", 300): "err EINVAL ",
	} {
		if _, body := sfaGet(t, s, "/raw?h=self&p="+p); !strings.HasPrefix(body, want) {
			t.Errorf("/raw p=%s: %q, want %q…", truncate(p, 40), truncate(body, 120), want)
		}
	}
	sfaNoneHeld(t, s, dir, "statForBody with bad handles and paths")

	// A handler that fails holding a file: its instance is replaced, and the file goes with it.
	resp, err := client(&http.Transport{DisableKeepAlives: true}).Get(s.URL("/panic?p=/data/a.txt"))
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 {
			t.Errorf("/panic: %d, want 500", resp.StatusCode)
		}
	}
	if st, body := sfaGet(t, s, "/nosend?p=/data/b.txt"); st != 200 || body != "size 8" {
		t.Errorf("/nosend after the panic: %d %q", st, body)
	}
	sfaNoneHeld(t, s, dir, "a handler that panicked holding a file")
}
