package guest

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmloop/wasmloop/abi"
)

// Host is what the ABI's host functions do. The loop that owns an instance implements it.
// Every method runs on the loop's goroutine, inside a guest callback. Byte slices are views of
// guest memory, valid only until the method returns.
type Host interface {
	Negotiate(want uint64) uint64
	WorkerID() int32
	WorkerCount() int32
	Inbox(ptr, size uint32) int32
	Listen(addr []byte, port, flags int32) int64
	Respond(req abi.Handle, status int32, hdr, body []byte, flags int32) int32
	Write(req abi.Handle, data []byte) int32
	End(req abi.Handle) int32
	BodyRead(req abi.Handle, dst []byte) int32
	TimerStart(delayNs, intervalNs int64) int64
	Close(h abi.Handle) int32
	Ref(h abi.Handle, on int32) int32
	Exit(code int32) int32
	Pause(req abi.Handle, paused int32) int32
	Post(target int32, data []byte) int32
	WSAccept(req abi.Handle, protocol, hdr []byte, flags int32) int64
	WSSend(ws abi.Handle, data []byte, flags int32) int32
	WSClose(ws abi.Handle, code int32, reason []byte) int32
	CallReturn(call abi.Handle, status int32, data []byte) int32
	HostCall(name, in []byte, out []byte) int64
	HostCallAsync(name, in []byte, tag int64) int32
	HostResult(dst []byte) int32
	BodyFile(req abi.Handle, path []byte, offset, length int64) int64
	MessageRead(dst []byte) int32
	Broadcast(data, codes []byte) int32
}

type instanceKey struct{}

func hostOf(ctx context.Context) Host { return ctx.Value(instanceKey{}).(*Instance).host }

// whole returns all of guest memory, for span.
func whole(m api.Module) []byte {
	mem := m.Memory()
	b, _ := mem.Read(0, mem.Size())
	return b
}

// span returns mem[ptr:ptr+size], the guest's i32 pointer and length, or false when it is out
// of bounds.
func span(mem []byte, ptr, size uint64) ([]byte, bool) {
	p, n := uint64(uint32(ptr)), uint64(uint32(size))
	if p+n > uint64(len(mem)) {
		return nil, false
	}
	return mem[p : p+n : p+n], true
}

// view returns guest memory [ptr, ptr+size) or false when it is out of bounds.
func view(m api.Module, ptr, size uint64) ([]byte, bool) {
	return m.Memory().Read(uint32(ptr), uint32(size))
}

var hostSignatures = map[string]signature{}

type hostFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      api.GoModuleFunc
}

// EFAULT as stack slot values: an i32 result is the low 32 bits of its slot, an i64 all 64.
var (
	efault     = abi.EFAULT
	errFault   = i32Result(int32(efault))
	errFault64 = uint64(int64(efault))
)

func i32Result(v int32) uint64 { return uint64(uint32(v)) }

var hostFuncs = []hostFunc{
	{abi.FnNegotiate, []api.ValueType{i64}, []api.ValueType{i64}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = hostOf(ctx).Negotiate(s[0])
	}},
	{abi.FnWorkerID, nil, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = i32Result(hostOf(ctx).WorkerID())
	}},
	{abi.FnWorkerCount, nil, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = i32Result(hostOf(ctx).WorkerCount())
	}},
	{abi.FnInbox, []api.ValueType{i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		if _, ok := view(m, s[0], s[1]); !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).Inbox(uint32(s[0]), uint32(s[1])))
	}},
	{abi.FnListen, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i64}, func(ctx context.Context, m api.Module, s []uint64) {
		addr, ok := view(m, s[0], s[1])
		if !ok {
			s[0] = errFault64
			return
		}
		s[0] = uint64(hostOf(ctx).Listen(addr, int32(s[2]), int32(s[3])))
	}},
	{abi.FnRespond, []api.ValueType{i64, i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		hdr, ok1 := view(m, s[2], s[3])
		body, ok2 := view(m, s[4], s[5])
		if !ok1 || !ok2 {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).Respond(abi.Handle(s[0]), int32(s[1]), hdr, body, int32(s[6])))
	}},
	{abi.FnWrite, []api.ValueType{i64, i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		data, ok := view(m, s[1], s[2])
		if !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).Write(abi.Handle(s[0]), data))
	}},
	{abi.FnEnd, []api.ValueType{i64}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = i32Result(hostOf(ctx).End(abi.Handle(s[0])))
	}},
	{abi.FnBodyRead, []api.ValueType{i64, i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		dst, ok := view(m, s[1], s[2])
		if !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).BodyRead(abi.Handle(s[0]), dst))
	}},
	{abi.FnTimerStart, []api.ValueType{i64, i64}, []api.ValueType{i64}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = uint64(hostOf(ctx).TimerStart(int64(s[0]), int64(s[1])))
	}},
	{abi.FnClose, []api.ValueType{i64}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = i32Result(hostOf(ctx).Close(abi.Handle(s[0])))
	}},
	{abi.FnRef, []api.ValueType{i64, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = i32Result(hostOf(ctx).Ref(abi.Handle(s[0]), int32(s[1])))
	}},
	{abi.FnExit, []api.ValueType{i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = i32Result(hostOf(ctx).Exit(int32(s[0])))
	}},
	{abi.FnPause, []api.ValueType{i64, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = i32Result(hostOf(ctx).Pause(abi.Handle(s[0]), int32(s[1])))
	}},
	{abi.FnPost, []api.ValueType{i32, i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		data, ok := view(m, s[1], s[2])
		if !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).Post(int32(s[0]), data))
	}},
	{abi.FnWSAccept, []api.ValueType{i64, i32, i32, i32, i32, i32}, []api.ValueType{i64}, func(ctx context.Context, m api.Module, s []uint64) {
		proto, ok1 := view(m, s[1], s[2])
		hdr, ok2 := view(m, s[3], s[4])
		if !ok1 || !ok2 {
			s[0] = errFault64
			return
		}
		s[0] = uint64(hostOf(ctx).WSAccept(abi.Handle(s[0]), proto, hdr, int32(s[5])))
	}},
	{abi.FnWSSend, []api.ValueType{i64, i32, i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		data, ok := view(m, s[1], s[2])
		if !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).WSSend(abi.Handle(s[0]), data, int32(s[3])))
	}},
	{abi.FnWSClose, []api.ValueType{i64, i32, i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		reason, ok := view(m, s[2], s[3])
		if !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).WSClose(abi.Handle(s[0]), int32(s[1]), reason))
	}},
	{abi.FnFail, []api.ValueType{i32, i32}, nil, func(ctx context.Context, m api.Module, s []uint64) {
		msg, ok := view(m, s[0], s[1])
		if !ok {
			msg = []byte("(the message was out of bounds)")
		}
		// wazero turns a panic in a host function into an error from the guest call that
		// made it, unwinding the guest: exactly a trap, with the guest's message.
		panic(&FailError{Message: string(msg)})
	}},
}

