package host_test

// Attacks on messages between the embedding program and the guest (App.Post,
// Config.OnMessage), with tests/testdata/guests/msgatk built here (once) rather than in
// TestMain.

import (
	"context"
	"errors"
	"io"
	"log"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host"
)

// startMsgatk starts msgatk in an App (KeepAlive, no ports) whose OnMessage feeds the
// returned channel.
func startMsgatk(t *testing.T, cfg host.Config) (*host.App, chan string, *watchedWriter) {
	t.Helper()
	got := make(chan string, 256)
	logs := &watchedWriter{}
	cfg.KeepAlive = true
	cfg.Stdout, cfg.Stderr = io.Discard, io.Discard
	cfg.Log = log.New(logs, "", 0)
	if cfg.OnMessage == nil {
		cfg.OnMessage = func(_ int, data []byte) {
			select {
			case got <- string(data):
			default:
			}
		}
	}
	app := load(t, msgatkWasm, cfg)
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		app.Close(context.Background())
		if t.Failed() {
			t.Logf("host log:\n%s", logs)
		}
	})
	return app, got, logs
}

// await waits for a message from the guest that starts with prefix, skipping others.
func await(t *testing.T, got chan string, prefix string, d time.Duration) (string, bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-got:
			if strings.HasPrefix(m, prefix) {
				return m, true
			}
		case <-deadline:
			return "", false
		}
	}
}

// pingUntilPong posts "ping" until a pong comes back (bounded), returning its token.
func pingUntilPong(t *testing.T, app *host.App, got chan string) string {
	t.Helper()
	for range 100 {
		if err := app.Post(0, []byte("ping")); err != nil {
			t.Fatalf("Post ping: %v", err)
		}
		if m, ok := await(t, got, "pong ", 200*time.Millisecond); ok {
			return strings.TrimPrefix(m, "pong ")
		}
	}
	t.Fatal("no pong within 100 pings")
	return ""
}

// A message App.Post accepted (nil) while the worker's replacement instance waits out its
// restart delay (the second failure in a row without serving: loop/instance.go replace(),
// restartDelay) reaches that replacement once it has started, as one posted right after a
// first trap (no delay) does: RATIONALE.md promises "a message is either delivered or
// refused with ECLOSED, never accepted and dropped". It was thrown away with no refusal and
// no log (deliverMessage found the dead instance in l.cur); worker-to-worker posts the same.
func TestMsgAttackPostDuringRestartDelayIsLost(t *testing.T) {
	app, got, _ := startMsgatk(t, host.Config{Workers: 1})
	tok1 := pingUntilPong(t, app, got)

	// Control: one trap, immediate restart: a message queued behind the fatal one reaches
	// the replacement.
	for _, m := range []string{"die|0|", "m|8|"} {
		if err := app.Post(0, []byte(m)); err != nil {
			t.Fatalf("Post %q: %v", m, err)
		}
	}
	m8, ok := await(t, got, "got 8 ", 10*time.Second)
	if !ok {
		t.Fatal("after one trap, the message queued behind it never reached the replacement")
	}
	tok2 := strings.Fields(m8)[2]
	if tok2 == tok1 {
		t.Fatalf("message 8 answered by the instance that was told to die (%s)", tok1)
	}

	// Two traps in a row: the second replacement waits 10 ms; a message posted meanwhile
	// is accepted (nil) …
	for _, m := range []string{"die|0|", "die|0|", "m|9|"} {
		if err := app.Post(0, []byte(m)); err != nil {
			t.Fatalf("Post %q: %v", m, err)
		}
	}
	// … and reaches the replacement once it has started, not the instance told to die.
	m9, ok := await(t, got, "got 9 ", 10*time.Second)
	if !ok {
		t.Fatalf("App.Post(0, \"m|9|\") returned nil while worker 0 waited out its restart delay, and the message was never delivered to the replacement (nor refused with ECLOSED, nor logged)")
	}
	if tok3 := strings.Fields(m9)[2]; tok3 == tok2 {
		t.Fatalf("message 9 answered by the instance told to die (%s)", tok2)
	}
}

// A message of exactly MaxMessage from the host to a worker that is being replaced after a
// trap reaches the replacement whole, in order behind the fatal message; one byte more is
// EINVAL and nothing is queued. Guard.
func TestMsgAttackHostPostMaxAcrossTrap(t *testing.T) {
	app, got, _ := startMsgatk(t, host.Config{Workers: 2})
	for w := range 2 {
		big := make([]byte, abi.MaxMessage)
		copy(big, "m|5|")
		for i := 4; i < len(big); i++ {
			big[i] = byte(i * 7)
		}
		if err := app.Post(w, []byte("die|all|")); err != nil {
			t.Fatal(err)
		}
		if err := app.Post(w, big); err != nil {
			t.Fatalf("worker %d: Post of MaxMessage behind a trap: %v", w, err)
		}
		if err := app.Post(w, append(big, 0)); !errors.Is(err, abi.EINVAL) {
			t.Fatalf("worker %d: Post of MaxMessage+1: %v, want EINVAL", w, err)
		}
		m, ok := await(t, got, "got 5 ", 10*time.Second)
		if !ok {
			t.Fatalf("worker %d: the MaxMessage message behind the trap never arrived", w)
		}
		if f := strings.Fields(m); f[3] != "true" || f[4] != "1048576" {
			t.Fatalf("worker %d: the replacement got %q, want the whole 1 MiB intact", w, m)
		}
	}
}
