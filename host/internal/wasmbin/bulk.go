package wasmbin

// Bulk memory operations in chunks. A charge before memory.fill or memory.copy (chargeCode)
// bounds how often a guest may run them between two ticks, but not how long one runs: one
// fill of a 256 MiB memory took 25-30 ms, 200 ms on its first touch, 6.6 s at 2 GiB, and the
// garbage collector waited for all of it. So the rewrite adds two functions to a module with a
// memory, and every memory.fill and memory.copy becomes a call of one: it checks the bounds as
// the instruction would (trapping before it writes anything), then does the work a MiB at a
// time, charging each MiB, so a call past its budget ends, and a collection starts, between
// two chunks. memory.copy goes backwards when the destination is above the source, as the
// instruction's own semantics for overlapping ranges require. memory.init and the table
// operations keep the charge alone: their lengths are bounded by a segment or a table (2^20
// elements).

const (
	bulkChunk = 1 << 20
	i64Extend = 0xad // i64.extend_i32_u
	i64Add    = 0x7c
	i64Shl    = 0x86
	i64GtU    = 0x56
	i64Const  = 0x42
	i32Eqz    = 0x45
	i32LtU    = 0x49
	i32LeU    = 0x4d
	i32Add    = 0x6a
	i32Or     = 0x72
	opSelect  = 0x1b
	localGet  = 0x20
	localSet  = 0x21
	opBrIf    = 0x0d
	opBr      = 0x0c
	opUnreach = 0x00
)

// bulkType is the helpers' type, (i32, i32, i32) -> ().
var bulkType = []byte{0x60, 3, 0x7f, 0x7f, 0x7f, 0}

// outOfBounds appends: end of [local a, +local n) past the memory, as an i32 (1: past).
func outOfBounds(c []byte, a byte) []byte {
	return append(c, localGet, a, i64Extend, localGet, 2, i64Extend, i64Add,
		0x3f, 0, i64Extend, i64Const, 16, i64Shl, i64GtU)
}

// chunkStep appends: chunk (local 3) = min(n, bulkChunk), charged to the countdown.
func (rw *rewriter) chunkStep(c []byte) []byte {
	c = append(c, localGet, 2)
	c = appendS32(append(c, opI32Const), bulkChunk)
	c = append(c, localGet, 2)
	c = appendS32(append(c, opI32Const), bulkChunk)
	c = append(c, i32LtU, opSelect, localSet, 3)
	c = appendU32(append(c, opGlobalGet), rw.countdown)
	c = append(c, localGet, 3, opI32Const, memoryChargeShift, opI32ShrU, opI32Sub, opI32Const, 1, opI32Sub, opGlobalSet)
	c = appendU32(c, rw.countdown)
	return rw.tickIfSpent(c)
}

// fillBody is the body of the fill helper: (d, v, n), one i32 local for the chunk.
func (rw *rewriter) fillBody() []byte {
	c := []byte{1, 1, 0x7f} // one local i32
	c = outOfBounds(c, 0)
	c = append(c, opIf, blockEmpty, opUnreach, opEnd)
	c = append(c, opBlock, blockEmpty, opLoop, blockEmpty, localGet, 2, i32Eqz, opBrIf, 1)
	c = rw.chunkStep(c)
	c = append(c, localGet, 0, localGet, 1, localGet, 3, prefixMisc, 11, 0)
	c = append(c, localGet, 0, localGet, 3, i32Add, localSet, 0)
	c = append(c, localGet, 2, localGet, 3, opI32Sub, localSet, 2, opBr, 0, opEnd, opEnd)
	return append(c, opEnd)
}

// copyBody is the body of the copy helper: (d, s, n), forwards when d <= s, else backwards.
func (rw *rewriter) copyBody() []byte {
	c := []byte{1, 1, 0x7f}
	c = outOfBounds(c, 0)
	c = outOfBounds(c, 1)
	c = append(c, i32Or, opIf, blockEmpty, opUnreach, opEnd)
	c = append(c, localGet, 0, localGet, 1, i32LeU, opIf, blockEmpty)
	// forwards
	c = append(c, opBlock, blockEmpty, opLoop, blockEmpty, localGet, 2, i32Eqz, opBrIf, 1)
	c = rw.chunkStep(c)
	c = append(c, localGet, 0, localGet, 1, localGet, 3, prefixMisc, 10, 0, 0)
	c = append(c, localGet, 0, localGet, 3, i32Add, localSet, 0)
	c = append(c, localGet, 1, localGet, 3, i32Add, localSet, 1)
	c = append(c, localGet, 2, localGet, 3, opI32Sub, localSet, 2, opBr, 0, opEnd, opEnd)
	c = append(c, opElse)
	// backwards: the last chunk first
	c = append(c, opBlock, blockEmpty, opLoop, blockEmpty, localGet, 2, i32Eqz, opBrIf, 1)
	c = rw.chunkStep(c)
	c = append(c, localGet, 2, localGet, 3, opI32Sub, localSet, 2)
	c = append(c, localGet, 0, localGet, 2, i32Add, localGet, 1, localGet, 2, i32Add, localGet, 3, prefixMisc, 10, 0, 0)
	c = append(c, opBr, 0, opEnd, opEnd)
	c = append(c, opEnd)
	return append(c, opEnd)
}
