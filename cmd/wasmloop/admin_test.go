package main

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// run's own notices follow --log-format: plain lines, or JSON records at their level with the
// "wasmloop: " prefix dropped, so that a JSON log stays JSON.
func TestNotices(t *testing.T) {
	var text strings.Builder
	noticeAt(&text, "text", slog.LevelError)("wasmloop: reload failed")
	if text.String() != "wasmloop: reload failed\n" {
		t.Fatalf("text: %q", text.String())
	}
	var js strings.Builder
	noticeAt(&js, "json", slog.LevelError)("wasmloop: reload failed")
	notice(&js, "json")("wasmloop: 2 workers")
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("json: %q", js.String())
	}
	for i, want := range []struct{ level, msg string }{{"ERROR", "reload failed"}, {"INFO", "2 workers"}} {
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil || rec["level"] != want.level || rec["msg"] != want.msg {
			t.Errorf("record %d: %q (%v), want level %s msg %q", i, lines[i], err, want.level, want.msg)
		}
	}
	var plain strings.Builder
	(&reloader{stderr: &plain}).report(nil, "wasmloop: reloaded x")
	if plain.String() != "wasmloop: reloaded x\n" {
		t.Fatalf("reloader without notices: %q", plain.String())
	}
}
