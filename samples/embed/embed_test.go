//go:build !wasip1

package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The service end to end: the plugin built from ./plugin, the service on a loopback port,
// real requests to its routes.
func TestService(t *testing.T) {
	wasmPath := filepath.Join(t.TempDir(), "plugin.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasmPath, "./plugin")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	handler, app, err := newService(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	srv := httptest.NewServer(handler)
	defer srv.Close()
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/render?user=1", 200, "<p>Ada Lovelace (profile 1)</p>\n"},
		{"/render?user=9", 404, "no user \"9\"\n"},
		{"/plugin/hello", 200, "hello from the plugin, worker "},
		{"/plugin/user?id=2", 200, "Alan Turing\n"},
		{"/plugin/user?id=9", 404, "no user \"9\"\n"},
	} {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.HasPrefix(string(body), c.want) {
			t.Errorf("GET %s = %d %q, want %d %q", c.path, resp.StatusCode, body, c.status, c.want)
		}
	}
}
