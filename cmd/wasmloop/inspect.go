package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host"
)

// inspectOptions is what the flags of inspect set: the few settings of run that change what
// inspect finds (the compile cache, the memory limit, the budgets, which decide whether the
// module is compiled with its budget checks, and so its cache entry), and --json.
type inspectOptions struct {
	cfg  host.Config
	json bool
}

func inspectFlags(o *inspectOptions, output io.Writer) *flag.FlagSet {
	d := host.DefaultConfig()
	o.cfg.MemoryLimit, o.cfg.StartBudget, o.cfg.CallbackBudget = d.MemoryLimit, d.StartBudget, d.CallbackBudget
	c := &o.cfg
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.BoolVar(&o.json, "json", false, "print a JSON object (the schema is in README.md, \"Command line\")")
	fs.StringVar(&c.CacheDir, "cache-dir", "", "the compiled-module and build cache run would use (default: the user cache dir; - for none)")
	fs.Var(sizeValue[int64]{&c.MemoryLimit}, "memory-limit", "`size` of one guest instance's memory, as run's --memory-limit")
	fs.Var(durationValue{&c.StartBudget}, "start-budget", "`duration` the module's initialisation and marker may run, as run's --start-budget")
	fs.Var(durationValue{&c.CallbackBudget}, "callback-budget", "as run's --callback-budget: with both budgets off the module is compiled without its budget checks (another cache entry)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wasmloop inspect [--json] [flags] <app.wasm | Go package directory>

Tells what a module is to wasmloop without running the program: the ABI version it speaks
(the major from its marker's name, the minor from what wasmloop_abi_v1 returns), the ABI
features it asks for, the events it can receive, the host functions and WASI functions it
imports, its memory's declared limits and the --memory-limit that applies, its size, and how
long compiling it took with the state of the compile cache run would use (hit or miss).
A directory is built as run builds it.

To ask the marker, inspect makes one instance as run does, under the same sandbox and
--start-budget, with no directories, network or environment: only the module's
initialisation (_initialize) and its marker run, never wasmloop_on_start, and their output
is discarded. A module that is not a wasmloop guest is refused as run refuses it (exit 2);
one whose initialisation or marker fails is described, with the error (exit 1).
Flags may come before or after the module or directory.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs
}

func cmdInspect(args []string, stdout, stderr io.Writer) int {
	var o inspectOptions
	fs := inspectFlags(&o, stderr)
	pos, rest, code, ok := parseCommand(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 || len(rest) > 0 {
		return usageError(stderr, "inspect", "want exactly one module or directory")
	}
	target := pos[0]
	ctx := context.Background()
	path, err := targetModule(ctx, target, o.cfg.CacheDir, stderr)
	var wasm []byte
	if err == nil {
		wasm, err = os.ReadFile(path)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wasmloop: %v\n", err)
		var be *buildError
		if errors.As(err, &be) {
			return exitFailure
		}
		return exitUsage
	}
	info, err := host.Inspect(ctx, wasm, o.cfg)
	if err != nil && info.ABIMajor == 0 { // refused, or nothing learned
		fmt.Fprintf(stderr, "wasmloop: %s: %v\n", target, err)
		if host.IsRefused(err) {
			return exitUsage
		}
		return exitFailure
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(inspectJSONOf(path, info, err))
	} else {
		writeInspectText(stdout, target, path, info)
	}
	if err != nil {
		// One line: a trap's wasm stack trace is in the JSON's error.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Fprintf(stderr, "wasmloop: %s: %s\n", target, msg)
		return exitFailure
	}
	return 0
}

// targetModule returns the module file of target: itself, or for a Go package directory the
// module run would build from it (in the build cache).
func targetModule(ctx context.Context, target, cacheDir string, stderr io.Writer) (string, error) {
	st, err := os.Stat(target)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return buildGuest(ctx, target, cacheDir, stderr)
	}
	return target, nil
}

// inspectJSON is the object inspect --json prints: a stable schema, documented in README.md
// ("Command line"). Fields are only ever added. Every list is present, empty rather than null.
type inspectJSON struct {
	Module        string         `json:"module"` // the file inspected (for a directory, the module built from it)
	Size          int            `json:"size"`   // bytes
	ABI           inspectABI     `json:"abi"`
	Features      []inspectFeat  `json:"features"`
	Events        []string       `json:"events"`
	Exports       []string       `json:"exports"`
	HostImports   []string       `json:"host_imports"`
	HostFunctions []string       `json:"host_functions"`
	WASIImports   []string       `json:"wasi_imports"`
	Memory        inspectMemory  `json:"memory"`
	Compile       inspectCompile `json:"compile"`
	Error         string         `json:"error,omitempty"`
}

type inspectABI struct {
	Major     int  `json:"major"`
	Minor     *int `json:"minor"`      // null when the marker could not be asked (see error)
	HostMinor int  `json:"host_minor"` // the minor version this wasmloop speaks
}

type inspectFeat struct {
	Name  string `json:"name"`
	Since string `json:"since"`
	Why   string `json:"why"`
}

type inspectMemory struct {
	MinPages   int64  `json:"min_pages"`
	MaxPages   *int64 `json:"max_pages"` // null: no declared maximum
	LimitBytes int64  `json:"limit_bytes"`
}

type inspectCompile struct {
	Milliseconds float64 `json:"ms"`
	Cache        string  `json:"cache"`     // hit, miss or off
	CacheDir     string  `json:"cache_dir"` // "" when off
}

func inspectJSONOf(path string, info host.ModuleInfo, err error) inspectJSON {
	j := inspectJSON{
		Module:        path,
		Size:          info.Size,
		ABI:           inspectABI{Major: info.ABIMajor, HostMinor: abi.Minor},
		Features:      []inspectFeat{},
		Events:        nonNil(info.Events),
		Exports:       nonNil(info.Exports),
		HostImports:   nonNil(info.HostImports),
		HostFunctions: nonNil(info.HostFunctions),
		WASIImports:   nonNil(info.WASIImports),
		Memory:        inspectMemory{MinPages: info.MemoryMinPages, LimitBytes: info.MemoryLimit},
		Compile: inspectCompile{Milliseconds: float64(info.CompileTime.Microseconds()) / 1000,
			Cache: info.Cache, CacheDir: info.CacheDir},
	}
	if info.ABIMinor >= 0 {
		j.ABI.Minor = &info.ABIMinor
	}
	if info.MemoryMaxPages >= 0 {
		j.Memory.MaxPages = &info.MemoryMaxPages
	}
	for _, f := range info.Features {
		j.Features = append(j.Features, inspectFeat(f))
	}
	if err != nil {
		j.Error = err.Error()
	}
	return j
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const wasmPage = 64 << 10

// writeInspectText prints info as aligned lines, a label and its value, long lists wrapped.
func writeInspectText(w io.Writer, target, path string, info host.ModuleInfo) {
	line := func(label, value string) { fmt.Fprintf(w, "%-10s %s\n", label, value) }
	list := func(label string, items []string) {
		if len(items) == 0 {
			line(label, "none")
			return
		}
		for i, l := range wrapList(items, 90) {
			if i > 0 {
				label = ""
			}
			line(label, l)
		}
	}
	module := target
	if path != target {
		module += " (built: " + path + ")"
	}
	line("module", fmt.Sprintf("%s, %s (%d bytes)", module, sizeString(int64(info.Size)), info.Size))
	minor := "?"
	if info.ABIMinor >= 0 {
		minor = fmt.Sprint(info.ABIMinor)
	}
	line("abi", fmt.Sprintf("%d.%s (%s returns %s; this wasmloop speaks %d.%d)", info.ABIMajor, minor, abi.ExportMarker, minor, abi.Major, abi.Minor))
	var feats []string
	for _, f := range info.Features {
		feats = append(feats, fmt.Sprintf("%s (%s: %s)", f.Name, f.Since, f.Why))
	}
	if len(feats) == 0 {
		line("features", "none beyond ABI 1.0")
	}
	for i, f := range feats {
		label := "features"
		if i > 0 {
			label = ""
		}
		line(label, f)
	}
	list("events", info.Events)
	list("exports", info.Exports)
	list("imports", prefixed(abi.ModuleName+".", info.HostImports))
	list("host fns", info.HostFunctions)
	list("wasi", info.WASIImports)
	max := "no maximum"
	if info.MemoryMaxPages >= 0 {
		max = fmt.Sprintf("max %d pages (%s)", info.MemoryMaxPages, sizeString(info.MemoryMaxPages*wasmPage))
	}
	line("memory", fmt.Sprintf("min %d pages (%s), %s; --memory-limit %s (%d pages) applies",
		info.MemoryMinPages, sizeString(info.MemoryMinPages*wasmPage), max, sizeValue[int64]{&info.MemoryLimit}, info.MemoryLimit/wasmPage))
	cache := "cache " + info.Cache
	if info.CacheDir != "" {
		cache += " in " + info.CacheDir
	}
	line("compile", fmt.Sprintf("%v, %s", info.CompileTime.Round(time.Millisecond), cache))
}

func prefixed(prefix string, items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = prefix + s
	}
	return out
}

// wrapList joins items with ", " into lines of about width characters.
func wrapList(items []string, width int) []string {
	var lines []string
	var b strings.Builder
	for i, it := range items {
		if b.Len() > 0 && b.Len()+2+len(it) > width {
			lines = append(lines, b.String()+",")
			b.Reset()
		} else if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it)
		if i == len(items)-1 {
			lines = append(lines, b.String())
		}
	}
	return lines
}

// sizeString writes n bytes for a reader: "2.6 MiB".
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
