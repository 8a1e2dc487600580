package loop

import "github.com/wasmloop/wasmloop/abi"

// table maps handles of one kind to objects. A slot's generation advances when it is freed,
// so a handle kept after its object is gone never finds the slot's next occupant.
type table[T any] struct {
	kind  abi.Kind
	slots []slot[T]
	free  []uint32
	n     int
}

type slot[T any] struct {
	gen  uint32
	used bool
	v    T
}

func newTable[T any](k abi.Kind) table[T] { return table[T]{kind: k} }

// add stores v and returns its handle.
func (t *table[T]) add(v T) abi.Handle {
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = uint32(len(t.slots))
		t.slots = append(t.slots, slot[T]{gen: 1})
	}
	s := &t.slots[i]
	s.used, s.v = true, v
	t.n++
	return abi.MakeHandle(t.kind, s.gen, i)
}

// get returns the object h names, or false for a stale, unknown or wrong-kind handle.
func (t *table[T]) get(h abi.Handle) (T, bool) {
	var zero T
	i := h.Index()
	if h.Kind() != t.kind || int(i) >= len(t.slots) {
		return zero, false
	}
	s := &t.slots[i]
	if !s.used || s.gen != h.Gen() {
		return zero, false
	}
	return s.v, true
}

// remove frees h's slot; it reports whether h was live.
func (t *table[T]) remove(h abi.Handle) bool {
	if _, ok := t.get(h); !ok {
		return false
	}
	i := h.Index()
	s := &t.slots[i]
	var zero T
	s.used, s.v = false, zero
	if s.gen++; s.gen > abi.MaxGen {
		s.gen = 1
	}
	t.free = append(t.free, i)
	t.n--
	return true
}

// each calls f for every live object.
func (t *table[T]) each(f func(abi.Handle, T)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.used {
			f(abi.MakeHandle(t.kind, s.gen, uint32(i)), s.v)
		}
	}
}

func (t *table[T]) len() int { return t.n }
