package abi

// The outcome of a broadcast (since 1.7): broadcast writes one little-endian i32 per worker,
// by worker index, into the buffer the guest passes: 0 when that worker got the message (and
// for the sender), or the Errno it refused it with.

// BroadcastCodeSize is the bytes of one worker's code in broadcast's result buffer.
const BroadcastCodeSize = 4

// PutBroadcastCode writes worker's code into codes, if codes has room for it, and reports
// whether it had.
func PutBroadcastCode(codes []byte, worker int, code int32) bool {
	at := worker * BroadcastCodeSize
	if worker < 0 || at+BroadcastCodeSize > len(codes) {
		return false
	}
	c := uint32(code)
	codes[at], codes[at+1], codes[at+2], codes[at+3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
	return true
}

// BroadcastRefusals decodes broadcast's result buffer: the workers that did not get the
// message, in order, and the code of each. Bytes past the last whole code are ignored, and
// so is any code that is not negative (only errors are refusals).
func BroadcastRefusals(codes []byte) (workers []int, errs []Errno) {
	for w := 0; (w+1)*BroadcastCodeSize <= len(codes); w++ {
		b := codes[w*BroadcastCodeSize:]
		c := int32(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
		if c < 0 {
			workers = append(workers, w)
			errs = append(errs, Errno(c))
		}
	}
	return workers, errs
}
