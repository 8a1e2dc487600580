package reach

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// Functions returns the host functions of reach by name (ABI.md §10). A TCP connection's
// reads, writes and end run on the loop's reactor (loop.TCPStream); a fetch's body, a dial,
// an accept and a lookup run on goroutines. A read's result on a goroutine holds part of
// maxHeld until it is delivered or dropped (release).
func (r *Reach) Functions() map[string]loop.HostFunc {
	async := func(f func(ctx context.Context, in []byte) ([]byte, error)) loop.HostFunc {
		return loop.HostFunc{Async: f}
	}
	sync := func(f func(ctx context.Context, in []byte) ([]byte, error)) loop.HostFunc {
		return loop.HostFunc{Sync: f}
	}
	start := func(f func(op *loop.Op, in []byte)) loop.HostFunc { return loop.HostFunc{Start: f} }
	return map[string]loop.HostFunc{
		abi.FnStreamRead:    start(r.startRead),
		abi.FnStreamWrite:   start(r.startWrite),
		abi.FnStreamEnd:     start(r.startEnd),
		abi.FnStreamClose:   sync(r.closeOp),
		abi.FnFetch:         sync(r.fetch),
		abi.FnFetchResponse: start(r.startResponse),
		abi.FnConnect:       start(r.startConnect),
		abi.FnNetListen:     sync(r.listen),
		abi.FnAccept:        start(r.startAccept),
		abi.FnSetOption:     sync(r.setOption),
		abi.FnLookup:        async(r.lookup),
	}
}

// opStream finds the stream in names for op's instance, and its TCP connection if the loop
// serves it; nil, after finishing op with the error, if there is none.
func (r *Reach) opStream(op *loop.Op, in []byte) (*entry, []byte) {
	id, rest, err := idOf(in)
	if err == nil {
		var e *entry
		if e, err = r.get(op.Context(), id); err == nil {
			return e, rest
		}
	}
	op.Finish(nil, err)
	return nil, nil
}

// readOf decodes a read's input (id u64, max u32) and finds the stream for owner: the
// stream, and how much the read asks for.
func (r *Reach) readOf(owner context.Context, in []byte) (*entry, int, error) {
	id, rest, err := idOf(in)
	if err != nil {
		return nil, 0, err
	}
	e, err := r.get(owner, id)
	switch {
	case err != nil:
		return nil, 0, err
	case len(rest) < 4:
		return nil, 0, errShort
	case binary.LittleEndian.Uint32(rest) == 0:
		return nil, 0, coded(abi.FileEINVAL, errors.New("a read of 0 bytes"))
	case e.tcp == nil && e.s == nil && e.hf == nil:
		return nil, 0, coded(abi.FileEINVAL, errors.New("a listener is not read: accept its connections"))
	}
	return e, int(min(binary.LittleEndian.Uint32(rest), abi.MaxStreamRead)), nil
}

// startRead: a TCP connection's read waits on the loop; a fetch body's is answered by what
// the fetch's goroutine read (fetchState.startRead), or else read on a goroutine. A read is
// pending — a second one fails EBUSY — until its answer is handed to the program, so that
// answers come in the order asked.
func (r *Reach) startRead(op *loop.Op, in []byte) {
	e, want, err := r.readOf(op.Context(), in)
	switch {
	case err != nil:
		op.Finish(nil, err)
	case e.tcp != nil:
		e.tcp.Read(op, want)
	case e.hf != nil:
		e.hf.Read(op, want)
	default:
		if err := e.begin(false); err != nil {
			op.Finish(nil, err)
			return
		}
		op.OnDone(r.release)
		op.OnHandOver(func() { e.end(false) })
		if f, ok := e.s.(*fetchState); ok && f.startRead(op, want, r.release) {
			return
		}
		op.Go(func(ctx context.Context, _ []byte) ([]byte, error) { return readHeld(ctx, r.held, e.s, want) }, nil)
	}
}

