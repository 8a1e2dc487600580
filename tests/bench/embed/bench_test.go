package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"

	"github.com/wasmloop/wasmloop/host"
)

// buildTimeout bounds the build of a guest in TestMain.
const buildTimeout = 5 * time.Minute

// The guests, built for wasip1 by TestMain (or read from the files the variables name).
var (
	extismWasm   []byte // guests/extism-hello (EXTISM_WASM)
	helloWasm    []byte // samples/hello, the wasmloop guest (HELLO_WASM)
	httpwasmWasm []byte // guests/httpwasm-hello (HTTPWASM_WASM)
	echoWasm     []byte // guests/wasmloop-echo (ECHO_WASM)
)

// TestMain builds the guests once (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared), each unless
// its variable names a prebuilt file.
func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "embed-bench")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		for _, g := range []struct {
			dst      *[]byte
			env, pkg string
			root     bool // the package is in the root module (../../..)
		}{
			{&extismWasm, "EXTISM_WASM", "./guests/extism-hello", false},
			{&helloWasm, "HELLO_WASM", "./samples/hello", true},
			{&httpwasmWasm, "HTTPWASM_WASM", "./guests/httpwasm-hello", false},
			{&echoWasm, "ECHO_WASM", "./guests/wasmloop-echo", false},
		} {
			if *g.dst, err = guest(dir, g.env, g.pkg, g.root); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}())
}

// guest reads the file $env names, or builds pkg into dir and reads that.
func guest(dir, env, pkg string, root bool) ([]byte, error) {
	if p := os.Getenv(env); p != "" {
		return os.ReadFile(p)
	}
	out := filepath.Join(dir, filepath.Base(pkg)+".wasm")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if root {
		cmd.Dir = filepath.Join("..", "..", "..")
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building %s: %v\n%s", pkg, err, msg)
	}
	return os.ReadFile(out)
}

// BenchmarkExtismCall1KiB measures one round trip into an Extism plug-in: Plugin.Call of the
// guest's "echo" function with a 1 KiB input, which the guest (Extism Go PDK) reads and
// outputs unchanged, and the host copies back out. One instance, called from one goroutine, as
// a caller holding an instance from its pool would. Every answer is checked.
//
//	go test -run '^$' -bench ExtismCall1KiB -benchtime 3s ./   # in tests/bench/embed
func BenchmarkExtismCall1KiB(b *testing.B) {
	ctx := context.Background()
	compiled, err := extism.NewCompiledPlugin(ctx,
		extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: extismWasm}}},
		extism.PluginConfig{EnableWasi: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer compiled.Close(ctx)
	p, err := compiled.Instance(ctx, extism.PluginInstanceConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	in := make([]byte, 1024)
	for i := range in {
		in[i] = byte(rand.IntN(256))
	}
	// The first call also runs the guest's _initialize (the Go runtime's start): not measured.
	if rc, out, err := p.Call("echo", in); err != nil || rc != 0 || !bytes.Equal(out, in) {
		b.Fatalf("echo: rc %d, err %v, %d bytes back, equal %v", rc, err, len(out), bytes.Equal(out, in))
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rc, out, err := p.Call("echo", in)
		if err != nil || rc != 0 || len(out) != len(in) {
			b.Fatalf("echo: rc %d, err %v, %d bytes back", rc, err, len(out))
		}
	}
}

// BenchmarkWasmloopCall1KiB is the same round trip through wasmloop: App.Call of the guest's
// "echo" (guests/wasmloop-echo, HandleCall) with a 1 KiB input, on one worker, from one
// goroutine. The guest instance belongs to the worker's event loop, which may be serving
// requests and timers meanwhile; between these calls it sleeps, so each call runs the loop's
// turn on this goroutine (borrowed), as Extism's runs on the caller's.
//
//	go test -run '^$' -bench 'Call1KiB' -benchtime 3s ./   # in tests/bench/embed
func BenchmarkWasmloopCall1KiB(b *testing.B) {
	ctx := context.Background()
	app, err := host.Load(ctx, echoWasm, host.Config{Workers: 1, KeepAlive: true, Stdout: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close(ctx)
	if err := app.Start(ctx); err != nil {
		b.Fatal(err)
	}
	in := make([]byte, 1024)
	for i := range in {
		in[i] = byte(rand.IntN(256))
	}
	if out, err := app.Call(ctx, "echo", in); err != nil || !bytes.Equal(out, in) {
		b.Fatalf("echo: err %v, %d bytes back, equal %v", err, len(out), bytes.Equal(out, in))
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out, err := app.Call(ctx, "echo", in)
		if err != nil || len(out) != len(in) {
			b.Fatalf("echo: err %v, %d bytes back", err, len(out))
		}
	}
}

// BenchmarkHandlerHello serves GET / through each mode's http.Handler in-process, one request
// at a time from one goroutine, with no client socket: what the handler itself costs a request,
// beside run.sh's load over loopback. Every answer is checked.
//
//	go test -run '^$' -bench HandlerHello -benchtime 2s ./   # in tests/bench/embed
func BenchmarkHandlerHello(b *testing.B) {
	ctx := context.Background()
	for _, m := range []struct {
		name string
		new  func() (*server, error)
	}{
		{"wasmloop", func() (*server, error) { return newWasmloop(ctx, helloWasm, 2, io.Discard) }},
		{"extism", func() (*server, error) { return newExtism(ctx, extismWasm) }},
		{"httpwasm", func() (*server, error) { return newHTTPWasm(ctx, httpwasmWasm) }},
	} {
		b.Run(m.name, func(b *testing.B) {
			s, err := m.new()
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				s.handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || rec.Body.String() != "Hello World\n" {
					b.Fatalf("answered %d %q", rec.Code, rec.Body.String())
				}
			}
		})
	}
}
