//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package poll

import (
	"golang.org/x/sys/unix"
)

// ReusePortBalances is false: macOS and the BSDs (without FreeBSD's SO_REUSEPORT_LB) hand
// every connection to one SO_REUSEPORT socket, so one loop accepts and hands descriptors on.
const ReusePortBalances = false

// Poller is a kqueue with a pipe to wake it from other goroutines.
type Poller struct {
	kq      int
	wake    [2]int
	raw     []unix.Kevent_t
	wakeBuf [64]byte
	changes [2]unix.Kevent_t
}

// New creates a poller.
func New() (*Poller, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(kq)
	p := &Poller{kq: kq, raw: make([]unix.Kevent_t, 256)}
	if err := unix.Pipe(p.wake[:]); err != nil {
		unix.Close(kq)
		return nil, err
	}
	for _, fd := range p.wake {
		unix.CloseOnExec(fd)
		unix.SetNonblock(fd, true)
	}
	if err := p.AddListener(p.wake[0]); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Poller) register(fd int, filters ...int16) error {
	ch := p.changes[:0]
	for _, f := range filters {
		var ev unix.Kevent_t
		unix.SetKevent(&ev, fd, int(f), unix.EV_ADD|unix.EV_CLEAR)
		ch = append(ch, ev)
	}
	_, err := unix.Kevent(p.kq, ch, nil, nil)
	return err
}

// Add registers a connection for reads, writes and hang-ups, edge-triggered (EV_CLEAR).
func (p *Poller) Add(fd int) error { return p.register(fd, unix.EVFILT_READ, unix.EVFILT_WRITE) }

// AddListener registers a listening socket for readability, edge-triggered.
func (p *Poller) AddListener(fd int) error { return p.register(fd, unix.EVFILT_READ) }

// Remove unregisters fd. Closing fd does the same; Remove is for descriptors that stay open.
func (p *Poller) Remove(fd int) error {
	var ev [2]unix.Kevent_t
	unix.SetKevent(&ev[0], fd, unix.EVFILT_READ, unix.EV_DELETE)
	unix.SetKevent(&ev[1], fd, unix.EVFILT_WRITE, unix.EV_DELETE)
	unix.Kevent(p.kq, ev[:], nil, nil) // the write filter may not exist: ignore ENOENT
	return nil
}

// Wait blocks until events arrive, Wake is called, or timeoutMs passes (-1: no timeout), and
// fills events. A wake-up is consumed here and reported as woken.
func (p *Poller) Wait(events []Event, timeoutMs int) (n int, woken bool, err error) {
	raw := p.raw
	if len(events) < len(raw) {
		raw = raw[:len(events)]
	}
	var ts *unix.Timespec
	if timeoutMs >= 0 {
		t := unix.NsecToTimespec(int64(timeoutMs) * 1e6)
		ts = &t
	}
	k, err := unix.Kevent(p.kq, nil, raw, ts)
	if err != nil {
		if err == unix.EINTR {
			return 0, false, nil
		}
		return 0, false, err
	}
	for i := 0; i < k; i++ {
		e := &raw[i]
		fd := int32(e.Ident)
		if int(fd) == p.wake[0] {
			for {
				if m, _ := unix.Read(p.wake[0], p.wakeBuf[:]); m <= 0 {
					break
				}
			}
			woken = true
			continue
		}
		ev := Event{Fd: fd, Hangup: e.Flags&unix.EV_EOF != 0}
		switch e.Filter {
		case unix.EVFILT_READ:
			ev.Readable = true
		case unix.EVFILT_WRITE:
			ev.Writable = true
		}
		if e.Flags&unix.EV_ERROR != 0 {
			ev.Readable, ev.Writable = true, true
		}
		events[n] = ev
		n++
	}
	return n, woken, nil
}

// Wake makes a Wait in progress (or the next one) return. Safe from any goroutine.
func (p *Poller) Wake() error {
	_, err := unix.Write(p.wake[1], []byte{1})
	if err == unix.EAGAIN { // the pipe is full: a wake-up is already pending
		return nil
	}
	return err
}

// Close releases the poller.
func (p *Poller) Close() error {
	unix.Close(p.wake[0])
	unix.Close(p.wake[1])
	return unix.Close(p.kq)
}
