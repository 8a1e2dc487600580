package http1

import "github.com/wasmloop/wasmloop/host/internal/httpfield"

// ChunkedDecoder decodes a chunked request body (RFC 9112 §7.1)
// incrementally. The zero value is ready to use; Limits.MaxBodyBytes,
// MaxChunkLine and MaxTrailerBytes apply. Not safe for concurrent use.
type ChunkedDecoder struct {
	// Limits may be changed between bodies, not during one.
	Limits Limits

	state  uint8
	err    *Error
	size   int64 // chunk size while its line is read, then data bytes left
	digits int   // hex digits of the size, leading zeros included
	line   int   // bytes of the current chunk line, CRLF excluded
	total  int64 // sum of chunk sizes so far
	excess int64 // chunk overhead not paid for by data; see overhead

	trailer int                  // bytes of the trailer section so far
	nameLen int                  // length of the current trailer field name
	name    [maxTrailerName]byte // its first bytes, enough to match the forbidden set
}

// Decoder states. Chunk-line states sort before csSizeLF and trailer states
// after csDataLF, which the per-byte limits rely on.
const (
	csSize       uint8 = iota // first hex digit of a chunk size
	csSizeMore                // more digits, or what follows the size
	csBWSSemi                 // BWS after an extension, which only a ';' may follow
	csExtName0                // BWS, then an extension name
	csExtName                 // in an extension name
	csExtNameBWS              // BWS after a name: '=' or ';' must follow
	csExtVal0                 // BWS, then a token or quoted-string value
	csExtToken                // in a token value
	csExtQuoted               // in a quoted-string value
	csExtQPair                // after a backslash in a quoted-string
	csExtAfterQ               // right after the closing quote
	csSizeLF                  // CR of the chunk line seen
	csData                    // in chunk data
	csDataCR                  // CRLF after the data expected
	csDataLF                  // CR after the data seen
	csTrStart                 // start of a trailer line or the final empty line
	csTrName                  // in a trailer field name
	csTrValue                 // in a trailer field value
	csTrLF                    // CR after a trailer value seen
	csEndLF                   // CR of the final empty line seen
	csDone
)

// maxSizeDigits caps a chunk size at 15 hex digits (< 2^60), so the size
// never overflows int64 and a long run of leading zeros cannot stall the scan.
const maxSizeDigits = 15

// Reset prepares the decoder for a new body, keeping Limits.
func (d *ChunkedDecoder) Reset() { *d = ChunkedDecoder{Limits: d.Limits} }

// Next consumes src and returns the next piece of body data, which aliases
// src; consumed counts the src bytes Next has fully processed, which the
// caller drops before the next call. done is true once the last chunk and
// the trailer section, final CRLF included, are consumed; bytes after that
// (a pipelined request) are left unconsumed.
//
// Unlike a line-at-a-time reader, Next keeps the state of a partial chunk
// line or trailer line itself and consumes those bytes too, so nothing is
// scanned twice and the caller need not hold partial lines. When src holds
// no data byte yet, data is nil (never an empty non-nil slice). Trailer
// fields are validated and dropped. An error is an *Error and is sticky
// until Reset; after done, Next returns done again without consuming.
func (d *ChunkedDecoder) Next(src []byte) (data []byte, consumed int, done bool, err error) {
	if d.err != nil {
		return nil, 0, false, d.err
	}
	if d.state == csDone {
		return nil, 0, true, nil
	}
	data, consumed, e := d.next(src)
	if e != nil {
		d.err = e
		return nil, 0, false, e
	}
	return data, consumed, d.state == csDone, nil
}

