package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// inspectOutput is the object `wasmloop inspect --json` prints, as README.md ("Command
// line") documents it.
type inspectOutput struct {
	Module string `json:"module"`
	Size   int64  `json:"size"`
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

// TestInspectHello inspects samples/hello as text, then as JSON, with a compile cache of its
// own: the first compiles it (a miss), the second finds it (a hit). It speaks ABI 1.x,
// exports wasmloop_on_request and imports the ABI's functions.
func TestInspectHello(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	st, err := os.Stat(wasm["hello"])
	if err != nil {
		t.Fatal(err)
	}
	r := runWasmloop(t, "", 60*time.Second, "inspect", wasm["hello"], "--cache-dir", cache)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, re := range []string{
		`(?m)^module +` + regexp.QuoteMeta(wasm["hello"]) + `, [0-9.]+ MiB \(` + strconv.FormatInt(st.Size(), 10) + ` bytes\)$`,
		`(?m)^abi +1\.\d+ \(wasmloop_abi_v1 returns \d+; this wasmloop speaks 1\.\d+\)$`,
		`(?m)^events +.*\brequest\b`,
		`(?m)^imports +wasmloop_v1\.`, `\bwasmloop_v1\.respond\b`,
		`\bwasmloop_v1\.listen\b`,
		`(?m)^wasi +\w`, `\bfd_write\b`,
		`(?m)^memory +min \d+ pages .*--memory-limit 256m \(4096 pages\) applies$`,
		`(?m)^compile +\S+, cache miss in ` + regexp.QuoteMeta(cache) + `$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("output does not match %s:\n%s", re, r.stdout)
		}
	}

	r = runWasmloop(t, "", 60*time.Second, "inspect", "--json", "--cache-dir", cache, wasm["hello"])
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("--json: exit %d, stderr %q", r.code, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var o inspectOutput
	if err := dec.Decode(&o); err != nil {
		t.Fatalf("decoding %s: %v", r.stdout, err)
	}
	if dec.More() {
		t.Errorf("more than one JSON value:\n%s", r.stdout)
	}
	if o.ABI.Major != 1 || o.ABI.Minor == nil || *o.ABI.Minor < 0 || *o.ABI.Minor > o.ABI.HostMinor {
		t.Errorf("abi %+v, want 1.x no later than the host's", o.ABI)
	}
	if !slices.Contains(o.Events, "request") || !slices.Contains(o.Exports, "wasmloop_on_request") {
		t.Errorf("events %q, exports %q: want request, wasmloop_on_request", o.Events, o.Exports)
	}
	for _, fn := range []string{"respond", "listen", "inbox"} {
		if !slices.Contains(o.HostImports, fn) {
			t.Errorf("host imports %q lack %s", o.HostImports, fn)
		}
	}
	if o.Compile.Cache != "hit" || o.Compile.CacheDir != cache || o.Compile.Ms <= 0 {
		t.Errorf("compile %+v, want a hit in %s", o.Compile, cache)
	}
	if o.Module != wasm["hello"] || o.Size != st.Size() || o.Memory.MinPages <= 0 || o.Memory.LimitBytes != 256<<20 || o.Error != "" {
		t.Errorf("module %q size %d memory %+v error %q", o.Module, o.Size, o.Memory, o.Error)
	}
}

// TestInspectDirectory inspects a Go package directory: it is built as run builds it.
func TestInspectDirectory(t *testing.T) {
	t.Parallel()
	r := runWasmloop(t, "", buildTimeout, "inspect", "--cache-dir", cacheDir, filepath.Join(repoRoot, "samples", "hello"))
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, re := range []string{`(?m)^module +\S+/samples/hello \(built: \S+\.wasm\), `, `(?m)^abi +1\.\d+ `, `(?m)^events +.*\brequest\b`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("output does not match %s:\n%s", re, r.stdout)
		}
	}
}

// TestInspectRefused: what run refuses, inspect refuses with the same one-line message and
// exit status, and prints nothing on stdout.
func TestInspectRefused(t *testing.T) {
	t.Parallel()
	text := filepath.Join(t.TempDir(), "notes.wasm")
	if err := os.WriteFile(text, []byte("this is a text file, not WebAssembly\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, module, want string
	}{
		{"text file", text, "not a WebAssembly module"},
		{"WASI command", wasm["hello-command"], "WASI command"},
		{"no marker", wasm["plain"], "does not export wasmloop_abi_v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runWasmloop(t, "", 60*time.Second, "inspect", "--json", "--cache-dir", cacheDir, tc.module)
			run := runWasmloop(t, "", 60*time.Second, "run", "--cache-dir", cacheDir, tc.module)
			if r.code != 2 || run.code != 2 {
				t.Errorf("exit %d, run's %d; want 2", r.code, run.code)
			}
			if r.stderr != run.stderr || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr %q, run's %q; want the same one line, with %q", r.stderr, run.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}
