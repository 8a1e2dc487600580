// Package poll is the edge-triggered readiness poller under each loop, with the socket calls
// the loop makes. There is one small file per OS, as in the Go runtime's netpoller:
// poll_epoll.go (Linux) and poll_kqueue.go (macOS and the BSDs) implement the same Poller.
//
// Every descriptor is registered once, for reading and writing, edge-triggered: a loop never
// re-arms interest per request, so serving a request costs no epoll_ctl/kevent call. The price
// of edge triggering is that the loop must drain a descriptor to EAGAIN (or remember that it
// did not), because no new edge will come for bytes already waiting.
package poll

// Event is one readiness report.
type Event struct {
	Fd       int32
	Readable bool // data, EOF, or an error is waiting
	Writable bool
	Hangup   bool // the peer closed its write side or the connection is gone
}
