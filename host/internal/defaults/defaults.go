// Package defaults is the one table of wasmloop's default settings. Package host exports it
// as host.DefaultConfig, which is where `wasmloop run` takes its flag defaults and the
// defaults its help shows; host.Config documents the same values (a test holds the two
// together); the internal packages fill the zero fields of their own configurations from it.
// No default is written anywhere else.
//
// Two rules go with the table, the same in every configuration and on the command line:
// zero means the default, and Off turns off a setting that can be off — a timeout, the ping
// interval, the connection cap. Any other negative value is an error.
package defaults

import (
	"runtime"
	"time"
)

// Off, as a timeout, interval or cap, turns it off. It is negative so that zero can always
// mean the default; host.Off is this constant.
const Off = -1

// The table. Each name is the host.Config field whose default it is.
const (
	BodyLimit        = 1 << 20          // bytes of request body buffered for the guest (413 beyond)
	MaxHeaderBytes   = 16 << 10         // bytes of request line and header fields (431 beyond)
	MaxHeaderCount   = 100              // header fields in a request (431 beyond)
	MaxRequestLine   = 8 << 10          // bytes of request line (414 beyond)
	HeaderTimeout    = 10 * time.Second // from a request's first byte to the end of its head
	BodyTimeout      = 30 * time.Second // the wait for more of a request body
	IdleTimeout      = 60 * time.Second // a keep-alive connection between requests
	WriteHighWater   = 256 << 10        // unsent bytes per connection above which the guest waits
	MaxOutput        = 16 << 20         // unsent bytes per connection beyond which it is closed
	MaxConns         = Off              // open connections: no cap but the OS's
	WSMaxMessage     = 1 << 20          // bytes of a WebSocket message from a client (1009 beyond)
	WSIdleTimeout    = 2 * time.Minute  // a WebSocket whose client sent nothing (1001)
	ShutdownTimeout  = 10 * time.Second // a graceful shutdown
	CallbackBudget   = time.Second      // one call into the guest for an event (then 503, replaced)
	StartBudget      = 10 * time.Second // _initialize, and then wasmloop_on_start
	MemoryLimit      = 256 << 20        // bytes of one instance's linear memory
	MaxTimers        = 65536            // guest timers per worker (~7 MiB of them)
	ResponseTimeout  = Off              // from a request's dispatch to the start of its answer (503)
	MaxRestarts      = 10               // consecutive instances failing before serving anything
	SwapDrainTimeout = 30 * time.Second // an instance retired by a swap finishing its work
	BufferBudget     = 256 << 20        // bytes of bodies and messages held for clients, all workers
	BodyDeadline     = 2 * time.Minute  // the whole arrival of a buffered request body
	FetchIdleTimeout = 5 * time.Minute  // a fetch waiting for its server: the head, more body
)

// Workers is the default number of event loops: one per CPU.
func Workers() int { return runtime.NumCPU() }

// PingInterval is the default silence after which a WebSocket client is pinged, given the
// idle timeout in force: half of it, so that a live client's pong arrives well before the
// timeout closes its socket. With no idle timeout there is no default ping either.
func PingInterval(wsIdleTimeout time.Duration) time.Duration {
	if wsIdleTimeout == Off {
		return Off
	}
	return wsIdleTimeout / 2
}