// startWrite: a TCP connection's write is queued on the loop; a fetch body's is written on a
// goroutine.
func (r *Reach) startWrite(op *loop.Op, in []byte) {
	e, data := r.opStream(op, in)
	switch {
	case e == nil:
	case len(data) > abi.MaxStreamWrite:
		op.Finish(nil, coded(abi.FileEINVAL, fmt.Errorf("a write of %d bytes, more than %d", len(data), abi.MaxStreamWrite)))
	case e.hf != nil:
		e.hf.Write(op, data)
	case e.tcp == nil:
		op.Go(r.write, in)
	default:
		e.tcp.Write(op, data)
	}
}

// startEnd ends a TCP connection's writing side on the loop's reactor, a fetch body's on the
// loop at once: closing the body's pipe does not wait for the transport to read it.
func (r *Reach) startEnd(op *loop.Op, in []byte) {
	e, _ := r.opStream(op, in)
	switch {
	case e == nil:
	case e.hf != nil:
		e.hf.End(op)
	case e.tcp == nil:
		op.Finish(r.end(op.Context(), in))
	default:
		e.tcp.End(op)
	}
}

// release gives back what a delivered (or dropped) read held of maxHeld. Only reads reserve,
// and a read's successful result is exactly what it holds.
func (r *Reach) release(res []byte, failed bool) {
	if !failed && len(res) > 0 {
		r.held.Release(int64(len(res)))
	}
}

// readBufs are read buffers of abi.MaxStreamRead bytes.
var readBufs = sync.Pool{New: func() any { b := make([]byte, abi.MaxStreamRead); return &b }}

// readHeld reads what rd has, up to want bytes, into a copy that holds its length of held
// until it is delivered (Reach.release); nil at the end.
func readHeld(ctx context.Context, held *semaphore.Weighted, rd io.Reader, want int) ([]byte, error) {
	if err := held.Acquire(ctx, int64(want)); err != nil {
		return nil, classify(err)
	}
	// Read into a pooled buffer and return a copy of what came: a 64-byte message must not
	// cost a zeroed 256 KiB allocation (tests/bench/tcpecho.sh).
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := (*bp)[:want]
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			held.Release(int64(want - n))
			return bytes.Clone(buf[:n]), nil
		}
		if err == io.EOF {
			held.Release(int64(want))
			return nil, nil
		}
		if err != nil {
			held.Release(int64(want))
			return nil, classify(err)
		}
	}
}

// write: in = id u64, data; answered once the stream took it all.
func (r *Reach) write(ctx context.Context, in []byte) ([]byte, error) {
	id, data, err := idOf(in)
	if err != nil {
		return nil, err
	}
	if len(data) > abi.MaxStreamWrite {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("a write of %d bytes, more than %d", len(data), abi.MaxStreamWrite))
	}
	e, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.s == nil {
		return nil, coded(abi.FileEINVAL, errors.New("a listener is not written to"))
	}
	if err := e.begin(true); err != nil {
		return nil, err
	}
	defer e.end(true)
	if _, err := e.s.Write(data); err != nil {
		return nil, classify(err)
	}
	return nil, nil
}

// end: in = id u64; ends the writing side.
func (r *Reach) end(ctx context.Context, in []byte) ([]byte, error) {
	id, _, err := idOf(in)
	if err != nil {
		return nil, err
	}
	e, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.s == nil {
		return nil, coded(abi.FileEINVAL, errors.New("a listener has no writing side"))
	}
	if err := e.begin(true); err != nil {
		return nil, err
	}
	defer e.end(true)
	if err := e.s.CloseWrite(); err != nil {
		return nil, classify(err)
	}
	return nil, nil
}

// closeOp: in = id u64. Closing an unknown id (closed already, or by its instance's end) is
// not an error: close is what a program calls in every path out.
func (r *Reach) closeOp(ctx context.Context, in []byte) ([]byte, error) {
	id, _, err := idOf(in)
	if err != nil {
		return nil, err
	}
	if _, err := r.get(ctx, id); err != nil {
		return nil, nil
	}
	// On the loop (a sync function): a TCP connection closes now, so that nothing read in
	// this turn is delivered to the program that closed it.
	switch e := r.remove(id); {
	case e == nil:
	case e.tcp != nil:
		e.tcp.Close()
	case e.hf != nil:
		e.hf.Close()
	default:
		r.drop(e)
	}
	return nil, nil
}
