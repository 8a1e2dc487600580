// Package inspect reads what `wasmloop inspect` reports about a guest module that the host
// can learn without running it: its function imports and exports, its memory's declared
// limits, the host's own named functions its data mentions, and the ABI features those ask
// for. It also tells whether wazero's compile cache held a module (Snapshot, Changed) and
// gives the inert Host under which the host asks a guest's marker for its minor version.
//
// The facts come from wazero's reading of a module that guest.Runtime.Compile accepted, and
// the host's function names from its data section: nothing here parses the binary format.
package inspect

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/guest"
)

// Facts are what a module's binary says of itself.
type Facts struct {
	Exports     []string // function exports, sorted
	HostImports []string // functions imported from abi.ModuleName, sorted, once each
	WASIImports []string // functions imported from wasi_snapshot_preview1, sorted, once each
	// HostFunctions are the host's own named functions (abi.FilesPrefix, "wasmloop:…")
	// whose names appear in the module's data: the ones it may call with host_call and
	// host_call_async. Sorted.
	HostFunctions []string
	// MemoryMin and MemoryMax are the declared limits of the exported memory, in 64 KiB
	// pages; HasMax is false when it declares no maximum.
	MemoryMin, MemoryMax uint64
	HasMax               bool
}

// WASIModule is the import module name of WASI preview 1.
const WASIModule = "wasi_snapshot_preview1"

// FactsOf gathers a module's facts from what wazero read of it (guest.Module.Interface) and
// its data section (wasmbin.DataSection), where the host's function names are found.
func FactsOf(in guest.Interface, data []byte) Facts {
	f := Facts{
		Exports:       slices.Sorted(slices.Values(in.Exports)),
		HostFunctions: HostFunctionNames(data),
		MemoryMin:     uint64(in.MemoryMin),
		MemoryMax:     uint64(in.MemoryMax),
		HasMax:        in.HasMax,
	}
	for _, imp := range in.Imports {
		switch imp[0] {
		case abi.ModuleName:
			f.HostImports = append(f.HostImports, imp[1])
		case WASIModule:
			f.WASIImports = append(f.WASIImports, imp[1])
		}
	}
	// A module may import a function twice (Go's wasip1 runtime does fd_write).
	slices.Sort(f.HostImports)
	f.HostImports = slices.Compact(f.HostImports)
	slices.Sort(f.WASIImports)
	f.WASIImports = slices.Compact(f.WASIImports)
	return f
}

// hostFunctions are the names of the host's own functions (ABI.md §9 and §10), which a guest
// calls with host_call and host_call_async.
var hostFunctions = []string{
	abi.FnReadFile, abi.FnRead, abi.FnWriteFile, abi.FnAppendFile, abi.FnStat, abi.FnReadDir,
	abi.FnMkdir, abi.FnRemove, abi.FnRename, abi.FnStatForBody,
	abi.FnStreamRead, abi.FnStreamWrite, abi.FnStreamEnd, abi.FnStreamClose,
	abi.FnFetch, abi.FnFetchResponse,
	abi.FnConnect, abi.FnNetListen, abi.FnAccept, abi.FnSetOption, abi.FnLookup,
}

// HostFunctionNames returns the host's own function names that occur in data, sorted and
// without repeats. Strings in data need not be separated (Go lays its string constants end to
// end), so at each "wasmloop:" the longest known name that starts there is the one found.
func HostFunctionNames(data []byte) []string {
	var found []string
	prefix := []byte(abi.FilesPrefix)
	for rest := data; ; {
		i := bytes.Index(rest, prefix)
		if i < 0 {
			break
		}
		rest = rest[i:]
		best := ""
		for _, name := range hostFunctions {
			if len(name) > len(best) && bytes.HasPrefix(rest, []byte(name)) {
				best = name
			}
		}
		if best != "" && !slices.Contains(found, best) {
			found = append(found, best)
		}
		rest = rest[len(prefix):]
	}
	slices.Sort(found)
	return found
}

// Feature is an optional part of the ABI a module asks for, by its version, its exports,
// its imports or the host functions it names.
type Feature struct {
	Name  string // stable identifier: "stream_bodies", "websockets", ...
	Since string // the ABI version that added it, "1.3"
	Why   string // what in the module asks for it: "exports wasmloop_on_ws_message"
}

