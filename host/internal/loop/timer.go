package loop

import (
	"container/heap"

	"github.com/wasmloop/wasmloop/abi"
)

// timer is a guest timer (handle != 0) or one of the host's own (fn != nil), kept in the
// loop's heap by deadline on the loop's monotonic clock.
type timer struct {
	when     int64 // ns since the loop's epoch
	interval int64 // ns; 0 for one-shot
	index    int   // position in the heap, -1 when not in it
	handle   abi.Handle
	fn       func()
	ref      bool
}

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when < h[j].when }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}

func (h *timerHeap) add(t *timer) { heap.Push(h, t) }

func (h *timerHeap) remove(t *timer) {
	if t.index >= 0 {
		heap.Remove(h, t.index)
	}
}

// next returns the earliest timer without removing it, or nil.
func (h timerHeap) next() *timer {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}
