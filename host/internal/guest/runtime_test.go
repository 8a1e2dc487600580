package guest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmloop/wasmloop/abi"
)

// module hand-encodes a small wasm binary: enough to exercise every refusal rule without a
// toolchain. Function bodies are `unreachable`.
type module struct {
	imports []wimport
	exports []wexport // function exports; each gets its own function of type sig
	memory  bool
	start   []byte            // the body (no locals) of a start function, ()->(), if not nil
	bodies  map[string][]byte // export bodies (locals included) other than the default
}

type wimport struct {
	mod, name string
	params    []byte
	results   []byte
}

type wexport struct {
	name    string
	params  []byte
	results []byte
}

const (
	tI32 = 0x7f
	tI64 = 0x7e
)

func leb(n int) []byte {
	var out []byte
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

func vec(items ...[]byte) []byte {
	out := leb(len(items))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func name(s string) []byte { return append(leb(len(s)), s...) }

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, leb(len(body))...), body...)
}

func (m module) encode() []byte {
	var types, imps, funcs, exps, codes [][]byte
	for _, im := range m.imports {
		types = append(types, funcType(im.params, im.results))
		imps = append(imps, append(append(name(im.mod), name(im.name)...), append([]byte{0x00}, leb(len(types)-1)...)...))
	}
	for i, ex := range m.exports {
		types = append(types, funcType(ex.params, ex.results))
		funcs = append(funcs, leb(len(types)-1))
		exps = append(exps, append(append(name(ex.name), 0x00), leb(len(m.imports)+i)...))
		if b, ok := m.bodies[ex.name]; ok {
			codes = append(codes, append(leb(len(b)), b...))
		} else if len(ex.results) == 0 {
			codes = append(codes, append(leb(2), 0x00, 0x0b)) // no locals, end: a no-op
		} else {
			codes = append(codes, append(leb(3), 0x00, 0x00, 0x0b)) // no locals, unreachable, end
		}
	}
	if m.memory {
		exps = append(exps, append(name("memory"), 0x02, 0x00))
	}
	startFn := len(m.imports) + len(m.exports)
	if m.start != nil {
		types = append(types, funcType(nil, nil))
		funcs = append(funcs, leb(len(types)-1))
		codes = append(codes, append(leb(len(m.start)+1), append([]byte{0x00}, m.start...)...))
	}
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	out = append(out, section(1, vec(types...))...)
	if len(imps) > 0 {
		out = append(out, section(2, vec(imps...))...)
	}
	out = append(out, section(3, vec(funcs...))...)
	if m.memory {
		out = append(out, section(5, vec([]byte{0x00, 0x01}))...)
	}
	out = append(out, section(7, vec(exps...))...)
	if m.start != nil {
		out = append(out, section(8, leb(startFn))...)
	}
	out = append(out, section(10, vec(codes...))...)
	return out
}

func funcType(params, results []byte) []byte {
	return append(append([]byte{0x60}, vec(bytesOf(params)...)...), vec(bytesOf(results)...)...)
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = []byte{b[i]}
	}
	return out
}

func validGuest() module {
	return module{
		memory: true,
		exports: []wexport{
			{abi.ExportMarker, nil, []byte{tI32}},
			{abi.ExportStart, nil, []byte{tI32}},
			{abi.ExportInit, nil, nil},
		},
		imports: []wimport{{abi.ModuleName, abi.FnRespond, []byte{tI64, tI32, tI32, tI32, tI32, tI32, tI32}, []byte{tI32}}},
		// The host asks the marker for the guest's minor version as it instantiates it.
		bodies: map[string][]byte{abi.ExportMarker: {0x00, 0x41, abi.Minor, 0x0b}}, // i32.const Minor
	}
}

