package tests

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metricSum adds the values of the series of the Prometheus text exposition whose line starts
// with prefix (a name and the start of its labels).
func metricSum(t *testing.T, exposition, prefix string) float64 {
	t.Helper()
	sum, found := 0.0, false
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		t.Fatalf("no %s… in the exposition:\n%s", prefix, exposition)
	}
	return sum
}

// TestAdminEndpoints runs samples/hello with --admin and --access-log: /metrics counts the
// requests by class and worker, /healthz and /readyz answer ok, /debug/pprof/ is there with
// --pprof, and every request gets one access-log line.
func TestAdminEndpoints(t *testing.T) {
	adminPort := freePort(t)
	admin := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	s := startServer(t, serverOpts{Module: "hello", Workers: 2,
		Flags: []string{"--admin", "127.0.0.1:" + strconv.Itoa(adminPort), "--pprof", "--access-log"}})
	c := client(nil)
	const n = 10
	for range n {
		if _, body := httpGet(t, client(&http.Transport{DisableKeepAlives: true}), s.URL("/")); string(body) != "Hello World\n" {
			t.Fatalf("got %q", body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := httpGet(t, c, admin+path)
		if resp.StatusCode != 200 || string(body) != "ok\n" {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	_, body := httpGet(t, c, admin+"/metrics")
	m := string(body)
	if got := metricSum(t, m, `wasmloop_requests_total{code="2xx"`); got != n {
		t.Errorf("2xx requests %v, want %d", got, n)
	}
	if got := metricSum(t, m, `wasmloop_request_duration_seconds_count{`); got != n {
		t.Errorf("request durations %v, want %d", got, n)
	}
	if got := metricSum(t, m, `wasmloop_guest_callback_duration_seconds_count{kind="request"`); got != n {
		t.Errorf("request callbacks %v, want %d", got, n)
	}
	if got := metricSum(t, m, `wasmloop_sent_bytes_total{`); got < float64(n*len("HTTP/1.1 200 OK\r\n")) {
		t.Errorf("sent bytes %v", got)
	}
	for _, family := range []string{"wasmloop_connections_open{", "wasmloop_websockets_open{", "wasmloop_guest_traps_total{",
		"wasmloop_instance_replacements_total{", "wasmloop_module_swaps_total{", "wasmloop_messages_posted_total{",
		"wasmloop_output_queued_bytes{", "wasmloop_accept_backoffs_total{", "wasmloop_loop_busy_seconds{", "go_goroutines ", "process_cpu_seconds_total "} {
		metricSum(t, m, family)
	}
	resp, _ := httpGet(t, c, admin+"/debug/pprof/")
	if resp.StatusCode != 200 {
		t.Errorf("/debug/pprof/: %d", resp.StatusCode)
	}
	// One access-log line per request, with what it says.
	if lines := strings.Count(s.stderr.String(), "request method=GET path=/ status=200 bytes="); lines != n {
		t.Errorf("%d access-log lines for %d requests:\n%s", lines, n, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), " remote=127.0.0.1:") || !strings.Contains(s.stderr.String(), "bytes=") {
		t.Errorf("access log without the remote address:\n%s", s.stderr)
	}
}

// TestJSONLogs: with --log-format json, the host's records, the access log and the guest's
// own output lines are JSON objects, the guest's with its worker and stream.
func TestJSONLogs(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startProc(t, nil, "", "run", "--cache-dir", cacheDir, "--workers", "2", "--env", "PORT="+strconv.Itoa(port),
		"--log-format", "json", "--access-log", wasm["hello"])
	ready := `"msg":"Server running at http://` + addr + `/"`
	p.awaitStdout(t, ready, startTimeout)
	logged := p.stderr.appears(`"msg":"request"`)
	if _, body := httpGet(t, client(nil), "http://"+addr+"/x"); string(body) != "Hello World\n" {
		t.Fatalf("got %q", body)
	}
	select {
	case <-logged:
	case <-time.After(ioTimeout):
		t.Fatalf("no access-log record\nstderr:\n%s", p.stderr)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, ioTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	check := func(stream, text string, want func(map[string]any) bool) {
		t.Helper()
		found := false
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s line %q is not JSON: %v", stream, sc.Text(), err)
			}
			if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
				t.Fatalf("%s record without time, level or msg: %q", stream, sc.Text())
			}
			found = found || want(rec)
		}
		if !found {
			t.Fatalf("no wanted record in %s:\n%s", stream, text)
		}
	}
	check("stdout", p.stdout.String(), func(r map[string]any) bool {
		return r["msg"] == "Server running at http://"+addr+"/" && r["worker"] == 0.0 && r["stream"] == "stdout"
	})
	check("stderr", p.stderr.String(), func(r map[string]any) bool {
		return r["msg"] == "request" && r["path"] == "/x" && r["status"] == 200.0 && r["method"] == "GET" && r["worker"] != nil
	})
	check("stderr", p.stderr.String(), func(r map[string]any) bool {
		return strings.HasPrefix(r["msg"].(string), "2 workers; each has its own memory")
	})
}

// Bad values of the new flags are one-line usage errors.
func TestAdminFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--log-format", "yaml"},
		{"--log-level", "loud"},
		{"--pprof"},
	} {
		r := runWasmloop(t, "", ioTimeout, append(append([]string{"run"}, args...), wasm["hello"])...)
		if r.code != 2 || !strings.Contains(r.stderr, "Run 'wasmloop help run' for usage.") || strings.Count(r.stderr, "\n") != 2 {
			t.Errorf("%v: exit %d, stderr:\n%s", args, r.code, r.stderr)
		}
	}
}
