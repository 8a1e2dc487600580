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
	return t.queueMessage(int32(l.id), msg)
}

// queueMessage queues msg, from a worker or abi.PostHost, for delivery on t.
func (t *Loop) queueMessage(from int32, msg []byte) int32 {
	if t.in.queued.Add(1) > maxQueuedMessages {
		t.in.queued.Add(-1)
		return errno(abi.ELIMIT)
	}
	if !t.post(func(t *Loop) { t.deliverMessage(from, msg) }) {
		t.in.queued.Add(-1)
		return errno(abi.ECLOSED) // that worker has ended
	}
	return 0
}

// PostFromHost sends data from the embedding program to worker, as a message from
// abi.PostHost. It fails as the guest's post would: ELIMIT when the worker has too many
// messages waiting, ECLOSED when it has ended, EINVAL for a bad worker or an oversized message.
func (g *Group) PostFromHost(worker int, data []byte) error {
	if worker < 0 || worker >= len(g.loops) || len(data) > abi.MaxMessage {
		return abi.EINVAL
	}
	if rc := g.loops[worker].queueMessage(abi.PostHost, append([]byte(nil), data...)); rc < 0 {
		return abi.Errno(rc)
	}
	return nil
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
