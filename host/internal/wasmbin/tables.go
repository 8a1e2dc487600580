package wasmbin

import "fmt"

// MaxTableElements is the most elements a module's tables may hold together: 8 MiB of
// references (wazero keeps one word per element). Tables live outside the linear memory and
// its limit, and wazero allocates a table's minimum at instantiation and grows it as asked: a
// 30-byte module declaring four tables of 2^27 elements took 4 GiB of the host's heap, and
// table.grow on a table with no maximum could ask for 32 GiB. Go and C toolchains emit one
// table of one element per function whose address is taken, far below this.
const MaxTableElements = 1 << 20

// LimitTables returns wasm with every table's maximum lowered so that all of them together
// never hold more than MaxTableElements, or wasm itself when they cannot already. It refuses
// a module whose tables need more than that at instantiation. As with the memory limit, a
// table.grow past the lowered maximum fails (returns -1) rather than trapping. What the
// minimums leave is shared equally among the tables that can grow. wasm must have passed
// Check.
func LimitTables(wasm []byte) ([]byte, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, err
	}
	for i, s := range secs {
		if s.id != secTable {
			continue
		}
		body, changed, err := limitTables(s.body)
		if err != nil || !changed {
			return wasm, err
		}
		secs[i].body = body
		out := append(make([]byte, 0, len(wasm)+16), magic...)
		for _, s := range secs {
			out = append(appendU32(append(out, s.id), uint32(len(s.body))), s.body...)
		}
		return out, nil
	}
	return wasm, nil
}

// table is one entry of the table section.
type table struct {
	refType  byte
	min, max uint64 // max is 1<<32 for a table declared without one
}

func limitTables(body []byte) (out []byte, changed bool, err error) {
	r := &reader{buf: body}
	n, err := r.count()
	if err != nil {
		return nil, false, err
	}
	tables := make([]table, n)
	var mins, maxes uint64
	growable := uint64(0)
	for i := range tables {
		t := &tables[i]
		if t.refType, err = r.byte(); err != nil {
			return nil, false, err
		}
		flag, err := r.byte()
		if err != nil {
			return nil, false, err
		}
		min, err := r.u32()
		if err != nil {
			return nil, false, err
		}
		t.min, t.max = uint64(min), 1<<32
		if flag == 1 {
			max, err := r.u32()
			if err != nil {
				return nil, false, err
			}
			t.max = uint64(max)
		}
		mins += t.min
		maxes += t.max
		if t.max > t.min {
			growable++
		}
	}
	if mins > MaxTableElements {
		return nil, false, fmt.Errorf("its tables hold %d elements from the start; the limit is %d", mins, MaxTableElements)
	}
	if maxes <= MaxTableElements {
		return body, false, nil
	}
	share := (MaxTableElements - mins) / growable
	out = appendU32(nil, n)
	for _, t := range tables {
		t.max = min(t.max, t.min+share)
		out = appendU32(appendU32(append(out, t.refType, 1), uint32(t.min)), uint32(t.max))
	}
	return out, true, nil
}
