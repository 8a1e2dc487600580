// Package httpfield is the HTTP field syntax of RFC 9110 §5 that more than one protocol reads:
// tokens, field values, comma-separated lists, and the field lines of a header block. The
// HTTP/1.1 parser (http1) and the WebSocket handshake (websocket) both read it; keeping it here
// keeps one reading of each rule, so the two cannot disagree about what a token or a field
// line is.
//
// Everything works on byte slices and allocates nothing. Names and tokens are ASCII, so
// comparisons fold ASCII case only: a Unicode-aware fold would let "ſ" or the Kelvin sign match
// a framing field's name.
package httpfield

// Byte classes as one 256-entry table: a class test costs one load whether the byte is common or
// hostile, and the grammar lives in one place instead of in scattered comparisons.
const (
	cTchar  = 1 << iota // RFC 9110 §5.6.2 tchar: method, field-name, token
	cVchar              // field-vchar: VCHAR / obs-text (0x21-0x7E, 0x80-0xFF)
	cValue              // field-value byte: field-vchar / SP / HTAB
	cQdtext             // quoted-string qdtext (RFC 9110 §5.6.4)
)

var class = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cTchar
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cTchar
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= cTchar
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] |= cTchar
	}
	for c := 0x21; c <= 0x7e; c++ {
		t[c] |= cVchar | cValue | cQdtext
	}
	for c := 0x80; c <= 0xff; c++ {
		t[c] |= cVchar | cValue | cQdtext
	}
	t[' '] |= cValue | cQdtext
	t['\t'] |= cValue | cQdtext
	t['"'] &^= cQdtext
	t['\\'] &^= cQdtext
	return t
}()

// IsTchar reports whether c is an RFC 9110 token character.
func IsTchar(c byte) bool { return class[c]&cTchar != 0 }

// IsVchar reports whether c is a field-vchar: visible ASCII or obs-text (0x80-0xFF).
func IsVchar(c byte) bool { return class[c]&cVchar != 0 }

// IsValueChar reports whether c may appear in a field value: a field-vchar, SP or HTAB.
func IsValueChar(c byte) bool { return class[c]&cValue != 0 }

// IsQdtext reports whether c may appear unescaped inside a quoted-string.
func IsQdtext(c byte) bool { return class[c]&cQdtext != 0 }

// IsToken reports whether b is a non-empty RFC 9110 token.
func IsToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !IsTchar(c) {
			return false
		}
	}
	return true
}

// EqualFold compares b with lower, an ASCII lower-case constant, ignoring ASCII case only.
func EqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// TrimOWS drops leading and trailing SP/HTAB.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// NextListElem splits the first element off a comma-separated field value (RFC 9110 §5.6.1)
// and returns it OWS-trimmed with the rest, which is nil after the last element. Empty
// elements come back as empty slices; callers decide whether those are tolerated.
func NextListElem(v []byte) (elem, rest []byte) {
	for i, c := range v {
		if c == ',' {
			return TrimOWS(v[:i]), v[i+1:]
		}
	}
	return TrimOWS(v), nil
}