// Features returns the features the module asks for, in the order of the ABI's versions.
// ABI 1.0 to 1.7 define no optional feature bits for negotiate: a guest gets a feature by
// exporting its callback or importing its function, and the host gives the one part that
// depends on the version (messages over 4096 bytes, 1.7) by the minor version the marker
// returned (minor < 0: not known).
func Features(f Facts, minor int) []Feature {
	exp := func(name string) bool { _, ok := slices.BinarySearch(f.Exports, name); return ok }
	imp := func(name string) bool { _, ok := slices.BinarySearch(f.HostImports, name); return ok }
	named := func(prefix string) []string {
		var out []string
		for _, n := range f.HostFunctions {
			if strings.HasPrefix(n, prefix) {
				out = append(out, n)
			}
		}
		return out
	}
	var out []Feature
	add := func(name, since, why string) { out = append(out, Feature{name, since, why}) }
	if exp(abi.ExportOnBody) {
		add("stream_bodies", "1.1", "exports "+abi.ExportOnBody)
	}
	if exp(abi.ExportOnDrain) {
		add("drain", "1.1", "exports "+abi.ExportOnDrain)
	}
	messages := whyOf(exp(abi.ExportOnMessage), "exports "+abi.ExportOnMessage,
		imp(abi.FnPost), "imports "+abi.FnPost, imp(abi.FnBroadcast), "imports "+abi.FnBroadcast)
	if messages != "" {
		add("messages", "1.2", messages)
	}
	if messages != "" && minor >= abi.LongMessages {
		add("long_messages", "1.7", fmt.Sprintf("wasmloop_abi_v1 returns %d", minor))
	}
	if exp(abi.ExportOnWSMessage) {
		add("websockets", "1.3", "exports "+abi.ExportOnWSMessage)
	}
	if exp(abi.ExportOnCall) {
		add("calls", "1.4", "exports "+abi.ExportOnCall)
	}
	if why := whyOf(imp(abi.FnHostCall), "imports "+abi.FnHostCall, imp(abi.FnHostCallAsync), "imports "+abi.FnHostCallAsync); why != "" {
		add("host_functions", "1.4", why)
	}
	if fs := named("wasmloop:fs."); len(fs) > 0 {
		add("files", "1.5", "names "+strings.Join(fs, ", "))
	}
	if imp(abi.FnBodyFile) {
		add("body_file", "1.6", "imports "+abi.FnBodyFile)
	}
	if netw := append(named("wasmloop:http."), named("wasmloop:net.")...); len(netw) > 0 {
		add("network", "1.6", "names "+strings.Join(netw, ", "))
	}
	return out
}

// whyOf joins the reasons whose condition holds: pairs of a bool and a string. "" means
// none holds.
func whyOf(pairs ...any) string {
	var why []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i].(bool) {
			why = append(why, pairs[i+1].(string))
		}
	}
	return strings.Join(why, ", ")
}

// Events returns the events a module can receive: its wasmloop_on_* exports but
// wasmloop_on_start (its top-level code, not an event), without the prefix.
func Events(exports []string) []string {
	var out []string
	for _, e := range exports {
		name, ok := strings.CutPrefix(e, "wasmloop_on_")
		if ok && e != abi.ExportStart && slices.Contains(eventExports, e) {
			out = append(out, name)
		}
	}
	return out
}

var eventExports = []string{
	abi.ExportOnRequest, abi.ExportOnTimer, abi.ExportOnClose, abi.ExportOnBody,
	abi.ExportOnDrain, abi.ExportOnMessage, abi.ExportOnWSOpen, abi.ExportOnWSMessage,
	abi.ExportOnWSClose, abi.ExportOnCall, abi.ExportOnHostResult,
}

// CacheDirs returns the directories under a wazero compilation cache directory (the one
// given to wazero.NewCompilationCacheWithDir) where this wazero, on this platform, keeps
// compiled modules: wazero adds one named for its version, GOARCH and GOOS.
func CacheDirs(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "wazero-*-"+runtime.GOARCH+"-"+runtime.GOOS))
	return m
}

// Snapshot lists the files of a compilation cache with their modification times.
func Snapshot(dir string) map[string]time.Time {
	files := map[string]time.Time{}
	for _, d := range CacheDirs(dir) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tmp") || !e.Type().IsRegular() {
				continue
			}
			if info, err := e.Info(); err == nil {
				files[filepath.Join(d, e.Name())] = info.ModTime()
			}
		}
	}
	return files
}

// Stored reports whether after holds a file that before did not, or one written since: a
// compilation stored what it compiled, so the cache did not hold it (a miss). A compilation
// that added nothing found its module there (a hit), or could not store it; see Cache.
func Stored(before, after map[string]time.Time) bool {
	for name, t := range after {
		if old, ok := before[name]; !ok || !old.Equal(t) {
			return true
		}
	}
	return false
}