func (d *ChunkedDecoder) next(src []byte) ([]byte, int, *Error) {
	lim := d.Limits.norm()
	i := 0
	for i < len(src) {
		if d.state == csData {
			n := len(src) - i
			if int64(n) > d.size {
				n = int(d.size)
			}
			d.size -= int64(n)
			if d.size == 0 {
				d.state = csDataCR
			}
			return src[i : i+n : i+n], i + n, nil
		}
		c := src[i]
		if d.state < csSizeLF {
			if c != '\r' {
				if d.line >= lim.MaxChunkLine-2 {
					return nil, 0, errChunkLine
				}
				d.line++
			}
		} else if d.state >= csTrStart {
			if d.trailer++; d.trailer > lim.MaxTrailerBytes {
				return nil, 0, errTrailerTooLarge
			}
		}
		if e := d.step(c, &lim); e != nil {
			return nil, 0, e
		}
		i++
		if d.state == csDone {
			break
		}
	}
	return nil, i, nil
}

// step advances the decoder over one byte outside chunk data.
func (d *ChunkedDecoder) step(c byte, lim *Limits) *Error {
	switch d.state {
	case csSize, csSizeMore:
		if isHex(c) {
			if d.digits == maxSizeDigits {
				return errChunkOverflow
			}
			d.digits++
			d.size = d.size<<4 | hexVal(c)
			if d.size > lim.MaxBodyBytes-d.total {
				return errBodyTooLarge // refused at the digit, before any data
			}
			d.state = csSizeMore
			return nil
		}
		if d.state == csSize {
			return chunkLineError(c, errChunkSize)
		}
		// RFC 9112 allows BWS between the size and a ';', but net/http
		// and llhttp both refuse any whitespace after the size, so a
		// front-end that accepted "5 ;x" would already disagree with one
		// of them; we refuse it too.
		switch c {
		case ';':
			d.state = csExtName0
		case '\r':
			d.state = csSizeLF
		default:
			return chunkLineError(c, errChunkSize)
		}

	case csBWSSemi:
		// Whitespace after an extension is only legal before another one
		// (chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )).
		switch c {
		case ' ', '\t':
		case ';':
			d.state = csExtName0
		default:
			return chunkLineError(c, errChunkExt)
		}

	case csExtName0:
		switch {
		case c == ' ' || c == '\t':
		case httpfield.IsTchar(c):
			d.state = csExtName
		default:
			return chunkLineError(c, errChunkExt)
		}

	case csExtName, csExtToken:
		switch {
		case httpfield.IsTchar(c):
		case c == ' ' || c == '\t':
			if d.state == csExtName {
				d.state = csExtNameBWS
			} else {
				d.state = csBWSSemi
			}
		case c == ';':
			d.state = csExtName0
		case c == '=' && d.state == csExtName:
			d.state = csExtVal0
		case c == '\r':
			d.state = csSizeLF
		default:
			return chunkLineError(c, errChunkExt)
		}

	case csExtNameBWS:
		switch c {
		case ' ', '\t':
		case '=':
			d.state = csExtVal0
		case ';':
			d.state = csExtName0
		default:
			return chunkLineError(c, errChunkExt)
		}

	case csExtVal0:
		switch {
		case c == ' ' || c == '\t':
		case c == '"':
			d.state = csExtQuoted
		case httpfield.IsTchar(c):
			d.state = csExtToken
		default:
			return chunkLineError(c, errChunkExt)
		}

	case csExtQuoted:
		switch {
		case httpfield.IsQdtext(c):
		case c == '\\':
			d.state = csExtQPair
		case c == '"':
			d.state = csExtAfterQ
		default:
			return chunkLineError(c, errChunkExt)
		}

	case csExtQPair:
		if c != '\t' && c != ' ' && !httpfield.IsVchar(c) {
			return chunkLineError(c, errChunkExt)
		}
		d.state = csExtQuoted

	case csExtAfterQ:
		switch c {
		case ';':
			d.state = csExtName0
		case ' ', '\t':
			d.state = csBWSSemi
		case '\r':
			d.state = csSizeLF
		default:
			return chunkLineError(c, errChunkExt)
		}

	case csSizeLF:
		if c != '\n' {
			return errBareCR
		}
		d.total += d.size
		if d.size == 0 {
			d.state = csTrStart
			return nil
		}
		if e := d.overhead(); e != nil {
			return e
		}
		d.digits, d.line = 0, 0
		d.state = csData

	case csDataCR:
		switch c {
		case '\r':
			d.state = csDataLF
		case '\n':
			return errBareLF
		default:
			return errChunkData
		}

	case csDataLF:
		if c != '\n' {
			return errBareCR
		}
		d.state = csSize

	case csTrStart:
		switch {
		case c == '\r':
			d.state = csEndLF
		case httpfield.IsTchar(c):
			d.name[0] = c
			d.nameLen = 1
			d.state = csTrName
		case c == ' ' || c == '\t':
			return errObsFold
		case c == '\n':
			return errBareLF
		case c == ':':
			return errEmptyName
		default:
			return errNameChar
		}

	case csTrName:
		switch {
		case httpfield.IsTchar(c):
			if d.nameLen < len(d.name) {
				d.name[d.nameLen] = c
			}
			d.nameLen++
		case c == ':':
			// Refused at the colon: the value is never looked at.
			if d.nameLen <= len(d.name) && forbiddenTrailer(d.name[:d.nameLen]) {
				return errTrailerField
			}
			d.state = csTrValue
		case c == ' ' || c == '\t':
			return errSpaceBeforeColon
		case c == '\r':
			return errNoColon
		case c == '\n':
			return errBareLF
		default:
			return errNameChar
		}

	case csTrValue:
		switch {
		case httpfield.IsVchar(c) || c == ' ' || c == '\t':
		case c == '\r':
			d.state = csTrLF
		case c == '\n':
			return errBareLF
		default:
			return errValueChar
		}

	case csTrLF:
		if c != '\n' {
			return errBareCR
		}
		d.state = csTrStart

	case csEndLF:
		if c != '\n' {
			return errBareCR
		}
		d.state = csDone
	}
	return nil
}

