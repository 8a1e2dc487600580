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

// recordLines turns the guest's output into log records (Config.LogFormat "json"): one per
// line, the line as the message, with the worker and the stream. guestout hands over at most
// 4 KiB at a time and whatever it holds, so a long line, or one the guest wrote in pieces,
// arrives in pieces: they are joined here (up to maxRecord bytes), and the last unfinished
// line is written by flush. Only guestout's drain goroutine calls Write.
type recordLines struct {
	l       *slog.Logger
	worker  int
	stream  string
	pending []byte
}

// maxRecord is the longest message a record gets; a longer line continues in the next.
const maxRecord = 64 << 10

func (r *recordLines) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			r.pending = append(r.pending, p...)
			if len(r.pending) >= maxRecord {
				r.flush()
			}
			break
		}
		line := p[:i]
		if len(r.pending) > 0 {
			line = append(r.pending, line...)
		}
		r.emit(line)
		r.pending = r.pending[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flush writes the unfinished line held, if any.
func (r *recordLines) flush() {
	if len(r.pending) > 0 {
		r.emit(r.pending)
		r.pending = r.pending[:0]
	}
}

func (r *recordLines) emit(line []byte) {
	r.l.LogAttrs(context.Background(), slog.LevelInfo, string(line),
		slog.Int("worker", r.worker), slog.String("stream", r.stream))
}
