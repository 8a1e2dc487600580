package wasmbin

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The test module, encoded by hand so the package needs no toolchain. It uses what the
// rewrite renumbers: calls, call_indirect through an element segment, ref.func in a global's
// initialiser, exports, a start function and the name section.
//
//	(import "env" "add1" (func $add1 (param i32) (result i32)))       ;; 0
//	(func $count (param i32) (result i32) (local i32)                  ;; 1: add1 n times, in a loop
//	(func $fib (param i32) (result i32)                                ;; 2: recursive, no loop
//	(func $indirect (param i32) (result i32)                           ;; 3: table[0](n), table[0] = $fib
//	(func $viaref (result i32)                                         ;; 4: table[1](7), table[1] = $count
//	(func $start)                                                      ;; 5: $started = 42
//	(func $gref (result i32)                                           ;; 6: table[1] = $fibref; table[1](10)
//	(global $started (mut i32) (i32.const 0))
//	(global $fibref funcref (ref.func $fib))
func testModule() []byte {
	sec := func(id byte, body ...byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	code := func(locals []byte, instrs ...byte) []byte {
		body := append(append([]byte{}, locals...), instrs...)
		return append(appendU32(nil, uint32(len(body))), body...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	names := cat([]byte{7}, // seven function names
		[]byte{0}, appendName(nil, "add1"), []byte{1}, appendName(nil, "count"),
		[]byte{2}, appendName(nil, "fib"), []byte{3}, appendName(nil, "indirect"),
		[]byte{4}, appendName(nil, "viaref"), []byte{5}, appendName(nil, "start"),
		[]byte{6}, appendName(nil, "gref"))
	return cat(magic,
		sec(secType, 3, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 0, 1, 0x7f, 0x60, 0, 0),
		sec(secImport, cat([]byte{1}, appendName(nil, "env"), appendName(nil, "add1"), []byte{0, 0})...),
		sec(3, 6, 0, 0, 0, 1, 2, 1), // function types
		sec(4, 1, 0x70, 0, 2),       // table: funcref, 2 slots
		sec(secGlobal, 2, 0x7f, 1, 0x41, 0, 0x0b, 0x70, 0, 0xd2, 2, 0x0b),
		sec(secExport, cat([]byte{6},
			appendName(nil, "count"), []byte{0, 1}, appendName(nil, "fib"), []byte{0, 2},
			appendName(nil, "indirect"), []byte{0, 3}, appendName(nil, "viaref"), []byte{0, 4},
			appendName(nil, "gref"), []byte{0, 6}, appendName(nil, "started"), []byte{3, 0})...),
		sec(secStart, 5),
		sec(secElement, 1, 0, 0x41, 0, 0x0b, 2, 2, 1), // table[0] = $fib, table[1] = $count
		sec(secCode, cat([]byte{6},
			code([]byte{1, 1, 0x7f}, 0x02, 0x40, 0x03, 0x40, 0x20, 0, 0x45, 0x0d, 1,
				0x20, 0, 0x41, 1, 0x6b, 0x21, 0, 0x20, 1, 0x10, 0, 0x21, 1, 0x0c, 0, 0x0b, 0x0b,
				0x20, 1, 0x0b),
			code([]byte{0}, 0x20, 0, 0x41, 2, 0x49, 0x04, 0x7f, 0x20, 0, 0x05, 0x20, 0, 0x41, 1,
				0x6b, 0x10, 2, 0x20, 0, 0x41, 2, 0x6b, 0x10, 2, 0x6a, 0x0b, 0x0b),
			code([]byte{0}, 0x20, 0, 0x41, 0, 0x11, 0, 0, 0x0b),
			code([]byte{0}, 0x41, 7, 0x41, 1, 0x11, 0, 0, 0x0b),
			code([]byte{0}, 0x41, 42, 0x24, 0, 0x0b),
			code([]byte{0}, 0x41, 1, 0x23, 1, 0x26, 0, 0x41, 10, 0x41, 1, 0x11, 0, 0, 0x0b),
		)...),
		sec(secCustom, cat(appendName(nil, "name"), []byte{1}, appendU32(nil, uint32(len(names))), names)...),
		sec(secCustom, cat(appendName(nil, ".debug_info"), []byte{1, 2, 3})...),
	)
}

// run instantiates wasm with env.add1 and, if metered, a tick that hands out fuel counts and
// ends the call after maxTicks.
func run(t *testing.T, wasm []byte, fuel int32, maxTicks int64) (api.Module, *atomic.Int64) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	_, err := r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(v int32) int32 { return v + 1 }).Export("add1").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ticks := new(atomic.Int64)
	_, err = r.NewHostModuleBuilder(MeterModule).NewFunctionBuilder().WithFunc(func(int32) int32 {
		if ticks.Add(1) > maxTicks {
			panic(errors.New("out of ticks"))
		}
		return fuel
	}).Export(MeterFunc).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := r.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return mod, ticks
}

func call(t *testing.T, mod api.Module, name string, args ...uint64) (uint64, error) {
	t.Helper()
	res, err := mod.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		return 0, err
	}
	return res[0], nil
}

