package loop

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host/internal/guest"
)

// Handoff mode (how macOS and the BSDs spread connections: worker 0 accepts and hands
// descriptors over) runs here on Linux through Config.HandoffAccept: keep-alive connections
// land on both workers, every one is served, and a graceful shutdown ends the group with 0.
func TestHandoffAcceptSpreadsConnections(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, err := guest.NewRuntime(ctx, guest.RuntimeConfig{CacheDir: filepath.Join(os.TempDir(), "wasmloop-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, buildSample(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	g := NewGroup(mod, Config{Workers: 2, HandoffAccept: true, ShutdownTimeout: 5 * time.Second,
		Instance: guest.InstanceConfig{Env: []string{"PORT=" + strconv.Itoa(port)}, Stdout: io.Discard, Stderr: io.Discard}})
	done := make(chan int, 1)
	go func() { code, _ := g.Run(ctx); done <- code }()

	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	var clients []*http.Client
	for i := 0; i < 8; i++ {
		c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 5 * time.Second}
		clients = append(clients, c)
		var resp *http.Response
		for try := 0; try < 100; try++ { // the group may still be starting
			if resp, err = c.Get(url); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "Hello World\n" {
			t.Fatalf("client %d: %q", i, body)
		}
	}
	counts := make([]int, 2)
	for i, l := range g.loops {
		got := make(chan int, 1)
		if !l.post(func(l *Loop) { got <- l.nconns }, nil) {
			t.Fatalf("worker %d has ended", i)
		}
		counts[i] = <-got
	}
	if counts[0] == 0 || counts[1] == 0 || counts[0]+counts[1] != 8 {
		t.Fatalf("connections per worker %v, want 8 spread over both", counts)
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit status %d after a graceful shutdown", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the group did not end")
	}
}
