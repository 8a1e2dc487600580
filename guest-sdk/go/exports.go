//go:build wasip1

package wasmloop

import (
	"unsafe"

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
	if rc := hostInbox(bytesPtr(inbox[:])); rc < 0 {
		return rc
	}
	mainMain()
	return 0
}

// exchange is what one request needs besides its bytes, in one allocation. It is kept small on
// purpose: in a Go guest the cost of a request is dominated by garbage collection, which grows
// with the bytes allocated (RATIONALE.md), so the header arrays hold a typical request and grow
// only for larger ones.
type exchange struct {
	req     Request
	res     Response
	headers [6]abi.Header
	hdrBuf  [48]byte
}

//go:wasmexport wasmloop_on_request
func exportOnRequest(listener, req int64, size int32) int32 {
	s := servers.get(listener)
	if s == nil || size < 0 || int(size) > len(inbox) {
		return int32(abi.EBADHANDLE)
	}
	ex := new(exchange)
	own := make([]byte, size)
	// The inbox is overwritten by the next event: the request aliases its own copy, which is
	// never written again, so strings made over it stay valid for as long as they are kept.
	copy(own, inbox[:size])
	r := &ex.req
	r.h = req
	r.head.Headers = ex.headers[:0]
	if err := r.head.Decode(own); err != nil {
		return int32(abi.EINVAL)
	}
	r.Method = methodString(r.head.Method)
	r.URL = unsafe.String(unsafe.SliceData(r.head.Target), len(r.head.Target))
	r.ProtoMinor = int(r.head.Minor)
	r.body = r.head.Body
	r.bodyDone = r.head.Flags&abi.HeadBodyPending == 0
	res := &ex.res
	res.h, res.status, res.hdr = req, 200, ex.hdrBuf[:0]
	res.isHead = r.Method == "HEAD"
	s.handler(r, res)
	if !res.ended && !res.closed {
		open.put(req, res) // answered later, from a timer or another event
	}
	return 0
}

var methods = [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}

// methodString returns the common methods without allocating.
func methodString(b []byte) string {
	for _, m := range methods {
		if string(b) == m {
			return m
		}
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

//go:wasmexport wasmloop_on_timer
func exportOnTimer(h int64) int32 {
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
	res := open.get(h)
	if res == nil {
		return 0
	}
	open.del(h)
	res.closed = true
	for _, f := range res.onClose {
		f()
	}
	return 0
}

// registry maps handles to objects through the handle's slot index, with the full handle
// checked: cheaper than a map in Go's wasm code, and a stale handle finds nothing.
type registry[T any] struct {
	slots []registryEntry[T]
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
	if i < len(r.slots) && r.slots[i].h == h {
		r.slots[i] = registryEntry[T]{}
	}
}
