package host

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
)

// lineHandler writes the host's messages to a *log.Logger as the plain lines `wasmloop run`
// has always printed — "worker 1: the guest died …" — for Config.Log and the default log;
// Config.Logger gets the records themselves, with their attributes.
type lineHandler struct {
	l     *log.Logger
	level slog.Level // the least severe level written (Config.LogLevel)
	attrs []slog.Attr
}

func (h lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	var rest []string
	add := func(a slog.Attr) bool {
		if a.Key == "worker" {
			fmt.Fprintf(&b, "worker %v: ", a.Value)
		} else {
			rest = append(rest, a.Key+"="+a.Value.String())
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	b.WriteString(r.Message)
	for _, kv := range rest {
		b.WriteString(" " + kv)
	}
	h.l.Print(b.String())
	return nil
}

func (h lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return lineHandler{h.l, h.level, append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h lineHandler) WithGroup(string) slog.Handler { return h }

// recordLines turns the guest's output, which guestout hands over in whole lines, into log
// records (Config.LogFormat "json"): one per line, the line as the message, with the worker
// and the stream.
type recordLines struct {
	l      *slog.Logger
	worker int
	stream string
}

func (r recordLines) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		r.l.LogAttrs(context.Background(), slog.LevelInfo, string(bytes.TrimSuffix(line, []byte("\n"))),
			slog.Int("worker", r.worker), slog.String("stream", r.stream))
	}
	return len(p), nil
}