func TestCompileRefusals(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, RuntimeConfig{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	with := func(f func(m *module)) []byte { m := validGuest(); f(&m); return m.encode() }
	tests := []struct {
		name string
		wasm []byte
		want string // "" means accepted
	}{
		{"valid", validGuest().encode(), ""},
		{"not wasm", []byte("Hello World\n"), "not a WebAssembly module"},
		{"truncated", validGuest().encode()[:20], "invalid WebAssembly module"},
		// 2^32-16 locals in 30 bytes: wazero would allocate 64 GiB for them and die.
		{"locals bomb", append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 10, 10, 1, 8, 1},
			0xf0, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b), "locals"},
		// Four tables of 2^27 elements: 4 GiB of the host's heap outside the memory limit.
		{"tables bomb", append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 4, 25, 4},
			0x70, 0, 0x80, 0x80, 0x80, 0x40, 0x70, 0, 0x80, 0x80, 0x80, 0x40,
			0x70, 0, 0x80, 0x80, 0x80, 0x40, 0x70, 0, 0x80, 0x80, 0x80, 0x40), "tables hold 536870912 elements"},
		{"no marker", with(func(m *module) { m.exports = m.exports[1:] }), "does not export wasmloop_abi_v1"},
		{"other major", with(func(m *module) { m.exports[0].name = "wasmloop_abi_v2" }), "another major version"},
		{"marker signature", with(func(m *module) {
			m.exports[0].results = []byte{tI64}
			m.bodies[abi.ExportMarker] = []byte{0x00, 0x42, 0x07, 0x0b}
		}), "wrong signature"},
		{"no start", with(func(m *module) { m.exports = append(m.exports[:1], m.exports[2]) }), "does not export wasmloop_on_start"},
		{"no memory", with(func(m *module) { m.memory = false }), "does not export its memory"},
		{"command", with(func(m *module) { m.exports[2].name = "_start" }), "WASI command"},
		{"on_request signature", with(func(m *module) {
			m.exports = append(m.exports, wexport{abi.ExportOnRequest, []byte{tI32, tI32, tI32}, []byte{tI32}})
		}), "wrong signature"},
		{"unknown import", with(func(m *module) { m.imports[0].name = "teleport" }), "does not have"},
		{"import signature", with(func(m *module) { m.imports[0].params = []byte{tI32} }), "wrong signature"},
		{"other ABI import", with(func(m *module) { m.imports[0].mod = "wasmloop_v2" }), "built for ABI v2"},
		{"import from another module", with(func(m *module) { m.imports[0].mod = "env"; m.imports[0].name = "foo" }), "imports env.foo: a wasmloop guest may import only from"},
		{"unknown WASI import", with(func(m *module) { m.imports[0].mod = "wasi_snapshot_preview1"; m.imports[0].name = "teleport" }), "WASI does not have"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := rt.Compile(ctx, tc.wasm)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				m.Close(ctx)
				return
			}
			if err == nil {
				m.Close(ctx)
				t.Fatalf("accepted, want refusal %q", tc.want)
			}
			var r *RefusedError
			if !asRefused(err, &r) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q (%T), want a RefusedError containing %q", err, err, tc.want)
			}
		})
	}
}

func asRefused(err error, r **RefusedError) bool {
	x, ok := err.(*RefusedError)
	*r = x
	return ok
}

