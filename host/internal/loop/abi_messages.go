package loop

import "github.com/wasmloop/wasmloop/abi"

// The message host functions (messages.go carries and delivers them).

// Post sends data to worker target, or to every other worker (abi.PostAll).
func (a *hostCalls) Post(target int32, data []byte) int32 {
	l := a.l
	if len(data) > a.in.maxPost() {
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
		// All or nothing per receiver: a full receiver is skipped and reported.
		codes := l.broadcast(data)
		for _, c := range codes {
			if c < 0 {
				return c // the first receiver that refused
			}
		}
		return 0
	}
	if target < 0 || int(target) >= len(loops) {
		return errno(abi.EINVAL)
	}
	return l.postTo(loops[target], append([]byte(nil), data...))
}

// Broadcast (1.7) sends data to every other worker and writes each worker's outcome into
// codes, an i32 per worker by index (0 for the sender and for each that took it), as far as
// codes has room; it returns how many refused.
func (a *hostCalls) Broadcast(data, codes []byte) int32 {
	if len(data) > a.in.maxPost() {
		return errno(abi.EINVAL)
	}
	refused := int32(0)
	for w, c := range a.l.broadcast(data) {
		if c < 0 {
			refused++
		}
		abi.PutBroadcastCode(codes, w, c)
	}
	return refused
}

// broadcast queues one copy of data for every other worker and returns each worker's
// outcome by index; the receivers that refused are logged, by worker.
func (l *Loop) broadcast(data []byte) []int32 {
	codes := make([]int32, len(l.g.loops))
	if len(codes) == 1 {
		return codes
	}
	msg := append([]byte(nil), data...)
	refused := false
	for w, t := range l.g.loops {
		if t != l {
			codes[w] = l.postTo(t, msg)
			refused = refused || codes[w] < 0
		}
	}
	if refused {
		l.logf("a broadcast of %d bytes was not delivered to %s", len(data), refusals(codes))
	}
	return codes
}

// MessageRead (1.7) copies the next bytes of the message being delivered that did not fit
// the inbox; with an empty dst it tells how many are left.
func (a *hostCalls) MessageRead(dst []byte) int32 {
	if len(dst) == 0 {
		return int32(len(a.in.msgRest))
	}
	n := copy(dst, a.in.msgRest)
	a.in.msgRest = a.in.msgRest[n:]
	return int32(n)
}
