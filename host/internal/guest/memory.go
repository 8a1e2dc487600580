//go:build unix

package guest

import (
	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapAllocator backs each guest memory with its own mapping: the whole maximum is reserved
// as address space up front (PROT_NONE, no swap reserved) and pages are made accessible as
// the guest grows. Growth never copies and the guest's bytes are never Go heap, so a guest
// that grows to hundreds of MiB neither stalls the collector nor doubles its footprint during
// a copy — wazero's default []byte growth did both (RATIONALE.md, "Memory").
type mmapAllocator struct{}

const wasmPage = 64 << 10

func (mmapAllocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	if max == 0 {
		max = wasmPage
	}
	buf, err := unix.Mmap(-1, 0, int(max), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON|mapNoReserve)
	if err != nil {
		return nil
	}
	return &mmapMemory{buf: buf}
}

type mmapMemory struct {
	buf       []byte // the whole reservation
	committed uint64
}

// Reallocate makes [0, size) accessible. It returns nil when the reservation or the kernel
// refuses, which the guest sees as a failed memory.grow.
func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	if size > m.committed {
		if err := unix.Mprotect(m.buf[m.committed:size], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		m.committed = size
	}
	return m.buf[:size:size]
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		unix.Munmap(m.buf)
		m.buf = nil
	}
}
