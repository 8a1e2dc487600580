package host

import (
	"context"

	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// CallError is the error message a guest answered a call with.
type CallError struct {
	Name    string // the function called
	Message string
}

// Error returns the message with the function's name.
func (e *CallError) Error() string { return "host: " + e.Name + ": " + e.Message }

// Call calls the guest's function name with payload and returns its answer. The call is
// delivered to a worker as an event (wasmloop_on_call; the Go SDK's wasmloop.HandleCall),
// which may answer at once or later from any callback — after a timer, a message or a host
// function's result. A worker asleep in its event loop takes the call at once, without its
// thread being woken (on this goroutine when ctx cannot end); otherwise the next worker in
// turn has it queued. The call runs under the callback budget like any
// event; an answer with an error message is a *CallError. If ctx ends first, the call is
// withdrawn (the guest hears on_close for it) and Call returns ctx's error. payload must not
// be modified until Call returns.
func (a *App) Call(ctx context.Context, name string, payload []byte) ([]byte, error) {
	return a.CallWorker(ctx, -1, name, payload)
}

// CallWorker is Call on a chosen worker (0 … Workers-1); -1 means the next in turn.
func (a *App) CallWorker(ctx context.Context, worker int, name string, payload []byte) ([]byte, error) {
	a.mu.Lock()
	r := a.running
	a.mu.Unlock()
	if r == nil {
		return nil, ErrNotRunning
	}
	// A context that cannot end lets a call that finds its worker asleep run the guest on
	// this goroutine; one that can must be watched while the guest runs.
	c, err := r.g.Call(worker, name, payload, ctx.Done() == nil)
	if err != nil {
		return nil, err
	}
	select {
	case res := <-c.Done():
		return callResult(name, res)
	case <-ctx.Done():
		c.Withdraw()
		return nil, ctx.Err()
	}
}

func callResult(name string, res loop.CallResult) ([]byte, error) {
	switch {
	case res.Err != nil:
		return nil, res.Err
	case res.Failed:
		return nil, &CallError{Name: name, Message: string(res.Data)}
	}
	return res.Data, nil
}

// Post sends data (at most 1 MiB, abi.MaxMessage) to worker as a message from the host: the
// guest's OnMessage function receives it with from = -2 (wasmloop.FromHost). It returns at
// once, with a copy taken. The errors are abi.Errno values: EINVAL for a bad worker or a
// message over 1 MiB, ELIMIT when the worker has 4096 messages or 16 MiB of them waiting,
// ECLOSED when it has ended, ENOTSUP for more than 4096 bytes to a guest built for ABI 1.6 or
// earlier. The guest sends the other way with wasmloop.PostHost, which Config.OnMessage
// receives.
func (a *App) Post(worker int, data []byte) error {
	a.mu.Lock()
	r := a.running
	a.mu.Unlock()
	if r == nil {
		return ErrNotRunning
	}
	return r.g.PostFromHost(worker, data)
}
