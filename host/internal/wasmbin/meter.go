package wasmbin

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The meter: a module rewritten so that its code calls the host at regular intervals,
// however it loops or recurses.
//
// Code compiled from WebAssembly never reaches a Go safe point while it runs, so a guest that
// loops forever would stop the garbage collector, and nothing could end its call. wazero's own
// answer (WithCloseOnContextDone) leaves to Go at every loop header and starts a goroutine per
// call; this rewrite pays far less (RATIONALE.md, "The sandbox"). The rewritten module has
// one more global, a countdown (and a second, below), and one more import,
// MeterModule.MeterFunc of type () -> i32.
// Every function entry and every loop header counts down by one; where the count is zero it
// calls the import instead, which may end the call (by panicking) and returns the next count.
// Between two calls of the import the guest runs at most that many loop iterations or function
// entries, each a bounded stretch of straight-line code.
//
// One instruction can still take long: a bulk memory or table operation (memory.fill, copy
// and init; table.fill, copy and init) writes as many bytes or elements as its operand says,
// up to the whole memory, and a module of nothing but fills would run for hours between two
// loop headers. Before each of them the rewrite charges the countdown for the work: one count
// and one more per 4 KiB (memory) or 512 elements (tables, 8 bytes each), through a second
// added global that holds the length while the charge is computed. The grow instructions are
// not charged: memories and tables only grow, so all of an instance's growing is bounded by
// its limits.

// ErrRefFuncInCode refuses a module that runs ref.func in a function body (expr.go says why):
// the one valid module the rewrite refuses.
var ErrRefFuncInCode = errors.New("ref.func in a function body is not supported (each one run takes host memory until the instance ends)")

// ErrTooManyChecks refuses a function that would need more than MaxChecksPerFunction checks.
var ErrTooManyChecks = fmt.Errorf("with the budget checks, a function may need at most %d (one per loop, per bulk table or segment operation, and per 64 KiB of straight-line code and the leaves it calls)", MaxChecksPerFunction)

// MeterModule.MeterFunc is the function a metered module imports, of type () -> i32.
const (
	MeterModule = "wasmloop.meter"
	MeterFunc   = "tick"
)

// Meter returns a copy of wasm with the countdown, the import and the checks added.
// It decodes only what it must renumber or instrument; everything else is copied, and the
// runtime validates the result as it would have validated wasm. Debugging sections (DWARF),
// whose code offsets the rewrite would make wrong, are left out; the name section is kept.
func Meter(wasm []byte) ([]byte, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, err
	}
	for _, id := range []byte{secType, secImport, secGlobal} {
		secs = ensure(secs, id)
	}
	m := &module{}
	for _, s := range secs {
		if err := m.count(s); err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	if m.bulkHelpers() { // the helpers need a function section, even if the module has none
		secs = ensure(secs, secFunction)
	}
	rw := &rewriter{firstMoved: m.funcImports, funcs: m.funcImports + m.defined, globals: m.globalImports + m.globals, types: m.types, m: m}
	tick := m.funcImports                    // the import is the last function import
	countdown := m.globalImports + m.globals // and the globals the last two
	scratch := countdown + 1
	rw.countdown, rw.tick = countdown, tick
	rw.chargeMemory = rw.chargeCode(scratch, memoryChargeShift)
	rw.chargeTable = rw.chargeCode(scratch, tableChargeShift)
	if m.bulkHelpers() { // after the module's own functions and the tick
		rw.fillFunc = m.funcImports + 1 + m.defined
		rw.copyFunc = rw.fillFunc + 1
	}
	for _, s := range secs {
		if s.id == secCode {
			if rw.leaves, rw.largestLeaf, err = leafSizes(s.body); err != nil {
				return nil, fmt.Errorf("section %d: %w", s.id, err)
			}
		}
	}

	out := append(make([]byte, 0, len(wasm)+len(wasm)/8), magic...)
	for _, s := range secs {
		body, keep, err := m.rewrite(rw, s)
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		if keep {
			if out, err = appendSized(append(out, s.id), body); err != nil {
				return nil, fmt.Errorf("section %d: %w", s.id, err)
			}
		}
	}
	return out, nil
}

// appendSized appends a length and the bytes it counts, refusing more than a length can say.
func appendSized(out, b []byte) ([]byte, error) {
	if uint64(len(b)) > 0xffff_ffff {
		return nil, errors.New("more than 4 GiB once rewritten")
	}
	return append(appendU32(out, uint32(len(b))), b...), nil
}

