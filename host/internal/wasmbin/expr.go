package wasmbin

// rewriter copies instruction sequences, renumbering function indices and adding the check.
type rewriter struct {
	firstMoved uint32  // function indices from here on move up by one (the added import)
	funcs      uint32  // the module's own functions, imported and defined
	globals    uint32  // the module's own globals, imported and defined: the countdown is next
	types      uint32  // the module's own types: the tick's type is next
	m          *module // what the rewrite knows of the module
	// countdown and tick are the added global and import the checks use (checkCode).
	countdown, tick uint32
	// the instructions added before bulk memory and table operations (chargeCode)
	chargeMemory, chargeTable []byte
	// The bulk helpers' function indices (bulk.go), or 0 when the module has none.
	fillFunc, copyFunc uint32
	// What the checks charge (cost.go): the leaves' sizes by defined-function index, the
	// largest, and the charges of the loops of the function being rewritten, in order.
	leaves      []uint32
	largestLeaf uint32
	loopCosts   []uint32
	loops       int    // loops of the function rewritten so far
	charges     int    // bulk charges added to it so far
	splits      int    // checks added to it to split long stretches
	since       uint64 // the weight of the code copied since its last check (cost.go)
}

// typeIndex refuses a type index past the module's own types, which the rewrite would make
// valid: the rewritten module is valid only if the original was.
func (rw *rewriter) typeIndex(r *reader) error {
	i, err := r.u32()
	if err == nil && i >= rw.types {
		err = r.errorf("type %d does not exist (the module has %d)", i, rw.types)
	}
	return err
}

// globalIndex refuses a global index past the module's own globals: in the module as it came
// that index was invalid, and after the rewrite it would name the countdown, which code that
// set it could then never run out of.
func (rw *rewriter) globalIndex(r *reader) error {
	i, err := r.u32()
	if err == nil && i >= rw.globals {
		err = r.errorf("global %d does not exist (the module has %d)", i, rw.globals)
	}
	return err
}

// funcIndex renumbers a function index of the original module.
// An index past the module's functions stays past them (it would otherwise wrap, or come to
// name an existing function), so a module wazero refuses stays refused.
func (rw *rewriter) funcIndex(i uint32) uint32 {
	if i >= rw.funcs {
		return 0xffff_ffff
	}
	if i >= rw.firstMoved {
		return i + 1
	}
	return i
}

// Opcodes the rewriter looks at; the others it only passes over.
const (
	opBlock      = 0x02
	opLoop       = 0x03
	opIf         = 0x04
	opEnd        = 0x0b
	opCall       = 0x10
	opCallIndir  = 0x11
	opRefFunc    = 0xd2
	opGlobalGet  = 0x23
	opGlobalSet  = 0x24
	opI32Const   = 0x41
	opI32Sub     = 0x6b
	opI32ShrU    = 0x76
	opI32LtS     = 0x48
	opElse       = 0x05
	prefixMisc   = 0xfc
	prefixVector = 0xfd
	blockEmpty   = 0x40
)