func TestInstrumentedModuleComputesTheSame(t *testing.T) {
	orig := testModule()
	inst, err := Meter(orig)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := run(t, orig, 0, 0)
	b, ticks := run(t, inst, 10, 1<<40)
	for _, c := range []struct {
		fn   string
		args []uint64
		want uint64
	}{
		{"count", []uint64{1000}, 1000},
		{"fib", []uint64{20}, 6765},
		{"indirect", []uint64{15}, 610},
		{"viaref", nil, 7},
		{"gref", nil, 55},
	} {
		for _, m := range []api.Module{a, b} {
			got, err := call(t, m, c.fn, c.args...)
			if err != nil || got != c.want {
				t.Errorf("%s%v = %d, %v; want %d", c.fn, c.args, got, err, c.want)
			}
		}
	}
	if g := b.ExportedGlobal("started").Get(); g != 42 {
		t.Errorf("the start function did not run: started = %d", g)
	}
	// count(1000) alone passed 1001 loop headers and fib(20) made 21,891 calls: at 10 a tick,
	// thousands of ticks.
	if n := ticks.Load(); n < 2000 {
		t.Errorf("%d ticks, want the checks to call tick every 10 loop headers or entries", n)
	}
	// The name section still names the right functions.
	if got := b.ExportedFunction("fib").Definition().Name(); got != "fib" {
		t.Errorf("fib is named %q after the rewrite", got)
	}
	if got := b.ExportedFunction("gref").Definition().Name(); got != "gref" {
		t.Errorf("gref is named %q after the rewrite", got)
	}
	if bytes.Contains(inst, []byte(".debug_info")) {
		t.Error("DWARF kept, with code offsets the rewrite made wrong")
	}
}

func TestTickEndsALoopAndARecursion(t *testing.T) {
	inst, err := Meter(testModule())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fn  string
		arg uint64
	}{{"count", 1 << 31}, {"fib", 60}, {"indirect", 60}} {
		mod, ticks := run(t, inst, 1000, 50)
		_, err := call(t, mod, c.fn, c.arg)
		if err == nil || !strings.Contains(err.Error(), "out of ticks") {
			t.Errorf("%s(%d) = %v, want the tick's panic", c.fn, c.arg, err)
		}
		if n := ticks.Load(); n != 51 {
			t.Errorf("%s: %d ticks, want 51", c.fn, n)
		}
	}
}

