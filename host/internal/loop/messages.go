package loop

import (
	"sync/atomic"

	"github.com/wasmloop/wasmloop/abi"
)

// Messages between workers (ABI 1.2), Node's process.send between cluster workers. A message
// is copied out of the sender's memory and queued as a task on the receiver's loop, so it is
// delivered on that loop's goroutine, in a later turn, never inside the sender's call; one
// queue per receiver keeps each sender's messages in order. A receiver holds at most
// maxQueuedMessages undelivered ones: beyond that the sender gets ELIMIT, not unbounded memory.

const maxQueuedMessages = 4096

type inbound struct {
	queued atomic.Int32 // messages posted to this loop and not yet delivered
}

func (l *Loop) postTo(t *Loop, msg []byte) int32 {
	if t.in.queued.Add(1) > maxQueuedMessages {
		t.in.queued.Add(-1)
		return errno(abi.ELIMIT)
	}
	from := int32(l.id)
	if !t.post(func(t *Loop) { t.deliverMessage(from, msg) }) {
		t.in.queued.Add(-1)
		return errno(abi.ECLOSED) // that worker has ended
	}
	return 0
}

// deliverMessage runs on the receiver's loop, at the top of its turn.
func (l *Loop) deliverMessage(from int32, msg []byte) {
	l.in.queued.Add(-1)
	in := l.cur
	if l.stopped || !in.live() || !in.g.HasOnMessage() {
		return // nobody to tell: a message is not a promise of delivery past the receiver's life
	}
	inbox, ok := in.inbox()
	if !ok || len(inbox) < len(msg) {
		return
	}
	n := copy(inbox, msg)
	if _, err := in.g.OnMessage(from, uint32(n)); err != nil {
		l.guestFailed(in, err, nil)
	}
	l.afterCallback()
}
