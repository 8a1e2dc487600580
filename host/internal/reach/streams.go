package reach

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// Functions returns the host functions of reach by name (ABI.md §10). A read's result must
// reach its Done once delivered or dropped: the loop sees to it.
func (r *Reach) Functions() map[string]loop.HostFunc {
	async := func(f func(ctx context.Context, in []byte) ([]byte, error)) loop.HostFunc {
		return loop.HostFunc{Async: f}
	}
	sync := func(f func(ctx context.Context, in []byte) ([]byte, error)) loop.HostFunc {
		return loop.HostFunc{Sync: f}
	}
	return map[string]loop.HostFunc{
		abi.FnStreamRead:    {Async: r.read, Done: r.release}, // the one that reserves (maxHeld)
		abi.FnStreamWrite:   async(r.write),
		abi.FnStreamEnd:     async(r.end),
		abi.FnStreamClose:   sync(r.closeOp),
		abi.FnFetch:         sync(r.fetch),
		abi.FnFetchResponse: async(r.response),
		abi.FnConnect:       async(r.connect),
		abi.FnNetListen:     sync(r.listen),
		abi.FnAccept:        async(r.accept),
		abi.FnSetOption:     sync(r.setOption),
		abi.FnLookup:        async(r.lookup),
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

// read: in = id u64, max u32; result = what the stream has, up to max; empty at its end.
func (r *Reach) read(ctx context.Context, in []byte) ([]byte, error) {
	id, rest, err := idOf(in)
	if err != nil {
		return nil, err
	}
	if len(rest) < 4 {
		return nil, errShort
	}
	want := int64(min(binary.LittleEndian.Uint32(rest), abi.MaxStreamRead))
	e, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.s == nil {
		return nil, coded(abi.FileEINVAL, errors.New("a listener is not read: accept its connections"))
	}
	if err := e.begin(false); err != nil {
		return nil, err
	}
	defer e.end(false)
	if want == 0 {
		return nil, coded(abi.FileEINVAL, errors.New("a read of 0 bytes"))
	}
	if err := r.held.Acquire(ctx, want); err != nil {
		return nil, classify(err)
	}
	// Read into a pooled buffer and return a copy of what came: a 64-byte message must not
	// cost a zeroed 256 KiB allocation (tests/bench/tcpecho.sh).
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := (*bp)[:want]
	for {
		n, err := e.s.Read(buf)
		if n > 0 {
			r.held.Release(want - int64(n))
			return bytes.Clone(buf[:n]), nil
		}
		if err == io.EOF {
			r.held.Release(want)
			return nil, nil
		}
		if err != nil {
			r.held.Release(want)
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
	if _, err := r.get(ctx, id); err == nil {
		r.close(id)
	}
	return nil, nil
}
