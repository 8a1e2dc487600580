package host

import (
	"context"
	"fmt"
	"strings"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/files"
	"github.com/wasmloop/wasmloop/host/internal/guest"
	"github.com/wasmloop/wasmloop/host/internal/loop"
	"github.com/wasmloop/wasmloop/host/internal/reach"
)

// Function is a function the embedding program gives the guest, which calls it by name with
// bytes in and gets bytes out (ABI.md, host_call; the Go SDK's wasmloop.CallSync and
// wasmloop.Call). Set exactly one of Sync and Async.
//
// Sync runs on the worker's event loop, inside the guest's call: nothing else on that worker
// runs until it returns, so it must not block — a map lookup, a computation, a read of
// state the service keeps in memory. Async runs on a goroutine of its own, so it may block
// (a database query, an HTTP request); its result reaches the guest later as an event, never
// inside the call that started it, and keeps the program alive until then.
//
// in is valid only until the function returns: copy what it keeps. An error reaches the
// guest as a failed result carrying err.Error(), never as a trap; so does a panic, which is
// logged, and an Async function that ends its goroutine (runtime.Goexit). A Sync function
// must return: runtime.Goexit there (a test's t.FailNow or t.Fatal) would end the worker's
// own goroutine, which cannot be recovered. A result is copied into the guest's memory: one
// larger than the guest can allocate (Config.MemoryLimit) fails its instance, as any
// allocation past the limit does, and a fresh instance takes over. ctx is cancelled when the program stops, or when the guest instance that called is
// replaced (a swap, a trap): what the function does for it is wanted no longer.
type Function struct {
	Sync  func(ctx context.Context, in []byte) ([]byte, error)
	Async func(ctx context.Context, in []byte) ([]byte, error)
}

// checkFunctions is the rule for Config.Functions: a name that is not the host's own, and
// exactly one of Sync and Async.
func checkFunctions(fs map[string]Function) error {
	for name, f := range fs {
		switch {
		case name == "":
			return fmt.Errorf("host: Config.Functions has a function with an empty name")
		case strings.HasPrefix(name, abi.FilesPrefix):
			return fmt.Errorf("host: Config.Functions[%q]: names that begin with %q are the host's own", name, abi.FilesPrefix)
		case (f.Sync == nil) == (f.Async == nil):
			return fmt.Errorf("host: Config.Functions[%q] must set exactly one of Sync and Async", name)
		}
	}
	return nil
}

// loopFunctions converts Config.Functions for the loops, and adds the host's own: the file
// functions (async) over the granted directories, and fetch and TCP (ABI.md §10).
func loopFunctions(fs map[string]Function, dirs *files.Mounts, net *reach.Reach) map[string]loop.HostFunc {
	ops := dirs.Ops()
	out := make(map[string]loop.HostFunc, len(fs)+len(ops))
	for name, f := range net.Functions() {
		out[name] = f
	}
	for name, f := range fs {
		out[name] = loop.HostFunc{Sync: f.Sync, Async: f.Async}
	}
	for name, op := range ops {
		out[name] = loop.HostFunc{Async: op, Done: dirs.Release}
	}
	// stat may also be called sync (the SDK's StatSync): one stat(2) on the loop, for a
	// static file server's every request.
	st := out[abi.FnStat]
	st.Sync = dirs.StatSync
	out[abi.FnStat] = st
	return out
}

// preopens are the granted directories as read-only WASI preopens.
func preopens(dirs *files.Mounts) []guest.Preopen {
	var out []guest.Preopen
	for _, mt := range dirs.List() {
		out = append(out, guest.Preopen{FS: mt.FS(), GuestPath: mt.GuestPath})
	}
	return out
}
