package wasmbin

// What a check charges. Counting loop iterations and function entries alone bounds neither
// the straight-line code between two checks nor the calls to functions that have no check of
// their own (leaves, which call nothing): an adversarial review ran a loop whose body called a
// 2,000-instruction leaf 1,000 times, a minute between two ticks, and the process froze at the
// next garbage collection. So each check charges the code it guards: one count, and one more
// per 1 KiB of the loop body (or function body, at an entry) and of every leaf it calls
// directly (call_indirect: the largest leaf). Between two ticks a guest then runs at most
// about tick's count × 1 KiB of code, loops and all, however it is arranged.

// MaxChecksPerFunction bounds the checks the rewrite adds to one function (one per loop and
// bulk table or segment operation, and at entry). Each adds a branch, and wazero's compile
// time grows with the square of a function's branches: one function of 4,000 loops compiled
// in 0.28 s as it came and 3.1 s metered, 2,000 in 0.08 and 0.63 s, 1,000 in 0.02 and 0.13 s;
// an adversarial review's 20,000 took 97 s. Compilers emit far fewer loops per function.
const MaxChecksPerFunction = 1000

// splitWeight is the most code, with the leaves it calls, that runs between two checks: a
// longer stretch with no loop header in it gets a check of its own every splitWeight. The
// charge at a stretch's head cannot stand for it alone: a third review ran 30,000 calls of a
// 64 KiB leaf in one straight stretch (9 s, the collector waiting for all of it).
const splitWeight = 64 << 10

// exitWeight is what a call of an import (a host function) or memory.grow weighs: a few bytes
// of code that take ~100 ns in Go, as much as ~100 bytes of wasm. A chain of 200,000 of them
// ran 85-115 ms between two ticks when they weighed their bytes alone.
const exitWeight = 128

// leafSize is what a call of function f (an index of the module as it came) costs its caller.
func (rw *rewriter) leafSize(f uint32) uint32 {
	switch {
	case f < rw.firstMoved:
		return exitWeight
	case f-rw.firstMoved < uint32(len(rw.leaves)):
		return rw.leaves[f-rw.firstMoved]
	}
	return 0
}

// costShift: one count per 1<<costShift bytes of code.
const costShift = 10

// maxCost keeps a charge far from the countdown's limits.
const maxCost = 1 << 20

func cost(bytes uint64) uint32 { return uint32(min(1+bytes>>costShift, maxCost)) }

// leafSizes finds, in the code section, the functions that get no check at entry because
// they call nothing, and their sizes: a call to one costs its caller that much. It returns the
// sizes by defined-function index (0 for a function that is not a leaf) and the largest.
func leafSizes(code []byte) (sizes []uint32, largest uint32, err error) {
	r := &reader{buf: code}
	n, err := r.count() // bounded by the bytes there: the module has not been checked yet
	if err != nil {
		return nil, 0, err
	}
	sizes = make([]uint32, n)
	for i := range sizes {
		size, err := r.u32()
		if err != nil {
			return nil, 0, err
		}
		body, err := r.bytes(size)
		if err != nil {
			return nil, 0, err
		}
		br := &reader{buf: body}
		if err := skipLocals(br); err != nil {
			return nil, 0, err
		}
		if _, calls, err := entryCheckNeeded(*br); err != nil {
			return nil, 0, err
		} else if !calls {
			sizes[i] = size
			largest = max(largest, size)
		}
	}
	return sizes, largest, nil
}

// skipLocals passes over a function body's local declarations.
func skipLocals(r *reader) error {
	_, err := readLocals(r)
	return err
}

// readLocals passes over a function body's local declarations and returns the bytes they take
// on wazero's stack: 8 a local, 16 a v128.
func readLocals(r *reader) (uint64, error) {
	groups, err := r.u32()
	if err != nil {
		return 0, err
	}
	var n uint64
	for g := uint32(0); g < groups; g++ {
		count, err := r.u32()
		if err != nil {
			return 0, err
		}
		t, err := r.byte()
		if err != nil {
			return 0, err
		}
		n += uint64(count) * slotBytes(t)
	}
	return n, nil
}

func slotBytes(valType byte) uint64 {
	if valType == 0x7b { // v128
		return 16
	}
	return 8
}

// typeParamBytes reads the type section and returns, by type, the bytes its parameters take.
func typeParamBytes(r *reader) ([]uint32, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out := make([]uint32, n)
	for i := range out {
		if form, err := r.byte(); err != nil || form != 0x60 {
			return nil, r.errorf("not a function type")
		}
		for results := 0; results < 2; results++ {
			count, err := r.count()
			if err != nil {
				return nil, err
			}
			for j := uint32(0); j < count; j++ {
				t, err := r.byte()
				if err != nil {
					return nil, err
				}
				if results == 0 {
					out[i] += uint32(slotBytes(t))
				}
			}
		}
	}
	return out, nil
}

// paramBytes is what the arguments of a call of function f (an index of the module as it
// came) take on the stack.
func (rw *rewriter) paramBytes(f uint32) uint32 {
	m, t := rw.m, uint32(0)
	switch {
	case f < uint32(len(m.importTypes)):
		t = m.importTypes[f]
	case f-m.funcImports < uint32(len(m.fnTypes)):
		t = m.fnTypes[f-m.funcImports]
	default:
		return 0
	}
	if t < uint32(len(m.paramBytes)) {
		return m.paramBytes[t]
	}
	return 0
}

// segmentCosts walks a function's code (r after its locals) and returns the charge of its
// entry check and of each loop's header check, in the order the loops start.
func (rw *rewriter) segmentCosts(r reader) (entry uint32, loops []uint32, err error) {
	type frame struct {
		loop  int // index in loops, or -1 for a block, an if or the function
		start int
		calls uint64 // the sizes of the leaves called directly in it
	}
	start := r.pos
	stack := []frame{{loop: -1, start: start}}
	innermost := func() *frame { // the loop (or the function) a call is charged to
		for i := len(stack) - 1; i > 0; i-- {
			if stack[i].loop >= 0 {
				return &stack[i]
			}
		}
		return &stack[0]
	}
	for {
		op, err := r.byte()
		if err != nil {
			return 0, nil, err
		}
		switch op {
		case opBlock, opIf:
			stack = append(stack, frame{loop: -1})
		case opLoop:
			stack = append(stack, frame{loop: len(loops), start: r.pos - 1})
			loops = append(loops, 0)
		case opEnd:
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if f.loop >= 0 {
				loops[f.loop] = cost(uint64(r.pos-f.start) + f.calls)
			}
			if len(stack) == 0 {
				return cost(uint64(r.pos-start) + f.calls), loops, nil
			}
			continue
		case opCall:
			f, err := r.u32()
			if err != nil {
				return 0, nil, err
			}
			innermost().calls += uint64(rw.leafSize(f)) + uint64(rw.paramBytes(f))
			continue
		case opCallIndir:
			innermost().calls += uint64(max(rw.largestLeaf, exitWeight))
		case 0x40: // memory.grow
			innermost().calls += exitWeight
		}
		if op == opBlock || op == opLoop || op == opIf {
			_, err = r.blockType()
		} else {
			err = skipImmediates(&r, op)
		}
		if err != nil {
			return 0, nil, err
		}
	}
}
