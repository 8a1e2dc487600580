//go:build wasip1

package wasmloop

import (
	"fmt"
	"os"
	"runtime"
)

// A handler that returns without ending its response usually means to answer later — from a
// timer, a goroutine, a host operation's completion, another worker's message. When nothing of
// the kind is pending as the callback ends, nothing the program has set up can end it, and the
// client waits until it gives up: the SDK says so on stderr, naming the request, so that a
// forgotten End (or a goroutine that was never started) is found at once rather than as a
// hung client. Another request's handler could still end it (a long poll answered by the
// next POST), so it is a warning, reported for the first maxStrandedReports such requests.

// left is the request whose handler returned without ending it, checked as its callback ends.
var left int64

var strandedReports int

const maxStrandedReports = 20

func reportStranded(req int64) {
	x := open.get(req)
	if x == nil || x.ended || x.closed || strandedReports >= maxStrandedReports {
		return
	}
	if timers.live > 0 || pending.held() > 0 || sockets.live > 0 || onMessage != nil ||
		x.onData != nil || x.onEnd != nil || len(x.onDrain) > 0 || runtime.NumGoroutine()-baseGoroutines-len(idleRunners) > 0 {
		return // something pending may end it
	}
	strandedReports++
	h := x.decode()
	more := ""
	if strandedReports == maxStrandedReports {
		more = " (no more such reports)"
	}
	fmt.Fprintf(os.Stderr, "wasmloop: %s %s: the handler returned without ending the response, and nothing that could end it is pending "+
		"(no timer, host operation, goroutine, socket or message handler): the client waits until it gives up. "+
		"End it with res.End, or answer it from a goroutine, a timer or another event%s\n", h.Method, h.Target, more)
}
