package wasmbin

import "fmt"

// MaxLocals is the most locals a function may declare, as in the browsers' engines, and
// MaxModuleLocals the most all of a module's functions may: wazero allocates for each declared
// local before it reads the function's code.
const (
	MaxLocals       = 50_000
	MaxModuleLocals = 1 << 21
)

// MaxGlobals and MaxElementEntries bound what wazero keeps on the Go heap for every instance
// beyond the module's bytes: an adversarial review measured 18 bytes of heap per byte of a
// module of 4 M globals (343 MiB an instance) and 42 per element entry (4 M of them, 158 MiB).
// A module's tables hold at most MaxTableElements anyway; compilers emit a few hundred
// globals.
const (
	MaxGlobals        = 1 << 16
	MaxElementEntries = MaxTableElements
)

// Check walks the whole module and refuses one that declares more entries or bytes than it
// holds, or a function with more than MaxLocals locals, before wazero reads it: wazero
// allocates by what a module declares, and a module of a few dozen bytes that declared 2^32
// local variables, parameters, element entries or names ended the process with "out of
// memory" (TestCheckRefusesWhatWazeroWouldAllocate). It checks the structure only; wazero
// validates the rest.
func Check(wasm []byte) error {
	secs, err := sections(wasm)
	if err != nil {
		return err
	}
	var locals uint64
	for _, s := range secs {
		r := &reader{buf: s.body}
		if s.id == secCode {
			if err := moduleLocals(s.body, &locals); err != nil {
				return fmt.Errorf("section %d: %w", s.id, err)
			}
		}
		if err := checkAmounts(s); err != nil {
			return fmt.Errorf("section %d: %w", s.id, err)
		}
		if err := checkSection(r, s.id); err != nil {
			return fmt.Errorf("section %d: %w", s.id, err)
		}
		if s.id != secCustom && !r.done() {
			return fmt.Errorf("section %d: %d bytes after its contents", s.id, len(r.buf)-r.pos)
		}
	}
	return nil
}

// checkEntry reads one entry of a section that is a vector.
var checkEntry = map[byte]func(*reader) error{
	secType: checkType, secImport: checkImport, secFunction: skipU32, secTable: checkTable,
	secMemory: skipLimits, secGlobal: checkGlobal, secExport: checkExport,
	secElement: checkElement, secCode: checkCode, secData: checkData,
}