// checkCode appends the check, charging cost (cost.go): count down by cost, and call tick,
// with what is left (a debt when it is below zero), for the next count when that leaves none.
// Carrying the debt into tick keeps a large charge from being forgiven.
//
//	global.get $countdown  i32.const cost  i32.sub  global.set $countdown
//	global.get $countdown  i32.const 1  i32.lt_s
//	if
//	  global.get $countdown  call $tick  global.set $countdown
//	end
func (rw *rewriter) checkCode(out []byte, cost uint32) []byte {
	out = appendU32(append(out, opGlobalGet), rw.countdown)
	out = appendS32(append(out, opI32Const), int32(cost))
	out = appendU32(append(out, opI32Sub, opGlobalSet), rw.countdown)
	return rw.tickIfSpent(out)
}

// tickIfSpent appends the call of tick when the countdown has run out.
func (rw *rewriter) tickIfSpent(out []byte) []byte {
	out = appendU32(append(out, opGlobalGet), rw.countdown)
	out = append(out, opI32Const, 1, opI32LtS, opIf, blockEmpty, opGlobalGet)
	out = appendU32(out, rw.countdown)
	out = appendU32(append(out, opCall), rw.tick)
	out = appendU32(append(out, opGlobalSet), rw.countdown)
	return append(out, opEnd)
}

// The charge for a bulk operation is one count, and one more per 1<<shift bytes or elements.
const (
	memoryChargeShift = 12 // 4 KiB
	tableChargeShift  = 9  // 512 references of 8 bytes: 4 KiB
)

// chargeCode is the charge before a bulk operation, whose length (an i32) is on the stack:
// it takes the length off, lowers the countdown by 1 + length>>shift, calls tick when that
// leaves none (as checkCode does), and puts the length back. The countdown cannot overflow: it
// is at most what tick returns, tick bounds the debt it is given, and length>>shift is less
// than 2^23.
//
//	global.set $scratch
//	global.get $countdown  global.get $scratch  i32.const shift  i32.shr_u  i32.sub
//	i32.const 1  i32.sub  global.set $countdown
//	(tickIfSpent)
//	global.get $scratch
func (rw *rewriter) chargeCode(scratch uint32, shift byte) []byte {
	c := appendU32([]byte{opGlobalSet}, scratch)
	c = appendU32(append(c, opGlobalGet), rw.countdown)
	c = appendU32(append(c, opGlobalGet), scratch)
	c = append(c, opI32Const, shift, opI32ShrU, opI32Sub, opI32Const, 1, opI32Sub, opGlobalSet)
	c = appendU32(c, rw.countdown)
	c = rw.tickIfSpent(c)
	return appendU32(append(c, opGlobalGet), scratch)
}

// module is what the rewrite must know of the module before it rewrites any section.
type module struct {
	types, funcImports, globalImports, globals, defined uint32
	memories                                            uint32
	code                                                bool // it has a code section
	// What a call's arguments take on the stack (8 bytes a value, 16 a v128), by type, and
	// the types of the imported and the defined functions (cost.go).
	paramBytes           []uint32
	importTypes, fnTypes []uint32
}

// bulkHelpers reports whether the rewrite adds the bulk-operation functions (bulk.go): to a
// module with a memory and code.
func (m *module) bulkHelpers() bool { return m.memories > 0 && m.code }

func (m *module) count(s section) error {
	r := &reader{buf: s.body}
	var err error
	switch s.id {
	case secType:
		m.paramBytes, err = typeParamBytes(r)
		m.types = uint32(len(m.paramBytes))
	case secGlobal:
		m.globals, err = r.u32()
	case secFunction:
		if m.defined, err = r.count(); err == nil {
			m.fnTypes = make([]uint32, m.defined)
			for i := range m.fnTypes {
				if m.fnTypes[i], err = r.u32(); err != nil {
					break
				}
			}
		}
	case secMemory:
		var n uint32
		n, err = r.u32()
		m.memories += n
	case secCode:
		m.code = true
	case secImport:
		err = m.countImports(r)
	}
	return err
}

