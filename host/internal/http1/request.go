package http1

import (
	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/defaults"
	"github.com/wasmloop/wasmloop/host/internal/httpfield"
)

// Limits caps what a request may use. Zero (or negative) fields mean the
// defaults named on each field.
type Limits struct {
	MaxHeaderBytes  int   // request line + header fields incl. CRLFs and the final empty line; default defaults.MaxHeaderBytes; beyond -> 431
	MaxHeaderCount  int   // header fields; default defaults.MaxHeaderCount; beyond -> 431
	MaxRequestLine  int   // request line without its CRLF; default defaults.MaxRequestLine; beyond -> 414
	MaxBodyBytes    int64 // Content-Length, or the sum of chunk sizes; default defaults.BodyLimit; beyond -> 413
	MaxChunkLine    int   // chunk-size line incl. extensions and its CRLF (as net/http counts); default 4096; beyond -> 400
	MaxTrailerBytes int   // trailer section incl. CRLFs and the final empty line; default 4096; beyond -> 431
}

const (
	// The parser's own limits, which no setting changes; the others are settings, whose
	// defaults are in package defaults.
	defaultMaxChunkLine    = 4096
	defaultMaxTrailerBytes = 4096

	// RFC 9112 §2.2 asks servers to ignore at least one empty line before a
	// request line (some clients send CRLF after a POST body). A few are
	// tolerated; an unbounded run would let a client hold a connection
	// without ever starting a request.
	maxLeadingLines = 4
)

func (l *Limits) norm() Limits {
	r := *l
	if r.MaxHeaderBytes <= 0 {
		r.MaxHeaderBytes = defaults.MaxHeaderBytes
	}
	if r.MaxHeaderCount <= 0 {
		r.MaxHeaderCount = defaults.MaxHeaderCount
	}
	if r.MaxRequestLine <= 0 {
		r.MaxRequestLine = defaults.MaxRequestLine
	}
	if r.MaxBodyBytes <= 0 {
		r.MaxBodyBytes = defaults.BodyLimit
	}
	if r.MaxChunkLine <= 0 {
		r.MaxChunkLine = defaultMaxChunkLine
	}
	if r.MaxTrailerBytes <= 0 {
		r.MaxTrailerBytes = defaultMaxTrailerBytes
	}
	return r
}

// Request is a parsed request head. Every byte slice aliases the buffer
// given to Parse (capacity-limited, so an append copies rather than
// overwrites the next bytes), so it is valid only until the caller reuses
// that memory.
type Request struct {
	// Method and Target are the request line's first two parts as received;
	// methods are case-sensitive tokens (RFC 9110 §9.1).
	Method, Target []byte
	// Major is always 1 and Minor 0 or 1: anything else is refused with 505
	// (see the version rule in the package documentation).
	Major, Minor int
	// Headers lists the field lines in order, names as received and values
	// without leading and trailing OWS; Parse reuses its storage. They are
	// the ABI's header type, so the server hands them on without a copy.
	Headers []abi.Header
	// ContentLength is -1 when the field is absent (and always when
	// Chunked); a request with neither has no body.
	ContentLength int64
	Chunked       bool
	// KeepAlive says whether the connection may carry another request after
	// this one: HTTP/1.1 unless Connection has "close"; HTTP/1.0 only with
	// "keep-alive" and without "close".
	KeepAlive bool
	// ExpectContinue is set for "Expect: 100-continue" in HTTP/1.1. An
	// HTTP/1.0 request's 100-continue is ignored, as RFC 9110 §10.1.1 requires.
	ExpectContinue bool
	// Upgrade is set when an HTTP/1.1 request has an Upgrade field and a
	// Connection "upgrade" token; the server decides whether to switch.
	Upgrade bool
	// UpgradeField is set when an HTTP/1.1 request has an Upgrade field,
	// with or without the Connection token: a WebSocket handshake that lacks
	// the token must be refused (RFC 6455 §4.2.1), not served as plain.
	UpgradeField bool
}

// span holds offsets rather than slices: the caller may move its buffer
// between Parse calls (append grows it), so aliases are only cut from the
// buffer of the call that completes the head.
type span struct{ ns, ne, vs, ve int }