// overhead bounds the bytes a client may spend on chunk framing relative to
// data, with net/http's rule: 16 bytes per chunk plus twice its data are
// free, and 16 KiB beyond that is the limit. MaxBodyBytes caps data, not
// the extensions and one-byte chunks around it; without this a client could
// make the server parse gigabytes to deliver a small body.
func (d *ChunkedDecoder) overhead() *Error {
	d.excess += int64(d.line) + 2 // the line, and the CRLF after the data
	d.excess -= 16 + 2*d.size
	d.excess = max(d.excess, 0)
	if d.excess > 16<<10 {
		return errChunkOverhead
	}
	return nil
}

func chunkLineError(c byte, otherwise *Error) *Error {
	if c == '\n' {
		return errBareLF
	}
	return otherwise
}

// forbiddenTrailers are the fields a trailer may not carry (RFC 9110
// §6.5.1): everything a recipient must know before the content — framing
// (Content-Length, Transfer-Encoding, Trailer), routing (Host), connection
// management, request modifiers (Expect, Max-Forwards, TE, Range,
// conditionals, Cache-Control, Pragma), authentication and cookies, and the
// content's format (Content-Type, -Encoding, -Range). It is net/http's
// badTrailer list plus the conditionals, Cookie and Upgrade. A trailer that
// could change how the request is routed, authorised or decoded after the
// body was handed on is the kind of thing a smuggling attempt relies on.
var forbiddenTrailers = [...]string{
	"authorization", "cache-control", "connection", "content-encoding",
	"content-length", "content-range", "content-type", "cookie", "expect",
	"host", "if-match", "if-modified-since", "if-none-match", "if-range",
	"if-unmodified-since", "keep-alive", "max-forwards", "pragma",
	"proxy-authenticate", "proxy-authorization", "proxy-connection", "range",
	"realm", "te", "trailer", "transfer-encoding", "upgrade", "www-authenticate",
}

// maxTrailerName is the longest name in forbiddenTrailers.
const maxTrailerName = len("if-unmodified-since")

func forbiddenTrailer(name []byte) bool {
	if len(name) > maxTrailerName {
		return false
	}
	for _, f := range forbiddenTrailers {
		if httpfield.EqualFold(name, f) {
			return true
		}
	}
	return false
}