// expr copies one expression, up to and including the end that closes it, from r to out.
// With withChecks, the check follows every loop's block type (the caller adds the one at
// function entry). The instruction set is WebAssembly 2.0's, the set the runtime accepts;
// an instruction outside it is an error, since passing over bytes it cannot decode could
// hide a loop from the rewrite.
func (rw *rewriter) expr(r *reader, out []byte, withChecks bool) ([]byte, error) {
	depth := 0
	last, extra := r.pos, uint64(0) // where the instruction just copied began; its leaf's size
	for {
		if withChecks {
			rw.since += uint64(r.pos-last) + extra
			if rw.since > splitWeight {
				// A long stretch with no loop header or checked call in it (cost.go).
				out = rw.checkCode(out, cost(rw.since))
				rw.since, rw.splits = 0, rw.splits+1
			}
		}
		last, extra = r.pos, 0
		start := r.pos
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch {
		case op == opBlock || op == opLoop || op == opIf:
			bt, err := r.blockType()
			if err != nil {
				return nil, err
			}
			if bt >= int64(rw.types) {
				return nil, r.errorf("block type %d does not exist (the module has %d types)", bt, rw.types)
			}
			depth++
			out = append(out, r.buf[start:r.pos]...)
			if op == opLoop && withChecks {
				out = rw.checkCode(out, rw.loopCosts[rw.loops])
				rw.loops++
				rw.since, last = 0, r.pos
			}
			continue
		case op == opEnd:
			out = append(out, op)
			if depth == 0 {
				return out, nil
			}
			depth--
			continue
		case op == opGlobalGet || op == opGlobalSet:
			if err := rw.globalIndex(r); err != nil {
				return nil, err
			}
			out = append(out, r.buf[start:r.pos]...)
			continue
		case op == opCallIndir:
			if err := rw.typeIndex(r); err != nil {
				return nil, err
			}
			if err := r.skipLEB(5); err != nil { // table
				return nil, err
			}
			out = append(out, r.buf[start:r.pos]...)
			extra = uint64(max(rw.largestLeaf, exitWeight))
			continue
		case op == opRefFunc && withChecks:
			// wazero's compiler allocates a function reference on the Go heap at every
			// ref.func it runs, kept until the instance closes: a loop of them grew the host's
			// heap by 632 MiB in 5 s, outside the memory limit. Compilers use table indices for
			// function pointers; ref.func stays allowed in initialisers, run once.
			return nil, r.errorf("%w", ErrRefFuncInCode)
		case op == opCall || op == opRefFunc:
			i, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(append(out, op), rw.funcIndex(i))
			if op == opCall {
				extra = uint64(rw.leafSize(i)) + uint64(rw.paramBytes(i))
			}
			continue
		case op == prefixMisc && withChecks:
			sub, err := r.u32()
			if err != nil {
				return nil, err
			}
			if helper := rw.bulkHelper(sub); helper != 0 {
				// memory.copy and memory.fill name memory 0, the only one WebAssembly 2.0 has.
				indices := 1 // fill: one memory index; copy: two
				if sub == 10 {
					indices = 2
				}
				for range indices {
					if b, err := r.byte(); err != nil || b != 0 {
						return nil, r.errorf("a bulk memory instruction names a memory other than 0")
					}
				}
				out = appendU32(append(out, opCall), helper)
				continue
			}
			if err := skipMisc(r, sub); err != nil {
				return nil, err
			}
			if charge := rw.bulkCharge(sub); charge != nil {
				out = append(out, charge...)
				rw.charges++
			}
			out = append(out, r.buf[start:r.pos]...)
			continue
		}
		if err := skipImmediates(r, op); err != nil {
			return nil, err
		}
		if op == 0x40 { // memory.grow
			extra = exitWeight
		}
		out = append(out, r.buf[start:r.pos]...)
	}
}

// entryCheckNeeded reports whether a function body (r at its first instruction) needs the
// check at its entry, and whether it calls anything. It does not need one when it calls
// nothing (a leaf: its running time is its loops', which are checked, and its length, which
// its callers' checks charge), nor when every call of it reaches a loop header before
// anything that could branch, call or end: that header's check runs first, charging the whole
// function. Go's compiler makes almost every function a loop (its resume points), entered at
// once.
func entryCheckNeeded(r reader) (need, calls bool, err error) {
	straight, leadingLoop := true, false
	for !r.done() {
		op, err := r.byte()
		if err != nil {
			return false, false, err
		}
		switch op {
		case opLoop:
			if straight {
				leadingLoop = true
			}
			straight = false
		case opBlock, opGlobalGet, opGlobalSet, opI32Const, 0x20, 0x21, 0x22, 0x01: // straight on
		case opCall, opCallIndir:
			calls = true
			straight = false
		default:
			straight = false
		}
		switch op {
		case opBlock, opLoop, opIf:
			err = r.skipLEB(5)
		case opEnd:
		case opCall, opRefFunc:
			_, err = r.u32()
		default:
			err = skipImmediates(&r, op)
		}
		if err != nil {
			return false, false, err
		}
	}
	return calls && !leadingLoop, calls, nil
}

