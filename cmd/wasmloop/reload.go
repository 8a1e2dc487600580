package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// reloader swaps the running program for a fresh build of its target (a .wasm file re-read,
// a Go directory rebuilt) on SIGHUP and, with --watch, when the target changes. A build or
// module that fails leaves the running program serving; the message says why.
type reloader struct {
	ctx      context.Context
	app      *host.App
	target   string
	cacheDir string
	stderr   io.Writer
	// say and sayErr report a reload as run's other notices (a JSON record with
	// --log-format json); nil writes plain lines to stderr.
	say, sayErr func(string)
	mu          sync.Mutex // one reload at a time
}

// reload builds and swaps once.
func (r *reloader) reload(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	wasm, err := loadTarget(r.ctx, r.target, r.cacheDir, r.stderr)
	if err == nil {
		err = r.app.Swap(r.ctx, wasm)
	}
	if err != nil {
		r.report(r.sayErr, fmt.Sprintf("wasmloop: reload (%s): %v; the running program keeps serving", why, err))
		return
	}
	r.report(r.say, fmt.Sprintf("wasmloop: reloaded %s (%s)", r.target, why))
}

// onSIGHUP reloads on every SIGHUP hup delivers until ctx ends (one that came before the
// program ran is waiting in it: a reload as soon as the program runs).
func (r *reloader) onSIGHUP(hup <-chan os.Signal) {
	go func() {
		for {
			select {
			case <-hup:
				r.reload("SIGHUP")
			case <-r.ctx.Done():
				return
			}
		}
	}()
}

// watchEvery is how often --watch looks at the target.
const watchEvery = 250 * time.Millisecond

// watch reloads when the target's fingerprint changes, until ctx ends.
func (r *reloader) watch() {
	go func() {
		last := fingerprint(r.target)
		t := time.NewTicker(watchEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-r.ctx.Done():
				return
			}
			if now := fingerprint(r.target); now != last {
				last = now
				r.reload("changed")
			}
		}
	}()
}

// fingerprint sums the size and modification time of the target file, or of every file
// in the target directory, so that any edit changes it.
func fingerprint(target string) string {
	var sum int64
	var n int
	filepath.WalkDir(target, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			sum += info.Size() ^ info.ModTime().UnixNano()
			n++
		}
		return nil
	})
	return fmt.Sprint(n, ":", sum)
}

func (r *reloader) report(say func(string), msg string) {
	if say == nil {
		fmt.Fprintln(r.stderr, msg)
		return
	}
	say(msg)
}
