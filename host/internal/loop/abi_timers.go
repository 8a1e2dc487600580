package loop

import "github.com/wasmloop/wasmloop/abi"

// The timer host function; clear and ref are close and ref on a timer handle (abi_handles.go).

// TimerStart starts a guest timer.
func (a *hostCalls) TimerStart(delayNs, intervalNs int64) int64 {
	l, in := a.l, a.in
	switch {
	case in.g == nil:
		return int64(abi.ESTATE)
	case !in.g.HasOnTimer():
		return int64(abi.ENOTSUP)
	case l.timers.len() >= l.cfg.MaxTimers:
		if !l.timersRefused {
			// The SDK's SetTimeout has no error to return: without this line a program
			// waits for a timer that never fires, and nothing says why.
			l.timersRefused = true
			l.logf("a timer was refused: the worker has %d, its most (--max-timers, Config.MaxTimers); it will not fire (logged once)", l.timers.len())
		}
		return int64(abi.ELIMIT)
	}
	return int64(l.startTimer(in, delayNs, intervalNs))
}
