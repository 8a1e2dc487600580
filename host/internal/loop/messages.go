package loop

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/wasmloop/wasmloop/abi"
)

// Messages between workers (ABI 1.2, long ones 1.7), Node's process.send between cluster
// workers. A message is copied out of the sender's memory once (a broadcast shares that copy
// between its receivers) and queued as a task on the receiver's loop, so it is delivered on
// that loop's goroutine, in a later turn, never inside the sender's call; one queue per
// receiver keeps each sender's messages in order. A receiver holds at most maxQueuedMessages
// undelivered messages and maxQueuedBytes of them: beyond either the sender gets ELIMIT, not
// unbounded memory. A message longer than the receiver's inbox arrives with the inbox full,
// and the guest reads the rest with message_read during that callback (RATIONALE.md,
// "Messages").

const (
	maxQueuedMessages = 4096
	// maxQueuedBytes bounds the bytes a receiver holds undelivered: 16 MiB, what 4096
	// messages of the 1.2–1.6 cap (4 KiB) could hold, so long messages raise no worst case.
	maxQueuedBytes = 16 << 20
)

type inbound struct {
	queued atomic.Int32 // messages posted to this loop and not yet delivered
	bytes  atomic.Int64 // their bytes
	// short: the loop's current instance speaks a minor version before abi.LongMessages, so
	// a message longer than abi.MaxShortMessage is refused (ENOTSUP) rather than queued.
	short atomic.Bool
}

// noteCurrent records what senders must know of the loop's current instance.
func (l *Loop) noteCurrent() {
	l.in.short.Store(l.cur != nil && l.cur.g != nil && l.cur.minor < abi.LongMessages)
}

// maxPost is the longest message in may post (before its version is known, during
// _initialize, the 1.2 cap).
func (in *instance) maxPost() int {
	if in.minor < abi.LongMessages {
		return abi.MaxShortMessage
	}
	return abi.MaxMessage
}

func (l *Loop) postTo(t *Loop, msg []byte) int32 {
	rc := t.queueMessage(int32(l.id), msg)
	if s := l.stats; s != nil {
		if rc < 0 {
			s.MessagesRefused.Add(1)
		} else {
			s.MessagesPosted.Add(1)
		}
	}
	return rc
}

// queueMessage queues msg, from a worker or abi.PostHost, for delivery on t.
func (t *Loop) queueMessage(from int32, msg []byte) int32 {
	if len(msg) > abi.MaxShortMessage && t.in.short.Load() {
		return errno(abi.ENOTSUP) // it could not read it: what it was given before 1.7
	}
	n := int64(len(msg))
	if q, b := t.in.queued.Add(1), t.in.bytes.Add(n); q > maxQueuedMessages || b > maxQueuedBytes {
		t.in.queued.Add(-1)
		t.in.bytes.Add(-n)
		return errno(abi.ELIMIT)
	}
	if !t.post(func(t *Loop) { t.deliverMessage(from, msg) }, nil) { // dropped with the worker
		t.in.queued.Add(-1)
		t.in.bytes.Add(-n)
		return errno(abi.ECLOSED) // that worker has ended
	}
	return 0
}

// PostFromHost sends data from the embedding program to worker, as a message from
// abi.PostHost. It fails as the guest's post would: ELIMIT when the worker has too many
// messages or bytes waiting, ECLOSED when it has ended, EINVAL for a bad worker or a message
// over abi.MaxMessage, ENOTSUP for one over abi.MaxShortMessage to a guest built for 1.6 or
// earlier.
func (g *Group) PostFromHost(worker int, data []byte) error {
	if worker < 0 || worker >= len(g.loops) || len(data) > abi.MaxMessage {
		return abi.EINVAL
	}
	if rc := g.loops[worker].queueMessage(abi.PostHost, append([]byte(nil), data...)); rc < 0 {
		return abi.Errno(rc)
	}
	return nil
}

// heldMessage is a message waiting for a replacement instance to start.
type heldMessage struct {
	from int32
	data []byte
}

// deliverMessage runs on the receiver's loop, at the top of its turn.
func (l *Loop) deliverMessage(from int32, msg []byte) {
	if l.restarting && !l.stopped {
		// The instance failed and its replacement waits out its restart delay: the message
		// was accepted (post answered 0), so it is the replacement's, held — and still counted
		// against the receiver's caps — until that has started (deliverHeld). Dropped here,
		// it was lost with no refusal and no log (helper-42).
		l.heldMessages = append(l.heldMessages, heldMessage{from, msg})
		return
	}
	l.in.queued.Add(-1)
	l.in.bytes.Add(-int64(len(msg)))
	in := l.cur
	if l.stopped || !in.live() || !in.g.HasOnMessage() {
		return // nobody to tell: a message is not a promise of delivery past the receiver's life
	}
	inbox, ok := in.inbox()
	if !ok {
		return
	}
	if len(msg) > len(inbox) && in.minor < abi.LongMessages {
		// Queued for a newer instance that a swap or a replacement has since put aside.
		l.logf("a message of %d bytes from %s was dropped: this guest speaks ABI 1.%d, whose inbox takes at most %d", len(msg), sender(from), in.minor, len(inbox))
		return
	}
	n := copy(inbox, msg)
	in.msgRest = msg[n:]
	if rc, err := in.g.OnMessage(from, uint32(n)); err != nil {
		l.guestFailed(in, err, nil)
	} else if rc != 0 {
		l.logf("%s", callbackResult(abi.ExportOnMessage, rc)) // ABI.md §2: logged
	}
	in.msgRest = nil
	l.afterCallback()
}

// deliverHeld delivers, in order, the messages that came while the worker was restarting,
// now that its replacement has started; what a failure of it leaves waits for the next.
func (l *Loop) deliverHeld() {
	for len(l.heldMessages) > 0 && !l.restarting && !l.stopped {
		m := l.heldMessages[0]
		l.heldMessages[0] = heldMessage{}
		l.heldMessages = l.heldMessages[1:]
		l.deliverMessage(m.from, m.data)
	}
	if len(l.heldMessages) == 0 {
		l.heldMessages = nil
	}
}

// sender names a message's sender for a log line.
func sender(from int32) string {
	if from == abi.PostHost {
		return "the host"
	}
	return "worker " + strconv.Itoa(int(from))
}

// refusals describes the receivers of a broadcast that refused it, by worker, for a log line
// and for the guest: "worker 1 (ELIMIT), worker 3 (ECLOSED)".
func refusals(codes []int32) string {
	var b strings.Builder
	for w, c := range codes {
		if c < 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString("worker " + strconv.Itoa(w) + " (" + abi.Errno(c).Error() + ")")
		}
	}
	return b.String()
}