func TestInstrumentRefuses(t *testing.T) {
	m := testModule()
	imp := append(append([]byte{1}, appendName(appendName(nil, MeterModule), MeterFunc)...), 0, 0)
	withImport := append(append(bytes.Clone(magic), 1, 4, 1, 0x60, 0, 0, secImport, byte(len(imp))), imp...)
	// A 0xfe (threads) instruction in place of count's local.get: not WebAssembly 2.0.
	i := bytes.Index(m, []byte{0x02, 0x40, 0x03, 0x40, 0x20, 0})
	threads := bytes.Clone(m)
	threads[i+4] = 0xfe
	// $start sets global 2, which does not exist, but would be the countdown after the rewrite.
	setsCountdown := bytes.Replace(m, []byte{0x41, 42, 0x24, 0, 0x0b}, []byte{0x41, 42, 0x24, 2, 0x0b}, 1)
	// $indirect's call_indirect names type 3, which does not exist, but would be tick's.
	tickType := bytes.Replace(m, []byte{0x41, 0, 0x11, 0, 0, 0x0b}, []byte{0x41, 0, 0x11, 3, 0, 0x0b}, 1)
	// $start's i32.const 42 made ref.func $count, dropped: a function reference per run.
	refFunc := bytes.Replace(m, []byte{0x41, 42, 0x24, 0, 0x0b}, []byte{0xd2, 1, 0x1a, 0x01, 0x0b}, 1)
	for _, c := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"writes the countdown", setsCountdown, "global 2 does not exist"},
		{"uses the tick's type", tickType, "type 3 does not exist"},
		{"empty", nil, "not a WebAssembly"},
		{"truncated", m[:len(m)/2], "unexpected end"},
		{"imports the meter", withImport, "only the host may add"},
		{"threads", threads, "not in WebAssembly 2.0"},
		{"ref.func in code", refFunc, "ref.func in a function body"},
		{"section out of order", append(bytes.Clone(m), 1, 1, 0), "out of order"},
	} {
		if _, err := Meter(c.wasm); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

// FuzzMeter: neither Check nor the rewrites panic; of the modules Check lets through,
// LimitTables keeps every one the runtime accepts acceptable, and Meter turns every one the
// runtime accepts into a module it accepts, and none it refuses into one it accepts. The
// corpus (testdata/fuzz) has C guests built with clang.
func FuzzMeter(f *testing.F) {
	f.Add(testModule())
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	compiles := func(wasm []byte) error {
		cm, err := r.CompileModule(ctx, wasm)
		if err == nil {
			cm.Close(ctx)
		}
		return err
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Meter(wasm)
		if Check(wasm) != nil {
			return // wazero could allocate gigabytes reading it
		}
		orig := compiles(wasm)
		if lim, lerr := LimitTables(wasm); orig == nil && lerr == nil {
			if err := compiles(lim); err != nil {
				t.Fatalf("the module with its tables limited is refused: %v", err)
			}
		}
		switch {
		case orig == nil && (errors.Is(err, ErrRefFuncInCode) || errors.Is(err, ErrTooManyChecks)):
		case orig == nil && err != nil:
			t.Fatalf("the runtime accepts the module, the rewrite refuses it: %v", err)
		case orig == nil:
			if err := compiles(out); err != nil {
				t.Fatalf("the rewritten module is refused: %v", err)
			}
		case err == nil:
			// The rewrite must not make a module the runtime refused valid.
			if compiles(out) == nil {
				t.Fatalf("the runtime refuses the module (%v), but accepts it rewritten", orig)
			}
		}
	})
}