func (m *module) countImports(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		mod, err := r.name()
		if err != nil {
			return err
		}
		field, err := r.name()
		if err != nil {
			return err
		}
		if mod == MeterModule {
			return fmt.Errorf("the module imports %s.%s, which only the host may add", mod, field)
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // function: type index
			m.funcImports++
			var t uint32
			if t, err = r.u32(); err == nil && t >= m.types {
				err = r.errorf("import %s.%s has type %d, which does not exist", mod, field, t)
			}
			m.importTypes = append(m.importTypes, t)
		case 1: // table: reference type, limits
			if _, err = r.byte(); err == nil {
				err = skipLimits(r)
			}
		case 2: // memory: limits
			m.memories++
			err = skipLimits(r)
		case 3: // global: value type, mutability
			m.globalImports++
			err = globalType(r)
		default:
			err = r.errorf("import kind %d is not in WebAssembly 2.0", kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func skipLimits(r *reader) error {
	flag, err := r.byte()
	if err != nil {
		return err
	}
	if flag > 1 {
		return r.errorf("limits flag %d is not in WebAssembly 2.0", flag)
	}
	return skipN(r, 1+int(flag))
}

// rewrite returns the new body of s, or keep false to leave s out.
func (m *module) rewrite(rw *rewriter, s section) (body []byte, keep bool, err error) {
	r := &reader{buf: s.body}
	switch s.id {
	case secType: // one more type: (i32) -> i32
		if _, err := r.u32(); err != nil {
			return nil, false, err
		}
		added := uint32(1)
		if m.bulkHelpers() {
			added++
		}
		body = appendU32(nil, m.types+added)
		body = append(body, s.body[r.pos:]...)
		body = append(body, 0x60, 1, 0x7f, 1, 0x7f)
		if m.bulkHelpers() { // (i32, i32, i32) -> (), the bulk helpers'
			body = append(body, bulkType...)
		}
		r.pos = len(r.buf)
	case secImport: // one more import, the last function import
		n, err := r.u32()
		if err != nil {
			return nil, false, err
		}
		body = appendU32(nil, n+1)
		body = append(body, s.body[r.pos:]...)
		r.pos = len(r.buf)
		body = appendName(body, MeterModule)
		body = appendName(body, MeterFunc)
		body = appendU32(append(body, 0), m.types)
	case secGlobal: // init expressions may name functions; two more globals, countdown and scratch
		body, err = m.rewriteGlobals(rw, r)
	case secFunction: // read only to check its type indices; the bulk helpers added
		var n uint32
		n, err = r.u32()
		entries := r.pos
		for i := uint32(0); i < n && err == nil; i++ {
			err = rw.typeIndex(r)
		}
		body = s.body
		if m.bulkHelpers() {
			body = appendU32(nil, n+2)
			body = append(body, s.body[entries:]...)
			body = appendU32(appendU32(body, m.types+1), m.types+1)
		}
	case secExport:
		body, err = rewriteExports(rw, r)
	case secStart:
		var i uint32
		if i, err = r.u32(); err == nil {
			body = appendU32(nil, rw.funcIndex(i))
		}
	case secElement:
		body, err = rewriteElements(rw, r)
	case secCode:
		body, err = rewriteCode(rw, r)
	case secCustom:
		return rewriteCustom(rw, s.body)
	default:
		return s.body, true, nil
	}
	if err == nil && !r.done() {
		err = r.errorf("%d bytes after the section's contents", len(r.buf)-r.pos)
	}
	return body, err == nil, err
}

func (m *module) rewriteGlobals(rw *rewriter, r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n+2)
	for i := uint32(0); i < n; i++ {
		typ, err := r.bytes(2) // value type, mutability
		if err != nil {
			return nil, err
		}
		out = append(out, typ...)
		if out, err = rw.expr(r, out, false); err != nil {
			return nil, err
		}
	}
	// (mut i32) (i32.const 0) twice: the countdown, whose first check calls tick for a count,
	// and the scratch of the charges.
	return append(out, 0x7f, 1, opI32Const, 0, opEnd, 0x7f, 1, opI32Const, 0, opEnd), nil
}

func rewriteExports(rw *rewriter, r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		switch {
		case kind == 0:
			idx = rw.funcIndex(idx)
		case kind == 3 && idx >= rw.globals:
			return nil, r.errorf("export %q names global %d, which does not exist", name, idx)
		}
		out = appendU32(append(appendName(out, name), kind), idx)
	}
	return out, nil
}

// rewriteElements renumbers the functions of element segments, in each of the eight forms.
func rewriteElements(rw *rewriter, r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, r.errorf("element segment flags %d", flags)
		}
		out = appendU32(out, flags)
		if flags&3 == 2 { // an explicit table
			t, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(out, t)
		}
		if flags&1 == 0 { // active: an offset
			if out, err = rw.expr(r, out, false); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // element kind or reference type
			k, err := r.byte()
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
		count, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, count)
		for j := uint32(0); j < count; j++ {
			if flags&4 != 0 { // expressions
				if out, err = rw.expr(r, out, false); err != nil {
					return nil, err
				}
				continue
			}
			f, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(out, rw.funcIndex(f))
		}
	}
	return out, nil
}

