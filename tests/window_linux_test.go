package tests

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// awaitPeerStopsReading waits up to d until the peer of c has stopped reading, failing the
// test if it has not by then. A peer that stops reading lets its receive buffer fill, and
// then advertises a zero window; nothing signals that, so this polls the window the kernel
// reports for c (tcpi_snd_wnd, in TCP_INFO since Linux 5.4; older kernels report 0 and the
// wait ends at once).
func awaitPeerStopsReading(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	closed := func() bool {
		var info *unix.TCPInfo
		var infoErr error
		if err := rc.Control(func(fd uintptr) {
			info, infoErr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		}); err != nil || infoErr != nil {
			t.Fatalf("TCP_INFO: %v %v", err, infoErr)
		}
		return info.Snd_wnd == 0
	}
	if !eventually(d, closed) {
		t.Fatalf("the peer was still reading after %v", d)
	}
}

// awaitSenderStalls waits up to d until the peer of c has stopped sending because c reads
// nothing: the bytes waiting in c's receive queue (SIOCINQ) stop growing. Nothing signals
// that, so this polls the queue.
func awaitSenderStalls(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	queued := func() int {
		var n int
		var qErr error
		if err := rc.Control(func(fd uintptr) { n, qErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || qErr != nil {
			t.Fatalf("SIOCINQ: %v %v", err, qErr)
		}
		return n
	}
	last := -1
	if !eventually(d, func() bool {
		n := queued()
		stalled := n > 0 && n == last
		last = n
		return stalled
	}) {
		t.Fatalf("the sender was still sending after %v (%d bytes queued)", d, last)
	}
}
