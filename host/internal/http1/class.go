package http1

// Byte classes as 256-entry tables. The scanners run one table load per
// byte, so a class test costs the same whether the byte is common or hostile,
// and the grammar lives in one place instead of in scattered comparisons.
const (
	cTchar  = 1 << iota // RFC 9110 §5.6.2 tchar: method, field-name, token
	cVchar              // field-vchar: VCHAR / obs-text (0x21-0x7E, 0x80-0xFF)
	cTarget             // request-target byte other than '%' (0x21-0x7E without '#')
	cHex                // HEXDIG
	cHost               // reg-name byte: unreserved / sub-delims (RFC 3986), no '%'
	cQdtext             // quoted-string qdtext (RFC 9110 §5.6.4)
	cValue              // field-value byte: field-vchar / SP / HTAB
)

var class = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cTchar | cHost
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cTchar | cHost
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= cTchar | cHost | cHex
	}
	for _, c := range "abcdefABCDEF" {
		t[c] |= cHex
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] |= cTchar
	}
	for _, c := range "-._~!$&'()*+,;=" {
		t[c] |= cHost
	}
	for c := 0x21; c <= 0x7e; c++ {
		t[c] |= cVchar | cTarget | cQdtext | cValue
	}
	for c := 0x80; c <= 0xff; c++ {
		t[c] |= cVchar | cQdtext | cValue
	}
	t[' '] |= cValue
	t['\t'] |= cValue
	// A fragment never travels in a request-target (RFC 9112 §3.2); a '#'
	// there is a client bug or an attempt to make two parsers disagree.
	t['#'] &^= cTarget
	// '%' is validated as an escape by the target scanner itself.
	t['%'] &^= cTarget
	t['"'] &^= cQdtext
	t['\\'] &^= cQdtext
	t[' '] |= cQdtext
	t['\t'] |= cQdtext
	return t
}()

func isTchar(c byte) bool { return class[c]&cTchar != 0 }
func isVchar(c byte) bool { return class[c]&cVchar != 0 }
func isHex(c byte) bool   { return class[c]&cHex != 0 }

// hexVal assumes isHex(c).
func hexVal(c byte) int64 {
	switch {
	case c <= '9':
		return int64(c - '0')
	case c >= 'a':
		return int64(c-'a') + 10
	default:
		return int64(c-'A') + 10
	}
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

// equalFold compares b with lower, an ASCII lower-case constant, ignoring
// ASCII case. Header names and tokens are ASCII, so no Unicode folding: a
// Unicode-aware fold would let "ſ" or the Kelvin sign match a framing name.
func equalFold(b []byte, lower string) bool {
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

// trimOWS drops leading and trailing SP/HTAB.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// nextListElem splits the first element off a comma-separated field value
// (RFC 9110 §5.6.1) and returns it OWS-trimmed with the rest. Empty elements
// come back as empty slices; callers decide whether those are tolerated.
func nextListElem(v []byte) (elem, rest []byte) {
	for i, c := range v {
		if c == ',' {
			return trimOWS(v[:i]), v[i+1:]
		}
	}
	return trimOWS(v), nil
}

// parseDigits parses a non-empty run of ASCII digits into a non-negative
// int64. Anything else (sign, space, empty, overflow) is rejected: this is
// the one number that decides where a message ends, so there is no leniency.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// The token helpers below are shared with the WebSocket upgrade check, which reads the same
// RFC 9110 grammar in the Upgrade, Connection and Sec-WebSocket-* fields.

// IsTchar reports whether c is an RFC 9110 token character.
func IsTchar(c byte) bool { return isTchar(c) }

// IsToken reports whether b is a non-empty RFC 9110 token.
func IsToken(b []byte) bool { return isToken(b) }

// EqualFold compares b with lower, an ASCII lower-case constant, ignoring ASCII case only.
func EqualFold(b []byte, lower string) bool { return equalFold(b, lower) }

// NextListElem splits the first element off a comma-separated field value and returns it
// OWS-trimmed with the rest.
func NextListElem(v []byte) (elem, rest []byte) { return nextListElem(v) }
