package loop

import "github.com/wasmloop/wasmloop/abi"

// hostCalls is the loop's side of the ABI's host functions (ABI.md §3): the guest.Host the
// instance calls. Each runs on the loop's goroutine inside a guest callback and never calls
// back into the guest; each checks its arguments and the handle's state, then asks the loop
// (or the protocol the handle belongs to) to do the work. The functions are grouped by area:
// abi_process.go, abi_http.go, abi_websocket.go, abi_timers.go, abi_messages.go and
// abi_handles.go.
type hostCalls struct {
	l  *Loop
	in *instance // the instance that calls: it sees only its own handles
}

func errno(e abi.Errno) int32 { return int32(e) }

// Negotiate grants nothing: ABI versions 1.0 to 1.7 define no optional features (ABI.md,
// negotiate); later additions announce themselves by their own flag bits.
func (hostCalls) Negotiate(want uint64) uint64 { return 0 }

// WorkerID is this loop's index.
func (a *hostCalls) WorkerID() int32 { return int32(a.l.id) }

// WorkerCount is the number of loops.
func (a *hostCalls) WorkerCount() int32 { return int32(len(a.l.g.loops)) }

// Inbox registers the guest's inbox.
func (a *hostCalls) Inbox(ptr, size uint32) int32 {
	if size < abi.MinInbox {
		return errno(abi.EINVAL)
	}
	a.in.inboxPtr, a.in.inboxLen = ptr, size
	return 0
}

// Exit ends the process with code once the current callback returns.
func (a *hostCalls) Exit(code int32) int32 {
	a.l.g.exit(code)
	a.l.stopped = true // no further callbacks on this loop, even in this batch
	return 0
}
