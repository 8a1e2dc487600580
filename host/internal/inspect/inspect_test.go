package inspect

import (
	"slices"
	"testing"
)

// Go lays its string constants end to end: the longest known name at each "wasmloop:" is the
// one found, and an unknown one is no name.
func TestHostFunctionNames(t *testing.T) {
	data := []byte("xxwasmloop:fs.readFilewasmloop:fs.readabcwasmloop:io.endwasmloop:fs.readDirwasmloop:nopewasmloop:io.end wasmloop:")
	want := []string{"wasmloop:fs.read", "wasmloop:fs.readDir", "wasmloop:fs.readFile", "wasmloop:io.end"}
	if got := HostFunctionNames(data); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := HostFunctionNames([]byte("nothing here")); got != nil {
		t.Errorf("got %q from no names", got)
	}
}

// Messages over 4096 bytes depend on the minor version the marker returns; the rest on
// exports, imports and names.
func TestFeatures(t *testing.T) {
	f := Facts{
		Exports:       []string{"wasmloop_on_body", "wasmloop_on_message", "wasmloop_on_request"},
		HostImports:   []string{"body_file", "host_call_async", "post"},
		HostFunctions: []string{"wasmloop:fs.stat", "wasmloop:net.connect"},
	}
	names := func(minor int) []string {
		var out []string
		for _, x := range Features(f, minor) {
			out = append(out, x.Name)
		}
		return out
	}
	if got, want := names(6), []string{"stream_bodies", "messages", "host_functions", "files", "body_file", "network"}; !slices.Equal(got, want) {
		t.Errorf("minor 6: %q, want %q", got, want)
	}
	if got := names(7); !slices.Contains(got, "long_messages") {
		t.Errorf("minor 7: %q lacks long_messages", got)
	}
	if got := names(-1); slices.Contains(got, "long_messages") {
		t.Errorf("minor unknown: %q has long_messages", got)
	}
	if got := Features(f, 6)[1].Why; got != "exports wasmloop_on_message, imports post" {
		t.Errorf("messages because %q", got)
	}
	if got := Events([]string{"_initialize", "wasmloop_on_start", "wasmloop_on_request", "wasmloop_on_ws_open", "wasmloop_on_bogus"}); !slices.Equal(got, []string{"request", "ws_open"}) {
		t.Errorf("events %q", got)
	}
}