// Parser states, in the order they occur. Request-line states sort between
// stMethod and stVersion, which the limit checks rely on.
const (
	stLead       uint8 = iota // start of a line before the request line
	stLeadLF                  // CR of an empty leading line seen
	stMethod                  // in the method
	stTarget                  // in the request-target
	stVersion                 // matching "HTTP/d.d" then CR
	stReqLF                   // CR after the version seen
	stFieldStart              // start of a field line, or of the final empty line
	stName                    // in a field name
	stValueOWS                // after the colon, before the value
	stValue                   // in the value
	stFieldLF                 // CR after a field value seen
	stEndLF                   // CR of the final empty line seen
)

// Parser parses one request head at the start of a buffer, incrementally.
// The zero value is ready to use. A Parser is not safe for concurrent use.
type Parser struct {
	// Limits may be changed between requests, not during one.
	Limits Limits

	state uint8
	err   *Error // sticky: a rejected connection stays rejected until Reset
	pos   int    // next byte to scan; Parse never looks at buf[:pos] again

	leading   int // empty lines skipped before the request line
	headStart int // offset of the request line
	methodEnd int
	tStart    int // request-target
	tEnd      int
	pct       int // hex digits still owed to a '%' in the target
	ver       int // bytes of "HTTP/d.d" matched
	minor     int

	nameStart, nameEnd, valStart, valEnd int
	fields                               []span

	hosts     int // Host fields so far: HTTP/1.1 needs exactly one
	hostField int // the Host field's index in fields, when hosts is 1
	// authStart and authEnd bound an absolute-form target's authority (authEnd is 0 for the
	// other forms): it is the request's Host (fill).
	authStart, authEnd int

	cl                  int64
	hasCL, hasTE        bool
	chunked             bool
	connClose, connKeep bool
	connUpgrade         bool
	upgradeField        bool
	expect              bool
}

// Reset forgets any partial or rejected request, keeping Limits and the
// storage for field offsets.
func (p *Parser) Reset() {
	*p = Parser{Limits: p.Limits, fields: p.fields[:0]}
}

// Parse scans buf, which must start at the first byte of a request (leading
// empty lines included) and must hold the same bytes as on the previous call
// plus any that arrived since. It returns n > 0 when buf[:n] is a complete
// head and fills req; n == 0 with a nil error when more bytes are needed;
// and an *Error as soon as a byte makes the request unacceptable. A call
// never returns to bytes an earlier call scanned, so a head trickled in one
// byte at a time costs linear, not quadratic, work. req must not be nil.
//
// After a complete head the Parser resets itself, ready for the next request
// at the start of a new buffer. After an error it keeps returning that error
// until Reset. req is written only when a head completes.
func (p *Parser) Parse(buf []byte, req *Request) (n int, err error) {
	if p.err != nil {
		return 0, p.err
	}
	if len(buf) < p.pos {
		// The caller broke the contract (a shorter buffer); scanning afresh
		// is the only answer that cannot be wrong about bytes we skipped.
		p.Reset()
	}
	n, e := p.scan(buf)
	if e != nil {
		p.err = e
		return 0, e
	}
	if n == 0 {
		return 0, nil
	}
	p.fill(buf, req)
	p.Reset()
	return n, nil
}

