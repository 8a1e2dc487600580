//go:build wasip1

package wasmloop

import (
	"errors"
	"runtime"
	"unsafe"

	"github.com/wasmloop/wasmloop/abi"
)

// Calls between the program and the Go service that embeds it (ABI 1.4): the service calls
// the program's functions (host.App.Call → HandleCall), and the program calls the functions
// the service defines (host.Config.Functions → Call, CallSync).

//go:wasmimport wasmloop_v1 call_return
func hostCallReturn(call int64, status int32, data unsafe.Pointer, size uint32) int32

//go:wasmimport wasmloop_v1 host_call
func hostHostCall(name unsafe.Pointer, nameLen uint32, in unsafe.Pointer, inLen uint32, out unsafe.Pointer, outCap uint32) int64

//go:wasmimport wasmloop_v1 host_call_async
func hostHostCallAsync(name unsafe.Pointer, nameLen uint32, in unsafe.Pointer, inLen uint32, tag int64) int32

//go:wasmimport wasmloop_v1 host_result
func hostHostResult(dst unsafe.Pointer, size uint32) int32

// ErrNoFunction means the service defines no function by that name (of that kind): a
// program can call an optional function and fall back when it gets this.
var ErrNoFunction = errors.New("wasmloop: the host has no such function")

// HostError is the error message a host function failed with.
type HostError struct{ Message string }

func (e *HostError) Error() string { return e.Message }

// FromHost is the sender OnMessage sees for a message from the embedding service
// (host.App.Post).
const FromHost = abi.PostHost

// PostHost sends data (at most MaxMessage bytes) to the embedding service, whose
// host.Config.OnMessage receives it. ENOTSUP: the service takes no messages.
func PostHost(data []byte) error {
	p, n := bytesPtr(data)
	return errnoOrNil(hostPost(abi.PostHost, p, n))
}

// CallRequest is a call from the embedding service (host.App.Call). Answer it once, with
// Return or Fail, during the handler or from any later callback.
type CallRequest struct {
	h        int64
	name     string
	payload  []byte
	done     bool
	onCancel []func()
}

// Name is the function the service called.
func (c *CallRequest) Name() string { return c.name }

// Payload is what the service passed. It is the program's to keep.
func (c *CallRequest) Payload() []byte { return c.payload }

// Return answers the call with result: host.App.Call returns it.
func (c *CallRequest) Return(result []byte) error { return c.answer(abi.CallOK, result) }

// Fail answers the call with an error: host.App.Call returns a *host.CallError with message.
func (c *CallRequest) Fail(message string) error { return c.answer(abi.CallFailed, []byte(message)) }

// OnCancel registers fn to run if the service gives up on the call (its context ended)
// before it is answered.
func (c *CallRequest) OnCancel(fn func()) { c.onCancel = append(c.onCancel, fn) }

func (c *CallRequest) answer(status int32, data []byte) error {
	if c.done {
		return abi.EBADHANDLE
	}
	c.done = true
	calls.del(c.h)
	p, n := bytesPtr(data)
	return errnoOrNil(hostCallReturn(c.h, status, p, n))
}

var (
	callHandlers = map[string]func(*CallRequest){}
	calls        registry[CallRequest]
)

// HandleCall sets fn to handle the service's calls of name. A call of a name with no handler
// fails with a message saying so.
func HandleCall(name string, fn func(c *CallRequest)) { callHandlers[name] = fn }

//go:wasmexport wasmloop_on_call
func exportOnCall(h int64, nameLen, size int32) int32 {
	rc := doOnCall(h, nameLen, size)
	yieldToGoroutines()
	return rc
}

func doOnCall(h int64, nameLen, size int32) int32 {
	recycleRetired()
	if nameLen < 0 || size < 0 || int(nameLen) > len(inbox) {
		return int32(abi.EINVAL)
	}
	c := &CallRequest{h: h, name: string(inbox[:nameLen]), payload: make([]byte, size)}
	if n := copy(c.payload, inbox[nameLen:]); n < int(size) {
		p, m := bytesPtr(c.payload[n:])
		if rc := hostBodyRead(h, p, m); rc < 0 {
			return rc
		}
	}
	fn := callHandlers[c.name]
	if fn == nil {
		c.Fail("the program has no function " + c.name)
		return 0
	}
	calls.put(h, c)
	fn(c)
	return 0
}

// cancelCall runs the call's cancel functions: the service gave up on it (on_close).
func cancelCall(h int64) {
	c := calls.get(h)
	if c == nil {
		return
	}
	calls.del(h)
	c.done = true
	for _, f := range c.onCancel {
		f()
	}
}

// hostOut receives CallSync results that fit; larger ones are fetched whole.
var hostOut [4096]byte

// CallSync calls the service's sync function name with in and returns its result. The
// function runs on this worker's loop while the program waits: it is for quick answers
// (host.Function.Sync). ErrNoFunction: the service defines none by that name.
func CallSync(name string, in []byte) ([]byte, error) {
	ip, n := bytesPtr(in)
	return callSync(name, ip, n, true)
}

// answerBusy is set by a goroutine from its sync host call until it has taken the answer,
// which is in hostOut or, if larger, held by the host until fetched. Taking it allocates, and
// an allocation can park the goroutine (to help the collector), letting another run whose
// call would overwrite the answer; that one waits. A view of hostOut (keep false) is read
// by its caller before anything allocates. A flag, not a sync.Mutex: Go's wasm code runs one
// goroutine at a time and switches only where one blocks, and a mutex's Unlock may hand
// over at once to a goroutine that waited long, which would call before the view is read.
var answerBusy bool

