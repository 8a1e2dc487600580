package tests

// Attacks on messages between workers, with testdata/guests/msgatk: every message a worker
// receives is a stdout line ("msgatk: got w=W from=F seq=S len=N ok=BOOL tok=T"), so what
// each worker received survives its instance being trapped or swapped, and can be compared
// with what the sender's broadcast codes said.

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"msgatk", "./tests/testdata/guests/msgatk", true})
}

var msgatkGot = regexp.MustCompile(`msgatk: got w=(\d+) from=(-?\d+) seq=(\d+) len=(\d+) ok=(\w+) tok=(\w+)`)

// msgatkReceived lists, per receiving worker, the seqs received from sender (and of size
// size, when size >= 0) in the order logged, and the lines whose pattern was broken.
func msgatkReceived(out string, sender, size int) (map[int][]int, []string) {
	got := map[int][]int{}
	var bad []string
	for _, m := range msgatkGot.FindAllStringSubmatch(out, -1) {
		w, _ := strconv.Atoi(m[1])
		f, _ := strconv.Atoi(m[2])
		seq, _ := strconv.Atoi(m[3])
		n, _ := strconv.Atoi(m[4])
		if f != sender || (size >= 0 && n != size) {
			continue
		}
		if m[5] != "true" {
			bad = append(bad, m[0])
		}
		got[w] = append(got[w], seq)
	}
	return got, bad
}

func matkSeqs(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		v, _ := strconv.Atoi(f)
		out = append(out, v)
	}
	return out
}

func matkEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// matkDiff describes where got departs from want.
func matkDiff(got, want []int) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d: got seq %d, want %d (got %d in all, want %d)", i, got[i], want[i], len(got), len(want))
		}
	}
	return fmt.Sprintf("got %d seqs, want %d", len(got), len(want))
}

// Broadcasts of short and long messages (16 B, 5000 B, 200 KB, 1 MiB) from worker 0 while
// worker 2 is trapped (twice) and every worker is swapped (SIGHUP): the per-worker codes
// broadcast writes must match, exactly and in order, what each worker then received (once
// each, intact), whichever instance received it. Guard.
func TestMsgAttackBroadcastCodesMatchDeliveries(t *testing.T) {
	s := startServer(t, serverOpts{Module: "msgatk", Workers: 4})
	cs := perWorker(t, s, 4)
	reloaded := s.stderr.appears("wasmloop: reloaded")
	started := s.stdout.appears("msgatk: got w=1 from=0 seq=1 ")
	var answer string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		answer, _ = post(t, cs[0], s.URL("/bcast?n=120&start=1&sizes=16,5000,200000,16,16,1048576,5000,16"))
	}()
	select {
	case <-started:
	case <-time.After(ioTimeout):
		t.Fatal("the broadcasts never started arriving")
	}
	go func() { // worker 3 stops draining for a while: its queue fills (ELIMIT)
		defer wg.Done()
		post(t, cs[3], s.URL("/spinflood?ms=300&n=0&size=8"))
	}()
	for range 2 {
		resp, err := cs[2].Get(s.URL("/die"))
		if err == nil {
			resp.Body.Close()
		}
	}
	s.proc.signal(t, syscall.SIGHUP)
	wg.Wait()
	select {
	case <-reloaded:
	case <-time.After(30 * time.Second):
		t.Fatalf("no reload\nstderr:\n%s", s.stderr)
	}
	if !strings.HasPrefix(answer, "w0=;") {
		t.Fatalf("/bcast answered %q", truncate(answer, 300))
	}
	want := map[int][]int{}
	refused := 0
	for _, part := range strings.Split(answer, ";") {
		k, v, _ := strings.Cut(part, "=")
		w, _ := strconv.Atoi(strings.TrimPrefix(k, "w"))
		want[w] = matkSeqs(v)
		if w != 0 {
			refused += 120 - len(want[w])
		}
	}
	t.Logf("broadcast refusals in all: %d", refused)
	var got map[int][]int
	var bad []string
	ok := eventually(30*time.Second, func() bool {
		got, bad = msgatkReceived(s.stdout.String(), 0, -1)
		for w := 1; w < 4; w++ {
			if len(got[w]) < len(want[w]) {
				return false
			}
		}
		return true
	})
	// Let any extra (duplicate) delivery show: one more request through every worker.
	for w := 1; w < 4; w++ {
		httpGet(t, cs[w], s.URL("/tok"))
	}
	got, bad = msgatkReceived(s.stdout.String(), 0, -1)
	for w := 1; w < 4; w++ {
		if !matkEqual(got[w], want[w]) {
			t.Errorf("worker %d: received %s (complete=%v)", w, matkDiff(got[w], want[w]), ok)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d messages arrived damaged, e.g. %s", len(bad), bad[0])
	}
}

