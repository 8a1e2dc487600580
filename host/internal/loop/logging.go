package loop

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// A guest can make the host log in a loop (a listen that fails, called again and again). The
// loop's own log lines are therefore rate-limited per loop: at most logBurst lines a second,
// and the count of those dropped is reported with the next line that gets through.
const logBurst = 20

// logLimit is one loop's log rate limiter.
type logLimit struct {
	second  int64 // the loop clock's second the count is for
	lines   int
	dropped int
}

// logf logs a host message for this loop, a warning with the worker's number as the
// attribute "worker", within the rate limit.
func (l *Loop) logf(format string, args ...any) { l.logAt(slog.LevelWarn, nil, format, args...) }

// logfFor logs a message about a request (ex, which may be nil): its handle is the attribute
// "request", as the guest knows it.
func (l *Loop) logfFor(ex *exchange, format string, args ...any) {
	l.logAt(slog.LevelWarn, ex, format, args...)
}

// infof logs what is worth knowing but is not a problem (a swap, a replacement).
func (l *Loop) infof(format string, args ...any) { l.logAt(slog.LevelInfo, nil, format, args...) }

func (l *Loop) logAt(level slog.Level, ex *exchange, format string, args ...any) {
	lim := &l.logLimit
	if s := int64(time.Since(l.epoch) / time.Second); s != lim.second {
		lim.second, lim.lines = s, 0
	}
	if lim.lines >= logBurst {
		lim.dropped++
		return
	}
	lim.lines++
	if lim.dropped > 0 {
		l.cfg.Log.Warn(fmt.Sprintf("%d log lines dropped (more than %d a second)", lim.dropped, logBurst), "worker", l.id)
		lim.dropped = 0
	}
	if ex != nil {
		l.cfg.Log.Log(context.Background(), level, fmt.Sprintf(format, args...), "worker", l.id, "request", fmt.Sprintf("%#x", uint64(ex.handle)))
		return
	}
	l.cfg.Log.Log(context.Background(), level, fmt.Sprintf(format, args...), "worker", l.id)
}
