package guestout

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// The ring behaves as a plain byte slice that is appended to, taken from the front and cut
// back, through every wrap and growth: checked against one, over a fixed random run.
func TestRingMatchesASlice(t *testing.T) {
	const limit = 3*minRing + 100 // growth stops short of a power of two
	rnd := rand.New(rand.NewPCG(1, 2))
	var q ring
	var model []byte
	var next byte
	dst := make([]byte, chunk)
	for step := range 200000 {
		switch rnd.IntN(3) {
		case 0, 1:
			p := make([]byte, rnd.IntN(min(limit-len(model), 600)+1))
			for i := range p {
				p[i] = next
				if next++; next%37 == 0 {
					p[i] = '\n'
				}
			}
			q.append(p, limit)
			model = append(model, p...)
		case 2:
			if rnd.IntN(8) == 0 {
				cut := len(model) - rnd.IntN(len(model)+1)
				q.truncate(q.r + uint64(cut))
				model = model[:cut]
				continue
			}
			n := q.take(dst[:rnd.IntN(chunk)+1])
			if !bytes.Equal(dst[:n], model[:n]) {
				t.Fatalf("step %d: took %q, want %q", step, dst[:n], model[:n])
			}
			model = model[n:]
		}
		if q.len() != len(model) || len(q.buf) > limit {
			t.Fatalf("step %d: the ring holds %d bytes in %d of storage, want %d in at most %d", step, q.len(), len(q.buf), len(model), limit)
		}
	}
	if len(q.buf) != limit {
		t.Fatalf("the storage grew to %d, never to the limit %d: the run proves little", len(q.buf), limit)
	}
}