// scan advances the state machine over buf[p.pos:]. Each state's loop stops
// at the first byte it cannot accept, so every rule fires on the byte that
// breaks it, and at the byte budget, so limits fire on the first byte past them.
func (p *Parser) scan(buf []byte) (int, *Error) {
	lim := p.Limits.norm()
	i := p.pos
	for i < len(buf) {
		if p.state >= stMethod {
			if i-p.headStart >= lim.MaxHeaderBytes {
				return 0, errHeadTooLarge
			}
			if p.state <= stVersion && i-p.headStart >= lim.MaxRequestLine &&
				!(p.state == stVersion && p.ver == 8 && buf[i] == '\r') {
				return 0, errLineTooLong
			}
		}
		switch p.state {
		case stLead:
			switch buf[i] {
			case '\r':
				p.state = stLeadLF
				i++
			case '\n':
				return 0, errBareLF
			default:
				p.headStart = i
				p.state = stMethod
			}

		case stLeadLF:
			if buf[i] != '\n' {
				return 0, errBareCR
			}
			i++
			if p.leading++; p.leading > maxLeadingLines {
				return 0, errLeadingLines
			}
			p.state = stLead

		case stMethod:
			end := p.lineEnd(len(buf), &lim)
			for i < end && httpfield.IsTchar(buf[i]) {
				i++
			}
			if i == end {
				continue
			}
			switch c := buf[i]; {
			case c != ' ':
				return 0, lineError(c, errMethodChar)
			case i == p.headStart:
				return 0, errEmptyMethod
			}
			p.methodEnd = i
			i++
			p.tStart = i
			p.state = stTarget

		case stTarget:
			end := p.lineEnd(len(buf), &lim)
			for i < end {
				c := buf[i]
				if p.pct > 0 {
					if !isHex(c) {
						return 0, lineError(c, errPercent)
					}
					p.pct--
					i++
				} else if class[c]&cTarget != 0 {
					for i++; i < end && class[buf[i]]&cTarget != 0; i++ {
					}
				} else if c == '%' {
					p.pct = 2
					i++
				} else {
					break
				}
			}
			if i == end {
				continue
			}
			switch c := buf[i]; {
			case c != ' ':
				return 0, lineError(c, errTargetChar)
			case i == p.tStart:
				return 0, errEmptyTarget
			}
			p.tEnd = i
			if e := p.classifyTarget(buf); e != nil {
				return 0, e
			}
			i++
			p.state = stVersion

		case stVersion:
			c := buf[i]
			switch {
			case p.ver < 5:
				if c != "HTTP/"[p.ver] {
					return 0, lineError(c, errVersion)
				}
			case p.ver == 6:
				if c != '.' {
					return 0, lineError(c, errVersion)
				}
			case p.ver == 5 || p.ver == 7:
				if c < '0' || c > '9' {
					return 0, lineError(c, errVersion)
				}
			default:
				if c != '\r' {
					return 0, lineError(c, errVersion)
				}
				// HTTP-version is "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3).
				// RFC 9110 §6.2 says a 1.x with x > 1 SHOULD be handled as
				// 1.1; we refuse it (505), as llhttp does: no HTTP/1.2
				// exists, so such a request is a probe or a desync attempt,
				// and an intermediary in front of us may read it differently.
				major, minor := buf[i-3], buf[i-1]
				if major != '1' || minor > '1' {
					return 0, errVersionNotSupp
				}
				p.minor = int(minor - '0')
				p.state = stReqLF
			}
			p.ver++
			i++

		case stReqLF:
			if buf[i] != '\n' {
				return 0, errBareCR
			}
			i++
			p.state = stFieldStart

		// The field-line states fall through into each other while bytes
		// remain, so a line that is already in the buffer is scanned in
		// one pass instead of one trip through the loop per state. Each
		// state re-derives its bound; when it runs out, "continue" returns
		// to the top of the loop, which ends the call or names the limit.
		case stFieldStart:
			c := buf[i]
			if c == '\r' {
				p.state = stEndLF
				i++
				continue
			}
			if !httpfield.IsTchar(c) {
				return 0, fieldStartError(c, len(p.fields))
			}
			if len(p.fields) >= lim.MaxHeaderCount {
				return 0, errTooManyFields
			}
			p.nameStart = i
			p.state = stName
			i++
			fallthrough

		case stName:
			end := p.headEnd(len(buf), &lim)
			for i < end && httpfield.IsTchar(buf[i]) {
				i++
			}
			if i == end {
				continue
			}
			if c := buf[i]; c != ':' {
				return 0, nameError(c)
			}
			p.nameEnd = i
			p.state = stValueOWS
			i++
			fallthrough

		case stValueOWS:
			end := p.headEnd(len(buf), &lim)
			for i < end && (buf[i] == ' ' || buf[i] == '\t') {
				i++
			}
			if i == end {
				continue
			}
			c := buf[i]
			if c == '\r' {
				p.valStart, p.valEnd = i, i
				p.state = stFieldLF
				i++
				continue
			}
			if !httpfield.IsVchar(c) {
				return 0, lineError(c, errValueChar)
			}
			p.valStart, p.valEnd = i, i+1
			p.state = stValue
			i++
			fallthrough

		case stValue:
			end := p.headEnd(len(buf), &lim)
			from := i
			for i < end && httpfield.IsValueChar(buf[i]) {
				i++
			}
			// Trailing OWS is not part of the value. Walking back over
			// this call's bytes only keeps every byte read at most twice.
			for k := i; k > from; k-- {
				if c := buf[k-1]; c != ' ' && c != '\t' {
					p.valEnd = k
					break
				}
			}
			if i == end {
				continue
			}
			if c := buf[i]; c != '\r' {
				return 0, lineError(c, errValueChar)
			}
			p.state = stFieldLF
			i++
			fallthrough

		case stFieldLF:
			if i == p.headEnd(len(buf), &lim) {
				continue
			}
			if buf[i] != '\n' {
				return 0, errBareCR
			}
			if e := p.field(buf, &lim); e != nil {
				return 0, e
			}
			i++
			p.state = stFieldStart

		case stEndLF:
			if buf[i] != '\n' {
				return 0, errBareCR
			}
			i++
			if p.minor == 1 && p.hosts == 0 {
				return 0, errNoHost // RFC 9112 §3.2: exactly one Host in 1.1
			}
			return i, nil
		}
	}
	// Only this path needs the offset: after an error the Parser is dead,
	// after a complete head it is reset.
	p.pos = i
	return 0, nil
}

