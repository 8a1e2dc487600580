package httpfield

// Fault names the part of a field line that breaks its syntax.
type Fault uint8

// The faults CutLine reports.
const (
	NoFault    Fault = iota // a well-formed field line
	BadName                 // the name is empty, has a byte that is not a tchar, or no colon follows it
	BadValue                // the value has a byte other than field-vchar, SP or HTAB
	BadLineEnd              // the line does not end with CRLF
)

// CutLine splits the first field line off block, a header block that is about to be copied to
// the wire as written: "name: value\r\n", the name a token, the value visible ASCII, obs-text,
// SP or HTAB. The value is returned without its leading and trailing OWS, and rest is what
// follows the line's CRLF. Anything else — a CR or LF inside the line, a NUL, an empty line,
// obs-fold, a line without CRLF — could end a head early or split a message, so it is a Fault
// and the other results are nil; an empty block has no name, so it is BadName.
//
// This is the one syntax check for header blocks a guest writes; a caller loops over the lines
// and adds the rules of its own message on top.
func CutLine(block []byte) (name, value, rest []byte, f Fault) {
	b := block
	i := 0
	for i < len(b) && IsTchar(b[i]) {
		i++
	}
	if i == 0 || i == len(b) || b[i] != ':' {
		return nil, nil, nil, BadName
	}
	j := i + 1
	for j < len(b) && IsValueChar(b[j]) {
		j++
	}
	switch {
	case j < len(b) && b[j] != '\r':
		return nil, nil, nil, BadValue
	case j+1 >= len(b) || b[j+1] != '\n':
		return nil, nil, nil, BadLineEnd
	}
	return b[:i], TrimOWS(b[i+1 : j]), b[j+2:], NoFault
}
