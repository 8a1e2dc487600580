package host

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
	"github.com/wasmloop/wasmloop/host/internal/inspect"
	"github.com/wasmloop/wasmloop/host/internal/wasmbin"
)

// ModuleInfo is what Inspect learns about a guest module.
type ModuleInfo struct {
	// Size is the module's length in bytes.
	Size int
	// ABIMajor is the major ABI version the module speaks, from its marker's name
	// (wasmloop_abi_v1: 1), 0 when Inspect failed before it learned anything; ABIMinor is the minor version its marker returned, or -1 when
	// Inspect could not ask it (Inspect's error says why).
	ABIMajor, ABIMinor int
	// Features are the optional parts of the ABI the module asks for (see Feature).
	Features []Feature
	// Events are the events the module can receive: its wasmloop_on_* exports other than
	// wasmloop_on_start, without that prefix ("request", "timer", "ws_message", "call", ...).
	Events []string
	// Exports are the module's function exports, sorted.
	Exports []string
	// HostImports are the ABI's host functions the module imports (from wasmloop_v1), and
	// WASIImports the WASI preview 1 functions; both sorted.
	HostImports, WASIImports []string
	// HostFunctions are the host's own named functions ("wasmloop:fs.read",
	// "wasmloop:http.fetch", ...; ABI.md §9, §10) whose names the module's data holds: those
	// it may call with host_call or host_call_async. Found by name, not proved to be called.
	HostFunctions []string
	// MemoryMinPages and MemoryMaxPages are the limits the module declares for its memory,
	// in 64 KiB pages; MemoryMaxPages is -1 when it declares no maximum.
	MemoryMinPages, MemoryMaxPages int64
	// MemoryLimit is the host's cap on one instance's memory, in bytes: Config.MemoryLimit
	// resolved (rounded down to whole pages), whichever of it and the declared maximum is
	// lower applies.
	MemoryLimit int64
	// CompileTime is how long checking and compiling the module took (or loading it from the
	// cache), as Load would spend it.
	CompileTime time.Duration
	// Cache is the compile cache's state for the module: "hit" (the compiled module was in
	// it), "miss" (it was compiled, and stored there when the directory is writable) or
	// "off" (Config.CacheDir "-", or a directory that cannot be created). CacheDir is the
	// directory, the one Load would use; "" when off.
	Cache, CacheDir string
}

// Feature is an optional part of the ABI that a module asks for. ABI 1.0 to 1.7 define no
// feature bits for negotiate: a module gets a feature by exporting its callback, importing
// its function or naming the host's function, and the one thing the host gives by version
// (messages longer than 4096 bytes, 1.7) by the minor version the module's marker returns.
type Feature struct {
	Name  string // stable: stream_bodies, drain, messages, long_messages, websockets, calls, host_functions, files, body_file, network
	Since string // the ABI version that added it: "1.1"
	Why   string // what in the module asks for it: "exports wasmloop_on_body"
}

// Inspect tells what a module is to the host, as Load and Run would find it, without running
// the program: it checks and compiles wasm exactly as Load does (the same refusals, a
// RefusedError, and the same compile cache, Config.CacheDir, whose state it reports), reads
// the module's imports, exports and memory, and asks the module's marker, wasmloop_abi_v1,
// for the minor version it speaks. That takes an instance, made as Run makes one, under
// Config.StartBudget and Config.MemoryLimit and with none of the program's grants, so only
// the module's initialisation (_initialize) and its marker run, never wasmloop_on_start: its
// output is discarded and any host function it calls answers ENOTSUP or ESTATE. If that
// fails (the initialisation or the marker traps, exits or runs past its budget), Inspect
// returns what it learned, with ABIMinor -1, and the error. Only the settings named here
// matter; the others are checked as Load checks them.
func Inspect(ctx context.Context, wasm []byte, cfg Config) (ModuleInfo, error) {
	info := ModuleInfo{Size: len(wasm), ABIMinor: -1}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return info, err
	}
	rt, err := guest.NewRuntime(ctx, guest.RuntimeConfig{
		CacheDir:      cfg.CacheDir,
		Interruptible: cfg.CallbackBudget != Off || cfg.StartBudget != Off,
		MemoryLimit:   cfg.MemoryLimit,
	})
	if err != nil {
		return info, err
	}
	defer rt.Close(ctx)
	info.CacheDir = cfg.CacheDir
	if info.CacheDir == "" {
		info.CacheDir = guest.DefaultCacheDir()
	}
	if info.CacheDir == "-" || info.CacheDir == "" || len(inspect.CacheDirs(info.CacheDir)) == 0 {
		info.Cache, info.CacheDir = "off", ""
	}
	before := inspect.Snapshot(info.CacheDir)
	start := time.Now()
	mod, err := rt.Compile(ctx, wasm)
	info.CompileTime = time.Since(start)
	if err != nil {
		return info, err
	}
	defer mod.Close(ctx)
	if info.Cache == "" {
		after := inspect.Snapshot(info.CacheDir)
		info.Cache = "hit"
		if inspect.Stored(before, after) || len(after) == 0 {
			info.Cache = "miss"
		}
	}
	data, err := wasmbin.DataSection(wasm)
	if err != nil {
		return info, fmt.Errorf("host: reading the module: %w", err)
	}
	facts := inspect.FactsOf(mod.Interface(), data)
	info.Exports, info.HostImports, info.WASIImports = facts.Exports, facts.HostImports, facts.WASIImports
	info.HostFunctions = facts.HostFunctions
	info.Events = inspect.Events(facts.Exports)
	info.MemoryMinPages, info.MemoryMaxPages = int64(facts.MemoryMin), -1
	if facts.HasMax {
		info.MemoryMaxPages = int64(facts.MemoryMax)
	}
	info.MemoryLimit = cfg.MemoryLimit / (64 << 10) * (64 << 10)
	for _, e := range facts.Exports {
		if v, ok := strings.CutPrefix(e, "wasmloop_abi_v"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				info.ABIMajor = n
			}
		}
	}

	inst, err := mod.Instantiate(ctx, guest.InstanceConfig{
		Args: []string{"app.wasm"}, Stdout: io.Discard, Stderr: io.Discard,
		StartBudget: budget(cfg.StartBudget), CallBudget: budget(cfg.CallbackBudget),
	}, inspect.InertHost{})
	if err == nil {
		info.ABIMinor = int(inst.Minor())
		inst.Close()
	}
	for _, f := range inspect.Features(facts, info.ABIMinor) {
		info.Features = append(info.Features, Feature(f))
	}
	if err != nil {
		return info, fmt.Errorf("asking %s for the minor version it speaks: %w", abi.ExportMarker, err)
	}
	return info, nil
}