// The functions of ABI 1.7: long messages between workers.
var messageFuncs = []hostFunc{
	{abi.FnMessageRead, []api.ValueType{i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		dst, ok := view(m, s[0], s[1])
		if !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).MessageRead(dst))
	}},
	{abi.FnBroadcast, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		mem := whole(m)
		data, ok1 := span(mem, s[0], s[1])
		codes, ok2 := span(mem, s[2], s[3])
		if !ok1 || !ok2 {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).Broadcast(data, codes))
	}},
}

// FailError is a guest's own report that it is broken (the fail host function): a Go
// guest's panic, recovered by the SDK and passed on with its stack.
type FailError struct{ Message string }

func (e *FailError) Error() string { return e.Message }

// The functions of ABI 1.4: calls from the embedding program, and its functions.
var callFuncs = []hostFunc{
	{abi.FnCallReturn, []api.ValueType{i64, i32, i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		data, ok := view(m, s[2], s[3])
		if !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).CallReturn(abi.Handle(s[0]), int32(s[1]), data))
	}},
	{abi.FnHostCall, []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i64}, func(ctx context.Context, m api.Module, s []uint64) {
		// One look at the memory for the three views: this is the cheapest call a guest
		// makes into the embedder, and each look is two interface calls.
		mem := whole(m)
		name, ok1 := span(mem, s[0], s[1])
		in, ok2 := span(mem, s[2], s[3])
		out, ok3 := span(mem, s[4], s[5])
		if !ok1 || !ok2 || !ok3 {
			s[0] = errFault64
			return
		}
		s[0] = uint64(hostOf(ctx).HostCall(name, in, out))
	}},
	{abi.FnHostCallAsync, []api.ValueType{i32, i32, i32, i32, i64}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		name, ok1 := view(m, s[0], s[1])
		in, ok2 := view(m, s[2], s[3])
		if !ok1 || !ok2 {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).HostCallAsync(name, in, int64(s[4])))
	}},
	{abi.FnHostResult, []api.ValueType{i32, i32}, []api.ValueType{i32}, func(ctx context.Context, m api.Module, s []uint64) {
		dst, ok := view(m, s[0], s[1])
		if !ok {
			s[0] = errFault
			return
		}
		s[0] = i32Result(hostOf(ctx).HostResult(dst))
	}},
	{abi.FnBodyFile, []api.ValueType{i64, i32, i32, i64, i64}, []api.ValueType{i64}, func(ctx context.Context, m api.Module, s []uint64) {
		path, ok := view(m, s[1], s[2])
		if !ok {
			s[0] = errFault64
			return
		}
		s[0] = uint64(hostOf(ctx).BodyFile(abi.Handle(s[0]), path, int64(s[3]), int64(s[4])))
	}},
}

func init() {
	hostFuncs = append(append(hostFuncs, callFuncs...), messageFuncs...)
	for _, f := range hostFuncs {
		hostSignatures[f.name] = signature{f.params, f.results}
	}
}

func instantiateHostModule(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(abi.ModuleName)
	for _, f := range hostFuncs {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}