// The receiver's caps, exactly: while worker 1 spins in a callback (so it drains nothing),
// worker 0 posts to it until refused: 4096 short messages are taken and the 4097th is ELIMIT;
// 300,000-byte messages stop at 55 (16 MiB / 300,000) with ELIMIT, twice. Every message taken is
// then delivered, in order, once; after the floods the host's RSS has not grown by their
// sum (the queued copies are freed). Guard.
func TestMsgAttackQueueCapsExactWhileReceiverSpins(t *testing.T) {
	s := startServer(t, serverOpts{Module: "msgatk", Workers: 2})
	cs := perWorker(t, s, 2)
	rss0 := matkStatusKB(t, s.cmd.Process.Pid, "VmRSS")
	delivered := map[int]int{}
	for i, c := range []struct {
		n, size, want int
		lines         string
	}{
		{5000, 8, 4096, "msgatk: flood accepted=4096 err=ELIMIT"},
		{100, 300000, 55, "msgatk: flood accepted=55 err=ELIMIT"},
		{100, 300000, 55, "msgatk: flood accepted=55 err=ELIMIT"},
	} {
		flooded := s.stdout.appearsN("msgatk: flood accepted=", i+1)
		if got, w := post(t, cs[1], s.URL(fmt.Sprintf("/spinflood?ms=400&n=%d&size=%d", c.n, c.size))); got != "spun nil" || w != "1" {
			t.Fatalf("/spinflood on worker %s: %q", w, got)
		}
		select {
		case <-flooded:
		case <-time.After(ioTimeout):
			t.Fatal("worker 0 never reported its flood")
		}
		lines := strings.Count(s.stdout.String(), "msgatk: flood accepted=")
		if last := matkLastLine(s.stdout.String(), "msgatk: flood accepted="); lines != i+1 || last != c.lines {
			t.Fatalf("flood %d (%d × %d B): %q, want %q", i, c.n, c.size, last, c.lines)
		}
		delivered[c.size] += c.want
		var got map[int][]int
		if !eventually(ioTimeout, func() bool {
			got, _ = msgatkReceived(s.stdout.String(), 0, c.size)
			return len(got[1]) >= delivered[c.size]
		}) {
			t.Fatalf("flood %d: worker 1 received %d messages", i, len(got[1]))
		}
	}
	got, bad := msgatkReceived(s.stdout.String(), 0, 8)
	want := make([]int, 4096)
	for i := range want {
		want[i] = i + 1
	}
	if !matkEqual(got[1], want) || len(bad) > 0 {
		t.Errorf("short flood delivered %s, damaged %d", matkDiff(got[1], want), len(bad))
	}
	got, bad = msgatkReceived(s.stdout.String(), 0, 300000)
	want = want[:0]
	for range 2 {
		for i := range 55 {
			want = append(want, i+1)
		}
	}
	if !matkEqual(got[1], want) || len(bad) > 0 {
		t.Errorf("long floods delivered %s, damaged %d", matkDiff(got[1], want), len(bad))
	}
	// Drained: the receiver takes a message again.
	if got, _ := post(t, cs[1], s.URL("/spinflood?ms=0&n=1&size=300000")); got != "spun nil" {
		t.Fatal(got)
	}
	matkAwaitLine(t, s, "msgatk: flood accepted=1 err=nil")
	rss1 := matkStatusKB(t, s.cmd.Process.Pid, "VmRSS")
	t.Logf("VmRSS %d kB before, %d kB after 2 floods of 16 MiB", rss0, rss1)
	if rss1-rss0 > 96<<10 {
		t.Errorf("VmRSS grew from %d kB to %d kB over two 16 MiB floods that were all delivered", rss0, rss1)
	}
}

