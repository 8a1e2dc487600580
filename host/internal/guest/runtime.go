// Package guest is the wazero glue: it compiles a guest module once per process, checks that
// it speaks the wasmloop ABI, instantiates it once per loop, and turns the ABI's host functions
// into calls on a Host the loop implements.
//
// Every export is looked up once per instance and called with a stack kept by the instance
// (CallWithStack), and every host function is a GoModuleFunc, because the alternatives cost
// about ten times as much or allocate on every call (RATIONALE.md, "The wazero boundary").
// Host functions check every guest pointer and answer a bad one with EFAULT; they never trap
// on guest input.
package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/wasmbin"
)

// Runtime is one wazero runtime with the wasmloop host module and WASI. One per process.
type Runtime struct {
	r             wazero.Runtime
	cache         wazero.CompilationCache
	interruptible bool
	memoryLimit   int64
	wd            watchdog // stops calls past their budget (watchdog.go)
}

// RuntimeConfig configures NewRuntime.
type RuntimeConfig struct {
	// CacheDir holds compiled code across processes. Empty means the user's cache
	// directory; "-" disables the disk cache.
	CacheDir string
	// Interruptible compiles guests with checks (wasmbin.Meter) that call the host every few
	// thousand loop iterations or function entries, which lets a call be stopped
	// (InstanceConfig's budgets) and lets the Go scheduler stop a guest that loops for a
	// garbage collection. Without them a guest that never returns freezes the process at the
	// next collection.
	Interruptible bool
	// MemoryLimit caps each instance's linear memory, in bytes (rounded down to 64 KiB
	// pages); 0 means wasm32's 4 GiB. The whole limit is reserved as address space.
	MemoryLimit int64
}

// maxMemory is wasm32's limit, 65536 pages of 64 KiB.
const maxMemory = 1 << 32

// DefaultCacheDir is where compiled guests are cached when RuntimeConfig.CacheDir is empty.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "wasmloop", "wazero")
}

// NewRuntime creates the runtime and instantiates the host modules in it.
func NewRuntime(ctx context.Context, cfg RuntimeConfig) (*Runtime, error) {
	rc := wazero.NewRuntimeConfig() // the compiler where wazero has one, else the interpreter
	rt := &Runtime{interruptible: cfg.Interruptible, memoryLimit: maxMemory}
	if cfg.MemoryLimit > 0 && cfg.MemoryLimit < maxMemory {
		rt.memoryLimit = max(cfg.MemoryLimit/wasmPage, 1) * wasmPage
	}
	rc = rc.WithMemoryLimitPages(uint32(rt.memoryLimit / wasmPage))
	dir := cfg.CacheDir
	if dir == "" {
		dir = DefaultCacheDir()
	}
	if dir != "" && dir != "-" {
		if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
			rt.cache = c
			rc = rc.WithCompilationCache(c)
		}
		// A cache that cannot be created only costs start-up time: run without it.
	}
	rt.r = wazero.NewRuntimeWithConfig(ctx, rc)
	if err := instantiateWASI(ctx, rt.r); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if err := instantiateHostModule(ctx, rt.r); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if cfg.Interruptible {
		if err := instantiateMeterModule(ctx, rt.r); err != nil {
			rt.Close(ctx)
			return nil, err
		}
	}
	return rt, nil
}

// Close releases the runtime and everything instantiated in it.
func (rt *Runtime) Close(ctx context.Context) error {
	err := rt.r.Close(ctx)
	if rt.cache != nil {
		rt.cache.Close(ctx)
	}
	return err
}

// RefusedError says why a file is not a wasmloop guest. The CLI exits 2 on it.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// Module is a compiled guest that passed the ABI checks.
type Module struct {
	rt       *Runtime
	compiled wazero.CompiledModule
	hasInit  bool
}

var wasmMagic = []byte{0, 'a', 's', 'm'}

// Compile compiles and checks a guest module: it must be WebAssembly, export the ABI v1
// marker and wasmloop_on_start, be a reactor rather than a command, and import from
// wasmloop only the functions of ABI v1 with their exact signatures.
func (rt *Runtime) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	if !bytes.HasPrefix(wasm, wasmMagic) {
		return nil, refuse("not a WebAssembly module (the file does not start with \\0asm)")
	}
	if err := wasmbin.Check(wasm); err != nil {
		return nil, refuse("invalid WebAssembly module: %v", err)
	}
	code, err := wasmbin.LimitTables(wasm)
	if err != nil {
		return nil, refuse("the module asks for more than the sandbox allows: %v", err)
	}
	if rt.interruptible {
		unmetered := code
		if code, err = wasmbin.Meter(unmetered); err != nil {
			// wazero's word on a module that is not valid says more than the rewrite's.
			if _, cerr := rt.r.CompileModule(ctx, unmetered); cerr != nil {
				return nil, refuse("invalid WebAssembly module: %v", cerr)
			}
			return nil, refuse("the module cannot be given the checks that keep its calls within their budgets (%v); with both budgets off it runs without them", err)
		}
	}
	cm, err := rt.r.CompileModule(ctx, code)
	if err != nil {
		return nil, refuse("invalid WebAssembly module: %v", err)
	}
	m := &Module{rt: rt, compiled: cm}
	if err := m.check(); err != nil {
		cm.Close(ctx)
		return nil, err
	}
	return m, nil
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type signature struct{ params, results []api.ValueType }

