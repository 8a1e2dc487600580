//go:build wasip1

package wasmloop

import (
	"strconv"
	"unsafe"

	"github.com/wasmloop/wasmloop/abi"
)

//go:wasmimport wasmloop_v1 message_read
func hostMessageRead(dst unsafe.Pointer, size uint32) int32

//go:wasmimport wasmloop_v1 broadcast
func hostBroadcast(data unsafe.Pointer, size uint32, codes unsafe.Pointer, codesLen uint32) int32

var onMessage func(from int, data []byte)

// MaxMessage is the largest message PostMessage, Broadcast and PostHost take: 1 MiB.
const MaxMessage = abi.MaxMessage

// PostMessage sends data (at most MaxMessage bytes) to worker (0 … WorkerCount()-1), Node's
// worker.send. It returns at once; the receiver's OnMessage function runs later, on its own
// worker, and messages from one sender arrive in the order they were sent. It fails with
// ELIMIT when the receiver has too many messages waiting (4096, or 16 MiB of them), ECLOSED
// when that worker has ended, EINVAL for a bad worker or a message over MaxMessage, ENOTSUP
// for a message over 4 KiB to a worker running a program built with an SDK older than ABI
// 1.7 (during a swap). The errors are abi.Errno values: errors.Is(err, abi.ELIMIT).
func PostMessage(worker int, data []byte) error {
	p, n := bytesPtr(data)
	return errnoOrNil(hostPost(int32(worker), p, n))
}

// BroadcastError is Broadcast's error when some workers did not get the message: the others
// did. errors.Is(err, abi.ELIMIT) reports whether any refused with that code.
type BroadcastError struct {
	Workers []int       // the workers that did not get the message, in order
	Codes   []abi.Errno // why, for each of Workers: ELIMIT, ECLOSED, ENOTSUP
}

// Error names each worker that did not get the message, with its code.
func (e *BroadcastError) Error() string {
	s := "broadcast not delivered to "
	for i, w := range e.Workers {
		if i > 0 {
			s += ", "
		}
		s += "worker " + strconv.Itoa(w) + " (" + e.Codes[i].Error() + ")"
	}
	return s
}

// Unwrap returns the codes, so that errors.Is matches any of them.
func (e *BroadcastError) Unwrap() []error {
	errs := make([]error, len(e.Codes))
	for i, c := range e.Codes {
		errs[i] = c
	}
	return errs
}

var broadcastCodes []byte // Broadcast's scratch: an i32 per worker

// Broadcast sends data (at most MaxMessage bytes) to every other worker, one copy shared by
// all of them in the host. When some could not take it, the error is a *BroadcastError that
// names them and why; the others still got the message. EINVAL: data is over MaxMessage.
func Broadcast(data []byte) error {
	size := abi.BroadcastCodeSize * WorkerCount()
	if cap(broadcastCodes) < size {
		broadcastCodes = make([]byte, size)
	}
	codes := broadcastCodes[:size]
	p, n := bytesPtr(data)
	cp, cn := bytesPtr(codes)
	if rc := hostBroadcast(p, n, cp, cn); rc <= 0 {
		return errnoOrNil(rc)
	}
	workers, errs := abi.BroadcastRefusals(codes)
	return &BroadcastError{Workers: workers, Codes: errs}
}

// OnMessage sets the function that receives messages from other workers (and, from = FromHost,
// from the embedding service). data is the whole message, valid only during the call: copy
// what you keep.
func OnMessage(fn func(from int, data []byte)) {
	if fn == nil {
		onMessage = nil
		return
	}
	onMessage = func(from int, data []byte) {
		fn(from, wholeMessage(data))
	}
}

// longMessage is where a message longer than the inbox is put together; OnMessage's data is
// valid only during the call, so it is reused: at most MaxMessage, kept once a worker has
// received a long message.
var longMessage []byte

// wholeMessage returns the message whose first part is data, the inbox's content: a message
// longer than the inbox fills it (ABI.md §3, message_read) and the host holds the rest for
// this callback. Below the smallest inbox nothing can be left over, and no host call is made.
func wholeMessage(data []byte) []byte {
	if len(data) < abi.MinInbox {
		return data
	}
	rest := hostMessageRead(nil, 0)
	if rest <= 0 {
		return data
	}
	size := len(data) + int(rest)
	if cap(longMessage) < size {
		longMessage = make([]byte, size)
	}
	whole := longMessage[:size]
	n := copy(whole, data)
	for n < len(whole) {
		p, size := bytesPtr(whole[n:])
		k := hostMessageRead(p, size)
		if k <= 0 {
			break
		}
		n += int(k)
	}
	return whole[:n]
}
