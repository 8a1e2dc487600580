//go:build unix

package guest

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmloop/wasmloop/abi"
)

// mmapAllocator backs each guest memory with its own mapping: the whole maximum is reserved
// as address space up front (PROT_NONE, no swap reserved) and pages are made accessible as
// the guest grows. Growth never copies and the guest's bytes are never Go heap, so a guest
// that grows to hundreds of MiB neither stalls the collector nor doubles its footprint during
// a copy — wazero's default []byte growth did both (RATIONALE.md, "Memory").
//
// The reservation is made before wazero asks for it (reserveMemory), because wazero takes a
// nil memory from an allocator for a bug and panics: an address space the system refuses
// (ulimit -v) must be an error that names the cause instead.
type mmapAllocator struct {
	reserved *mmapMemory // taken by the first Allocate
}

const wasmPage = 64 << 10

func (a *mmapAllocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	if r := a.reserved; r != nil && max <= uint64(len(r.buf)) {
		a.reserved = nil
		return r
	}
	// Not what was reserved for: a memory this module did not declare. wazero cannot take
	// nil, so a refused reservation leaves an empty one, and every memory.grow fails.
	m, err := reserve(max)
	if err != nil {
		return &mmapMemory{}
	}
	return m
}

// release frees a reservation wazero did not take.
func (a *mmapAllocator) release() {
	if a.reserved != nil {
		a.reserved.Free()
		a.reserved = nil
	}
}

func reserve(max uint64) (*mmapMemory, error) {
	if max == 0 {
		max = wasmPage
	}
	buf, err := unix.Mmap(-1, 0, int(max), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON|mapNoReserve)
	if err != nil {
		return nil, err
	}
	return &mmapMemory{buf: buf}, nil
}

// reserveMemory reserves the address space of one instance's memory: its declared maximum,
// or the runtime's memory limit when it declares none or a larger one.
func (m *Module) reserveMemory() (*mmapAllocator, error) {
	max := uint64(m.rt.memoryLimit)
	if mem, ok := m.compiled.ExportedMemories()[abi.ExportMemory]; ok {
		if declared, ok := mem.Max(); ok {
			max = min(max, uint64(declared)*wasmPage)
		}
	}
	r, err := reserve(max)
	if err != nil {
		return nil, fmt.Errorf("reserving %d MiB of address space for the guest's memory: %w (lower the memory limit, or raise ulimit -v)", max>>20, err)
	}
	return &mmapAllocator{reserved: r}, nil
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
