// Package deploy holds the tests of deploy/: the container image (this file) and the
// Kubernetes manifests (kubernetes/). It is a module of its own so that the Kubernetes API
// packages stay out of wasmloop's go.mod; tests/deploy_test.go runs it from the main module's
// `go test ./...`.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireTool finds an external program; a missing one fails the test on CI (CI=true) and
// skips it elsewhere, saying which package provides it.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not on PATH (%v); CI must provide it (package %s, .ci/run installs it)", name, err, pkg)
	}
	t.Skipf("%s is not on PATH (%v): install %s to run this test; on CI (CI=true) this is a failure", name, err, pkg)
	return ""
}

func readDockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// defaultGoImage is the build stage's image as the Dockerfile pins it.
var goImageArg = regexp.MustCompile(`(?m)^ARG GO_IMAGE=(\S+)$`)

// TestDockerfilePins checks what a build on a machine that reaches Docker Hub would use: the
// official golang image at an exact Go release of at least 1.25, a static build, and a
// runtime stage from scratch (no registry, no shell, no libc).
func TestDockerfilePins(t *testing.T) {
	df := readDockerfile(t)
	m := goImageArg.FindStringSubmatch(df)
	if m == nil {
		t.Fatal("Dockerfile has no `ARG GO_IMAGE=...` line")
	}
	v := regexp.MustCompile(`^docker\.io/library/golang:(\d+)\.(\d+)\.(\d+)-[a-z]+$`).FindStringSubmatch(m[1])
	if v == nil {
		t.Fatalf("GO_IMAGE %q is not the official golang image pinned to an exact release (golang:1.N.P-debian)", m[1])
	}
	major, _ := strconv.Atoi(v[1])
	minor, _ := strconv.Atoi(v[2])
	if major != 1 || minor < 25 {
		t.Errorf("GO_IMAGE %q: go.mod needs Go 1.25 or later", m[1])
	}
	froms := regexp.MustCompile(`(?m)^FROM\s+(.*)$`).FindAllStringSubmatch(df, -1)
	if len(froms) != 2 || froms[0][1] != "${GO_IMAGE} AS build" || froms[1][1] != "scratch" {
		t.Errorf("stages: %q; want FROM ${GO_IMAGE} AS build, then FROM scratch", froms)
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared", "USER 65532:65532", "STOPSIGNAL SIGTERM"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// buildah runs buildah on a storage of the test's own (vfs: no overlay mounts needed as root
// in a container), returning stdout.
type buildah struct {
	t         *testing.T
	bin       string
	root, run string
	ctx       context.Context
}

func (b *buildah) cmd(args ...string) *exec.Cmd {
	all := append([]string{"--storage-driver", "vfs", "--root", b.root, "--runroot", b.run}, args...)
	return exec.CommandContext(b.ctx, b.bin, all...)
}

func (b *buildah) do(args ...string) string {
	b.t.Helper()
	c := b.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		b.t.Fatalf("buildah %s: %v\n%s%s", strings.Join(args, " "), err, out.Bytes(), errb.Bytes())
	}
	return strings.TrimSpace(out.String())
}

// standInGoImage assembles, from this machine's Go and busybox, an image that offers what the
// Dockerfile's build stage uses of the official golang image: go on PATH, /bin/sh with
// mkdir, cp and chmod, and CA certificates (for the module proxy, and copied into the
// runtime stage). The official image is on Docker Hub, which this project's machines cannot
// reach (only the Go module proxy, Debian's and npm's registries).
func standInGoImage(t *testing.T, b *buildah) string {
	t.Helper()
	busybox := requireTool(t, "busybox", "Debian's busybox-static")
	if f, err := elf.Open(busybox); err != nil || slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
		t.Fatalf("%s is not a static binary (%v): the stand-in image has no libc; install busybox-static", busybox, err)
	}
	goroot := strings.TrimSpace(runOut(t, "go", "env", "GOROOT"))
	st := t.TempDir()
	for _, d := range []string{"bin", "etc/ssl/certs", "root", "tmp"} {
		must(t, os.MkdirAll(filepath.Join(st, d), 0o755))
	}
	must(t, os.Chmod(filepath.Join(st, "tmp"), 0o1777))
	copyFile(t, busybox, filepath.Join(st, "bin/busybox"), 0o755)
	for _, a := range []string{"sh", "mkdir", "cp", "chmod", "rm"} {
		must(t, os.Symlink("busybox", filepath.Join(st, "bin", a)))
	}
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(st, "etc/ssl/certs/ca-certificates.crt"), 0o644)
	c := b.do("from", "scratch")
	b.do("copy", "--quiet", c, st, "/")
	b.do("copy", "--quiet", c, goroot, "/usr/local/go")
	b.do("config", "--env", "PATH=/usr/local/go/bin:/bin", "--env", "HOME=/root", "--env", "GOPATH=/go",
		"--env", "GOPROXY="+strings.TrimSpace(runOut(t, "go", "env", "GOPROXY")), c)
	const name = "localhost/wasmloop-test-go:stand-in"
	b.do("commit", "--quiet", "--rm", c, name)
	return name
}

