// Command wasmloop runs WebAssembly guests that speak the wasmloop ABI.
//
//	wasmloop run [flags] <app.wasm | Go package directory>
//	wasmloop version
//	wasmloop help [command]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host"
)

// Exit statuses of the command itself; a program's own exit code passes through.
const (
	exitFailure = 1 // the program could not run, or failed at start
	exitUsage   = 2 // bad usage, or a module that is not a wasmloop guest
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `wasmloop runs WebAssembly programs in Node's event-driven model, on a Go host.

Usage:
  wasmloop run [flags] <app.wasm | Go package directory>
  wasmloop version
  wasmloop help [command]

Run 'wasmloop help run' for the flags of run.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			switch args[1] {
			case "run":
				return cmdRun([]string{"-h"}, stdout, stdout)
			case "version":
				return cmdVersion([]string{"-h"}, stdout, stdout)
			}
			fmt.Fprintf(stderr, "wasmloop: unknown command %q\n", args[1])
			return exitUsage
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "wasmloop: unknown command %q (try 'wasmloop help')\n", args[0])
	return exitUsage
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: wasmloop version\n\nPrints the version of wasmloop, of its ABI and of Go.\n")
	}
	if err := fs.Parse(args); err != nil {
		return flagStatus(err)
	}
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	fmt.Fprintf(stdout, "wasmloop %s (ABI v%d.%d, %s %s/%s)\n", version, abi.Major, abi.Minor, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

func flagStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return exitUsage
}

type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, ",") }
func (e *envFlag) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want KEY=value")
	}
	*e = append(*e, v)
	return nil
}

// sizeFlag is a byte count with an optional k, m or g suffix (powers of 1024).
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }
func (s *sizeFlag) Set(v string) error {
	mult := int64(1)
	t := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(v), "ib"), "b"))
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return errors.New("want a positive size such as 1048576, 512k or 8m")
	}
	*s = sizeFlag(n * mult)
	return nil
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var env envFlag
	workers := fs.Int("workers", runtime.NumCPU(), "number of event loops, one guest instance each")
	fs.Var(&env, "env", "set an environment variable for the guest, `KEY=value` (repeatable)")
	bodyLimit := sizeFlag(1 << 20)
	fs.Var(&bodyLimit, "body-limit", "largest request body accepted, in bytes (k, m, g suffixes); 413 beyond")
	headerLimit := sizeFlag(16 << 10)
	fs.Var(&headerLimit, "header-limit", "largest request line and headers, in bytes; 431 beyond")
	maxHeaders := fs.Int("max-headers", 100, "most header fields in a request; 431 beyond")
	requestLine := sizeFlag(8 << 10)
	fs.Var(&requestLine, "max-request-line", "longest request line, in bytes; 414 beyond")
	headerTimeout := fs.Duration("header-timeout", 10*time.Second, "time allowed from a request's first byte to the end of its head (408, then close)")
	bodyTimeout := fs.Duration("body-timeout", 30*time.Second, "longest wait for more of a request body (408, then close)")
	idleTimeout := fs.Duration("idle-timeout", 60*time.Second, "close keep-alive connections idle this long")
	highWater := sizeFlag(256 << 10)
	fs.Var(&highWater, "write-high-water", "unsent output per connection above which the guest is told to wait for a drain event; body pieces are gathered into one write up to it (at most 256k)")
	maxOutput := sizeFlag(16 << 20)
	fs.Var(&maxOutput, "max-output", "unsent output per connection beyond which the connection is closed")
	wsMaxMessage := sizeFlag(1 << 20)
	fs.Var(&wsMaxMessage, "ws-max-message", "largest WebSocket message a client may send (1009 beyond)")
	wsIdle := fs.Duration("ws-idle-timeout", 2*time.Minute, "close a WebSocket whose client sent nothing this long")
	wsPing := fs.Duration("ws-ping-interval", time.Minute, "ping a WebSocket client after this much silence (0: never)")
	maxConns := fs.Int("max-conns", 0, "most open connections; beyond it new ones wait in the backlog (0: no cap)")
	shutdown := fs.Duration("shutdown-timeout", 10*time.Second, "how long SIGINT/SIGTERM waits for in-flight responses")
	cacheDir := fs.String("cache-dir", "", "where compiled guests are cached (default: the user cache dir; - for none)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the host to `file` (guest code shows as external code)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wasmloop run [flags] <app.wasm | Go package directory>

Runs a wasmloop guest until it has nothing left to do, exits, or receives SIGINT or
SIGTERM (then it stops accepting, finishes in-flight responses and exits 0).
A directory is built as a Go guest (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared) with
the go command on PATH; the build is cached by the content of its sources.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagStatus(err)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "wasmloop run: want exactly one module or directory (see 'wasmloop help run')")
		return exitUsage
	}
	if *workers < 1 {
		fmt.Fprintln(stderr, "wasmloop run: --workers must be at least 1")
		return exitUsage
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"header-timeout", *headerTimeout}, {"body-timeout", *bodyTimeout}, {"idle-timeout", *idleTimeout}, {"ws-idle-timeout", *wsIdle}, {"shutdown-timeout", *shutdown}} {
		if d.v <= 0 {
			fmt.Fprintf(stderr, "wasmloop run: --%s must be positive\n", d.name)
			return exitUsage
		}
	}
	if *maxHeaders < 1 || *maxConns < 0 {
		fmt.Fprintln(stderr, "wasmloop run: --max-headers must be at least 1 and --max-conns not negative")
		return exitUsage
	}
	target := fs.Arg(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	wasm, err := loadTarget(ctx, target, *cacheDir, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "wasmloop: %v\n", err)
		var be *buildError
		if errors.As(err, &be) {
			return exitFailure
		}
		return exitUsage
	}
	app, err := host.Load(ctx, wasm, host.Config{
		Workers:         *workers,
		Args:            []string{filepath.Base(target)},
		Env:             env,
		Stdout:          stdout,
		Stderr:          stderr,
		BodyLimit:       int64(bodyLimit),
		MaxHeaderBytes:  int(headerLimit),
		MaxHeaderCount:  *maxHeaders,
		MaxRequestLine:  int(requestLine),
		HeaderTimeout:   *headerTimeout,
		BodyTimeout:     *bodyTimeout,
		IdleTimeout:     *idleTimeout,
		MaxConns:        *maxConns,
		WriteHighWater:  int(highWater),
		MaxOutput:       int(maxOutput),
		WSMaxMessage:    int64(wsMaxMessage),
		WSIdleTimeout:   *wsIdle,
		WSPingInterval:  pingInterval(*wsPing),
		ShutdownTimeout: *shutdown,
		CacheDir:        *cacheDir,
	})
	if err != nil {
		fmt.Fprintf(stderr, "wasmloop: %s: %v\n", target, err)
		if host.IsRefused(err) {
			return exitUsage
		}
		return exitFailure
	}
	defer app.Close(context.Background())
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "wasmloop: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "wasmloop: %v\n", err)
			return exitFailure
		}
		defer pprof.StopCPUProfile()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	runCtx, stop := context.WithCancel(ctx)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		stop() // graceful: stop accepting, drain
		if _, ok := <-sigs; ok {
			fmt.Fprintln(stderr, "wasmloop: second signal; exiting now")
			os.Exit(exitFailure)
		}
	}()
	code, err := app.Run(runCtx)
	if err != nil {
		fmt.Fprintf(stderr, "wasmloop: %v\n", err)
	}
	return code
}

// loadTarget reads a module, or builds a Go package directory into one.
func loadTarget(ctx context.Context, target, cacheDir string, stderr io.Writer) ([]byte, error) {
	st, err := os.Stat(target)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		path, err := buildGuest(ctx, target, cacheDir, stderr)
		if err != nil {
			return nil, err
		}
		target = path
	}
	return os.ReadFile(target)
}

// pingInterval maps the flag's "0: never" onto host.Config's "negative: no pings".
func pingInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
