package abi

import (
	"slices"
	"testing"
)

func TestBroadcastCodes(t *testing.T) {
	codes := make([]byte, 4*BroadcastCodeSize+2) // two stray bytes past the last whole code
	for w, c := range []int32{0, int32(ELIMIT), 0, int32(ECLOSED)} {
		if !PutBroadcastCode(codes, w, c) {
			t.Fatalf("no room for worker %d", w)
		}
	}
	if PutBroadcastCode(codes, 4, -1) || PutBroadcastCode(codes, -1, -1) {
		t.Fatal("a code written outside the buffer")
	}
	codes[16], codes[17] = 0xff, 0xff
	workers, errs := BroadcastRefusals(codes)
	if !slices.Equal(workers, []int{1, 3}) || !slices.Equal(errs, []Errno{ELIMIT, ECLOSED}) {
		t.Fatalf("refusals %v %v, want [1 3] [ELIMIT ECLOSED]", workers, errs)
	}
	if w, e := BroadcastRefusals(nil); w != nil || e != nil {
		t.Fatalf("empty buffer: %v %v", w, e)
	}
}

// FuzzBroadcastRefusals: any buffer decodes without a panic into refusals that are negative
// codes of workers inside it, and writing them back into a zeroed buffer decodes the same.
func FuzzBroadcastRefusals(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0xf8, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 0, 0, 0x80, 0xfb})
	f.Fuzz(func(t *testing.T, codes []byte) {
		workers, errs := BroadcastRefusals(codes)
		if len(workers) != len(errs) {
			t.Fatalf("%d workers, %d codes", len(workers), len(errs))
		}
		again := make([]byte, len(codes))
		for i, w := range workers {
			if w < 0 || (w+1)*BroadcastCodeSize > len(codes) || errs[i] >= 0 || (i > 0 && w <= workers[i-1]) {
				t.Fatalf("refusal %d: worker %d code %d in %d bytes", i, w, errs[i], len(codes))
			}
			if !PutBroadcastCode(again, w, int32(errs[i])) {
				t.Fatalf("no room for worker %d in %d bytes", w, len(again))
			}
		}
		w2, e2 := BroadcastRefusals(again)
		if !slices.Equal(workers, w2) || !slices.Equal(errs, e2) {
			t.Fatalf("round trip: %v %v, then %v %v", workers, errs, w2, e2)
		}
	})
}

// Known tells the codes of ABI.md §1, which have names, from any other value.
func TestErrnoKnown(t *testing.T) {
	for e := EDENIED; e <= EBADHANDLE; e++ {
		if !e.Known() {
			t.Errorf("%d (%v) is not known", e, e)
		}
	}
	for _, e := range []Errno{0, 1, EDENIED - 1, -100} {
		if e.Known() {
			t.Errorf("%d is known", e)
		}
	}
}