var exportSignatures = map[string]signature{
	abi.ExportMarker:       {nil, []api.ValueType{i32}},
	abi.ExportStart:        {nil, []api.ValueType{i32}},
	abi.ExportOnRequest:    {[]api.ValueType{i64, i64, i32}, []api.ValueType{i32}},
	abi.ExportOnTimer:      {[]api.ValueType{i64}, []api.ValueType{i32}},
	abi.ExportOnClose:      {[]api.ValueType{i64, i32}, []api.ValueType{i32}},
	abi.ExportOnBody:       {[]api.ValueType{i64, i32, i32}, []api.ValueType{i32}},
	abi.ExportOnDrain:      {[]api.ValueType{i64}, []api.ValueType{i32}},
	abi.ExportOnMessage:    {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
	abi.ExportOnWSOpen:     {[]api.ValueType{i64}, []api.ValueType{i32}},
	abi.ExportOnWSMessage:  {[]api.ValueType{i64, i32, i32}, []api.ValueType{i32}},
	abi.ExportOnWSClose:    {[]api.ValueType{i64, i32, i32}, []api.ValueType{i32}},
	abi.ExportInit:         {nil, nil},
	abi.ExportOnCall:       {[]api.ValueType{i64, i32, i32}, []api.ValueType{i32}},
	abi.ExportOnHostResult: {[]api.ValueType{i64, i32, i32}, []api.ValueType{i32}},
}

func (m *Module) check() error {
	fns := m.compiled.ExportedFunctions()
	if _, ok := fns[abi.ExportMarker]; !ok {
		if hasOtherVersion(fns) {
			return refuse("the module speaks another major version of the wasmloop ABI; this host speaks v%d (export %s)", abi.Major, abi.ExportMarker)
		}
		return refuse("the module does not export %s: it was not built with a wasmloop SDK for ABI v%d", abi.ExportMarker, abi.Major)
	}
	for name, sig := range exportSignatures {
		f, ok := fns[name]
		if !ok {
			continue
		}
		if !slices.Equal(f.ParamTypes(), sig.params) || !slices.Equal(f.ResultTypes(), sig.results) {
			return refuse("export %s has the wrong signature %v -> %v; ABI v%d wants %v -> %v", name, f.ParamTypes(), f.ResultTypes(), abi.Major, sig.params, sig.results)
		}
	}
	if _, ok := fns[abi.ExportStart]; !ok {
		return refuse("the module does not export %s", abi.ExportStart)
	}
	if _, ok := m.compiled.ExportedMemories()[abi.ExportMemory]; !ok {
		return refuse("the module does not export its memory as %q", abi.ExportMemory)
	}
	_, m.hasInit = fns[abi.ExportInit]
	if _, ok := fns[abi.ExportCommand]; ok && !m.hasInit {
		return refuse("the module is a WASI command (it exports _start): build it as a reactor (Go: -buildmode=c-shared; C: -mexec-model=reactor)")
	}
	for _, f := range m.compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod == wasmbin.MeterModule && m.rt.interruptible {
			continue // added by Compile; a module that imported it itself was refused there
		}
		if mod != abi.ModuleName {
			if len(mod) > 9 && mod[:9] == "wasmloop_" {
				return refuse("the module imports %s.%s: it was built for ABI %s; this host speaks %s", mod, name, mod[9:], abi.ModuleName[9:])
			}
			if mod != wasi_snapshot_preview1.ModuleName {
				return refuse("the module imports %s.%s: a wasmloop guest may import only from %s and %s", mod, name, abi.ModuleName, wasi_snapshot_preview1.ModuleName)
			}
			if _, ok := m.rt.r.Module(mod).ExportedFunctionDefinitions()[name]; !ok {
				return refuse("the module imports %s.%s, which this host's WASI does not have", mod, name)
			}
			continue
		}
		sig, ok := hostSignatures[name]
		if !ok {
			return refuse("the module imports %s.%s, which ABI v%d.%d does not have", mod, name, abi.Major, abi.Minor)
		}
		if !slices.Equal(f.ParamTypes(), sig.params) || !slices.Equal(f.ResultTypes(), sig.results) {
			return refuse("import %s.%s has the wrong signature %v -> %v; ABI v%d wants %v -> %v", mod, name, f.ParamTypes(), f.ResultTypes(), abi.Major, sig.params, sig.results)
		}
	}
	return nil
}

func hasOtherVersion(fns map[string]api.FunctionDefinition) bool {
	for name := range fns {
		if len(name) > 14 && name[:14] == "wasmloop_abi_v" {
			return true
		}
	}
	return false
}

// Close releases the compiled module.
func (m *Module) Close(ctx context.Context) error { return m.compiled.Close(ctx) }

var errDead = errors.New("guest: the instance trapped earlier and must not be called again")

// Interface is what a compiled module declares of itself, as wazero read it: its function
// imports and exports and its exported memory's limits (wasmloop inspect).
type Interface struct {
	Exports []string    // function exports
	Imports [][2]string // function imports: module, name, in the module's order
	// MemoryMin and MemoryMax are the exported memory's declared limits in 64 KiB pages;
	// HasMax is false when it declares no maximum.
	MemoryMin, MemoryMax uint32
	HasMax               bool
}

// Interface returns the module's imports, exports and memory limits.
func (m *Module) Interface() Interface {
	var in Interface
	for name := range m.compiled.ExportedFunctions() {
		in.Exports = append(in.Exports, name)
	}
	for _, f := range m.compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		in.Imports = append(in.Imports, [2]string{mod, name})
	}
	if mem, ok := m.compiled.ExportedMemories()[abi.ExportMemory]; ok {
		in.MemoryMin = mem.Min()
		in.MemoryMax, in.HasMax = mem.Max()
	}
	return in
}
