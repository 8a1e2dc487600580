//go:build wasip1

package wasmloop

import "unsafe"

// The host functions of ABI v1 (abi/ABI.md §3). Pointers are 32-bit offsets in guest memory.

//go:wasmimport wasmloop_v1 negotiate
func hostNegotiate(want int64) int64

//go:wasmimport wasmloop_v1 worker_id
func hostWorkerID() int32

//go:wasmimport wasmloop_v1 worker_count
func hostWorkerCount() int32

//go:wasmimport wasmloop_v1 inbox
func hostInbox(ptr unsafe.Pointer, size uint32) int32

//go:wasmimport wasmloop_v1 listen
func hostListen(addr unsafe.Pointer, addrLen uint32, port int32, flags int32) int64

//go:wasmimport wasmloop_v1 respond
func hostRespond(req int64, status int32, hdr unsafe.Pointer, hdrLen uint32, body unsafe.Pointer, bodyLen uint32, flags int32) int32

//go:wasmimport wasmloop_v1 write
func hostWrite(req int64, data unsafe.Pointer, size uint32) int32

//go:wasmimport wasmloop_v1 body_file
func hostBodyFile(req int64, path unsafe.Pointer, pathLen uint32, offset, length int64) int64

//go:wasmimport wasmloop_v1 end
func hostEnd(req int64) int32

//go:wasmimport wasmloop_v1 body_read
func hostBodyRead(req int64, dst unsafe.Pointer, size uint32) int32

//go:wasmimport wasmloop_v1 timer_start
func hostTimerStart(delayNs int64, intervalNs int64) int64

//go:wasmimport wasmloop_v1 close
func hostClose(h int64) int32

//go:wasmimport wasmloop_v1 ref
func hostRef(h int64, on int32) int32

//go:wasmimport wasmloop_v1 exit
func hostExit(code int32) int32

//go:wasmimport wasmloop_v1 pause
func hostPause(req int64, paused int32) int32

//go:wasmimport wasmloop_v1 post
func hostPost(target int32, data unsafe.Pointer, size uint32) int32

//go:wasmimport wasmloop_v1 fail
func hostFail(msg unsafe.Pointer, size uint32)

// bytesPtr returns a pointer and length for the host; an empty slice passes (nil, 0).
func bytesPtr(b []byte) (unsafe.Pointer, uint32) {
	if len(b) == 0 {
		return nil, 0
	}
	return unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b))
}

func stringPtr(s string) (unsafe.Pointer, uint32) {
	if len(s) == 0 {
		return nil, 0
	}
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}