// lineEnd bounds a request-line scan so that loops stop at the first byte
// past either limit; the check at the top of scan then names the limit.
func (p *Parser) lineEnd(n int, lim *Limits) int {
	return min(n, p.headStart+lim.MaxRequestLine, p.headStart+lim.MaxHeaderBytes)
}

func (p *Parser) headEnd(n int, lim *Limits) int {
	return min(n, p.headStart+lim.MaxHeaderBytes)
}

func fieldStartError(c byte, fields int) *Error {
	switch c {
	case ' ', '\t':
		if fields == 0 {
			return errLeadingSpace // RFC 9112 §2.2: reject, never guess
		}
		return errObsFold // RFC 9112 §5.2: obs-fold only in message/http
	case '\n':
		return errBareLF
	case ':':
		return errEmptyName
	}
	return errNameChar
}

func nameError(c byte) *Error {
	switch c {
	case ' ', '\t':
		return errSpaceBeforeColon // RFC 9112 §5.1: MUST reject
	case '\r':
		return errNoColon
	case '\n':
		return errBareLF
	}
	return errNameChar
}

// lineError names a stray line ending precisely: a bare LF or CR is the
// classic request-smuggling lever, and logs should say so rather than
// "invalid character".
func lineError(c byte, otherwise *Error) *Error {
	switch c {
	case '\n':
		return errBareLF
	case '\r':
		if otherwise == errMethodChar || otherwise == errTargetChar {
			return errRequestLine // the line ended early: a missing part
		}
	}
	return otherwise
}

// hostName is the name of a Host field the parser adds (fill); nothing writes to it.
var hostName = []byte("Host")

// fill cuts the request's aliases from the buffer of the completing call.
func (p *Parser) fill(buf []byte, req *Request) {
	req.Method = buf[p.headStart:p.methodEnd:p.methodEnd]
	req.Target = buf[p.tStart:p.tEnd:p.tEnd]
	req.Major, req.Minor = 1, p.minor
	if cap(req.Headers) < len(p.fields) {
		req.Headers = make([]abi.Header, len(p.fields), max(len(p.fields), 16))
	}
	req.Headers = req.Headers[:len(p.fields)]
	for i, f := range p.fields {
		h := &req.Headers[i]
		h.Name = buf[f.ns:f.ne:f.ne]
		h.Value = buf[f.vs:f.ve:f.ve]
	}
	if p.authEnd > 0 {
		// RFC 9112 §3.2.2: with an absolute-form target the server ignores Host and uses the
		// target's authority. The guest sees that one Host, so it cannot route on the other.
		auth := buf[p.authStart:p.authEnd:p.authEnd]
		if p.hosts > 0 {
			req.Headers[p.hostField].Value = auth
		} else { // HTTP/1.0 may send none
			req.Headers = append(req.Headers, abi.Header{Name: hostName, Value: auth})
		}
	}
	req.ContentLength = -1
	if p.hasCL {
		req.ContentLength = p.cl
	}
	req.Chunked = p.chunked
	if p.minor == 1 {
		req.KeepAlive = !p.connClose
	} else {
		req.KeepAlive = p.connKeep && !p.connClose
	}
	req.ExpectContinue = p.expect
	req.Upgrade = p.minor == 1 && p.connUpgrade && p.upgradeField
	req.UpgradeField = p.minor == 1 && p.upgradeField
}