// rewriteCode adds the check at every loop header and at the entry of every function that
// needs one there (entryCheckNeeded).
func rewriteCode(rw *rewriter, r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	count := n
	if rw.fillFunc != 0 {
		count += 2
	}
	out := appendU32(make([]byte, 0, len(r.buf)+len(r.buf)/8), count)
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		body, err := r.bytes(size)
		if err != nil {
			return nil, err
		}
		br := &reader{buf: body}
		localBytes, err := readLocals(br)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		fn = append(fn[:0], body[:br.pos]...)
		need, calls, err := entryCheckNeeded(*br)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		entry, loops, err := rw.segmentCosts(*br)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		// An entry also charges the frame it pushes (8 bytes a local), so that a deep stack
		// costs counts in proportion to its size: the guest package refreshes an export whose
		// call ran long, and with it the stack wazero grew for it (guest/instance.go).
		frame := localBytes + uint64(rw.paramBytes(rw.m.funcImports+i))
		entry = min(entry+uint32(min(frame>>costShift, maxCost)), maxCost)
		if calls && !need && len(loops) > 0 {
			loops[0] = max(loops[0], entry) // the leading loop's check stands for the entry's
		}
		rw.loopCosts, rw.loops, rw.charges, rw.splits, rw.since = loops, 0, 0, 0, 0
		if need {
			fn = rw.checkCode(fn, entry)
		}
		if fn, err = rw.expr(br, fn, true); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		if !br.done() {
			return nil, fmt.Errorf("function %d: %d bytes after its end", i, len(body)-br.pos)
		}
		if checks := rw.loops + rw.charges + rw.splits; checks > MaxChecksPerFunction {
			return nil, fmt.Errorf("function %d: %w (it would have %d)", i, ErrTooManyChecks, checks)
		}
		if out, err = appendSized(out, fn); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
	}
	if rw.fillFunc != 0 {
		for _, helper := range [][]byte{rw.fillBody(), rw.copyBody()} {
			if out, err = appendSized(out, helper); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// rewriteCustom keeps custom sections, renumbering the function names of the name section
// and leaving out DWARF.
func rewriteCustom(rw *rewriter, b []byte) ([]byte, bool, error) {
	r := &reader{buf: b}
	name, err := r.name()
	if err != nil {
		return nil, false, err
	}
	switch {
	case !utf8.ValidString(name): // the runtime refuses it; dropping it would make it valid
		return nil, false, fmt.Errorf("custom section name %q is not valid UTF-8", name)
	case strings.HasPrefix(name, ".debug_"):
		return nil, false, nil
	case name == "name":
		out, err := rewriteNames(rw, r)
		if err != nil { // the runtime refuses such a module too
			return nil, false, fmt.Errorf("name section: %w", err)
		}
		return append(appendName(nil, name), out...), true, nil
	}
	return b, true, nil
}

// rewriteNames renumbers the subsections of the name section that are keyed by function:
// function names (1), local names (2) and label names (3). wazero reads its subsections its
// own way (a name map as a stream, whatever the subsection's length says; the others passed
// over however they are formed), so from the first subsection that does not parse as the
// format says, the rest is kept as it came: names are for debuggers, and wazero's verdict on
// them must stay its own.
func rewriteNames(rw *rewriter, r *reader) ([]byte, error) {
	var out []byte
	for !r.done() {
		at := r.pos
		id, sub, err := r.section()
		if err != nil {
			return append(out, r.buf[at:]...), nil
		}
		if id >= 1 && id <= 3 {
			renumbered, err := renumberNameMap(rw, sub, id != 1)
			if err != nil {
				return append(out, r.buf[at:]...), nil
			}
			sub = renumbered
		}
		out = appendU32(append(out, id), uint32(len(sub)))
		out = append(out, sub...)
	}
	return out, nil
}

// renumberNameMap renumbers the function indices that key a name map, or an indirect one
// (a name map per function).
func renumberNameMap(rw *rewriter, b []byte, indirect bool) ([]byte, error) {
	r := &reader{buf: b}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		f, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, rw.funcIndex(f))
		start := r.pos
		if indirect {
			inner, err := r.u32()
			if err != nil {
				return nil, err
			}
			for j := uint32(0); j < inner; j++ {
				if err := r.skipLEB(5); err != nil {
					return nil, err
				}
				if _, err := r.name(); err != nil {
					return nil, err
				}
			}
		} else if _, err := r.name(); err != nil {
			return nil, err
		}
		out = append(out, b[start:r.pos]...)
	}
	if !r.done() {
		return nil, r.errorf("bytes after the name map")
	}
	return out, nil
}