// TestImage builds deploy/Dockerfile with buildah, a guest baked in (GUEST=samples/hello), and
// checks the image: its configuration (entry point, command, user, ports, stop signal), its
// files (a static binary, the guest, a non-root user, CA certificates, a writable /tmp), and
// that it serves: the image's own binary runs the baked guest in the image's root (buildah
// run, chroot isolation) and answers an HTTP request.
//
// The build stage's base is the pinned official golang image when WASMLOOP_IMAGE_PULL=1 (a
// machine that reaches Docker Hub); otherwise a stand-in made from this machine's Go
// (standInGoImage), since these machines reach no container registry.
func TestImage(t *testing.T) {
	bin := requireTool(t, "buildah", "Debian's buildah")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	b := &buildah{t: t, bin: bin, root: t.TempDir(), run: t.TempDir(), ctx: ctx}
	t.Cleanup(func() { // before the storage folders are removed
		exec.Command(bin, "--storage-driver", "vfs", "--root", b.root, "--runroot", b.run, "rm", "--all").Run()
	})

	goImage := goImageArg.FindStringSubmatch(readDockerfile(t))[1]
	if os.Getenv("WASMLOOP_IMAGE_PULL") != "1" {
		goImage = standInGoImage(t, b)
		t.Logf("build stage on %s (WASMLOOP_IMAGE_PULL=1 pulls the Dockerfile's own base instead)", goImage)
	}
	repo, err := filepath.Abs("..")
	must(t, err)
	const tag = "localhost/wasmloop-test:hello"
	b.do("bud", "--quiet", "--isolation", "chroot", "-f", filepath.Join(repo, "deploy/Dockerfile"),
		"--ignorefile", filepath.Join(repo, "deploy/Dockerfile.dockerignore"),
		"--build-arg", "GO_IMAGE="+goImage, "--build-arg", "GUEST=samples/hello",
		"-t", tag, repo)

	// The configuration.
	var img struct {
		OCIv1 struct {
			Config struct {
				User         string
				Entrypoint   []string
				Cmd          []string
				Env          []string
				ExposedPorts map[string]struct{}
				WorkingDir   string
				StopSignal   string
			} `json:"config"`
		}
	}
	must(t, json.Unmarshal([]byte(b.do("inspect", "--type", "image", tag)), &img))
	cfg := img.OCIv1.Config
	if cfg.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", cfg.User)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/usr/local/bin/wasmloop"}) {
		t.Errorf("entrypoint %q", cfg.Entrypoint)
	}
	wantCmd := []string{"run", "--admin", ":9090", "--env", "PORT=8080", "--env", "HOST=0.0.0.0", "--allow-listen", ":8080", "/app/app.wasm"}
	if !slices.Equal(cfg.Cmd, wantCmd) {
		t.Errorf("cmd %q, want %q", cfg.Cmd, wantCmd)
	}
	for _, p := range []string{"8080/tcp", "9090/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed: %v", p, cfg.ExposedPorts)
		}
	}
	if cfg.StopSignal != "SIGTERM" {
		t.Errorf("stop signal %q, want SIGTERM (wasmloop drains on it)", cfg.StopSignal)
	}
	if !slices.Contains(cfg.Env, "XDG_CACHE_HOME=/tmp/cache") {
		t.Errorf("env %q lacks XDG_CACHE_HOME=/tmp/cache (the compiled-module cache under the writable /tmp)", cfg.Env)
	}

	// The files.
	ctr := b.do("from", "--quiet", tag)
	mnt := b.do("mount", ctr)
	t.Cleanup(func() {
		exec.Command(bin, "--storage-driver", "vfs", "--root", b.root, "--runroot", b.run, "umount", ctr).Run()
	})
	f, err := elf.Open(filepath.Join(mnt, "usr/local/bin/wasmloop"))
	must(t, err)
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/usr/local/bin/wasmloop has an ELF interpreter: not a static binary (CGO_ENABLED=0)")
		}
	}
	f.Close()
	wasm, err := os.ReadFile(filepath.Join(mnt, "app/app.wasm"))
	must(t, err)
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		t.Errorf("/app/app.wasm is not WebAssembly: % x", wasm[:min(8, len(wasm))])
	}
	passwd, err := os.ReadFile(filepath.Join(mnt, "etc/passwd"))
	must(t, err)
	if !strings.Contains(string(passwd), ":65532:65532:") {
		t.Errorf("/etc/passwd has no user 65532: %q", passwd)
	}
	if st, err := os.Stat(filepath.Join(mnt, "etc/ssl/certs/ca-certificates.crt")); err != nil || st.Size() < 1000 {
		t.Errorf("CA certificates: %v", err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "tmp")); err != nil || st.Mode()&(os.ModeSticky|0o777) != os.ModeSticky|0o777 {
		t.Errorf("/tmp: %v %v, want drwxrwxrwt", st.Mode(), err)
	}
	for _, shell := range []string{"bin/sh", "bin/busybox", "usr/local/go"} {
		if _, err := os.Stat(filepath.Join(mnt, shell)); err == nil {
			t.Errorf("the runtime image has /%s: the build stage leaked into it", shell)
		}
	}

	// It serves: the image's binary runs its guest in the image's root, sharing this
	// machine's network (chroot isolation), as user 65532.
	port := freePort(t)
	run := b.cmd("run", "--isolation", "chroot", ctr, "--",
		"/usr/local/bin/wasmloop", "run", "--workers", "1", "--env", "PORT="+strconv.Itoa(port), "/app/app.wasm")
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	run.Stdout, run.Stderr = pw, pw
	must(t, run.Start())
	exited := make(chan error, 1)
	go func() { exited <- run.Wait(); pw.Close() }()
	t.Cleanup(func() {
		syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	ready, logc := make(chan struct{}), make(chan string, 1)
	go func() {
		var log strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Server running at") {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, pr)
		logc <- log.String()
	}()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("the image's wasmloop exited before serving: %v\n%s", err, <-logc)
	case <-ctx.Done():
		t.Fatalf("the image's wasmloop did not start serving: %v", ctx.Err())
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello World\n" {
		t.Errorf("GET /: %d %q, want 200 \"Hello World\\n\"", resp.StatusCode, body)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func runOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, mode))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
