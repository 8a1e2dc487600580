package wasmbin

import (
	"errors"
	"fmt"
)

// Section ids of the binary format.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order is where a section must stand among the others (the binary format fixes it).
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, secTag: 6, 6: 7, 7: 8, 8: 9, 9: 10, secDataCount: 11, 10: 12, 11: 13}

type section struct {
	id   byte
	body []byte
}

var magic = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

// sections checks a module's header and splits the rest into its sections, checking their
// order.
func sections(wasm []byte) ([]section, error) {
	if len(wasm) < len(magic) || string(wasm[:len(magic)]) != string(magic) {
		return nil, errors.New("not a WebAssembly 1.0 binary")
	}
	r := &reader{buf: wasm[len(magic):]}
	var secs []section
	last := 0
	for !r.done() {
		id, body, err := r.section()
		if err != nil {
			return nil, err
		}
		if id != secCustom {
			o, ok := order[id]
			if !ok {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			if o <= last {
				return nil, fmt.Errorf("section %d out of order or repeated", id)
			}
			last = o
		}
		secs = append(secs, section{id, body})
	}
	return secs, nil
}

// ensure adds an empty section id where the format puts it, if the module has none: before
// the first section that must follow it, else right after the last section of the module's
// own, so that custom sections at the end stay at the end.
func ensure(secs []section, id byte) []section {
	at, found := 0, false
	for i, s := range secs {
		switch {
		case s.id == id:
			return secs
		case s.id == secCustom || found:
		case order[s.id] > order[id]:
			at, found = i, true
		default:
			at = i + 1
		}
	}
	return append(secs[:at], append([]section{{id, []byte{0}}}, secs[at:]...)...)
}

// DataSection returns the body of a module's data section, or nil when it has none.
func DataSection(wasm []byte) ([]byte, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, err
	}
	for _, s := range secs {
		if s.id == secData {
			return s.body, nil
		}
	}
	return nil, nil
}
