package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Long messages between workers (ABI 1.7): up to the SDK's MaxMessage, 1 MiB, bounded in
// bytes per receiver. The relay guest (tests/testdata/guests/relay) sends patterned messages
// and logs the length and SHA-256 of each long one it receives.

// longPattern is relay's pattern: message content from sender, n bytes.
func longPattern(n, sender int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ byte(i>>8)*3 ^ byte(i>>16)*5 ^ byte(sender)
	}
	return b
}

// longEntry is the line relay logs for a long message of n bytes from sender, whole and
// intact.
func longEntry(n, sender int) string {
	sum := sha256.Sum256(longPattern(n, sender))
	return fmt.Sprintf("%d %d %s true", sender, n, hex.EncodeToString(sum[:]))
}

// awaitLongLog polls a worker's /longlog until it holds want lines, and checks them.
func awaitLongLog(t *testing.T, s *server, c *http.Client, worker int, want []string) {
	t.Helper()
	var got string
	if !eventually(20*time.Second, func() bool {
		_, body := httpGet(t, c, s.URL("/longlog"))
		got = string(body)
		return got != "" && strings.Count(got, "\n")+1 >= len(want)
	}) {
		t.Fatalf("worker %d received %d of %d long messages:\n%s", worker, strings.Count(got, "\n")+1, len(want), got)
	}
	if got != strings.Join(want, "\n") {
		t.Fatalf("worker %d's long messages:\n%s\nwant:\n%s", worker, got, strings.Join(want, "\n"))
	}
}

// Broadcasts and posts of up to 1 MiB arrive whole, intact and in order at every receiver:
// sizes below the smallest inbox, the SDK's inbox exactly, one byte past it, and 1 MiB.
func TestMessageLong(t *testing.T) {
	s := startServer(t, serverOpts{Module: "relay", Workers: 3})
	cs := perWorker(t, s, 3)
	if got, _ := post(t, cs[0], s.URL("/max")); got != "1048576" {
		t.Fatalf("the SDK's MaxMessage is %s, want 1048576 (1 MiB)", got)
	}
	sizes := []int{5000, 64 << 10, 64<<10 + 1, 1 << 20}
	var fromZero []string
	for _, n := range sizes {
		if got, w := post(t, cs[0], s.URL("/long?to=all&n="+strconv.Itoa(n))); got != "nil" || w != "0" {
			t.Fatalf("worker %s: broadcast of %d bytes: %s", w, n, got)
		}
		fromZero = append(fromZero, longEntry(n, 0))
	}
	if got, _ := post(t, cs[2], s.URL("/long?to=1&n=1048576")); got != "nil" {
		t.Fatalf("post of 1 MiB from worker 2 to 1: %s", got)
	}
	// Worker 0's broadcasts were queued at worker 1 before worker 2's post was made.
	awaitLongLog(t, s, cs[1], 1, append(fromZero, longEntry(1<<20, 2)))
	awaitLongLog(t, s, cs[2], 2, fromZero)
	if _, body := httpGet(t, cs[0], s.URL("/longlog")); len(body) != 0 {
		t.Fatalf("the broadcaster received its own message: %s", body)
	}
	// Past MaxMessage, either way: EINVAL, nothing sent.
	for _, to := range []string{"1", "all"} {
		if got, _ := post(t, cs[0], s.URL("/long?n=1048577&to="+to)); got != "EINVAL" {
			t.Errorf("1 MiB + 1 to %s: %q, want EINVAL", to, got)
		}
	}
}

// A receiver that falls behind holds at most 16 MiB of messages: a flood of 1 MiB messages
// gets ELIMIT after about 16 (not the 4096 of the count bound), and every message taken is
// delivered.
func TestMessageByteBound(t *testing.T) {
	s := startServer(t, serverOpts{Module: "relay", Workers: 2})
	cs := perWorker(t, s, 2)
	got, _ := post(t, cs[0], s.URL("/longflood?n=1048576&to=1"))
	var count int
	var rest string
	if _, err := fmt.Sscanf(got, "%d %s", &count, &rest); err != nil || !strings.HasSuffix(got, " ELIMIT elimit=true") || count < 16 || count >= 4096 {
		t.Fatalf("flood of 1 MiB messages answered %q, want at least 16 then ELIMIT (the 16 MiB bound)", got)
	}
	t.Logf("%d messages of 1 MiB were queued before ELIMIT", count)
	want := make([]string, count)
	for i := range want {
		want[i] = longEntry(1<<20, 0)
	}
	awaitLongLog(t, s, cs[1], 1, want)
	// Drained, the receiver takes messages again.
	if got, _ := post(t, cs[0], s.URL("/long?n=1048576&to=1")); got != "nil" {
		t.Fatalf("after the flood drained: %s", got)
	}
	awaitLongLog(t, s, cs[1], 1, append(want, longEntry(1<<20, 0)))
}

// A broadcast some worker refused reports which one and why: the SDK's *BroadcastError
// names it (errors.Is matches ELIMIT), and so does the host's log line.
func TestMessageBroadcastRefused(t *testing.T) {
	s := startServer(t, serverOpts{Module: "relay", Workers: 2})
	cs := perWorker(t, s, 2)
	logged := s.stderr.appears("worker 0: a broadcast of 1048576 bytes was not delivered to worker 1 (ELIMIT)\n")
	got, _ := post(t, cs[0], s.URL("/longflood?n=1048576&to=all"))
	if !strings.HasSuffix(got, " broadcast not delivered to worker 1 (ELIMIT) elimit=true workers=[1] codes=[ELIMIT]") {
		t.Fatalf("flood of broadcasts answered %q, want a BroadcastError naming worker 1 with ELIMIT", got)
	}
	select {
	case <-logged:
	case <-time.After(ioTimeout):
		t.Fatalf("no host log line naming worker 1; stderr:\n%s", s.stderr)
	}
}
