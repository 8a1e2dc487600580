//go:build !linux

package tests

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// awaitPeerStopsReading would wait until the peer of c has stopped reading (its receive
// window closed); this system's kernel does not report the peer's window, so it returns.
func awaitPeerStopsReading(t testing.TB, c net.Conn, d time.Duration) {
	t.Logf("the peer's receive window is not visible on %s: not waiting for it to close", runtime.GOOS)
}

// awaitSenderStalls would wait until the peer of c stops sending because c reads nothing;
// the receive queue is not visible here in the same way, so it returns.
func awaitSenderStalls(t testing.TB, c net.Conn, d time.Duration) {
	t.Logf("the receive queue is not visible on %s: not waiting for the sender to stall", runtime.GOOS)
}