// skipImmediates passes over the immediates of op, which has been read.
func skipImmediates(r *reader, op byte) error {
	switch {
	case op == 0x00 || op == 0x01 || op == opElse || op == opEnd || op == 0x0f || op == 0x1a || op == 0x1b:
		// unreachable, nop, else, end, return, drop, select
		return nil
	case op == 0x0c || op == 0x0d: // br, br_if: label
		return r.skipLEB(5)
	case op == opBlock || op == opLoop || op == opIf:
		_, err := r.blockType()
		return err
	case op == opCall || op == opRefFunc: // function index
		_, err := r.u32()
		return err
	case op == 0x0e: // br_table: labels and a default
		n, err := r.count()
		if err != nil {
			return err
		}
		for i := uint64(0); i <= uint64(n); i++ {
			if err := r.skipLEB(5); err != nil {
				return err
			}
		}
		return nil
	case op == 0x11: // call_indirect: type, table
		return skipN(r, 2)
	case op == 0x1c: // select with types
		n, err := r.count()
		for i := uint32(0); i < n && err == nil; i++ {
			err = r.valType()
		}
		return err
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set: an index
		return r.skipLEB(5)
	case op >= 0x28 && op <= 0x3e: // loads and stores: memarg (align, offset)
		return skipN(r, 2)
	case op == 0x3f || op == 0x40: // memory.size, memory.grow: memory index
		return r.skipLEB(5)
	case op == opI32Const:
		return r.skipLEB(5)
	case op == 0x42: // i64.const
		return r.skipLEB(10)
	case op == 0x43: // f32.const
		_, err := r.bytes(4)
		return err
	case op == 0x44: // f64.const
		_, err := r.bytes(8)
		return err
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension: none
		return nil
	case op == 0xd0: // ref.null: reference type
		return r.refType()
	case op == 0xd1: // ref.is_null
		return nil
	case op == prefixMisc:
		sub, err := r.u32()
		if err != nil {
			return err
		}
		return skipMisc(r, sub)
	case op == prefixVector:
		return skipVector(r)
	}
	return r.errorf("instruction 0x%02x is not in WebAssembly 2.0", op)
}

// bulkHelper is the function that does the 0xfc instruction sub in chunks (bulk.go), or 0.
func (rw *rewriter) bulkHelper(sub uint32) uint32 {
	switch {
	case rw.fillFunc == 0:
		return 0
	case sub == 11:
		return rw.fillFunc
	case sub == 10:
		return rw.copyFunc
	}
	return 0
}

// bulkCharge is the charge (chargeCode) before the 0xfc instruction sub, if it has one.
func (rw *rewriter) bulkCharge(sub uint32) []byte {
	switch sub {
	case 8, 10, 11: // memory.init, memory.copy, memory.fill
		return rw.chargeMemory
	case 12, 14, 17: // table.init, table.copy, table.fill
		return rw.chargeTable
	}
	return nil
}

// skipMisc passes over the immediates of the 0xfc instruction sub: saturating truncations,
// bulk memory and tables.
func skipMisc(r *reader, sub uint32) error {
	switch {
	case sub <= 7: // trunc_sat
		return nil
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		return skipN(r, 2)
	case sub <= 17: // data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
		return r.skipLEB(5)
	}
	return r.errorf("instruction 0xfc %d is not in WebAssembly 2.0", sub)
}

// skipVector passes over a 0xfd (SIMD) instruction.
// Its sub-opcode is one byte, as wazero reads it (the format says a LEB128: the two differ
// from 0x80 on, and a decoder that disagreed with wazero's would pass over bytes wazero runs).
func skipVector(r *reader) error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	sub := uint32(b)
	switch {
	case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // loads and stores: memarg
		return skipN(r, 2)
	case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle: 16 bytes
		_, err := r.bytes(16)
		return err
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane: a lane
		_, err := r.byte()
		return err
	case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane: memarg and a lane
		if err := skipN(r, 2); err != nil {
			return err
		}
		_, err := r.byte()
		return err
	case sub <= 0xff:
		return nil
	}
	return r.errorf("instruction 0xfd %d is not in WebAssembly 2.0", sub)
}

// skipN passes over n unsigned 32-bit LEB128s.
func skipN(r *reader, n int) error {
	for i := 0; i < n; i++ {
		if err := r.skipLEB(5); err != nil {
			return err
		}
	}
	return nil
}
