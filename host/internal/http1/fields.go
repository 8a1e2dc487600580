package http1

import "github.com/wasmloop/wasmloop/host/internal/httpfield"

// The rules that need a whole target or a whole field line. They run the
// moment the target's SP or the field line's LF is scanned, so a smuggling
// attempt is refused at the line that makes it, before the rest of the head
// is read.

// classifyTarget checks the request-target against the forms RFC 9112 §3.2
// allows for the method, once the target is whole.
func (p *Parser) classifyTarget(buf []byte) *Error {
	t := buf[p.tStart:p.tEnd]
	method := buf[p.headStart:p.methodEnd]
	if string(method) == "CONNECT" {
		// authority-form is host ":" port and nothing else; the server
		// decides whether it tunnels at all.
		if !validHost(t, true) {
			return errAuthorityTarget
		}
		return nil
	}
	switch {
	case t[0] == '/':
		return nil
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return errTargetForm
		}
		return nil
	}
	var off int
	switch {
	case len(t) > 7 && httpfield.EqualFold(t[:7], "http://"):
		off = 7
	case len(t) > 8 && httpfield.EqualFold(t[:8], "https://"):
		off = 8
	default:
		return errTargetForm
	}
	a := off
	for a < len(t) && t[a] != '/' && t[a] != '?' {
		a++
	}
	// "http://h?q" is valid RFC 3986, but its origin form is "/?q", a path
	// the target does not spell. Senders normalise an empty http path to "/"
	// (RFC 9110 §4.2.3), so refusing the form costs nothing real, and a
	// guest that routes on the target's path never has to invent one.
	if a < len(t) && t[a] == '?' {
		return errAbsoluteTarget
	}
	if !validHost(t[off:a], false) {
		return errAbsoluteTarget
	}
	p.authStart, p.authEnd = p.tStart+off, p.tStart+a
	return nil
}

// field records a completed field line and applies the rules of the
// fields that decide framing, routing and connection handling.
func (p *Parser) field(buf []byte, lim *Limits) *Error {
	p.fields = append(p.fields, span{p.nameStart, p.nameEnd, p.valStart, p.valEnd})
	name := buf[p.nameStart:p.nameEnd]
	val := buf[p.valStart:p.valEnd]
	switch len(name) {
	case 4:
		if httpfield.EqualFold(name, "host") {
			if p.hosts++; p.hosts > 1 {
				return errDupHost
			}
			p.hostField = len(p.fields) - 1
			// An empty Host is legal: RFC 9110 §7.2 has clients send one
			// when the target URI has no authority.
			if len(val) > 0 && !validHost(val, false) {
				return errBadHost
			}
		}
	case 6:
		if httpfield.EqualFold(name, "expect") {
			if !httpfield.EqualFold(val, "100-continue") {
				return errExpect
			}
			p.expect = p.minor == 1
		}
	case 7:
		switch {
		case httpfield.EqualFold(name, "upgrade"):
			p.upgradeField = true
		case httpfield.EqualFold(name, "trailer"):
			return checkTrailerDecl(val)
		}
	case 10:
		if httpfield.EqualFold(name, "connection") {
			return p.connection(val)
		}
	case 14:
		if httpfield.EqualFold(name, "content-length") {
			switch {
			case p.hasCL:
				return errDupCL // even with an equal value: one framing, one field
			case p.hasTE:
				return errCLAndTE
			}
			n, ok := parseDigits(val)
			if !ok {
				return errBadCL
			}
			p.hasCL, p.cl = true, n
			if n > lim.MaxBodyBytes {
				return errBodyTooLarge
			}
		}
	case 17:
		if httpfield.EqualFold(name, "transfer-encoding") {
			return p.transferEncoding(val)
		}
	}
	return nil
}

// transferEncoding accepts exactly "chunked" once. Anything else is where
// front-ends and back-ends have disagreed about framing (RFC 9112 §11.2).
func (p *Parser) transferEncoding(val []byte) *Error {
	switch {
	case p.minor == 0:
		// RFC 9112 §6.1: faulty framing in 1.0; there is no safe reading.
		return errTE10
	case p.hasCL:
		return errCLAndTE
	}
	again := p.hasTE
	p.hasTE = true
	if !validCodings(val) {
		return errBadTE
	}
	if again || !httpfield.EqualFold(val, "chunked") {
		return errTEUnsupported
	}
	p.chunked = true
	return nil
}

// validCodings checks a transfer-coding list for syntax only, to tell a
// coding we do not implement (501) from garbage (400). Parameters are
// accepted as token "=" token; a quoted-string parameter counts as garbage.
func validCodings(v []byte) bool {
	for {
		elem, rest := httpfield.NextListElem(v)
		name, params := elem, []byte(nil)
		for i, c := range elem {
			if c == ';' {
				name, params = httpfield.TrimOWS(elem[:i]), elem[i:]
				break
			}
		}
		if !httpfield.IsToken(name) {
			return false
		}
		for len(params) > 0 { // each starts with ';'
			params = params[1:]
			end := len(params)
			for i, c := range params {
				if c == ';' {
					end = i
					break
				}
			}
			k, val, ok := cutByte(params[:end], '=')
			if !ok || !httpfield.IsToken(httpfield.TrimOWS(k)) || !httpfield.IsToken(httpfield.TrimOWS(val)) {
				return false
			}
			params = params[end:]
		}
		if rest == nil {
			return true
		}
		v = rest
	}
}

func cutByte(b []byte, sep byte) (before, after []byte, ok bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// connection reads the Connection options (RFC 9110 §7.6.1). Options must be
// tokens; empty list elements are tolerated as RFC 9110 §5.6.1 requires.
func (p *Parser) connection(v []byte) *Error {
	for {
		elem, rest := httpfield.NextListElem(v)
		switch {
		case len(elem) == 0:
		case !httpfield.IsToken(elem):
			return errBadConnection
		case httpfield.EqualFold(elem, "close"):
			p.connClose = true
		case httpfield.EqualFold(elem, "keep-alive"):
			p.connKeep = true
		case httpfield.EqualFold(elem, "upgrade"):
			p.connUpgrade = true
		}
		if rest == nil {
			return nil
		}
		v = rest
	}
}

// checkTrailerDecl refuses a Trailer field that announces a field a trailer
// may not carry, as net/http does; the chunked decoder would refuse the
// trailer itself later, but by then the body has been delivered.
func checkTrailerDecl(v []byte) *Error {
	for {
		elem, rest := httpfield.NextListElem(v)
		if len(elem) > 0 && (!httpfield.IsToken(elem) || forbiddenTrailer(elem)) {
			return errBadTrailerDecl
		}
		if rest == nil {
			return nil
		}
		v = rest
	}
}