func sleb(n int64) []byte {
	var out []byte
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if (n == 0 && b&0x40 == 0) || (n == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// probeModule imports one host function and exports "probe", which calls it with every i32
// argument set to arg (so each (pointer, length) pair lies past the 64 KiB memory) and every
// i64 argument set to 1.
func probeModule(fn string, arg int64) []byte {
	sig := hostSignatures[fn]
	var body []byte
	for _, p := range sig.params {
		if p == i64 {
			body = append(append(body, 0x42), sleb(1)...)
		} else {
			body = append(append(body, 0x41), sleb(arg)...)
		}
	}
	body = append(append(body, 0x10), leb(0)...) // call import 0
	body = append(body, 0x0b)
	m := validGuest()
	m.imports = []wimport{{abi.ModuleName, fn, toBytes(sig.params), toBytes(sig.results)}}
	// An extra export "probe", encoded with a placeholder body that is then replaced by the
	// call above.
	m.exports = append(m.exports, wexport{"probe", nil, toBytes(sig.results)})
	wasm := m.encode()
	// Replace the last function body (unreachable) with the call.
	code := append(leb(len(body)+1), append([]byte{0x00}, body...)...)
	old := append(leb(3), 0x00, 0x00, 0x0b)
	idx := bytes.LastIndex(wasm, old)
	wasm = append(append(append([]byte{}, wasm[:idx]...), code...), wasm[idx+len(old):]...)
	// The code section's size and the whole module changed: re-encode its header.
	return fixCodeSection(wasm)
}

func toBytes(ts []api.ValueType) []byte {
	out := make([]byte, len(ts))
	for i, t := range ts {
		out[i] = byte(t)
	}
	return out
}

// fixCodeSection rewrites the size of the last section (the code section) after its body changed.
func fixCodeSection(wasm []byte) []byte {
	// Walk the sections to find the code section's start.
	p := 8
	for p < len(wasm) {
		id := wasm[p]
		size, n := uleb(wasm[p+1:])
		if id == 10 {
			body := wasm[p+1+n:]
			return append(append(append([]byte{}, wasm[:p+1]...), leb(len(body))...), body...)
		}
		p += 1 + n + size
	}
	return wasm
}

func uleb(b []byte) (int, int) {
	v, shift := 0, 0
	for i, c := range b {
		v |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, i + 1
		}
		shift += 7
	}
	return v, len(b)
}

// recorder is a Host that records which functions were reached.
type recorder struct{ called []string }

func (r *recorder) Negotiate(uint64) uint64    { r.called = append(r.called, "negotiate"); return 0 }
func (r *recorder) WorkerID() int32            { return 0 }
func (r *recorder) WorkerCount() int32         { return 1 }
func (r *recorder) Inbox(uint32, uint32) int32 { r.called = append(r.called, "inbox"); return 0 }
func (r *recorder) Listen([]byte, int32, int32) int64 {
	r.called = append(r.called, "listen")
	return 0
}
func (r *recorder) Respond(abi.Handle, int32, []byte, []byte, int32) int32 {
	r.called = append(r.called, "respond")
	return 0
}
func (r *recorder) Write(abi.Handle, []byte) int32 { r.called = append(r.called, "write"); return 0 }
func (r *recorder) End(abi.Handle) int32           { return 0 }
func (r *recorder) BodyRead(abi.Handle, []byte) int32 {
	r.called = append(r.called, "body_read")
	return 0
}
func (r *recorder) TimerStart(int64, int64) int64 { return 0 }
func (r *recorder) Close(abi.Handle) int32        { return 0 }
func (r *recorder) Ref(abi.Handle, int32) int32   { return 0 }
func (r *recorder) Exit(int32) int32              { return 0 }
func (r *recorder) Post(int32, []byte) int32      { r.called = append(r.called, "post"); return 0 }
func (r *recorder) Pause(abi.Handle, int32) int32 { return 0 }
func (r *recorder) WSAccept(abi.Handle, []byte, []byte, int32) int64 {
	r.called = append(r.called, "ws_accept")
	return 0
}
func (r *recorder) WSSend(abi.Handle, []byte, int32) int32 {
	r.called = append(r.called, "ws_send")
	return 0
}
func (r *recorder) WSClose(abi.Handle, int32, []byte) int32 {
	r.called = append(r.called, "ws_close")
	return 0
}
func (r *recorder) CallReturn(abi.Handle, int32, []byte) int32 {
	r.called = append(r.called, "call_return")
	return 0
}
func (r *recorder) HostCall(_, _, _ []byte) int64 {
	r.called = append(r.called, "host_call")
	return 0
}
func (r *recorder) HostCallAsync(_, _ []byte, _ int64) int32 {
	r.called = append(r.called, "host_call_async")
	return 0
}
func (r *recorder) HostResult([]byte) int32 {
	r.called = append(r.called, "host_result")
	return 0
}
func (r *recorder) BodyFile(abi.Handle, []byte, int64, int64) int64 {
	r.called = append(r.called, "body_file")
	return 0
}
func (r *recorder) MessageRead([]byte) int32 {
	r.called = append(r.called, "message_read")
	return 0
}
func (r *recorder) Broadcast(_, _ []byte) int32 {
	r.called = append(r.called, "broadcast")
	return 0
}

// Every host function that takes guest memory answers an out-of-bounds (pointer, length)
// with EFAULT and never reaches the Host; in bounds, it does reach it.
func TestHostFunctionsCheckPointers(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, RuntimeConfig{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	for _, fn := range []string{abi.FnInbox, abi.FnListen, abi.FnRespond, abi.FnWrite, abi.FnBodyRead, abi.FnPost, abi.FnWSAccept, abi.FnWSSend, abi.FnWSClose,
		abi.FnCallReturn, abi.FnHostCall, abi.FnHostCallAsync, abi.FnHostResult, abi.FnBodyFile, abi.FnMessageRead, abi.FnBroadcast} {
		for _, tc := range []struct {
			arg     int64
			reached bool
		}{{65000, false}, {-1, false}, {16, true}} {
			mod, err := rt.Compile(ctx, probeModule(fn, tc.arg))
			if err != nil {
				t.Fatalf("%s: %v", fn, err)
			}
			rec := &recorder{}
			inst, err := mod.Instantiate(ctx, InstanceConfig{}, rec)
			if err != nil {
				t.Fatalf("%s: %v", fn, err)
			}
			f := inst.mod.ExportedFunction("probe")
			res, err := f.Call(inst.ctx)
			if err != nil {
				t.Fatalf("%s(%d) trapped: %v", fn, tc.arg, err)
			}
			got := int64(int32(res[0]))
			if hostSignatures[fn].results[0] == i64 {
				got = int64(res[0])
			}
			if tc.reached {
				if len(rec.called) != 1 || rec.called[0] != fn {
					t.Errorf("%s(%d): host calls %v, want [%s]", fn, tc.arg, rec.called, fn)
				}
			} else if got != int64(abi.EFAULT) || len(rec.called) != 0 {
				t.Errorf("%s(%d) = %d, host calls %v; want EFAULT and none", fn, tc.arg, got, rec.called)
			}
			inst.Close()
			mod.Close(ctx)
		}
	}
}
