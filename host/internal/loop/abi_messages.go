package loop

import "github.com/wasmloop/wasmloop/abi"

// The message host function (messages.go carries and delivers them).

// Post sends data to worker target, or to every other worker (abi.PostAll).
func (a *hostCalls) Post(target int32, data []byte) int32 {
	l := a.l
	if len(data) > abi.MaxMessage {
		return errno(abi.EINVAL)
	}
	loops := l.g.loops
	if target == abi.PostHost {
		if l.cfg.OnMessage == nil {
			return errno(abi.ENOTSUP)
		}
		l.cfg.OnMessage(l.id, append([]byte(nil), data...))
		l.readied = true // it may well have woken a goroutine of the embedder's
		return 0
	}
	if target == abi.PostAll {
		if len(loops) == 1 {
			return 0
		}
		// All or nothing per receiver: a full receiver is skipped and reported.
		rc := int32(0)
		msg := append([]byte(nil), data...)
		for _, t := range loops {
			if t != l {
				if r := l.postTo(t, msg); r < 0 && rc == 0 {
					rc = r
				}
			}
		}
		return rc
	}
	if target < 0 || int(target) >= len(loops) {
		return errno(abi.EINVAL)
	}
	return l.postTo(loops[target], append([]byte(nil), data...))
}
