package host

import (
	"context"
	"errors"
	"net"
)

// ErrRunning means the program is already running: an App runs one program at a time.
var ErrRunning = errors.New("host: the program is already running")

// ErrNotRunning means the program is not running: Wait and Shutdown return it when it was
// never started, Call and Post whenever it is not running.
var ErrNotRunning = errors.New("host: the program is not running")

// Start starts the program and returns once its start-up is over: worker 0's top-level code
// (_initialize, then wasmloop_on_start) has finished, and, if it listened meanwhile, the
// other workers' too, each running its own copy of the program as under Node's cluster. From
// then on Addrs lists what the program listens on. If a worker's start-up fails, Start
// returns the error once the program has stopped. ctx bounds the wait, not the program: if it
// ends first, Start stops the program and returns ctx's error. Wait, Shutdown or Close end
// what Start started; Run is Start and Wait in one call, for a command line.
func (a *App) Start(ctx context.Context) error {
	r, err := a.launch()
	if err != nil {
		return err
	}
	select {
	case <-r.g.Ready():
		if err := r.g.StartErr(); err != nil {
			<-r.done
			return err
		}
		return nil
	case <-r.done:
		if r.err != nil {
			return r.err
		}
		return nil // the program ended by itself during start-up (it exited, or had nothing left)
	case <-ctx.Done():
		r.g.Stop()
		<-r.done
		return ctx.Err()
	}
}

// Wait waits for the program Start started last to end (it may have ended already) and
// returns its exit status, as Run does.
func (a *App) Wait() (int, error) {
	a.mu.Lock()
	r := a.last
	a.mu.Unlock()
	if r == nil {
		return 0, ErrNotRunning
	}
	<-r.done
	return r.code, r.err
}

// Shutdown shuts the program down gracefully, as SIGTERM does under `wasmloop run`: the
// listening sockets close, the requests and App.Calls in progress are answered, idle
// connections close, and
// the program ends when nothing is left (or ShutdownTimeout passes). If ctx ends first, the
// program is stopped at once: its connections close and a guest call in progress is ended.
// Shutdown returns when the program has ended, with ctx's error if it had to stop it; at
// once if it had ended already.
func (a *App) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	r := a.last
	a.mu.Unlock()
	if r == nil {
		return ErrNotRunning
	}
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.g.Stop()
		<-r.done
		return ctx.Err()
	}
}

// Addrs lists the addresses the running program listens on, in the order it first listened
// on them, each with the port the kernel chose where the program asked for port 0. It is
// empty when the program listens on nothing or is not running.
func (a *App) Addrs() []net.Addr {
	a.mu.Lock()
	r := a.running
	a.mu.Unlock()
	if r == nil {
		return nil
	}
	var out []net.Addr
	for _, ap := range r.g.Addrs() {
		out = append(out, net.TCPAddrFromAddrPort(ap))
	}
	return out
}
