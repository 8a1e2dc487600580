package inspect

import (
	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
)

var _ guest.Host = InertHost{}

// InertHost is the guest.Host of an instance made only to ask its marker for the minor
// version: it serves nothing and reaches nothing. A host function called during the guest's
// initialisation answers as it would with nothing to act on — ENOTSUP, or ESTATE where the
// ABI says "not now" — and negotiate grants nothing, as the real host does in ABI 1.7.
type InertHost struct{}

const (
	notsup = int32(abi.ENOTSUP)
	state  = int32(abi.ESTATE)
)

func (InertHost) Negotiate(want uint64) uint64                { return 0 }
func (InertHost) WorkerID() int32                             { return 0 }
func (InertHost) WorkerCount() int32                          { return 1 }
func (InertHost) Inbox(ptr, size uint32) int32                { return 0 }
func (InertHost) Listen(addr []byte, port, flags int32) int64 { return int64(state) }
func (InertHost) Respond(abi.Handle, int32, []byte, []byte, int32) int32 {
	return int32(abi.EBADHANDLE)
}
func (InertHost) Write(abi.Handle, []byte) int32                   { return int32(abi.EBADHANDLE) }
func (InertHost) End(abi.Handle) int32                             { return int32(abi.EBADHANDLE) }
func (InertHost) BodyRead(abi.Handle, []byte) int32                { return int32(abi.EBADHANDLE) }
func (InertHost) TimerStart(delayNs, intervalNs int64) int64       { return int64(state) }
func (InertHost) Close(abi.Handle) int32                           { return int32(abi.EBADHANDLE) }
func (InertHost) Ref(abi.Handle, int32) int32                      { return int32(abi.EBADHANDLE) }
func (InertHost) Exit(code int32) int32                            { return state }
func (InertHost) Pause(abi.Handle, int32) int32                    { return int32(abi.EBADHANDLE) }
func (InertHost) Post(target int32, data []byte) int32             { return state }
func (InertHost) WSAccept(abi.Handle, []byte, []byte, int32) int64 { return int64(abi.EBADHANDLE) }
func (InertHost) WSSend(abi.Handle, []byte, int32) int32           { return int32(abi.EBADHANDLE) }
func (InertHost) WSClose(abi.Handle, int32, []byte) int32          { return int32(abi.EBADHANDLE) }
func (InertHost) CallReturn(abi.Handle, int32, []byte) int32       { return int32(abi.EBADHANDLE) }
func (InertHost) HostCall(name, in, out []byte) int64              { return int64(notsup) }
func (InertHost) HostCallAsync(name, in []byte, tag int64) int32   { return notsup }
func (InertHost) HostResult(dst []byte) int32                      { return 0 }
func (InertHost) BodyFile(abi.Handle, []byte, int64, int64) int64  { return int64(abi.EBADHANDLE) }
func (InertHost) MessageRead(dst []byte) int32                     { return 0 }
func (InertHost) Broadcast(data, codes []byte) int32               { return state }