// bulkModule's f fills 1 MiB of memory a hundred times over in straight-line code, then
// copies 1,000 bytes and fills 100 table slots, and returns a byte the fills wrote (7).
func bulkModule() []byte {
	sec := func(id byte, body ...byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	body := []byte{0} // no locals
	for range 100 {   // memory.fill(0, 7, 1 MiB)
		body = append(body, opI32Const, 0, opI32Const, 7, opI32Const, 0x80, 0x80, 0xc0, 0x00, prefixMisc, 11, 0)
	}
	body = append(body, opI32Const, 16, opI32Const, 0, opI32Const, 0xe8, 0x07, prefixMisc, 10, 0, 0) // memory.copy(16, 0, 1000)
	body = append(body, opI32Const, 0, 0xd0, 0x70, opI32Const, 0xe4, 0x00, prefixMisc, 17, 0)        // table.fill(0, null, 100)
	body = append(body, opI32Const, 20, 0x2d, 0, 0, opEnd)                                           // i32.load8_u 20
	return bytes.Join([][]byte{magic,
		sec(secType, 1, 0x60, 0, 1, 0x7f),
		sec(secFunction, 1, 0),
		sec(secTable, 1, 0x70, 0, 0x80, 0x01), // 128 funcref slots
		sec(secMemory, 1, 0, 16),              // 1 MiB
		sec(secExport, append(appendName([]byte{1}, "f"), 0, 0)...),
		sec(secCode, append(append([]byte{1}, appendU32(nil, uint32(len(body)))...), body...)...),
	}, nil)
}

// A bulk operation is charged by its length: straight-line code of nothing but fills reaches
// tick as often as 4 KiB of filling makes a count, and tick can end it.
func TestBulkOperationsAreCharged(t *testing.T) {
	orig := bulkModule()
	inst, err := Meter(orig)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := run(t, orig, 0, 0)
	b, ticks := run(t, inst, 1000, 1<<40)
	for _, m := range []api.Module{a, b} {
		if got, err := call(t, m, "f"); err != nil || got != 7 {
			t.Fatalf("f() = %d, %v; want 7", got, err)
		}
	}
	// 100 fills of 256 counts and one each, three operations of one count: 25,703 counts, a
	// tick per 1,000 (25), and one more for each fill that overdrew its count.
	if n := ticks.Load(); n < 25 || n > 125 {
		t.Errorf("%d ticks, want 25 to 125: one count per 4 KiB filled", n)
	}
	b, ticks = run(t, inst, 1000, 5)
	if _, err := call(t, b, "f"); err == nil || !strings.Contains(err.Error(), "out of ticks") {
		t.Errorf("f() = %v, want the tick's panic", err)
	}
	if n := ticks.Load(); n != 6 {
		t.Errorf("%d ticks, want 6", n)
	}
}

// A loop whose body calls a leaf (a function that calls nothing, so it has no check of its
// own) pays for the leaf's code: an adversarial review ran 1,000 calls of a 2,000-instruction
// leaf per loop iteration, a minute between two ticks. Here each iteration calls a 3 KiB leaf
// ten times: about 30 counts an iteration, so 1,000 iterations at 1,000 counts a tick are some
// 30 ticks, where counting iterations alone made it one.
func TestLeafCallsAreCharged(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	leaf := []byte{0}
	for range 1000 {
		leaf = append(leaf, opI32Const, 0, 0x1a) // i32.const 0, drop
	}
	leaf = append(leaf, opEnd)
	spin := []byte{0, opBlock, blockEmpty, opLoop, blockEmpty, 0x20, 0, 0x45, 0x0d, 1} // until n == 0:
	for range 10 {
		spin = append(spin, opCall, 0)
	}
	spin = append(spin, 0x20, 0, opI32Const, 1, opI32Sub, 0x21, 0, 0x0c, 0, opEnd, opEnd, 0x20, 0, opEnd)
	code := appendU32(nil, 2)
	code = append(appendU32(code, uint32(len(leaf))), leaf...)
	code = append(appendU32(code, uint32(len(spin))), spin...)
	m := bytes.Join([][]byte{magic,
		sec(secType, []byte{2, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f}),
		sec(secFunction, []byte{2, 0, 1}),
		sec(secExport, append(appendName([]byte{1}, "spin"), 0, 1)),
		sec(secCode, code),
	}, nil)
	inst, err := Meter(m)
	if err != nil {
		t.Fatal(err)
	}
	mod, ticks := run(t, inst, 1000, 1<<40)
	if got, err := call(t, mod, "spin", 1000); err != nil || got != 0 {
		t.Fatalf("spin(1000) = %d, %v", got, err)
	}
	if n := ticks.Load(); n < 25 {
		t.Errorf("%d ticks for 10,000 calls of a 3 KiB leaf, want about 30: the leaf's code is not charged", n)
	}
}

// memory.fill and memory.copy become calls of the bulk helpers: the same results, overlapping
// copies in both directions included, the same trap before any write out of bounds, and a
// large one ends between chunks.
func TestBulkHelpers(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	i32 := func(v int32) []byte { return appendS32([]byte{opI32Const}, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	// f: fill [0, 32 MiB) with 7; store 1..200 at 1000..1199; copy [1000,1200) to 1010
	// (backwards) and [1010,1210) to 1005 (forwards); return the byte at 1000+arg.
	var stores []byte
	for i := range int32(200) {
		stores = cat(stores, i32(1000+i), i32(i+1), []byte{0x3a, 0, 0}) // i32.store8
	}
	f := cat([]byte{0}, i32(0), i32(7), i32(32<<20), []byte{prefixMisc, 11, 0}, stores,
		i32(1010), i32(1000), i32(200), []byte{prefixMisc, 10, 0, 0},
		i32(1005), i32(1010), i32(200), []byte{prefixMisc, 10, 0, 0},
		[]byte{0x20, 0}, i32(1000), []byte{0x6a, 0x2d, 0, 0, opEnd})
	// oob(): fill 20 bytes from 10 below the end: traps, writing nothing.
	oob := cat([]byte{0}, i32(32<<20-10), i32(9), i32(20), []byte{prefixMisc, 11, 0, opEnd})
	code := cat(appendU32(nil, 2), appendU32(nil, uint32(len(f))), f, appendU32(nil, uint32(len(oob))), oob)
	m := cat(magic,
		sec(secType, []byte{2, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 0, 0}),
		sec(secFunction, []byte{2, 0, 1}),
		sec(secMemory, []byte{1, 0, 0x80, 0x04}), // 512 pages: 32 MiB
		sec(secExport, cat(appendName([]byte{2}, "f"), []byte{0, 0}, appendName(nil, "oob"), []byte{0, 1})),
		sec(secCode, code))
	inst, err := Meter(m)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := run(t, m, 0, 0)
	b, _ := run(t, inst, 4096, 1<<40)
	for _, off := range []uint64{0, 4, 5, 9, 10, 11, 100, 199, 204, 205, 209, 210, 250} {
		want, err1 := call(t, a, "f", off)
		got, err2 := call(t, b, "f", off)
		if err1 != nil || err2 != nil || got != want {
			t.Errorf("byte %d: %d, %v rewritten; %d, %v as it came", 1000+off, got, err2, want, err1)
		}
	}
	for _, mod := range []api.Module{a, b} {
		if _, err := call(t, mod, "oob"); err == nil {
			t.Error("a fill past the end did not trap")
		}
		if v, _ := mod.Memory().ReadByte(32<<20 - 10); v != 7 {
			t.Errorf("the fill that trapped wrote %d at its first byte", v)
		}
	}
	// 32 MiB at 100 counts a tick is some 80 ticks inside the one fill: it ends there.
	c, ticks := run(t, inst, 100, 3)
	if _, err := call(t, c, "f", 0); err == nil || !strings.Contains(err.Error(), "out of ticks") {
		t.Errorf("f = %v, want the fill ended between chunks", err)
	}
	if n := ticks.Load(); n != 4 {
		t.Errorf("%d ticks, want 4", n)
	}
}

// A function with more loops than MaxChecksPerFunction is refused: metered, its compile time
// would grow with the square of its branches.
func TestTooManyChecks(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	body := []byte{0}
	for range MaxChecksPerFunction + 1 {
		body = append(body, opLoop, blockEmpty, opEnd)
	}
	body = append(body, opEnd)
	code := append(appendU32(appendU32(nil, 1), uint32(len(body))), body...)
	m := bytes.Join([][]byte{magic, sec(secType, []byte{1, 0x60, 0, 0}), sec(secFunction, []byte{1, 0}), sec(secCode, code)}, nil)
	if _, err := Meter(m); !errors.Is(err, ErrTooManyChecks) {
		t.Errorf("%d loops in a function: %v, want ErrTooManyChecks", MaxChecksPerFunction+1, err)
	}
}

// A long straight stretch gets checks of its own: a third review called a 64 KiB leaf 30,000
// times in one stretch (9 s between two ticks). Here 200 calls of a 64 KiB leaf, at 1,000
// counts a tick, end at the fifth tick inside the stretch.
func TestLongStretchIsSplit(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	leaf := []byte{0}
	for range 64 << 10 / 3 {
		leaf = append(leaf, opI32Const, 0, 0x1a) // i32.const 0, drop
	}
	leaf = append(leaf, opEnd)
	stretch := []byte{0}
	for range 200 {
		stretch = append(stretch, opCall, 0)
	}
	stretch = append(stretch, opI32Const, 0, opEnd)
	code := appendU32(nil, 2)
	code = append(appendU32(code, uint32(len(leaf))), leaf...)
	code = append(appendU32(code, uint32(len(stretch))), stretch...)
	m := bytes.Join([][]byte{magic,
		sec(secType, []byte{2, 0x60, 0, 0, 0x60, 0, 1, 0x7f}),
		sec(secFunction, []byte{2, 0, 1}),
		sec(secExport, append(appendName([]byte{1}, "f"), 0, 1)),
		sec(secCode, code),
	}, nil)
	inst, err := Meter(m)
	if err != nil {
		t.Fatal(err)
	}
	mod, ticks := run(t, inst, 1000, 5)
	if _, err := call(t, mod, "f"); err == nil || !strings.Contains(err.Error(), "out of ticks") {
		t.Errorf("f() = %v, want it ended inside the stretch", err)
	}
	if n := ticks.Load(); n != 6 {
		t.Errorf("%d ticks, want 6", n)
	}
}

// A module with a memory and an empty code section but no function section stays valid with
// the bulk helpers added (a third review: "inconsistent lengths").
func TestHelpersWithoutFunctionSection(t *testing.T) {
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 5, 3, 1, 0, 1, 10, 1, 0}
	out, err := Meter(m)
	if err != nil {
		t.Fatal(err)
	}
	r := wazero.NewRuntime(context.Background())
	defer r.Close(context.Background())
	if _, err := r.CompileModule(context.Background(), out); err != nil {
		t.Errorf("the rewritten module is refused: %v", err)
	}
}

// A call of an import weighs more than its bytes: a chain of them reaches tick.
func TestImportCallsWeigh(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	chain := []byte{0, opI32Const, 0}
	for range 2000 {
		chain = append(chain, opCall, 0) // add1(add1(…))
	}
	chain = append(chain, opEnd)
	m := bytes.Join([][]byte{magic,
		sec(secType, []byte{2, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 0, 1, 0x7f}),
		sec(secImport, append(appendName(appendName([]byte{1}, "env"), "add1"), 0, 0)),
		sec(secFunction, []byte{1, 1}),
		sec(secExport, append(appendName([]byte{1}, "f"), 0, 1)),
		sec(secCode, append(appendU32(appendU32(nil, 1), uint32(len(chain))), chain...)),
	}, nil)
	inst, err := Meter(m)
	if err != nil {
		t.Fatal(err)
	}
	mod, ticks := run(t, inst, 50, 1<<40)
	if got, err := call(t, mod, "f"); err != nil || got != 2000 {
		t.Fatalf("f() = %d, %v", got, err)
	}
	if n := ticks.Load(); n < 3 {
		t.Errorf("%d ticks for 2,000 host calls at 50 counts a tick, want 3 or more", n)
	}
}

// A function's entry charges its frame, parameters included: a review kept 26-76 MiB of
// wazero stack with calls passing 1,000 arguments each, which their code's bytes undercharged.
func TestFrameIsCharged(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
	}
	const nargs = 1000
	params := appendU32(nil, nargs+1)
	for range nargs + 1 {
		params = append(params, 0x7e) // i64
	}
	typ := append(append([]byte{2, 0x60}, params...), 0, 0x60, 1, 0x7e, 1, 0x7f)
	// rec(n, a1..a1000): n == 0 ? return : rec(n-1, a1 x 1000)
	rec := []byte{0, 0x20, 0, 0x50, opIf, blockEmpty, 0x0f, opEnd, 0x20, 0, 0x42, 1, 0x7d}
	for range nargs {
		rec = append(rec, 0x20, 1)
	}
	rec = append(rec, opCall, 0, opEnd)
	// f(n): rec(n, 0 x 1000); 0
	f := []byte{0, 0x20, 0}
	for range nargs {
		f = append(f, 0x42, 0)
	}
	f = append(f, opCall, 0, opI32Const, 0, opEnd)
	code := appendU32(nil, 2)
	code = append(appendU32(code, uint32(len(rec))), rec...)
	code = append(appendU32(code, uint32(len(f))), f...)
	m := bytes.Join([][]byte{magic, sec(secType, typ), sec(secFunction, []byte{2, 0, 1}),
		sec(secExport, append(appendName([]byte{1}, "f"), 0, 1)), sec(secCode, code)}, nil)
	inst, err := Meter(m)
	if err != nil {
		t.Fatal(err)
	}
	mod, ticks := run(t, inst, 1000, 1<<40)
	if _, err := call(t, mod, "f", 1000); err != nil {
		t.Fatal(err)
	}
	// 1,000 frames of 8 KB of arguments: 8 MB, some 8,000 counts, 8 ticks or more.
	if n := ticks.Load(); n < 8 {
		t.Errorf("%d ticks for 8 MB of frames, want 8 or more", n)
	}
}
