package guestout

import "bytes"

// ring holds the bytes accepted and not yet taken by the drain, in order, in storage that
// wraps around. A byte is named by its position in the stream (how many bytes were accepted
// before it), which stays valid as the storage wraps and grows; that is what lets Write take
// back an unfinished line by moving w to where the line began.
type ring struct {
	buf  []byte
	r, w uint64 // the bytes at positions [r, w) are held, at buf[pos%len(buf)]
}

// minRing is the storage a ring starts with when it first holds something: one drain chunk,
// so that a quiet guest costs little and a busy one doubles its way to the limit.
const minRing = chunk

// len returns the number of bytes held.
func (q *ring) len() int { return int(q.w - q.r) }

// append adds p after the bytes held, growing the storage up to limit. The caller has checked
// that q.len()+len(p) <= limit.
func (q *ring) append(p []byte, limit int) {
	if need := q.len() + len(p); need > len(q.buf) {
		q.grow(need, limit)
	}
	q.put(p)
}

// grow replaces the storage with one of at least need bytes (doubling, so that appends cost
// amortised constant time), at most limit, keeping the bytes held at their positions.
func (q *ring) grow(need, limit int) {
	size := min(max(need, 2*len(q.buf), minRing), limit)
	a, b := q.held()
	q.buf = make([]byte, size)
	q.w = q.r
	q.put(a)
	q.put(b)
}

// put writes p at position w, wrapping; the storage has room for it.
func (q *ring) put(p []byte) {
	if len(p) == 0 {
		return
	}
	i := int(q.w % uint64(len(q.buf)))
	n := copy(q.buf[i:], p)
	copy(q.buf, p[n:])
	q.w += uint64(len(p))
}

// held returns the bytes held, as the one or two pieces of storage they occupy.
func (q *ring) held() (a, b []byte) {
	if q.r == q.w {
		return nil, nil
	}
	size := uint64(len(q.buf))
	i, j := q.r%size, q.w%size
	if i < j {
		return q.buf[i:j], nil
	}
	return q.buf[i:], q.buf[:j]
}

// truncate forgets the bytes from position pos on (r <= pos <= w).
func (q *ring) truncate(pos uint64) { q.w = pos }

// take moves bytes from the front of the ring into dst and returns how many. When more are
// held than fit, it stops after the last newline that fits, if there is one, so that what the
// drain writes at once is whole lines.
func (q *ring) take(dst []byte) int {
	a, b := q.held()
	n := min(q.len(), len(dst))
	k := copy(dst[:n], a)
	copy(dst[k:n], b)
	if n < q.len() {
		if i := bytes.LastIndexByte(dst[:n], '\n'); i >= 0 {
			n = i + 1
		}
	}
	q.r += uint64(n)
	return n
}
