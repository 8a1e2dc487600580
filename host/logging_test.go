package host

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/wasmloop/wasmloop/host/internal/guestout"
)

// jsonRecords is what --log-format json does with a worker's stdout: a guestout Writer over
// recordLines. It returns the records' messages.
func jsonRecords(t *testing.T, write func(w *guestout.Writer)) []string {
	var buf bytes.Buffer
	rl := &recordLines{l: slog.New(slog.NewJSONHandler(&buf, nil)), worker: 0, stream: "stdout"}
	w := guestout.New(rl, 0)
	write(w)
	w.Close(context.Background())
	return messages(t, &buf)
}

// messages are the "msg" fields of the JSON records in buf.
func messages(t *testing.T, buf *bytes.Buffer) []string {
	var msgs []string
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		msgs = append(msgs, rec["msg"].(string))
	}
	return msgs
}

// One line of guest output is one record (README: "the guest's stdout and stderr lines become
// records"), however long it is.
func TestJSONLongLineIsOneRecord(t *testing.T) {
	line := strings.Repeat("x", 10000)
	msgs := jsonRecords(t, func(w *guestout.Writer) { w.Write([]byte(line + "\n")) })
	if len(msgs) != 1 || msgs[0] != line {
		t.Fatalf("a %d-byte line became %d records", len(line), len(msgs))
	}
}

// A line written in two pieces (Go's print/println, a C program's unbuffered stderr, a
// progress line) is still one record.
func TestJSONLineInPiecesIsOneRecord(t *testing.T) {
	// Straight to recordLines, as guestout hands a line over when its drain finds it in two
	// pieces.
	var buf bytes.Buffer
	rl := &recordLines{l: slog.New(slog.NewJSONHandler(&buf, nil)), worker: 0, stream: "stdout"}
	rl.Write([]byte("panic: "))
	rl.Write([]byte("boom\n"))
	rl.flush()
	msgs := messages(t, &buf)
	if len(msgs) != 1 || msgs[0] != "panic: boom" {
		t.Fatalf("records %q, want [\"panic: boom\"]", msgs)
	}
}
