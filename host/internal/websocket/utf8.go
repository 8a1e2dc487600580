package websocket

import "encoding/binary"

// utf8State validates UTF-8 incrementally: bytes may arrive in any split,
// and the first byte that cannot continue a valid sequence is refused at
// once (RFC 3629 §4: no overlong forms, no surrogates, nothing above
// U+10FFFF). need is the number of continuation bytes still owed and lo..hi
// the range the next one must fall in; the zero value is the start state.
type utf8State struct {
	need   uint8
	lo, hi byte
}

// complete reports whether the bytes so far end on a character boundary.
func (s *utf8State) complete() bool { return s.need == 0 }

// feed validates p and reports whether it can still be the start of valid
// UTF-8, and if not the index of the offending byte.
func (s *utf8State) feed(p []byte) (ok bool, bad int) {
	i := 0
	for i < len(p) {
		if s.need == 0 {
			// ASCII fast path, eight bytes at a time.
			for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
				i += 8
			}
			if i == len(p) {
				break
			}
			c := p[i]
			switch {
			case c < 0x80:
			case c >= 0xC2 && c <= 0xDF:
				*s = utf8State{1, 0x80, 0xBF}
			case c == 0xE0:
				*s = utf8State{2, 0xA0, 0xBF} // no overlongs
			case c == 0xED:
				*s = utf8State{2, 0x80, 0x9F} // no surrogates
			case c >= 0xE1 && c <= 0xEF:
				*s = utf8State{2, 0x80, 0xBF}
			case c == 0xF0:
				*s = utf8State{3, 0x90, 0xBF} // no overlongs
			case c >= 0xF1 && c <= 0xF3:
				*s = utf8State{3, 0x80, 0xBF}
			case c == 0xF4:
				*s = utf8State{3, 0x80, 0x8F} // nothing above U+10FFFF
			default: // continuation byte, C0, C1, F5..FF
				return false, i
			}
			i++
			continue
		}
		c := p[i]
		if c < s.lo || c > s.hi {
			return false, i
		}
		*s = utf8State{s.need - 1, 0x80, 0xBF}
		i++
	}
	return true, 0
}
