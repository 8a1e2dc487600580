package guest

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// WASI preview 1 is wazero's, except poll_oneoff. wazero's does Go work and allocates for every
// subscription a guest passes, with no bound and no look at the budget: a review passed 3 M
// clock subscriptions of timeout 0, which never sleep, and one call took ~200 ms and 137 MiB
// of heap, twenty of them 4 s past a 50 ms budget. This one takes at most maxSubscriptions,
// and sleeps through the instance's budget-aware sleep. It answers as wazero's does: clock
// events at once (relative timeouts only), fd_write with ENOTSUP, fd_read ready for the
// standard output files and never for standard input (the host gives the guest none), EBADF
// for other descriptors; then it sleeps for the shortest clock timeout.

// maxSubscriptions bounds one poll_oneoff: the Go runtime passes one clock, a guest with
// sockets one per socket (a wasmloop guest has none).
const maxSubscriptions = 1024

// WASI errno values poll_oneoff returns.
const (
	wasiEBADF   = 8
	wasiEFAULT  = 21
	wasiEINVAL  = 28
	wasiENOTSUP = 58
)

// instantiateWASI instantiates WASI preview 1 with poll_oneoff replaced.
func instantiateWASI(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32 := api.ValueTypeI32
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(pollOneoff), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("in", "out", "nsubscriptions", "result.nevents").Export("poll_oneoff")
	_, err := b.Instantiate(ctx)
	return err
}

func pollOneoff(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(pollOneoffErrno(ctx, mod, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])))
}

func pollOneoffErrno(ctx context.Context, mod api.Module, in, out, n, resultNevents uint32) uint32 {
	if n == 0 || n > maxSubscriptions {
		return wasiEINVAL
	}
	mem := mod.Memory()
	subs, ok1 := mem.Read(in, n*48)
	events, ok2 := mem.Read(out, n*32)
	if !ok1 || !ok2 {
		return wasiEFAULT
	}
	clear(events)
	le := binary.LittleEndian
	var timeout time.Duration = 1<<63 - 1
	clocks, nevents := 0, uint32(0)
	for i := range n {
		sub := subs[i*48 : i*48+48]
		evt := events[nevents*32 : nevents*32+32]
		kind, arg := sub[8], sub[16:]
		errno := uint16(0)
		switch kind {
		case 0: // clock: relative timeouts only, as wazero
			switch le.Uint16(arg[24:]) {
			case 0:
			case 1:
				return wasiENOTSUP
			default:
				return wasiEINVAL
			}
			timeout = min(timeout, time.Duration(le.Uint64(arg[8:])))
			clocks++
		case 1, 2: // fd_read, fd_write
			fd := int32(le.Uint32(arg))
			switch {
			case fd < 0:
				return wasiEBADF
			case fd > 2:
				errno = wasiEBADF
			case kind == 2:
				errno = wasiENOTSUP
			case fd == 0:
				continue // standard input is never ready: no event
			}
		default:
			return wasiEINVAL
		}
		copy(evt, sub[:8]) // userdata
		le.PutUint16(evt[8:], errno)
		evt[10] = kind
		nevents++
	}
	if !mem.WriteUint32Le(resultNevents, nevents) {
		return wasiEFAULT
	}
	if clocks > 0 && timeout > 0 {
		ctx.Value(instanceKey{}).(*Instance).sleep(int64(timeout))
	}
	return 0
}
