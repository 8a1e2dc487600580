package http1

// Byte classes of the request-target and Host grammars (RFC 9112 §3.2, RFC 3986) as one
// 256-entry table, as httpfield keeps those of the field grammar: the scanners run one table
// load per byte, so a class test costs the same whether the byte is common or hostile.
const (
	cTarget = 1 << iota // request-target byte other than '%' (0x21-0x7E without '#')
	cHex                // HEXDIG
	cHost               // reg-name byte: unreserved / sub-delims (RFC 3986), no '%'
)

var class = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cHost
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cHost
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= cHost | cHex
	}
	for _, c := range "abcdefABCDEF" {
		t[c] |= cHex
	}
	for _, c := range "-._~!$&'()*+,;=" {
		t[c] |= cHost
	}
	for c := 0x21; c <= 0x7e; c++ {
		t[c] |= cTarget
	}
	// A fragment never travels in a request-target (RFC 9112 §3.2); a '#'
	// there is a client bug or an attempt to make two parsers disagree.
	t['#'] &^= cTarget
	// '%' is validated as an escape by the target scanner itself.
	t['%'] &^= cTarget
	return t
}()

func isHex(c byte) bool { return class[c]&cHex != 0 }

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
