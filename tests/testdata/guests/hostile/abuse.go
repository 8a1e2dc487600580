//go:build wasip1

package main

import (
	"strconv"
	"strings"
	"unsafe"
)

// The host functions declared again with every pointer a plain number, so that /abuse can
// pass what the SDK never would: pointers and lengths past memory, negative values, and
// handles that are forged, stale or of the wrong kind. Every one of these calls must come
// back with an error code (a negative value), never a trap, a panic or a success.

//go:wasmimport wasmloop_v1 inbox
func rawInbox(ptr, size uint32) int32

//go:wasmimport wasmloop_v1 listen
func rawListen(addr, addrLen uint32, port, flags int32) int64

//go:wasmimport wasmloop_v1 respond
func rawRespond(req int64, status int32, hdr, hdrLen, body, bodyLen uint32, flags int32) int32

//go:wasmimport wasmloop_v1 write
func rawWrite(req int64, data, size uint32) int32

//go:wasmimport wasmloop_v1 end
func rawEnd(req int64) int32

//go:wasmimport wasmloop_v1 body_read
func rawBodyRead(req int64, dst, size uint32) int32

//go:wasmimport wasmloop_v1 timer_start
func rawTimerStart(delayNs, intervalNs int64) int64

//go:wasmimport wasmloop_v1 close
func rawClose(h int64) int32

//go:wasmimport wasmloop_v1 ref
func rawRef(h int64, on int32) int32

//go:wasmimport wasmloop_v1 pause
func rawPause(req int64, paused int32) int32

//go:wasmimport wasmloop_v1 post
func rawPost(target int32, data, size uint32) int32

//go:wasmimport wasmloop_v1 ws_accept
func rawWSAccept(req int64, proto, protoLen, hdr, hdrLen uint32, flags int32) int64

//go:wasmimport wasmloop_v1 ws_send
func rawWSSend(ws int64, data, size uint32, flags int32) int32

//go:wasmimport wasmloop_v1 ws_close
func rawWSClose(ws int64, code int32, reason, reasonLen uint32) int32

//go:wasmimport wasmloop_v1 call_return
func rawCallReturn(call int64, status int32, data, size uint32) int32

//go:wasmimport wasmloop_v1 host_call
func rawHostCall(name, nameLen, in, inLen, out, outCap uint32) int64

//go:wasmimport wasmloop_v1 host_call_async
func rawHostCallAsync(name, nameLen, in, inLen uint32, tag int64) int32

//go:wasmimport wasmloop_v1 host_result
func rawHostResult(dst, size uint32) int32

const (
	pastMemory = 0xffff_fff0      // a pointer no guest memory reaches (the limit is far below 4 GiB)
	hugeLength = 0xffff_f000      // a length that runs past the end of memory from anywhere
	forged     = 0x7fff_1234_5678 // a handle the host never gave out
)

// abuse makes every call and reports "name result" a line each.
func abuse() string {
	buf := make([]byte, 64)
	p := uint32(uintptr(unsafe.Pointer(&buf[0])))
	addr := []byte("127.0.0.1")
	ap := uint32(uintptr(unsafe.Pointer(&addr[0])))
	bad := []byte("not an address")
	bp := uint32(uintptr(unsafe.Pointer(&bad[0])))

	stale := rawTimerStart(int64(3600e9), 0) // a live handle of another kind: a timer
	timer := rawTimerStart(int64(3600e9), 0)
	rawClose(stale) // and one that is no longer live

	var out strings.Builder
	r := func(name string, v int64) { out.WriteString(name + " " + strconv.FormatInt(v, 10) + "\n") }
	r("inbox/pointer-past-memory", int64(rawInbox(pastMemory, 64)))
	r("inbox/length-past-memory", int64(rawInbox(p, hugeLength)))
	r("listen/pointer-past-memory", rawListen(pastMemory, 9, 8080, 0))
	r("listen/length-past-memory", rawListen(ap, hugeLength, 8080, 0))
	r("listen/negative-port", rawListen(ap, uint32(len(addr)), -1, 0))
	r("listen/port-too-large", rawListen(ap, uint32(len(addr)), 70000, 0))
	r("listen/not-an-address", rawListen(bp, uint32(len(bad)), 8080, 0))
	r("respond/forged", int64(rawRespond(forged, 200, 0, 0, 0, 0, 0)))
	r("respond/zero", int64(rawRespond(0, 200, 0, 0, 0, 0, 0)))
	r("respond/negative-handle", int64(rawRespond(-5, 200, 0, 0, 0, 0, 0)))
	r("respond/wrong-kind", int64(rawRespond(timer, 200, 0, 0, 0, 0, 0)))
	r("respond/stale", int64(rawRespond(stale, 200, 0, 0, 0, 0, 0)))
	r("respond/header-past-memory", int64(rawRespond(timer, 200, pastMemory, 10, 0, 0, 0)))
	r("respond/body-length-past-memory", int64(rawRespond(timer, 200, 0, 0, p, hugeLength, 0)))
	r("write/forged", int64(rawWrite(forged, p, 1)))
	r("write/wrong-kind-past-memory", int64(rawWrite(timer, pastMemory, 10)))
	r("end/wrong-kind", int64(rawEnd(timer)))
	r("end/stale", int64(rawEnd(stale)))
	r("body_read/wrong-kind", int64(rawBodyRead(timer, p, 64)))
	r("body_read/forged-past-memory", int64(rawBodyRead(forged, pastMemory, 64)))
	r("close/forged", int64(rawClose(forged)))
	r("close/stale", int64(rawClose(stale)))
	r("close/negative", int64(rawClose(-1)))
	r("ref/forged", int64(rawRef(forged, 1)))
	r("ref/stale", int64(rawRef(stale, 0)))
	r("pause/wrong-kind", int64(rawPause(timer, 1)))
	r("post/no-such-worker", int64(rawPost(99, p, 1)))
	r("post/negative-worker", int64(rawPost(-3, p, 1))) // -1 is every other worker, -2 the host
	r("post/pointer-past-memory", int64(rawPost(0, pastMemory, 10)))
	r("post/length-past-memory", int64(rawPost(0, p, hugeLength)))
	r("ws_accept/wrong-kind", rawWSAccept(timer, 0, 0, 0, 0, 0))
	r("ws_accept/forged-past-memory", rawWSAccept(forged, pastMemory, 5, 0, 0, 0))
	r("ws_send/wrong-kind", int64(rawWSSend(timer, p, 1, 0)))
	r("ws_send/forged-past-memory", int64(rawWSSend(forged, pastMemory, 10, 0)))
	r("ws_close/wrong-kind", int64(rawWSClose(timer, 1000, 0, 0)))
	r("ws_close/forged-past-memory", int64(rawWSClose(forged, 1000, pastMemory, 5)))
	r("call_return/wrong-kind", int64(rawCallReturn(timer, 0, p, 1)))
	r("call_return/forged-past-memory", int64(rawCallReturn(forged, 0, pastMemory, 10)))
	r("host_call/name-past-memory", rawHostCall(pastMemory, 5, p, 1, p, 1))
	r("host_call/out-past-memory", rawHostCall(p, 1, p, 1, p, hugeLength))
	r("host_call_async/input-past-memory", int64(rawHostCallAsync(p, 1, p, hugeLength, 1)))
	r("host_result/past-memory", int64(rawHostResult(pastMemory, 10)))
	rawClose(timer)
	return out.String()
}