// 1,000 WebSocket clients connect, each sends one message the guest broadcasts to the other
// worker, and close (alternately with a closing handshake and abruptly): no descriptor is
// left behind and every broadcast is delivered. Guard.
func TestMsgAttackWebSocketChurnWithBroadcasts(t *testing.T) {
	s := startServer(t, serverOpts{Module: "msgatk", Workers: 2})
	pid := s.cmd.Process.Pid
	perWorker(t, s, 2)
	fds0 := fdCount(t, pid)
	const n = 1000
	for i := 1; i <= n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		c, _, _, err := ws.Dialer{Timeout: ioTimeout}.Dial(ctx, s.wsURL("/ws"))
		cancel()
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(ioTimeout))
		if err := wsutil.WriteClientText(c, []byte("m|"+strconv.Itoa(i)+"|")); err != nil {
			t.Fatal(err)
		}
		got, err := wsutil.ReadServerText(c)
		if err != nil || string(got) != "b nil" {
			c.Close()
			t.Fatalf("client %d: %q %v", i, got, err)
		}
		if i%2 == 0 {
			ws.WriteFrame(c, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, ""))))
			ws.ReadFrame(c) // the server's close frame
		}
		c.Close()
	}
	var fds int
	if !eventually(ioTimeout, func() bool { fds = fdCount(t, pid); return fds <= fds0+2 }) {
		t.Errorf("descriptors: %d before, %d after %d WebSocket connects and closes", fds0, fds, n)
	}
	var total int
	if !eventually(ioTimeout, func() bool {
		total = 0
		for _, m := range msgatkGot.FindAllStringSubmatch(s.stdout.String(), -1) {
			if m[2] == "0" || m[2] == "1" {
				total++
			}
		}
		return total >= n
	}) || total != n {
		t.Errorf("%d broadcasts answered nil, %d delivered", n, total)
	}
}

func matkStatusKB(t *testing.T, pid int, key string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

func matkLastLine(out, prefix string) string {
	last := ""
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, prefix); i >= 0 {
			last = l[i:]
		}
	}
	return last
}

func matkAwaitLine(t *testing.T, s *server, line string) {
	t.Helper()
	select {
	case <-s.stdout.appears(line):
	case <-time.After(ioTimeout):
		t.Fatalf("no %q on stdout", line)
	}
}

// SIGTERM while worker 0 broadcasts (inside one request, which keeps it alive through the
// drain): the other workers, holding no connection, end; from then on their code is ECLOSED,
// and every message whose code was 0 was delivered (logged) before they ended. Guard.
func TestMsgAttackBroadcastAcrossSIGTERM(t *testing.T) {
	s := startServer(t, serverOpts{Module: "msgatk", Workers: 3})
	cs := perWorker(t, s, 3)
	cs[1].CloseIdleConnections()
	cs[2].CloseIdleConnections()
	c := cs[0]
	started := s.stdout.appears("msgatk: got w=1 from=0 seq=1 ")
	var answer string
	done := make(chan struct{})
	go func() {
		defer close(done)
		answer, _ = post(t, c, s.URL("/bcast?n=20000&start=1&sizes=16,5000"))
	}()
	select {
	case <-started:
	case <-time.After(ioTimeout):
		t.Fatal("the broadcasts never started arriving")
	}
	s.proc.signal(t, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("/bcast never answered")
	}
	s.proc.wait(t, 30*time.Second)
	if !strings.HasPrefix(answer, "w0=;") {
		t.Fatalf("/bcast answered %q", truncate(answer, 300))
	}
	got, _ := msgatkReceived(s.stdout.String(), 0, -1)
	for _, part := range strings.Split(answer, ";")[1:] {
		k, v, _ := strings.Cut(part, "=")
		w, _ := strconv.Atoi(strings.TrimPrefix(k, "w"))
		want := matkSeqs(v)
		t.Logf("worker %d: %d of 20000 accepted", w, len(want))
		if !matkEqual(got[w], want) {
			t.Errorf("worker %d: %s", w, matkDiff(got[w], want))
		}
	}
}
