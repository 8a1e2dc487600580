//go:build wasip1

package wasmloop

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"strings"

	"github.com/wasmloop/wasmloop/abi"
)

// The host's streams (ABI 1.6, ABI.md §10): a fetch's bodies and a TCP connection, named by
// an id. The host answers one read and one write at a time; stream queues what the program
// writes meanwhile and gathers it into the next write.

// NetError is what a fetch or a TCP operation failed with: the host's code
// (abi.ReachECONNREFUSED, "EACCES" when not granted, …) and its message, which says what to
// do about a refusal ("connect to db:5432 not granted; add --allow-connect db:5432").
type NetError struct {
	Op      string // "fetch", "connect", "listen", "read", "write"
	Code    string
	Message string
}

func (e *NetError) Error() string { return "wasmloop " + e.Op + ": " + e.Message }

// Timeout reports whether the operation took longer than its timeout, as net.Error does.
func (e *NetError) Timeout() bool { return e.Code == abi.ReachETIMEDOUT }

// Is makes errors.Is(err, fs.ErrPermission) true for a refusal (not granted).
func (e *NetError) Is(target error) bool {
	return target == fs.ErrPermission && e.Code == abi.FileEACCES
}

// netError turns a host function's failure into a *NetError for op.
func netError(op string, err error) error {
	var he *HostError
	if errors.As(err, &he) {
		code, msg, _ := strings.Cut(he.Message, " ")
		return &NetError{Op: op, Code: code, Message: msg}
	}
	if errors.Is(err, ErrNoFunction) {
		return &NetError{Op: op, Code: abi.FileEINVAL, Message: "this host has no " + op + " (wasmloop before ABI 1.6)"}
	}
	return err
}

// highWater is the queued output of a stream above which Write says to wait for a drain.
const highWater = 64 << 10

// stream is the program's side of one host stream.
type stream struct {
	id     uint64
	closed bool

	queue   []byte // written, not yet handed to the host
	writing bool   // a write (or the end) is pending
	ending  bool   // End was called: end once the queue is out
	ended   bool   // the end has been sent
	onDrain []func()
	onWrote func(err error) // the stream's owner hears of a failed write or end
	endDone func()          // after the end has gone out
}

// idBytes is the id, as every stream function's input begins.
func (s *stream) idBytes() []byte { return binary.LittleEndian.AppendUint64(nil, s.id) }

// read asks for up to max bytes; fn gets them, or io.EOF at the end, or the failure.
func (s *stream) read(max int, fn func([]byte, error)) error {
	if s.closed {
		return &NetError{Op: "read", Code: abi.ReachECLOSED, Message: "the stream is closed"}
	}
	in := binary.LittleEndian.AppendUint32(s.idBytes(), uint32(max))
	return Call(abi.FnStreamRead, in, func(res []byte, err error) {
		switch {
		case err != nil:
			fn(nil, netError("read", err))
		case len(res) == 0:
			fn(nil, io.EOF)
		default:
			fn(res, nil)
		}
	})
}

// write queues p and reports whether the queue is below the high-water mark (false: wait
// for a drain before writing more, as Node's socket.write).
func (s *stream) write(p []byte) bool {
	if s.closed || s.ending {
		return false
	}
	s.queue = append(s.queue, p...)
	s.flush()
	return len(s.queue) < highWater
}

// end ends the writing side once the queue is out.
func (s *stream) end() {
	if s.closed || s.ending {
		return
	}
	s.ending = true
	s.flush()
}

// flush hands the queue to the host unless a write is pending.
func (s *stream) flush() {
	if s.writing || s.closed {
		return
	}
	if len(s.queue) == 0 {
		if s.ending && !s.ended {
			s.ended = true
			s.writing = true
			if err := Call(abi.FnStreamEnd, s.idBytes(), func(_ []byte, err error) {
				s.writing = false
				if err != nil {
					s.failed(netError("end", err))
					return
				}
				if s.endDone != nil {
					s.endDone()
				}
			}); err != nil {
				s.writing = false
				s.failed(netError("end", err))
			}
		}
		return
	}
	n := min(len(s.queue), abi.MaxStreamRead)
	in := append(s.idBytes(), s.queue[:n]...)
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil
	}
	s.writing = true
	if err := Call(abi.FnStreamWrite, in, func(_ []byte, err error) {
		s.writing = false
		if err != nil {
			s.failed(netError("write", err))
			return
		}
		if len(s.queue) < highWater && len(s.onDrain) > 0 {
			fns := s.onDrain
			s.onDrain = nil
			for _, f := range fns {
				f()
			}
		}
		s.flush()
	}); err != nil {
		s.writing = false
		s.failed(netError("write", err))
	}
}

// drain runs fn once the queue is below the mark: now, if it is.
func (s *stream) drain(fn func()) {
	if len(s.queue) < highWater {
		fn()
		return
	}
	s.onDrain = append(s.onDrain, fn)
}

func (s *stream) failed(err error) {
	if s.onWrote != nil {
		s.onWrote(err)
	}
}

// close closes the host's stream; pending operations fail ECLOSED.
func (s *stream) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.queue, s.onDrain = nil, nil
	CallSync(abi.FnStreamClose, s.idBytes())
}
