package loop

import "github.com/wasmloop/wasmloop/abi"

// offLoop is the guest.Host of a spare instance while another goroutine makes it (makeSpare,
// instance.go). The calls a program's initialisation may make that touch nothing of the loop
// work; every other answers ESTATE, as it would during any instance's _initialize. When the
// loop takes the spare it binds the instance to the instance's own hostCalls.
type offLoop struct{ calls *hostCalls }

func (o offLoop) Negotiate(want uint64) uint64    { return o.calls.Negotiate(want) }
func (o offLoop) WorkerID() int32                 { return o.calls.WorkerID() }
func (o offLoop) WorkerCount() int32              { return o.calls.WorkerCount() }
func (o offLoop) Inbox(ptr, size uint32) int32    { return o.calls.Inbox(ptr, size) }
func (offLoop) Listen([]byte, int32, int32) int64 { return int64(abi.ESTATE) }
func (offLoop) Respond(abi.Handle, int32, []byte, []byte, int32) int32 {
	return errno(abi.ESTATE)
}
func (offLoop) Write(abi.Handle, []byte) int32                   { return errno(abi.ESTATE) }
func (offLoop) End(abi.Handle) int32                             { return errno(abi.ESTATE) }
func (offLoop) BodyRead(abi.Handle, []byte) int32                { return errno(abi.ESTATE) }
func (offLoop) TimerStart(int64, int64) int64                    { return int64(abi.ESTATE) }
func (offLoop) Close(abi.Handle) int32                           { return errno(abi.ESTATE) }
func (offLoop) Ref(abi.Handle, int32) int32                      { return errno(abi.ESTATE) }
func (offLoop) Exit(int32) int32                                 { return errno(abi.ESTATE) }
func (offLoop) Pause(abi.Handle, int32) int32                    { return errno(abi.ESTATE) }
func (offLoop) Post(int32, []byte) int32                         { return errno(abi.ESTATE) }
func (offLoop) WSAccept(abi.Handle, []byte, []byte, int32) int64 { return int64(abi.ESTATE) }
func (offLoop) WSSend(abi.Handle, []byte, int32) int32           { return errno(abi.ESTATE) }
func (offLoop) WSClose(abi.Handle, int32, []byte) int32          { return errno(abi.ESTATE) }
func (offLoop) CallReturn(abi.Handle, int32, []byte) int32       { return errno(abi.ESTATE) }
func (offLoop) HostCall([]byte, []byte, []byte) int64            { return int64(abi.ESTATE) }
func (offLoop) HostCallAsync([]byte, []byte, int64) int32        { return errno(abi.ESTATE) }
func (offLoop) HostResult([]byte) int32                          { return 0 }
func (offLoop) MessageRead([]byte) int32                         { return 0 }
func (offLoop) Broadcast([]byte, []byte) int32                   { return errno(abi.ESTATE) }
func (offLoop) BodyFile(abi.Handle, []byte, int64, int64) int64  { return int64(abi.ESTATE) }
