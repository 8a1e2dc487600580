//go:build wasip1

package wasmloop

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"strings"
	"unsafe"

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

	// readFn is the pending read's receiver; readDone and writeDone are the calls'
	// callbacks, made once (a closure per call was an allocation per call, about half a
	// microsecond each in Go's wasm code).
	readFn    func([]byte, error)
	view      bool // reads are delivered as views of the inbox (Socket.OnDataView)
	closeLast bool // the end of the data or a failed read closes the stream (a fetch's body)
	readDone  func([]byte, error)
	writeDone func([]byte, error)
}

// callInput is the input of every stream call, reused: the host is done with an input when
// the call returns. It grows to the largest write (at most abi.MaxStreamWrite and the id) and
// stays: a buffer per write was, for a stream of 64 KiB pieces, an allocation and a garbage
// collection's worth of bytes per piece.
//
// One goroutine builds its input in it at a time (takeInput, giveInput): in Go's wasm
// runtime an allocation can park the goroutine that makes it (it waits to assist a garbage
// collection), and another goroutine — wasmhttp's handlers call from goroutines — would then
// write its own input over the first one's before that one reached the host. A goroutine that
// finds the buffer taken builds in a buffer of its own.
var (
	callInput []byte
	inputBusy bool
)

// maxCallInput is the largest callInput kept: a stream write's (abi.MaxStreamWrite and the
// id); a fetch's body given whole may be larger, and is not kept.
const maxCallInput = abi.MaxStreamWrite + 8

// takeInput returns an empty buffer to build one call's input in: callInput, unless another
// goroutine is building in it. Hand it back with giveInput once the host call has returned.
func takeInput() (in []byte, took bool) {
	if inputBusy {
		return nil, false
	}
	inputBusy = true
	return callInput[:0], true
}

// giveInput ends the use of a buffer from takeInput, keeping it for the next call if it was
// callInput and is not too large to keep.
func giveInput(in []byte, took bool) {
	if !took {
		return
	}
	inputBusy = false
	if cap(in) <= maxCallInput {
		callInput = in
	} else {
		callInput = nil // a large body given whole is not kept for the life of the program
	}
}

// withID starts a stream call's input with the id, as every stream function's begins.
func (s *stream) withID(in []byte) []byte { return binary.LittleEndian.AppendUint64(in, s.id) }

// idBytes is the id alone, in a slice of its own.
func (s *stream) idBytes() []byte { return binary.LittleEndian.AppendUint64(nil, s.id) }

// read asks for up to max bytes; fn gets them, or io.EOF at the end, or the failure.
func (s *stream) read(max int, fn func([]byte, error)) error {
	if s.closed {
		return &NetError{Op: "read", Code: abi.ReachECLOSED, Message: "the stream is closed"}
	}
	if s.readDone == nil {
		s.readDone = s.gotRead
	}
	in, took := takeInput()
	in = binary.LittleEndian.AppendUint32(s.withID(in), uint32(max))
	err := call(abi.FnStreamRead, in, s.readDone, s.view)
	giveInput(in, took)
	if err != nil {
		return err
	}
	s.readFn = fn
	return nil
}

func (s *stream) gotRead(res []byte, err error) {
	fn := s.readFn
	s.readFn = nil
	switch {
	case s.closed && err == nil:
		// Answered before the program closed the stream, delivered after: as with Node's
		// destroy(), nothing more is read from a stream the program closed.
		err = &NetError{Op: "read", Code: abi.ReachECLOSED, Message: "the stream was closed"}
	case err != nil:
		err = netError("read", err)
	case len(res) == 0:
		err = io.EOF
	}
	if err != nil {
		res = nil
		if s.closeLast {
			s.close()
		}
	}
	if !s.view && len(res) > 0 && unsafe.SliceData(res) == &inbox[0] {
		// Asked for as a view, and the program has asked for copies since (Socket.OnData
		// after OnDataView, while this read was pending): the next event overwrites a view.
		res = append([]byte(nil), res...)
	}
	fn(res, err)
}

// write queues p and reports whether the queue is below the high-water mark (false: wait
// for a drain before writing more, as Node's socket.write). With nothing queued and no
// write pending, p goes to the host at once, without a copy into the queue.
func (s *stream) write(p []byte) bool {
	if s.closed || s.ending {
		return false
	}
	if !s.writing && len(s.queue) == 0 && len(p) <= abi.MaxStreamRead {
		s.send(p)
		return true
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
			ended := func(_ []byte, err error) {
				s.writing = false
				if err != nil {
					s.failed(netError("end", err))
					return
				}
				if s.endDone != nil {
					s.endDone()
				}
			}
			in, took := takeInput()
			in = s.withID(in)
			err := Call(abi.FnStreamEnd, in, ended)
			giveInput(in, took)
			if err != nil {
				s.writing = false
				s.failed(netError("end", err))
			}
		}
		return
	}
	n := min(len(s.queue), abi.MaxStreamRead)
	p := s.queue[:n]
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil
	}
	s.send(p)
}

// send writes p, which fits one write, with no write pending.
func (s *stream) send(p []byte) {
	if s.writeDone == nil {
		s.writeDone = s.wrote
	}
	in, took := takeInput()
	in = append(s.withID(in), p...)
	s.writing = true
	err := Call(abi.FnStreamWrite, in, s.writeDone)
	giveInput(in, took)
	if err != nil {
		s.writing = false
		s.failed(netError("write", err))
	}
}

func (s *stream) wrote(_ []byte, err error) {
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
}

// drain runs fn once the queue is below the mark: now, if it is.
func (s *stream) drain(fn func()) {
	if s.closed || s.ending {
		// It takes no more writes (write answers false), so it never drains: running fn now
		// sent a writer that waits for the drain straight back into a false write, for ever.
		return
	}
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
	waiting := s.onDrain
	s.queue, s.onDrain = nil, nil
	in, took := takeInput()
	in = s.withID(in)
	ip, n := bytesPtr(in)
	callSync(abi.FnStreamClose, ip, n, false)
	giveInput(in, took)
	// A writer waiting for room hears that there will be none, once: its next write answers
	// false, and its next OnDrain does not run (wasmhttp's Transport stops sending a request
	// body the server answered early; dropped, it waited for ever with the body open).
	for _, fn := range waiting {
		fn()
	}
}