func checkSection(r *reader, id byte) error {
	switch id {
	case secCustom:
		return checkCustom(r)
	case secStart, secDataCount:
		_, err := r.u32()
		return err
	}
	each := checkEntry[id]
	if each == nil {
		return fmt.Errorf("unknown section")
	}
	n, err := r.count()
	for i := uint32(0); i < n && err == nil; i++ {
		if err = each(r); err != nil {
			err = fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return err
}

func skipU32(r *reader) error { _, err := r.u32(); return err }

// skipBytes passes over a vector of bytes: value types, a name, a data segment's contents.
func skipBytes(r *reader) error {
	n, err := r.count()
	if err == nil {
		_, err = r.bytes(n)
	}
	return err
}

func checkType(r *reader) error {
	if form, err := r.byte(); err != nil || form != 0x60 {
		return fmt.Errorf("not a function type")
	}
	if err := valTypes(r); err != nil { // parameters
		return err
	}
	return valTypes(r) // results
}

// valTypes reads a vector of value types.
func valTypes(r *reader) error {
	n, err := r.count()
	for i := uint32(0); i < n && err == nil; i++ {
		err = r.valType()
	}
	return err
}

func checkImport(r *reader) error {
	if err := skipBytes(r); err != nil { // module
		return err
	}
	if err := skipBytes(r); err != nil { // name
		return err
	}
	kind, err := r.byte()
	if err != nil {
		return err
	}
	switch kind {
	case 0:
		return skipU32(r)
	case 1:
		return checkTable(r)
	case 2:
		return skipLimits(r)
	case 3:
		return globalType(r)
	}
	return r.errorf("import kind %d", kind)
}

func checkTable(r *reader) error {
	if err := r.refType(); err != nil {
		return err
	}
	return skipLimits(r)
}

func globalType(r *reader) error {
	if err := r.valType(); err != nil {
		return err
	}
	_, err := r.byte() // mutability
	return err
}

func checkGlobal(r *reader) error {
	if err := globalType(r); err != nil {
		return err
	}
	return skipExpr(r)
}

func checkExport(r *reader) error {
	if err := skipBytes(r); err != nil {
		return err
	}
	if _, err := r.byte(); err != nil {
		return err
	}
	return skipU32(r)
}

// checkElement reads a segment in any of the eight forms (rewriteElements has them in full).
// checkAmounts refuses more globals or element entries than the limits allow.
func checkAmounts(s section) error {
	r := &reader{buf: s.body}
	switch s.id {
	case secGlobal:
		if n, err := r.u32(); err == nil && n > MaxGlobals {
			return fmt.Errorf("%d globals; the limit is %d", n, MaxGlobals)
		}
	case secElement:
		n, err := r.count()
		var total uint64
		for i := uint32(0); i < n && err == nil; i++ {
			var entries uint32
			entries, err = elementSegment(r)
			total += uint64(entries)
		}
		if err == nil && total > MaxElementEntries {
			return fmt.Errorf("%d element entries; the limit is %d", total, MaxElementEntries)
		}
	}
	return nil // a malformed section is checkSection's to report
}

func checkElement(r *reader) error {
	_, err := elementSegment(r)
	return err
}

// elementSegment reads one element segment and returns how many entries it has.
func elementSegment(r *reader) (uint32, error) {
	flags, err := r.u32()
	if err != nil {
		return 0, err
	}
	if flags > 7 {
		return 0, r.errorf("element segment flags %d", flags)
	}
	if flags&3 == 2 {
		if err := skipU32(r); err != nil {
			return 0, err
		}
	}
	if flags&1 == 0 {
		if err := skipExpr(r); err != nil {
			return 0, err
		}
	}
	if flags&3 != 0 { // an element kind (0x00, functions) or, with expressions, a reference type
		k, err := r.byte()
		if err != nil {
			return 0, err
		}
		if flags&4 == 0 && k != 0 || flags&4 != 0 && !isRefType(k) {
			return 0, r.errorf("element type 0x%02x is not in WebAssembly 2.0", k)
		}
	}
	n, err := r.count()
	for i := uint32(0); i < n && err == nil; i++ {
		if flags&4 != 0 {
			err = skipExpr(r)
		} else {
			err = skipU32(r)
		}
	}
	return n, err
}

func checkCode(r *reader) error {
	size, err := r.count()
	if err != nil {
		return err
	}
	body, err := r.bytes(size)
	if err != nil {
		return err
	}
	br := &reader{buf: body}
	groups, err := br.count()
	if err != nil {
		return err
	}
	locals := uint64(0)
	for g := uint32(0); g < groups; g++ {
		n, err := br.u32()
		if err != nil {
			return err
		}
		if locals += uint64(n); locals > MaxLocals {
			return fmt.Errorf("more than %d locals", MaxLocals)
		}
		if err := br.valType(); err != nil {
			return err
		}
	}
	if err := skipExpr(br); err != nil {
		return err
	}
	if !br.done() {
		return fmt.Errorf("%d bytes after the function's end", len(body)-br.pos)
	}
	return nil
}

// moduleLocals adds up the locals every function of a code section declares, against
// MaxModuleLocals: 20,000 functions of 50,000 locals each made wazero allocate 7.6 GB.
func moduleLocals(code []byte, total *uint64) error {
	r := &reader{buf: code}
	n, err := r.count()
	for i := uint32(0); i < n && err == nil; i++ {
		var size uint32
		if size, err = r.count(); err != nil {
			break
		}
		br := &reader{buf: r.buf[r.pos : r.pos+int(size)]}
		r.pos += int(size)
		groups, gerr := br.count()
		for g := uint32(0); g < groups && gerr == nil; g++ {
			var k uint32
			if k, gerr = br.u32(); gerr == nil {
				if *total += uint64(k); *total > MaxModuleLocals {
					return fmt.Errorf("more than %d locals in all", MaxModuleLocals)
				}
				_, gerr = br.byte()
			}
		}
	}
	return nil // the structure itself is checked by checkCode
}

func checkData(r *reader) error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	switch flags {
	case 0:
		err = skipExpr(r)
	case 1:
	case 2:
		if err = skipU32(r); err == nil {
			err = skipExpr(r)
		}
	default:
		return r.errorf("data segment flags %d", flags)
	}
	if err != nil {
		return err
	}
	return skipBytes(r)
}

// checkCustom reads a custom section's name and, in the name section, the subsections wazero
// reads: the module's name (0), function names (1) and local names (2).
func checkCustom(r *reader) error {
	name, err := r.name()
	if err != nil || name != "name" {
		return err
	}
	for !r.done() {
		id, sub, err := r.section()
		if err != nil {
			return err
		}
		sr := &reader{buf: sub}
		switch id {
		case 0:
			err = skipBytes(sr)
		case 1:
			err = checkNameMap(sr)
		case 2:
			var n uint32
			n, err = sr.count()
			for i := uint32(0); i < n && err == nil; i++ {
				if err = skipU32(sr); err == nil {
					err = checkNameMap(sr)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("name subsection %d: %w", id, err)
		}
	}
	return nil
}

func checkNameMap(r *reader) error {
	n, err := r.count()
	for i := uint32(0); i < n && err == nil; i++ {
		if err = skipU32(r); err == nil {
			err = skipBytes(r)
		}
	}
	return err
}

// skipExpr passes over an expression up to and including the end that closes it.
func skipExpr(r *reader) error {
	depth := 0
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		if err := skipImmediates(r, op); err != nil {
			return err
		}
		switch op {
		case opBlock, opLoop, opIf:
			depth++
		case opEnd:
			if depth == 0 {
				return nil
			}
			depth--
		}
	}
}
