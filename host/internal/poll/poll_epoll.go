//go:build linux

package poll

import (
	"golang.org/x/sys/unix"
)

// ReusePortBalances reports that the kernel spreads connections over SO_REUSEPORT
// listeners, so every loop can accept on a socket of its own.
const ReusePortBalances = true

// Poller is an epoll instance with an eventfd to wake it from other goroutines.
type Poller struct {
	epfd, wakefd int
	raw          []unix.EpollEvent
	wakeBuf      [8]byte
}

// New creates a poller.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	p := &Poller{epfd: epfd, wakefd: wfd, raw: make([]unix.EpollEvent, 256)}
	if err := p.add(wfd, unix.EPOLLIN|unix.EPOLLET); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Poller) add(fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

// Add registers a connection for reads, writes and hang-ups, edge-triggered.
func (p *Poller) Add(fd int) error {
	return p.add(fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET)
}

// AddListener registers a listening socket for readability, edge-triggered.
func (p *Poller) AddListener(fd int) error { return p.add(fd, unix.EPOLLIN|unix.EPOLLET) }

// Remove unregisters fd. Closing fd does the same; Remove is for descriptors that stay open.
func (p *Poller) Remove(fd int) error {
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// Wait blocks until events arrive, Wake is called, or timeoutMs passes (-1: no timeout), and
// fills events. A wake-up is consumed here and reported as woken.
func (p *Poller) Wait(events []Event, timeoutMs int) (n int, woken bool, err error) {
	raw := p.raw
	if len(events) < len(raw) {
		raw = raw[:len(events)]
	}
	k, err := unix.EpollWait(p.epfd, raw, timeoutMs)
	if err != nil {
		if err == unix.EINTR {
			return 0, false, nil
		}
		return 0, false, err
	}
	for i := 0; i < k; i++ {
		e := &raw[i]
		if int(e.Fd) == p.wakefd {
			unix.Read(p.wakefd, p.wakeBuf[:])
			woken = true
			continue
		}
		events[n] = Event{
			Fd:       e.Fd,
			Readable: e.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0,
			Writable: e.Events&(unix.EPOLLOUT|unix.EPOLLERR) != 0,
			Hangup:   e.Events&(unix.EPOLLHUP|unix.EPOLLRDHUP) != 0,
		}
		n++
	}
	return n, woken, nil
}

// Wake makes a Wait in progress (or the next one) return. Safe from any goroutine.
func (p *Poller) Wake() error {
	one := [8]byte{1}
	_, err := unix.Write(p.wakefd, one[:])
	if err == unix.EAGAIN { // the counter is full: a wake-up is already pending
		return nil
	}
	return err
}

// Close releases the poller.
func (p *Poller) Close() error {
	unix.Close(p.wakefd)
	return unix.Close(p.epfd)
}