// takeAnswer waits until no other goroutine is taking an answer, and sets answerBusy.
func takeAnswer() {
	for answerBusy {
		runtime.Gosched() // another goroutine is taking its answer (a rare wait)
	}
	answerBusy = true
}

// callSync is CallSync with its input as a pointer and length. The result is the caller's
// with keep; without, it may be a view of hostOut, valid until the next host call, for
// callers that decode it at once (StatSync, called once per request by a file server, so
// allocates nothing but its answer).
func callSync(name string, ip unsafe.Pointer, in uint32, keep bool) ([]byte, error) {
	np, nn := stringPtr(name)
	takeAnswer()
	res, err := takeSyncAnswer(hostHostCall(np, nn, ip, in, unsafe.Pointer(&hostOut[0]), uint32(len(hostOut))), keep)
	answerBusy = false // given back by hand: a defer costs about a microsecond in Go's wasm code
	return res, err
}

// takeSyncAnswer turns a host_call's result r into callSync's, under answerBusy.
func takeSyncAnswer(r int64, keep bool) ([]byte, error) {
	if r < 0 {
		if abi.Errno(r) == abi.ENOTSUP {
			return nil, ErrNoFunction
		}
		return nil, abi.Errno(r)
	}
	n := int(r & 0xffff_ffff)
	var res []byte
	switch {
	case n == 0: // nothing to allocate
	case n <= len(hostOut) && keep:
		res = append([]byte(nil), hostOut[:n]...)
	case n <= len(hostOut):
		res = hostOut[:n]
	default:
		res = make([]byte, n)
		p, m := bytesPtr(res)
		hostHostResult(p, m)
	}
	if r&abi.HostCallFailed != 0 {
		return nil, &HostError{string(res)}
	}
	return res, nil
}

// pending holds the callbacks of async calls in flight, by tag.
var pending pendingCalls

// pendingCalls is a slot table: a tag is a slot's index in its low 32 bits and a sequence
// number above, so finding a result's callback is an index and a compare, not a map
// operation (about 1 µs each in Go's wasm code; a TCP echo makes four per round trip).
type pendingCalls struct {
	slots []pendingCall
	free  []uint32
	seq   int64
}

type pendingCall struct {
	tag  int64
	fn   func([]byte, error)
	view bool // fn gets a view of the inbox, valid during fn, rather than a copy
}

// next is the tag the next call gets.
func (p *pendingCalls) next() (int64, uint32) {
	var i uint32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
	} else {
		i = uint32(len(p.slots))
	}
	p.seq++
	return p.seq<<32 | int64(i), i
}

// put holds fn for tag (from next).
func (p *pendingCalls) put(tag int64, i uint32, fn func([]byte, error), view bool) {
	if n := len(p.free); n > 0 && p.free[n-1] == i {
		p.free = p.free[:n-1]
	} else {
		p.slots = append(p.slots, pendingCall{})
	}
	p.slots[i] = pendingCall{tag, fn, view}
}

// held is the number of calls in flight.
func (p *pendingCalls) held() int { return len(p.slots) - len(p.free) }

// take returns and forgets tag's call; its fn is nil for a tag not held.
func (p *pendingCalls) take(tag int64) pendingCall {
	i := uint32(tag)
	if int(i) >= len(p.slots) || p.slots[i].tag != tag || p.slots[i].fn == nil {
		return pendingCall{}
	}
	c := p.slots[i]
	p.slots[i] = pendingCall{}
	p.free = append(p.free, i)
	return c
}

// Call calls the service's async function name with in; fn receives the result in a later
// callback, never inside Call. The pending call keeps the program alive. ErrNoFunction: the
// service defines no async function by that name. The host is done with in when Call
// returns.
func Call(name string, in []byte, fn func(result []byte, err error)) error {
	return call(name, in, fn, false)
}

// call is Call; with view, a result that fits the inbox reaches fn as a view of it, valid
// only during fn (Socket.OnDataView).
func call(name string, in []byte, fn func(result []byte, err error), view bool) error {
	tag, slot := pending.next()
	np, nn := stringPtr(name)
	ip, in_ := bytesPtr(in)
	if rc := hostHostCallAsync(np, nn, ip, in_, tag); rc < 0 {
		if abi.Errno(rc) == abi.ENOTSUP {
			return ErrNoFunction
		}
		return abi.Errno(rc)
	}
	pending.put(tag, slot, fn, view)
	return nil
}

//go:wasmexport wasmloop_on_host_result
func exportOnHostResult(tag int64, status, size int32) int32 {
	rc := doOnHostResult(tag, status, size)
	yieldToGoroutines()
	return rc
}

func doOnHostResult(tag int64, status, size int32) int32 {
	recycleRetired()
	c := pending.take(tag)
	fn := c.fn
	if fn == nil || size < 0 {
		return 0
	}
	var res []byte
	switch {
	case int(size) <= len(inbox) && c.view:
		res = inbox[:size:size]
	case int(size) <= len(inbox):
		// append allocates without zeroing what it copies over (make would clear it first:
		// for a stream's 64 KiB pieces, a second pass over every byte).
		res = append([]byte(nil), inbox[:size]...)
	default:
		// The host holds the rest, and a sync call's large answer is held the same way:
		// take it under answerBusy (the make can park this goroutine).
		takeAnswer()
		res = make([]byte, size)
		n := copy(res, inbox[:])
		p, m := bytesPtr(res[n:])
		hostHostResult(p, m)
		answerBusy = false
	}
	if status == abi.CallFailed {
		fn(nil, &HostError{string(res)})
		return 0
	}
	fn(res, nil)
	return 0
}
