//go:build wasip1

package wasmloop

import (
	_ "unsafe" // for go:linkname

	"github.com/wasmloop/wasmloop/abi"
)

// A reactor's _initialize runs package initialisation but not main.main; the host calls
// wasmloop_on_start for the program's top-level code, and this is how it reaches main.
//
//go:linkname mainMain main.main
func mainMain()

// inbox is where the host writes event payloads (ABI.md §1). 64 KiB holds a request head of
// the host's default 16 KiB limit with room for a body.
var inbox [64 << 10]byte

// Callbacks do not recover panics. An unrecovered panic makes the Go runtime print it with
// every goroutine's stack and call proc_exit(2), which the host treats as a crash of this
// instance and replaces it — the same outcome as reporting it through the ABI's fail, without
// a defer on every callback (a defer costs ~0.8 µs in Go's wasm code, more than the rest of a
// request).

//go:wasmexport wasmloop_abi_v1
func exportABIVersion() int32 { return abi.Minor }

//go:wasmexport wasmloop_on_start
func exportOnStart() int32 {
	rc := doOnStart()
	yieldToGoroutines()
	return rc
}

func doOnStart() int32 {
	if rc := hostInbox(bytesPtr(inbox[:])); rc < 0 {
		return rc
	}
	mainMain()
	return 0
}

//go:wasmexport wasmloop_on_request
func exportOnRequest(listener, req int64, size int32) int32 {
	rc := doOnRequest(listener, req, size)
	yieldToGoroutines()
	if left != 0 {
		reportStranded(left)
		left = 0
	}
	return rc
}

func doOnRequest(listener, req int64, size int32) int32 {
	recycleRetired()
	s := servers.get(listener)
	if s == nil || size < 0 || int(size) > len(inbox) {
		return int32(abi.EBADHANDLE)
	}
	// The head is read in place while the handler runs; it is copied only if the response
	// outlives this callback (the next event overwrites the inbox).
	x := getExchange(req, inbox[:size])
	x.stream = s.stream
	flags := abi.HeadFlags(x.src)
	// The host starts an Expect: 100-continue body paused (ABI.md §3, pause).
	x.paused = x.stream && flags&abi.HeadExpect100 != 0 && flags&abi.HeadBodyPending != 0
	gen := x.gen
	s.handler(Request{x, gen}, Response{x, gen})
	if x.stream && x.gen == gen && !x.closed {
		if abi.HeadFlags(x.src)&abi.HeadBodyPending == 0 {
			// The body came whole with the head: hand it over now, as one piece.
			x.bodyEnded = true
			if body := x.decode().Body; len(body) > 0 && x.onData != nil {
				x.onData(body)
			}
			if x.onEnd != nil {
				x.onEnd()
			}
		} else if x.onData == nil && x.onEnd == nil && !x.ended {
			// Nobody listens to the body yet (the handler may register OnData later, from
			// another callback): hold it in the kernel rather than drop it. OnData or OnEnd
			// resumes it — and, for Expect: 100-continue, asks the client for it.
			x.autoPaused = true
			if !x.paused {
				Request{x, gen}.Pause()
			}
		} else if x.paused && !x.userPaused && !x.sent && !x.ended {
			// An Expect: 100-continue body the handler neither paused nor answered: go on.
			Request{x, gen}.Resume()
		}
	}
	x.inHandler = false
	switch {
	case x.ended || x.closed:
		recycle(x)
	default:
		x.keep()
		open.put(req, x) // answered later, from a timer or another event
		left = req
	}
	return 0
}

//go:wasmexport wasmloop_on_body
func exportOnBody(req int64, size int32, end int32) int32 {
	rc := doOnBody(req, size, end)
	yieldToGoroutines()
	return rc
}

func doOnBody(req int64, size int32, end int32) int32 {
	recycleRetired()
	x := open.get(req)
	if x == nil || size < 0 || int(size) > len(inbox) {
		return 0 // the response ended first: the host discards the rest
	}
	if size > 0 && x.onData != nil {
		x.onData(inbox[:size])
	}
	if end != 0 {
		x.bodyEnded = true
		if x.onEnd != nil {
			x.onEnd()
		}
	}
	return 0
}

//go:wasmexport wasmloop_on_drain
func exportOnDrain(req int64) int32 {
	rc := doOnDrain(req)
	yieldToGoroutines()
	return rc
}

func doOnDrain(req int64) int32 {
	recycleRetired()
	if abi.Handle(req).Kind() == abi.KindSocket {
		socketDrained(req)
		return 0
	}
	x := open.get(req)
	if x == nil {
		return 0
	}
	x.full = false
	fns := x.onDrain
	x.onDrain = x.onDrain[len(fns):]
	for _, f := range fns {
		f()
	}
	return 0
}

//go:wasmexport wasmloop_on_timer
func exportOnTimer(h int64) int32 {
	rc := doOnTimer(h)
	yieldToGoroutines()
	return rc
}

func doOnTimer(h int64) int32 {
	recycleRetired()
	t := timers.get(h)
	if t == nil {
		return 0 // cleared after the host queued it
	}
	if t.interval == 0 {
		timers.del(h)
		t.done = true
	}
	t.fn()
	return 0
}

//go:wasmexport wasmloop_on_close
func exportOnClose(h int64, reason int32) int32 {
	rc := doOnClose(h, reason)
	yieldToGoroutines()
	return rc
}

func doOnClose(h int64, reason int32) int32 {
	recycleRetired()
	if abi.Handle(h).Kind() == abi.KindCall {
		cancelCall(h)
		return 0
	}
	x := open.get(h)
	if x == nil {
		return 0
	}
	x.closed = true
	for _, f := range x.onClose {
		f()
	}
	x.finished()
	return 0
}

// registry maps handles to objects through the handle's slot index, with the full handle
// checked: cheaper than a map in Go's wasm code, and a stale handle finds nothing.
type registry[T any] struct {
	slots []registryEntry[T]
	live  int // entries held
}

type registryEntry[T any] struct {
	h int64
	v *T
}

func (r *registry[T]) put(h int64, v *T) {
	i := int(abi.Handle(h).Index())
	for i >= len(r.slots) {
		r.slots = append(r.slots, registryEntry[T]{})
	}
	if r.slots[i].v == nil {
		r.live++
	}
	r.slots[i] = registryEntry[T]{h, v}
}

func (r *registry[T]) get(h int64) *T {
	i := int(abi.Handle(h).Index())
	if i < len(r.slots) && r.slots[i].h == h {
		return r.slots[i].v
	}
	return nil
}

func (r *registry[T]) del(h int64) {
	i := int(abi.Handle(h).Index())
	if i < len(r.slots) && r.slots[i].h == h && r.slots[i].v != nil {
		r.slots[i] = registryEntry[T]{}
		r.live--
	}
}

//go:wasmexport wasmloop_on_message
func exportOnMessage(from int32, size int32) int32 {
	rc := doOnMessage(from, size)
	yieldToGoroutines()
	return rc
}

func doOnMessage(from int32, size int32) int32 {
	recycleRetired()
	if onMessage != nil && size >= 0 && int(size) <= len(inbox) {
		onMessage(int(from), inbox[:size])
	}
	return 0
}
