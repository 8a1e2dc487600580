package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

// testGuest describes a small module written by hand (encode): a wasmloop guest unless the
// fields say otherwise.
type testGuest struct {
	minor     byte   // what the marker returns
	trap      bool   // the marker traps (unreachable)
	onMessage bool   // exports wasmloop_on_message
	command   bool   // exports _start instead of _initialize: a WASI command
	noMarker  bool   // exports no wasmloop_abi_v1
	envImport bool   // imports env.f, which the ABI does not have
	data      string // the data segment's bytes
}

func leb(n uint64) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func vec(items ...[]byte) []byte {
	out := leb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func wname(s string) []byte { return append(leb(uint64(len(s))), s...) }

func section(id byte, payload []byte) []byte {
	return append(append([]byte{id}, leb(uint64(len(payload)))...), payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func (g testGuest) encode() []byte {
	const i32, i64 = 0x7f, 0x7e
	functype := func(params, results []byte) []byte {
		return cat([]byte{0x60}, vec(split(params)...), vec(split(results)...))
	}
	types := vec(
		functype(nil, []byte{i32}),                                       // 0: () -> i32
		functype([]byte{i64, i64, i32}, []byte{i32}),                     // 1: on_request
		functype([]byte{i64, i32, i32, i32, i32, i32, i32}, []byte{i32}), // 2: respond
		functype(nil, nil),                                               // 3: _initialize, _start
		functype([]byte{i32, i32}, []byte{i32}),                          // 4: on_message
		functype([]byte{i32, i32, i32, i32}, []byte{i32}),                // 5: fd_write
	)
	imports := [][]byte{
		cat(wname(abi.ModuleName), wname(abi.FnRespond), []byte{0}, leb(2)),
		cat(wname("wasi_snapshot_preview1"), wname("fd_write"), []byte{0}, leb(5)),
		cat(wname("wasi_snapshot_preview1"), wname("fd_write"), []byte{0}, leb(5)), // twice, as Go's runtime does
	}
	if g.envImport {
		imports = append(imports, cat(wname("env"), wname("f"), []byte{0}, leb(3)))
	}
	nimp := uint64(len(imports))
	marker := []byte{0x41, g.minor, 0x0b} // i32.const minor
	if g.trap {
		marker = []byte{0x00, 0x0b} // unreachable
	}
	ret0 := []byte{0x41, 0, 0x0b}
	type fn struct {
		name string
		typ  uint64
		body []byte
	}
	fns := []fn{{abi.ExportMarker, 0, marker}, {abi.ExportStart, 0, ret0}, {abi.ExportOnRequest, 1, ret0}}
	init := abi.ExportInit
	if g.command {
		init = abi.ExportCommand
	}
	fns = append(fns, fn{init, 3, []byte{0x0b}})
	if g.onMessage {
		fns = append(fns, fn{abi.ExportOnMessage, 4, ret0})
	}
	var funcs, code, exports [][]byte
	for i, f := range fns {
		funcs = append(funcs, leb(f.typ))
		body := append([]byte{0}, f.body...) // no locals
		code = append(code, append(leb(uint64(len(body))), body...))
		if f.name == abi.ExportMarker && g.noMarker {
			continue
		}
		exports = append(exports, cat(wname(f.name), []byte{0}, leb(nimp+uint64(i))))
	}
	exports = append(exports, cat(wname(abi.ExportMemory), []byte{2}, leb(0)))
	data := vec(cat([]byte{0, 0x41, 16, 0x0b}, wname(g.data)))
	return cat([]byte("\x00asm\x01\x00\x00\x00"),
		section(1, types), section(2, vec(imports...)), section(3, vec(funcs...)),
		section(5, vec([]byte{1, 1, 2})), // memory: min 1 page, max 2
		section(7, vec(exports...)), section(10, vec(code...)), section(11, data))
}

func split(b []byte) [][]byte {
	var out [][]byte
	for i := range b {
		out = append(out, b[i:i+1])
	}
	return out
}

func writeGuest(t *testing.T, g testGuest) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.wasm")
	if err := os.WriteFile(path, g.encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// The JSON schema of inspect --json, as README.md documents it, written out apart from the
// command's own types so that a change to them shows here.
type inspectSchema struct {
	Module string `json:"module"`
	Size   int    `json:"size"`
	ABI    struct {
		Major     int  `json:"major"`
		Minor     *int `json:"minor"`
		HostMinor int  `json:"host_minor"`
	} `json:"abi"`
	Features []struct {
		Name  string `json:"name"`
		Since string `json:"since"`
		Why   string `json:"why"`
	} `json:"features"`
	Events        []string `json:"events"`
	Exports       []string `json:"exports"`
	HostImports   []string `json:"host_imports"`
	HostFunctions []string `json:"host_functions"`
	WASIImports   []string `json:"wasi_imports"`
	Memory        struct {
		MinPages   int64  `json:"min_pages"`
		MaxPages   *int64 `json:"max_pages"`
		LimitBytes int64  `json:"limit_bytes"`
	} `json:"memory"`
	Compile struct {
		Ms       float64 `json:"ms"`
		Cache    string  `json:"cache"`
		CacheDir string  `json:"cache_dir"`
	} `json:"compile"`
	Error string `json:"error"`
}

// decodeInspect decodes inspect --json output strictly: no field the schema does not name,
// one object and nothing after it, and every field but error present.
func decodeInspect(t *testing.T, out string) inspectSchema {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var s inspectSchema
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value: %s", out)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"module", "size", "abi", "features", "events", "exports", "host_imports", "host_functions", "wasi_imports", "memory", "compile"} {
		if v, ok := keys[k]; !ok || string(v) == "null" {
			t.Errorf("field %q is missing or null in %s", k, out)
		}
	}
	return s
}

func TestInspectText(t *testing.T) {
	path := writeGuest(t, testGuest{minor: 5, data: "Hello wasmloop:fs.statwasmloop:http.fetchwasmloop:nothing"})
	cache := t.TempDir()
	code, out, errs := runCLI("inspect", path, "--cache-dir", cache) // flags after the module
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"abi        1.5 (wasmloop_abi_v1 returns 5;",
		"files (1.5: names wasmloop:fs.stat)",
		"network (1.6: names wasmloop:http.fetch)",
		"events     request\n",
		"imports    wasmloop_v1.respond\n",
		"host fns   wasmloop:fs.stat, wasmloop:http.fetch\n",
		"wasi       fd_write\n",
		"memory     min 1 pages (64.0 KiB), max 2 pages (128.0 KiB); --memory-limit 256m (4096 pages) applies",
		"cache miss in " + cache,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "long_messages") || strings.Contains(out, "messages (") {
		t.Errorf("a guest without messages is said to use them:\n%s", out)
	}
	code, out, _ = runCLI("inspect", "--cache-dir", cache, path) // flags before it
	if code != 0 || !strings.Contains(out, "cache hit in "+cache) {
		t.Errorf("second inspect: exit %d, want a cache hit:\n%s", code, out)
	}
	code, out, _ = runCLI("inspect", "--cache-dir", "-", path)
	if code != 0 || !strings.Contains(out, "cache off\n") {
		t.Errorf("--cache-dir -: exit %d, want the cache off:\n%s", code, out)
	}
}

func TestInspectJSON(t *testing.T) {
	path := writeGuest(t, testGuest{minor: 7, onMessage: true})
	cache := t.TempDir()
	var states []string
	for range 2 {
		code, out, errs := runCLI("inspect", "--json", "--memory-limit", "1m", "--cache-dir", cache, path)
		if code != 0 || errs != "" {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		s := decodeInspect(t, out)
		states = append(states, s.Compile.Cache)
		if s.ABI.Major != 1 || s.ABI.Minor == nil || *s.ABI.Minor != 7 || s.ABI.HostMinor != abi.Minor {
			t.Errorf("abi %+v, want 1.7", s.ABI)
		}
		var names []string
		for _, f := range s.Features {
			names = append(names, f.Name+"@"+f.Since)
		}
		if !slices.Equal(names, []string{"messages@1.2", "long_messages@1.7"}) {
			t.Errorf("features %q", names)
		}
		if want := []string{"message", "request"}; !slices.Equal(s.Events, want) {
			t.Errorf("events %q, want %q", s.Events, want)
		}
		want := []string{"_initialize", "wasmloop_abi_v1", "wasmloop_on_message", "wasmloop_on_request", "wasmloop_on_start"}
		if !slices.Equal(s.Exports, want) {
			t.Errorf("exports %q, want %q", s.Exports, want)
		}
		if !slices.Equal(s.HostImports, []string{"respond"}) || !slices.Equal(s.WASIImports, []string{"fd_write"}) || len(s.HostFunctions) != 0 {
			t.Errorf("imports %q, WASI %q, host functions %q", s.HostImports, s.WASIImports, s.HostFunctions)
		}
		if s.Memory.MinPages != 1 || s.Memory.MaxPages == nil || *s.Memory.MaxPages != 2 || s.Memory.LimitBytes != 1<<20 {
			t.Errorf("memory %+v", s.Memory)
		}
		if s.Module != path || s.Size != len(testGuest{minor: 7, onMessage: true}.encode()) || s.Compile.Ms <= 0 || s.Compile.CacheDir != cache || s.Error != "" {
			t.Errorf("module %q size %d compile %+v error %q", s.Module, s.Size, s.Compile, s.Error)
		}
	}
	if !slices.Equal(states, []string{"miss", "hit"}) {
		t.Errorf("cache states %q, want miss then hit", states)
	}
}

// A module that is not a wasmloop guest is refused by inspect with the message and the exit
// status of run.
func TestInspectRefusesAsRun(t *testing.T) {
	text := filepath.Join(t.TempDir(), "notes.wasm")
	if err := os.WriteFile(text, []byte("not WebAssembly\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"not WebAssembly", text, "not a WebAssembly module"},
		{"no marker", writeGuest(t, testGuest{noMarker: true}), "does not export wasmloop_abi_v1"},
		{"WASI command", writeGuest(t, testGuest{command: true}), "WASI command"},
		{"foreign import", writeGuest(t, testGuest{envImport: true}), "imports env.f"},
		{"missing file", filepath.Join(t.TempDir(), "missing.wasm"), "missing.wasm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI("inspect", "--cache-dir", "-", tc.path)
			rcode, _, rerrs := runCLI("run", "--cache-dir", "-", tc.path)
			if code != exitUsage || code != rcode {
				t.Errorf("exit %d, run's %d, want %d", code, rcode, exitUsage)
			}
			if errs != rerrs || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
				t.Errorf("stderr %q, run's %q; want one line with %q", errs, rerrs, tc.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

// A guest whose marker cannot be asked (it traps) is described anyway, with the error, and
// inspect exits 1, as run fails to start it.
func TestInspectMarkerTraps(t *testing.T) {
	path := writeGuest(t, testGuest{trap: true})
	code, out, errs := runCLI("inspect", "--json", "--cache-dir", "-", path)
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	s := decodeInspect(t, out)
	if s.ABI.Minor != nil || !strings.Contains(s.Error, "wasmloop_abi_v1") || !slices.Contains(s.Events, "request") {
		t.Errorf("abi %+v, error %q, events %q", s.ABI, s.Error, s.Events)
	}
	if !strings.Contains(errs, "trapped") || strings.Count(errs, "\n") != 1 {
		t.Errorf("stderr %q, want one line saying the marker trapped", errs)
	}
	code, out, _ = runCLI("inspect", "--cache-dir", "-", path)
	if code != exitFailure || !strings.Contains(out, "abi        1.? ") {
		t.Errorf("text: exit %d:\n%s", code, out)
	}
}

func TestInspectUsage(t *testing.T) {
	code, out, errs := runCLI("inspect", "--no-such-flag", "x.wasm")
	if code != exitUsage || out != "" || errs != "wasmloop inspect: flag provided but not defined: -no-such-flag\nRun 'wasmloop help inspect' for usage.\n" {
		t.Errorf("bad flag: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = runCLI("inspect", "a.wasm", "b.wasm")
	if code != exitUsage || !strings.HasSuffix(errs, "Run 'wasmloop help inspect' for usage.\n") || strings.Count(errs, "\n") != 2 {
		t.Errorf("two modules: exit %d, stderr %q", code, errs)
	}
	for _, args := range [][]string{{"help", "inspect"}, {"inspect", "-h"}} {
		code, out, errs := runCLI(args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "Usage: wasmloop inspect") || !strings.Contains(out, "-cache-dir") || !strings.Contains(out, "-json") {
			t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", args, code, errs, out)
		}
	}
	if _, out, _ := runCLI("help"); !strings.Contains(out, "wasmloop inspect") {
		t.Errorf("help does not list inspect:\n%s", out)
	}
}

// The JSON object has exactly the fields of the documented schema: the test's own struct and
// the command's agree field by field.
func TestInspectSchemaMatches(t *testing.T) {
	var names func(reflect.Type) []string
	names = func(rt reflect.Type) []string {
		var out []string
		for i := range rt.NumField() {
			f := rt.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			out = append(out, tag)
			ft := f.Type
			for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for _, n := range names(ft) {
					out = append(out, tag+"."+n)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	if got, want := names(reflect.TypeOf(inspectJSON{})), names(reflect.TypeOf(inspectSchema{})); !slices.Equal(got, want) {
		t.Errorf("inspect --json fields %q, documented %q", got, want)
	}
}
