// Command wasmloop runs WebAssembly guests that speak the wasmloop ABI.
//
//	wasmloop run [flags] <app.wasm | Go package directory> [-- guest arguments]
//	wasmloop build [-o file] <Go package directory>
//	wasmloop inspect [--json] [flags] <app.wasm | Go package directory>
//	wasmloop init [--module path] [directory]
//	wasmloop version
//	wasmloop help [command]
//
// As with Go's tools, flags may come before or after the module or directory
// ('wasmloop run ./app --workers 1'); "--" ends them. A mistyped flag is reported in one
// line that names it, followed by where the usage is. A directory outside this repository
// builds against the guest SDK that the binary carries, without the network (see sdk.go).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

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
  wasmloop run [flags] <app.wasm | Go package directory> [-- guest arguments]
  wasmloop build [-o file] <Go package directory>
  wasmloop inspect [--json] [flags] <app.wasm | Go package directory>
  wasmloop init [--module path] [directory]
  wasmloop version
  wasmloop help [command]

Flags may come before or after the module or directory.
Run 'wasmloop help <command>' for the flags of a command.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "build":
		return cmdBuild(args[1:], stdout, stderr)
	case "init":
		return cmdInit(args[1:], stdout, stderr)
	case "inspect":
		return cmdInspect(args[1:], stdout, stderr)
	case "version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			switch args[1] {
			case "run":
				return cmdRun([]string{"-h"}, stdout, stdout)
			case "build":
				return cmdBuild([]string{"-h"}, stdout, stdout)
			case "init":
				return cmdInit([]string{"-h"}, stdout, stdout)
			case "inspect":
				return cmdInspect([]string{"-h"}, stdout, stdout)
			case "version":
				return cmdVersion([]string{"-h"}, stdout, stdout)
			case "help", "-h", "-help", "--help": // as go help help: the overview
				fmt.Fprint(stdout, usage)
				return 0
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
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: wasmloop version\n\nPrints the version of wasmloop, of its ABI and of Go.\n")
	}
	pos, rest, code, ok := parseCommand(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 || len(rest) > 0 {
		return usageError(stderr, "version", "takes no arguments")
	}
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	fmt.Fprintf(stdout, "wasmloop %s (ABI v%d.%d, %s %s/%s)\n", version, abi.Major, abi.Minor, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

// parseCommand parses a command's arguments with fs (see parseArgs). With -h it prints the
// command's usage (fs.Usage) to stdout; a bad flag gets one line on stderr that names it,
// and where the usage is, as Go's tools do. ok is false when the command should exit with
// code.
func parseCommand(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (positional, rest []string, code int, ok bool) {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	positional, rest, err := parseArgs(fs, args)
	fs.Usage = usage
	switch {
	case err == nil:
		return positional, rest, 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return nil, nil, 0, false
	}
	return nil, nil, usageError(stderr, fs.Name(), err.Error()), false
}

// usageError reports bad usage of a command in one line and says where its usage is.
func usageError(stderr io.Writer, command, msg string) int {
	fmt.Fprintf(stderr, "wasmloop %s: %s\nRun 'wasmloop help %s' for usage.\n", command, msg, command)
	return exitUsage
}

// parseArgs parses flags wherever they are among the positional arguments, as Go's tools
// do, and returns those arguments in order; "--" ends the flags, and what follows it is
// rest, unparsed. A "--" that is a flag's value (--cache-dir --) is that value.
func parseArgs(fs *flag.FlagSet, args []string) (positional, rest []string, err error) {
	head := args
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			head, rest = args[:i], args[i+1:]
			break
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		name := strings.TrimPrefix(a[1:], "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) {
			i++ // its value, whatever it looks like
		}
	}
	for {
		if err := fs.Parse(head); err != nil {
			return nil, nil, err
		}
		head = fs.Args()
		if len(head) == 0 {
			return positional, rest, nil
		}
		positional = append(positional, head[0])
		head = head[1:]
	}
}

// isBoolFlag reports whether f takes no value (-watch rather than -watch=true).
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// runOptions is what the flags of run set: the host's Config and the command's own options.
type runOptions struct {
	cfg        host.Config
	cpuProfile string
	watch      bool
	admin      string   // --admin: where /metrics, /healthz and /readyz are served
	pprof      bool     // --pprof: /debug/pprof/ on the admin listener too
	envInherit listFlag // names (or NAME_* prefixes) of the host's environment the guest sees
}

// runFlags returns the flags of run, bound to o. o.cfg starts as host.DefaultConfig(), so the
// flags' defaults, and those the help shows, are the host's own.
func runFlags(o *runOptions, output io.Writer) *flag.FlagSet {
	o.cfg = host.DefaultConfig()
	c := &o.cfg
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Var(countValue{p: &c.Workers}, "workers", "`number` of event loops, one guest instance each")
	fs.Var((*envFlag)(&c.Env), "env", "set an environment variable for the guest, `KEY=value` (repeatable)")
	fs.Var(&o.envInherit, "env-inherit", "pass the host's environment variables `NAMES` to the guest: a comma-separated list of names, NAME_* for a prefix, * for all (repeatable; --env overrides)")
	fs.Var((*listFlag)(&c.AllowConnect), "allow-connect", "let the guest reach `HOST[:PORT]` with fetch and TCP connect: db:5432, api.example.com (any port), *.example.com:443, 127.0.0.1:8080, [::1]:8080 (repeatable; none by default)")
	fs.Var((*listFlag)(&c.AllowListen), "allow-listen", "let the guest listen only on `ADDR`, HTTP or TCP: 127.0.0.1:8080, :7000 (every interface), 127.0.0.1:* (repeatable; without it, any address)")
	fs.Var((*dirFlag)(&c.Dirs), "dir", "grant the guest a host directory, `HOST_PATH[:GUEST_PATH][:ro]`: it appears at GUEST_PATH (default: its absolute path), read-only with :ro (repeatable)")
	fs.Var(sizeValue[int64]{&c.BodyLimit}, "body-limit", "`size` of the largest request body accepted; 413 beyond")
	fs.Var(sizeValue[int]{&c.MaxHeaderBytes}, "header-limit", "`size` of the largest request line and headers; 431 beyond")
	fs.Var(countValue{p: &c.MaxHeaderCount}, "max-headers", "largest `number` of header fields in a request; 431 beyond")
	fs.Var(sizeValue[int]{&c.MaxRequestLine}, "max-request-line", "`size` of the longest request line; 414 beyond")
	fs.Var(durationValue{&c.HeaderTimeout}, "header-timeout", "`duration` allowed from a request's first byte to the end of its head (408, then close)")
	fs.Var(durationValue{&c.BodyTimeout}, "body-timeout", "`duration` of the longest wait for more of a request body (408, then close)")
	fs.Var(durationValue{&c.ResponseTimeout}, "response-timeout", "`duration` a request may wait for the guest to begin its answer before the host answers 503")
	fs.Var(durationValue{&c.BodyDeadline}, "body-deadline", "`duration` the whole of a buffered request body may take to arrive (408 beyond)")
	fs.Var(sizeValue[int]{&c.BufferBudget}, "buffer-budget", "`size` of request bodies and WebSocket messages held for clients at once, all workers; 503 or 1013 beyond")
	fs.Var(durationValue{&c.IdleTimeout}, "idle-timeout", "close keep-alive connections idle for this `duration`")
	fs.Var(sizeValue[int]{&c.WriteHighWater}, "write-high-water", "unsent output per connection (a `size`) above which the guest is told to wait for a drain event; body pieces are gathered into one write up to it, at most 256k")
	fs.Var(sizeValue[int]{&c.MaxOutput}, "max-output", "unsent output per connection (a `size`) beyond which the connection is closed")
	fs.Var(sizeValue[int64]{&c.WSMaxMessage}, "ws-max-message", "`size` of the largest WebSocket message a client may send; 1009 beyond")
	fs.Var(durationValue{&c.WSIdleTimeout}, "ws-idle-timeout", "close a WebSocket whose client sent nothing for this `duration`")
	fs.Var(durationValue{&c.WSPingInterval}, "ws-ping-interval", "ping a WebSocket client after this `duration` of silence; 0, the default, means half of --ws-idle-timeout")
	fs.Var(countValue{p: &c.MaxConns, off: true}, "max-conns", "largest `number` of open connections; beyond it new ones wait in the backlog")
	fs.Var(durationValue{&c.ShutdownTimeout}, "shutdown-timeout", "`duration` that SIGINT/SIGTERM waits for in-flight responses")
	fs.Var(durationValue{&c.CallbackBudget}, "callback-budget", "`duration` one call into the guest for an event may run; past it the call is stopped, its request gets 503 and the instance is replaced")
	fs.Var(durationValue{&c.StartBudget}, "start-budget", "`duration` each start-up call of the guest (_initialize, wasmloop_on_start) may run")
	fs.Var(countValue{p: &c.MaxRestarts}, "max-restarts", "`number` of instances in a row that may fail before serving anything before the process gives up (exit 1); restarts wait longer each time")
	fs.Var(countValue{p: &c.MaxTimers}, "max-timers", "largest `number` of timers a guest may have at once on each worker")
	fs.Var(durationValue{&c.FetchIdleTimeout}, "fetch-idle-timeout", "`duration` a fetch may wait for its server, for the answer's head once the request is sent and for more of the body the guest reads; ETIMEDOUT beyond, as Node's fetch")
	fs.Var(sizeValue[int64]{&c.MemoryLimit}, "memory-limit", "`size` of one guest instance's memory, at most 4g; an allocation past it fails in the guest")
	fs.StringVar(&c.CacheDir, "cache-dir", "", "where compiled guests are cached (default: the user cache dir; - for none)")
	fs.BoolVar(&o.watch, "watch", false, "swap to a fresh build of the module or directory whenever it changes, without failing a request (SIGHUP does it once)")
	fs.Var(durationValue{&c.SwapDrainTimeout}, "swap-drain-timeout", "`duration` the old program may finish its requests and keep its WebSockets after a swap")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the host to `file` (guest code shows as external code)")
	fs.StringVar(&o.admin, "admin", "", "serve /metrics (Prometheus), /healthz and /readyz on `ADDR`, e.g. 127.0.0.1:9090 (default: off)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go's /debug/pprof/ on the --admin listener too")
	fs.Var(formatValue{&c.LogFormat}, "log-format", "`format` of the host's log: text, or json (the guest's output lines become records too)")
	fs.Var(levelValue{&c.LogLevel}, "log-level", "least severe `level` logged: debug, info, warn or error")
	fs.BoolVar(&c.AccessLog, "access-log", false, "log every answered request: method, path, status, bytes, duration, worker, remote address")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wasmloop run [flags] <app.wasm | Go package directory> [-- guest arguments]

Runs a wasmloop guest until it has nothing left to do, exits, or receives SIGINT or
SIGTERM (then it stops accepting, finishes in-flight responses and exits 0).
A directory is built as a Go guest (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared) with
the go command on PATH; the build is cached by the content of its sources. A directory
outside the wasmloop repository builds against the guest SDK this wasmloop carries,
offline (see 'wasmloop help init'). Flags may come before or after the module or
directory; what follows "--" is the guest's os.Args[1:].

A size is in bytes, with an optional k, m or g suffix (powers of 1024); a duration is
written as in Go, such as 500ms, 10s or 2m. 0 means the default for every size, count
and duration; `+offWord+` turns off a duration or --max-conns.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs
}

// workersLine is what run prints as it starts: the worker model, made visible before any
// in-memory state can surprise (README.md, "Workers and state").
func workersLine(n int) string {
	if n == 1 {
		return "wasmloop: 1 worker (--workers N for more; each has its own memory — see README, \"Workers and state\")"
	}
	return fmt.Sprintf("wasmloop: %d workers; each has its own memory — state one keeps is not seen by the others (README, \"Workers and state\"; --workers 1 for one)", n)
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	var o runOptions
	fs := runFlags(&o, stderr)
	pos, guestArgs, code, ok := parseCommand(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, "run", "want exactly one module or directory")
	}
	target := pos[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The signals are ours from here, before the build and the compile (seconds, for a
	// directory or a cold cache): left at their default action meanwhile, a SIGHUP killed the
	// process and left its go build behind. SIGINT/SIGTERM stop the start (the build is
	// cancelled with ctx) or, once running, the program (a graceful shutdown); a SIGHUP that
	// comes before the program runs is kept, and reloads it once it does.
	say, sayErr := notice(stderr, o.cfg.LogFormat), noticeAt(stderr, o.cfg.LogFormat, slog.LevelError)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	runCtx, stop := context.WithCancel(ctx)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		stop() // graceful: stop accepting, drain (or, still starting, stop the start)
		if _, ok := <-sigs; ok {
			sayErr("wasmloop: second signal; exiting now")
			os.Exit(exitFailure)
		}
	}()

	wasm, err := loadTarget(runCtx, target, o.cfg.CacheDir, stderr)
	if runCtx.Err() != nil {
		sayErr("wasmloop: stopped by a signal before the program started")
		return exitFailure
	}
	if err != nil {
		sayErr(fmt.Sprintf("wasmloop: %v", err)) // a record of its own under --log-format json
		var be *buildError
		if errors.As(err, &be) {
			return exitFailure
		}
		return exitUsage
	}
	o.cfg.Args = guestArgv(target, guestArgs)
	o.cfg.Env = inheritEnv(os.Environ(), o.envInherit, o.cfg.Env)
	o.cfg.Stdout, o.cfg.Stderr = stdout, stderr
	var reg *prometheus.Registry
	if o.admin != "" {
		reg = newRegistry()
		o.cfg.Metrics = reg
	} else if o.pprof {
		return usageError(stderr, "run", "--pprof needs --admin")
	}
	app, err := host.Load(runCtx, wasm, o.cfg)
	if runCtx.Err() != nil {
		sayErr("wasmloop: stopped by a signal before the program started")
		if err == nil {
			app.Close(context.Background())
		}
		return exitFailure
	}
	if err != nil {
		sayErr(fmt.Sprintf("wasmloop: %s: %v", target, err))
		if host.IsRefused(err) {
			return exitUsage
		}
		return exitFailure
	}
	defer app.Close(context.Background())
	say(workersLine(cmp.Or(o.cfg.Workers, host.DefaultConfig().Workers)))
	if o.admin != "" {
		admin, err := startAdmin(o.admin, app, reg, o.pprof, say)
		if err != nil {
			sayErr("wasmloop: " + err.Error())
			return exitFailure
		}
		defer admin.close()
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			sayErr(fmt.Sprintf("wasmloop: %v", err))
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			sayErr(fmt.Sprintf("wasmloop: %v", err))
			return exitFailure
		}
		defer pprof.StopCPUProfile()
	}

	r := &reloader{ctx: runCtx, app: app, target: target, cacheDir: o.cfg.CacheDir, stderr: stderr, say: say, sayErr: sayErr}
	r.onSIGHUP(hup)
	if o.watch {
		r.watch()
	}
	code, err = app.Run(runCtx)
	if err != nil {
		sayErr("wasmloop: " + err.Error())
	}
	return code
}

// guestArgv is the guest's os.Args: the module's or directory's name, then the arguments
// after "--".
func guestArgv(target string, args []string) []string {
	return append([]string{filepath.Base(target)}, args...)
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
