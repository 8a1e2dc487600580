package host

import (
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
	attrs []slog.Attr
}

func (h lineHandler) Enabled(context.Context, slog.Level) bool { return true }

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
	return lineHandler{h.l, append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h lineHandler) WithGroup(string) slog.Handler { return h }
