package wasmbin

import (
	"bytes"
	"strings"
	"testing"
)

// Modules of a few dozen bytes that declare 2^32-16 of something. Given to wazero, the first
// four ended the test process with "fatal error: runtime: out of memory", and the others made
// it allocate 4–16 GiB.
func TestCheckRefusesWhatWazeroWouldAllocate(t *testing.T) {
	sec := func(id byte, body ...[]byte) []byte {
		b := bytes.Join(body, nil)
		return append(append([]byte{id}, appendU32(nil, uint32(len(b)))...), b...)
	}
	big := appendU32(nil, 0xfffffff0)
	oneFunc := append(sec(secType, []byte{1, 0x60, 0, 0}), sec(secFunction, []byte{1, 0})...)
	for name, m := range map[string][]byte{
		"locals":         append(oneFunc, sec(secCode, []byte{1, 8, 1}, big, []byte{0x7f, 0x0b})...),
		"parameters":     sec(secType, []byte{1, 0x60}, big, []byte{0x7f}),
		"element items":  sec(secElement, []byte{1, 0, 0x41, 0, 0x0b}, big, []byte{0}),
		"function names": sec(secCustom, appendName(nil, "name"), []byte{1, 5}, big),
		"local names":    sec(secCustom, appendName(nil, "name"), []byte{2, 7, 1, 0}, big),
		"import name":    sec(secImport, []byte{1}, big, []byte("ab")),
		"data bytes":     sec(secData, []byte{1, 0, 0x41, 0, 0x0b}, big, []byte{0}),
		"functions":      sec(secFunction, big, []byte{0}),
		"code entries":   sec(secCode, big, []byte{0}),
		"br_table":       append(oneFunc, sec(secCode, []byte{1, 10, 0, 0x41, 0, 0x0e}, big, []byte{0x0b})...),
	} {
		err := Check(append(bytes.Clone(magic), m...))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "a count of") && !strings.Contains(err.Error(), "locals") {
			t.Errorf("%s: %v, want the count refused", name, err)
		}
	}
	if err := Check(testModule()); err != nil {
		t.Errorf("the test module: %v", err)
	}
}

// A function may declare MaxLocals locals, not one more.
func TestCheckLocalsLimit(t *testing.T) {
	module := func(locals uint32) []byte {
		body := append(append([]byte{2}, appendU32(nil, locals-1)...), 0x7f, 1, 0x7e, 0x0b)
		code := append(append([]byte{1}, appendU32(nil, uint32(len(body)))...), body...)
		m := append(bytes.Clone(magic), secType, 4, 1, 0x60, 0, 0, secFunction, 2, 1, 0, secCode)
		return append(append(m, appendU32(nil, uint32(len(code)))...), code...)
	}
	if err := Check(module(MaxLocals)); err != nil {
		t.Errorf("%d locals: %v", MaxLocals, err)
	}
	if err := Check(module(MaxLocals + 1)); err == nil || !strings.Contains(err.Error(), "locals") {
		t.Errorf("%d locals: %v, want refused", MaxLocals+1, err)
	}
}

// Globals and element entries cost the host's heap per instance beyond their bytes: their
// numbers are capped.
func TestCheckAmounts(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	globals := appendU32(nil, MaxGlobals+1)
	for range MaxGlobals + 1 {
		globals = append(globals, 0x7f, 0, opI32Const, 0, opEnd)
	}
	elems := append([]byte{1, 1, 0}, appendU32(nil, MaxElementEntries+1)...) // one passive segment
	elems = append(elems, make([]byte, MaxElementEntries+1)...)              // of function 0
	fn := bytes.Join([][]byte{sec(secType, []byte{1, 0x60, 0, 0}), sec(secFunction, []byte{1, 0})}, nil)
	code := sec(secCode, []byte{1, 2, 0, opEnd})
	for name, m := range map[string][]byte{
		"globals":  bytes.Join([][]byte{magic, sec(secGlobal, globals)}, nil),
		"elements": bytes.Join([][]byte{magic, fn, sec(secElement, elems), code}, nil),
	} {
		if err := Check(m); err == nil || !strings.Contains(err.Error(), "the limit is") {
			t.Errorf("%s past the limit: %v", name, err)
		}
	}
}
