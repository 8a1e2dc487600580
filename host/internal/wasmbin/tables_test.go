package wasmbin

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// tablesModule declares the tables given as (flag, min[, max]) entries of funcref and exports
// grow(n): table.grow of table 0 by n null references, returning the old size or -1.
func tablesModule(tables ...[]uint32) []byte {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	tab := appendU32(nil, uint32(len(tables)))
	for _, t := range tables {
		tab = append(tab, 0x70, byte(len(t)-1))
		for _, v := range t {
			tab = appendU32(tab, v)
		}
	}
	code := []byte{0, 0xd0, 0x70, 0x20, 0, prefixMisc, 15, 0, opEnd}
	return bytes.Join([][]byte{magic,
		sec(secType, []byte{1, 0x60, 1, 0x7f, 1, 0x7f}),
		sec(secFunction, []byte{1, 0}),
		sec(secTable, tab),
		sec(secExport, append(appendName([]byte{1}, "grow"), 0, 0)),
		sec(secCode, append([]byte{1, byte(len(code))}, code...)),
	}, nil)
}

func TestLimitTables(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	grow := func(wasm []byte, n uint32) int32 {
		t.Helper()
		mod, err := r.Instantiate(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		defer mod.Close(ctx)
		res, err := mod.ExportedFunction("grow").Call(ctx, uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		return int32(res[0])
	}

	// Four tables of 2^27 elements took 4 GiB of heap at instantiation.
	huge := tablesModule([]uint32{1 << 27}, []uint32{1 << 27}, []uint32{1 << 27}, []uint32{1 << 27})
	if _, err := LimitTables(huge); err == nil || !strings.Contains(err.Error(), "the limit is") {
		t.Errorf("four tables of 2^27: %v, want refused", err)
	}

	// Tables whose maximums fit are left as they are.
	fits := tablesModule([]uint32{10, 10}, []uint32{1, 1000})
	if out, err := LimitTables(fits); err != nil || &out[0] != &fits[0] {
		t.Errorf("tables that fit were rewritten (%v)", err)
	}

	// A table without a maximum gets the limit's; growing past it fails as memory.grow does.
	open := tablesModule([]uint32{16})
	limited, err := LimitTables(open)
	if err != nil {
		t.Fatal(err)
	}
	if got := grow(limited, MaxTableElements-16); got != 16 {
		t.Errorf("grow to the limit = %d, want 16 (the old size)", got)
	}
	if got := grow(limited, MaxTableElements-15); got != -1 {
		t.Errorf("grow past the limit = %d, want -1", got)
	}

	// Two growable tables share what the minimums leave.
	two, err := LimitTables(tablesModule([]uint32{100}, []uint32{0, 1 << 30}))
	if err != nil {
		t.Fatal(err)
	}
	half := uint32(MaxTableElements-100) / 2
	if got := grow(two, half); got != 100 {
		t.Errorf("table 0 grown by its share = %d, want 100", got)
	}
	if got := grow(two, half+1); got != -1 {
		t.Errorf("table 0 grown past its share = %d, want -1", got)
	}
}
