package loop

import (
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

func TestTableStaleHandles(t *testing.T) {
	tab := newTable[string](abi.KindTimer)
	a := tab.add("a")
	if v, ok := tab.get(a); !ok || v != "a" {
		t.Fatalf("get(a) = %q, %v", v, ok)
	}
	if !tab.remove(a) || tab.remove(a) {
		t.Fatal("remove must succeed once")
	}
	b := tab.add("b") // reuses a's slot with a new generation
	if b.Index() != a.Index() || b.Gen() == a.Gen() {
		t.Fatalf("slot reuse: a=%x b=%x", uint64(a), uint64(b))
	}
	if _, ok := tab.get(a); ok {
		t.Fatal("a stale handle found the slot's new occupant")
	}
	wrongKind := abi.MakeHandle(abi.KindRequest, b.Gen(), b.Index())
	if _, ok := tab.get(wrongKind); ok {
		t.Fatal("a handle of another kind was accepted")
	}
	if _, ok := tab.get(abi.MakeHandle(abi.KindTimer, 1, 99)); ok {
		t.Fatal("an unknown index was accepted")
	}
	if tab.len() != 1 {
		t.Fatalf("len = %d", tab.len())
	}
}

func TestTableGenerationWraps(t *testing.T) {
	tab := newTable[int](abi.KindRequest)
	tab.slots = append(tab.slots, slot[int]{gen: abi.MaxGen})
	tab.free = append(tab.free, 0)
	h := tab.add(1)
	tab.remove(h)
	h2 := tab.add(2)
	if h2.Gen() != 1 {
		t.Fatalf("generation after MaxGen = %d, want 1", h2.Gen())
	}
}

func TestTimerHeapOrder(t *testing.T) {
	var h timerHeap
	ts := []*timer{{when: 30}, {when: 10}, {when: 20}, {when: 5}}
	for _, x := range ts {
		h.add(x)
	}
	h.remove(ts[3])
	var got []int64
	for h.Len() > 0 {
		x := h.next()
		h.remove(x)
		got = append(got, x.when)
	}
	if len(got) != 3 || got[0] != 10 || got[1] != 20 || got[2] != 30 {
		t.Fatalf("order = %v", got)
	}
	if ts[3].index != -1 {
		t.Fatal("removed timer keeps an index")
	}
	// Timers of one deadline come out in the order they went in, as Node fires them.
	var same []*timer
	for range 16 {
		x := &timer{when: 7}
		same = append(same, x)
		h.add(x)
	}
	for i := range 16 {
		x := h.next()
		h.remove(x)
		if x != same[i] {
			t.Fatalf("timer %d of one deadline came out of order", i)
		}
	}
}
