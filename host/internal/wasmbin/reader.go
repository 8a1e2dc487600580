package wasmbin

import (
	"errors"
	"fmt"
)

// reader decodes the WebAssembly binary format's primitives from one byte slice. Its LEB128
// reads keep the format's length limits (5 bytes for 32 and 33 bits, 10 for 64), so an
// instruction ends where every other decoder of the format ends it.
type reader struct {
	buf []byte
	pos int
}

var errTruncated = errors.New("unexpected end")

func (r *reader) done() bool { return r.pos >= len(r.buf) }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.buf) {
		return 0, r.errorf("%w", errTruncated)
	}
	b := r.buf[r.pos]
	r.pos++
	return b, nil
}

// bytes returns the next n bytes (a view, not a copy).
func (r *reader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(r.buf)-r.pos) {
		return nil, r.errorf("%w: %d bytes wanted, %d left", errTruncated, n, len(r.buf)-r.pos)
	}
	b := r.buf[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	var v uint64
	for i := 0; i < 5; i++ {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, r.errorf("integer too large")
			}
			return uint32(v), nil
		}
	}
	return 0, r.errorf("integer representation too long")
}

// count reads the length of a vector and checks it against the bytes left, which must hold
// at least a byte an entry: wazero allocates by the count before it reads the entries.
func (r *reader) count() (uint32, error) {
	n, err := r.u32()
	if err == nil && uint64(n) > uint64(len(r.buf)-r.pos) {
		err = r.errorf("a count of %d with %d bytes left", n, len(r.buf)-r.pos)
	}
	return n, err
}

// s33 reads a signed LEB128 of at most 33 bits: a block type, which is a type index when it
// is not negative.
func (r *reader) s33() (int64, error) {
	var v int64
	for i := 0; i < 5; i++ {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if shift := 7 * (i + 1); b&0x40 != 0 && shift < 64 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
	return 0, r.errorf("integer representation too long")
}

// valType reads a value type of WebAssembly 2.0. Anything else is refused, not passed over:
// wazero reads more encodings than 2.0 has (0x63 and 0x64, a reference with a heap type),
// and a byte read as a type here but as the start of a longer type there would hide the
// instructions that follow from the rewrite.
func (r *reader) valType() error {
	b, err := r.byte()
	if err == nil && !isValType(b) {
		err = r.errorf("value type 0x%02x is not in WebAssembly 2.0", b)
	}
	return err
}

func isValType(b byte) bool { return b >= 0x7b && b <= 0x7f || isRefType(b) }

func isRefType(b byte) bool { return b == 0x70 || b == 0x6f }

// refType reads a reference type of WebAssembly 2.0 (funcref, externref).
func (r *reader) refType() error {
	b, err := r.byte()
	if err == nil && !isRefType(b) {
		err = r.errorf("reference type 0x%02x is not in WebAssembly 2.0", b)
	}
	return err
}

// blockType reads a block type: 0x40 (none) or a value type, one byte, or a type index.
func (r *reader) blockType() (int64, error) {
	start := r.pos
	bt, err := r.s33()
	if err == nil && bt < 0 && (r.pos-start != 1 || r.buf[start] != 0x40 && !isValType(r.buf[start])) {
		err = r.errorf("block type %d is not in WebAssembly 2.0", bt)
	}
	return bt, err
}

// skipLEB passes over a LEB128 (signed or not) of at most maxBytes bytes.
func (r *reader) skipLEB(maxBytes int) error {
	for i := 0; i < maxBytes; i++ {
		b, err := r.byte()
		if err != nil {
			return err
		}
		if b&0x80 == 0 {
			return nil
		}
	}
	return r.errorf("integer representation too long")
}

// section reads what sections and the name section's subsections share: an id byte, a
// size, and that many bytes (returned as a view).
func (r *reader) section() (byte, []byte, error) {
	id, err := r.byte()
	if err != nil {
		return 0, nil, err
	}
	size, err := r.u32()
	if err != nil {
		return 0, nil, err
	}
	body, err := r.bytes(size)
	return id, body, err
}

// name passes over a name (a length and that many bytes) and returns it.
func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(n)
	return string(b), err
}

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %w", r.pos, fmt.Errorf(format, args...))
}

// appendU32 appends v as an unsigned LEB128.
func appendU32(out []byte, v uint32) []byte {
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

// appendName appends a name: its length and its bytes.
func appendName(out []byte, s string) []byte {
	return append(appendU32(out, uint32(len(s))), s...)
}

// appendS32 appends v as a signed LEB128 (an i32.const immediate).
func appendS32(out []byte, v int32) []byte {
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v == 0 && b&0x40 == 0 || v == -1 && b&0x40 != 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}
