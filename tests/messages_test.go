package tests

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"relay", "./tests/testdata/guests/relay", true})
}

// perWorker returns one keep-alive client per worker, found by opening fresh connections
// until both X-Worker values were seen (bounded).
func perWorker(t *testing.T, s *server, workers int) []*http.Client {
	t.Helper()
	found := make([]*http.Client, workers)
	for i, seen := 0, 0; i < 500 && seen < workers; i++ {
		c := client(&http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1})
		resp, _ := httpGet(t, c, s.URL("/"))
		w, _ := strconv.Atoi(resp.Header.Get("X-Worker"))
		if found[w] == nil {
			found[w] = c
			seen++
		} else {
			c.CloseIdleConnections()
		}
	}
	for w, c := range found {
		if c == nil {
			t.Fatalf("no connection reached worker %d", w)
		}
	}
	return found
}

func post(t *testing.T, c *http.Client, url string) (string, string) {
	t.Helper()
	resp, err := c.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.Header.Get("X-Worker")
}

// Messages between workers arrive at the others, all of them, in the order sent.
func TestMessagesBetweenWorkers(t *testing.T) {
	s := startServer(t, serverOpts{Module: "relay", Workers: 2})
	cs := perWorker(t, s, 2)
	if got, w := post(t, cs[0], s.URL("/say?n=1000")); got != "sent 1000" || w != "0" {
		t.Fatalf("worker %s: %q", w, got)
	}
	if got, _ := post(t, cs[1], s.URL("/say?n=3")); got != "sent 3" {
		t.Fatalf("%q", got)
	}
	var want []string
	for i := 1; i <= 1000; i++ {
		want = append(want, "0:m"+strconv.Itoa(i))
	}
	var log string
	if !eventually(10*time.Second, func() bool {
		_, body := httpGet(t, cs[1], s.URL("/log"))
		log = string(body)
		return strings.Count(log, "\n")+1 >= 1000
	}) {
		t.Fatalf("worker 1 received %d of 1000 messages", strings.Count(log, "\n")+1)
	}
	if log != strings.Join(want, "\n") {
		t.Fatalf("worker 1's messages are not all there in order: %.200q", log)
	}
	if !eventually(10*time.Second, func() bool {
		_, body := httpGet(t, cs[0], s.URL("/log"))
		return string(body) == "1:m1\n1:m2\n1:m3"
	}) {
		_, body := httpGet(t, cs[0], s.URL("/log"))
		t.Fatalf("worker 0 received %q", body)
	}
}

// A receiver that falls behind bounds its queue: the sender is told (ELIMIT) instead of the
// host growing memory; and bad targets or sizes are refused.
func TestMessageLimits(t *testing.T) {
	s := startServer(t, serverOpts{Module: "relay", Workers: 2})
	cs := perWorker(t, s, 2)
	got, _ := post(t, cs[0], s.URL("/flood"))
	n, errName, _ := strings.Cut(got, " ")
	if count, _ := strconv.Atoi(n); errName != "ELIMIT" || count < 4096 {
		t.Fatalf("flood answered %q, want at least 4096 then ELIMIT", got)
	}
	if got, _ := post(t, cs[0], s.URL("/big")); got != "EINVAL EINVAL" {
		t.Fatalf("oversized message and bad worker: %q", got)
	}
	// The flooded worker is still serving.
	if _, body := httpGet(t, cs[1], s.URL("/")); string(body) != "worker 1" {
		t.Fatalf("%q", body)
	}
}
