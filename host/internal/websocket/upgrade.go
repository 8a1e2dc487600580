package websocket

import (
	"crypto/sha1"
	"encoding/base64"

	"github.com/gobwas/ws/wsflate"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/httpfield"
)

// Upgrade is an acceptable WebSocket opening handshake (RFC 6455 §4.2.1).
// Its slices alias the header values given to CheckUpgrade.
type Upgrade struct {
	// Key is the Sec-WebSocket-Key value, used for Sec-WebSocket-Accept.
	Key []byte
	// Protocols lists the subprotocols the client offered, in its order of
	// preference; empty when it sent no Sec-WebSocket-Protocol.
	Protocols [][]byte
	// DeflateOffered says the client offered permessage-deflate at all.
	DeflateOffered bool
	// Deflate says one of those offers is acceptable: the first offer whose
	// parameters are valid (RFC 7692 §7.1) and that does not ask the server
	// to use a window smaller than compress/flate's 32 KiB
	// (server_max_window_bits below 15). DeflateParams holds that offer's
	// parameters as the client sent them.
	Deflate       bool
	DeflateParams wsflate.Parameters
}

// CheckUpgrade checks a request head that asked for a WebSocket upgrade
// (RFC 6455 §4.2.1): method GET, HTTP/1.1, Upgrade with the token
// "websocket", Connection with the token "upgrade", exactly one
// Sec-WebSocket-Key that is the base64 of 16 bytes, and
// Sec-WebSocket-Version 13 (else 426, whose AppendResponse advertises 13).
// It parses Sec-WebSocket-Protocol (comma-separated tokens, possibly over
// several fields) and the permessage-deflate offers in
// Sec-WebSocket-Extensions; other extensions are ignored, as RFC 6455 §9.1
// allows. A request carrying a body is refused: its bytes would be read as
// frames. Other rejections are 400 with a short reason. Origin is not looked
// at: checking it is the application's business (RFC 6455 §10.2), and the
// application sees it among the request's fields. Header values are expected
// without surrounding whitespace, as http1 gives them.
func CheckUpgrade(method []byte, major, minor int, headers []abi.Header) (Upgrade, *Error) {
	var u Upgrade
	if string(method) != "GET" {
		return u, errMethod
	}
	if major != 1 || minor != 1 {
		return u, errVersion
	}
	var upgrade, connection, version, versionOK bool
	keys := 0
	for i := range headers {
		name, v := headers[i].Name, headers[i].Value
		switch {
		case httpfield.EqualFold(name, "upgrade"):
			upgrade = upgrade || hasToken(v, "websocket")
		case httpfield.EqualFold(name, "connection"):
			connection = connection || hasToken(v, "upgrade")
		case httpfield.EqualFold(name, "sec-websocket-key"):
			keys++
			u.Key = v
		case httpfield.EqualFold(name, "sec-websocket-version"):
			versionOK = !version && string(v) == "13"
			version = true
		case httpfield.EqualFold(name, "sec-websocket-protocol"):
			for rest := v; len(rest) > 0; {
				var el []byte
				el, rest = httpfield.NextListElem(rest)
				if len(el) == 0 {
					continue // RFC 9110 §5.6.1: ignore empty list elements
				}
				if !httpfield.IsToken(el) {
					return Upgrade{}, errProtocols
				}
				u.Protocols = append(u.Protocols, el)
			}
		case httpfield.EqualFold(name, "sec-websocket-extensions"):
			if e := parseExtensions(v, &u); e != nil {
				return Upgrade{}, e
			}
		case httpfield.EqualFold(name, "transfer-encoding"):
			return Upgrade{}, errBody
		case httpfield.EqualFold(name, "content-length"):
			if string(v) != "0" {
				return Upgrade{}, errBody
			}
		}
	}
	switch {
	case !upgrade:
		return Upgrade{}, errNoUpgrade
	case !connection:
		return Upgrade{}, errNoConnection
	case keys > 1:
		return Upgrade{}, errDupKey
	case keys == 0 || !validKey(u.Key):
		return Upgrade{}, errKey
	case !versionOK:
		return Upgrade{}, errWSVersion
	}
	return u, nil
}

// validKey reports whether k is padded base64 of exactly 16 bytes.
func validKey(k []byte) bool {
	if len(k) != 24 {
		return false
	}
	var out [18]byte
	n, err := base64.StdEncoding.Strict().Decode(out[:], k)
	return err == nil && n == 16
}

// acceptGUID is the fixed suffix of RFC 6455 §1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// deflateResponse is the only permessage-deflate response the server gives:
// no context takeover either way, so neither side keeps a 32 KiB window per
// connection between messages, and the Reader can decompress each message
// on its own. RFC 7692 §7.1.1 lets a server add both parameters unasked.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// AppendAccept appends the complete "101 Switching Protocols" response to
// an Upgrade that CheckUpgrade accepted: Upgrade, Connection,
// Sec-WebSocket-Accept (base64 of the SHA-1 of the key and the RFC 6455
// GUID), Sec-WebSocket-Protocol when protocol is not empty, and the
// permessage-deflate response when deflate is set, then extraHeaderBlock
// (zero or more "Name: value\r\n" lines) and the empty line.
//
// protocol must be one the client offered and deflate may only be set when
// u.Deflate is: the RFC has the client fail the connection otherwise. u
// must come from CheckUpgrade. The extra block must be well-formed and must
// not set Upgrade, Connection or any Sec-WebSocket-* field. Violations return dst unchanged and a 500
// Error.
func AppendAccept(dst []byte, u *Upgrade, protocol string, deflate bool, extraHeaderBlock []byte) ([]byte, *Error) {
	if !validKey(u.Key) {
		return dst, errNotChecked
	}
	if protocol != "" {
		offered := false
		for _, p := range u.Protocols {
			offered = offered || string(p) == protocol
		}
		if !offered {
			return dst, errNotOffered
		}
	}
	if deflate && !u.Deflate {
		return dst, errNoDeflate
	}
	if e := checkExtraHeaders(extraHeaderBlock); e != nil {
		return dst, e
	}
	var in [24 + len(acceptGUID)]byte
	copy(in[copy(in[:], u.Key):], acceptGUID)
	sum := sha1.Sum(in[:len(u.Key)+len(acceptGUID)])
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = base64.StdEncoding.AppendEncode(dst, sum[:])
	dst = append(dst, "\r\n"...)
	if protocol != "" {
		dst = append(dst, "Sec-WebSocket-Protocol: "...)
		dst = append(dst, protocol...)
		dst = append(dst, "\r\n"...)
	}
	if deflate {
		dst = append(dst, "Sec-WebSocket-Extensions: "+deflateResponse+"\r\n"...)
	}
	dst = append(dst, extraHeaderBlock...)
	return append(dst, "\r\n"...), nil
}

// checkExtraHeaders checks the guest's extra block for the 101: field lines
// well-formed by httpfield.CutLine, none of them a field that belongs to the
// handshake, which the guest could otherwise contradict.
func checkExtraHeaders(b []byte) *Error {
	for len(b) > 0 {
		name, _, rest, fault := httpfield.CutLine(b)
		if fault != httpfield.NoFault {
			return errExtraHeaders
		}
		if httpfield.EqualFold(name, "upgrade") || httpfield.EqualFold(name, "connection") ||
			(len(name) >= 14 && httpfield.EqualFold(name[:14], "sec-websocket-")) {
			return errReservedField
		}
		b = rest
	}
	return nil
}

// parseExtensions parses one Sec-WebSocket-Extensions value (RFC 6455
// §9.1: extension *( ";" token [ "=" ( token / quoted-string ) ] ), comma
// separated) and records the first acceptable permessage-deflate offer.
// Malformed syntax is a 400; a permessage-deflate offer with unknown,
// repeated or invalid parameters is declined, as RFC 7692 §5 requires.
func parseExtensions(v []byte, u *Upgrade) *Error {
	p := v
	for {
		p = skipOWS(p)
		if len(p) > 0 && p[0] == ',' { // empty list element
			p = p[1:]
			continue
		}
		if len(p) == 0 {
			return nil
		}
		name, rest := cutToken(p)
		if len(name) == 0 {
			return errExtensions
		}
		p = rest
		deflate := httpfield.EqualFold(name, wsflate.ExtensionName)
		var params wsflate.Parameters
		var seen [4]bool
		ok := true
		for {
			p = skipOWS(p)
			if len(p) == 0 || p[0] == ',' {
				break
			}
			if p[0] != ';' {
				return errExtensions
			}
			p = skipOWS(p[1:])
			var key, val []byte
			key, p = cutToken(p)
			if len(key) == 0 {
				return errExtensions
			}
			p = skipOWS(p)
			hasVal := false
			if len(p) > 0 && p[0] == '=' {
				p = skipOWS(p[1:])
				hasVal = true
				var e *Error
				if val, p, e = cutValue(p); e != nil {
					return e
				}
			}
			if deflate && ok {
				ok = deflateParam(&params, &seen, key, val, hasVal)
			}
		}
		if deflate {
			u.DeflateOffered = true
			acceptable := ok && (params.ServerMaxWindowBits == 0 || params.ServerMaxWindowBits == 15)
			if acceptable && !u.Deflate {
				u.Deflate, u.DeflateParams = true, params
			}
		}
	}
}

// deflateParam applies one permessage-deflate parameter (RFC 7692 §7.1)
// and reports whether it is valid. ClientMaxWindowBits 1 means "offered
// without a value", as in wsflate.
func deflateParam(pp *wsflate.Parameters, seen *[4]bool, key, val []byte, hasVal bool) bool {
	var i int
	switch {
	case httpfield.EqualFold(key, "server_no_context_takeover"):
		i = 0
		pp.ServerNoContextTakeover = true
		if hasVal {
			return false
		}
	case httpfield.EqualFold(key, "client_no_context_takeover"):
		i = 1
		pp.ClientNoContextTakeover = true
		if hasVal {
			return false
		}
	case httpfield.EqualFold(key, "server_max_window_bits"):
		i = 2
		b, ok := windowBits(val)
		if !hasVal || !ok {
			return false
		}
		pp.ServerMaxWindowBits = b
	case httpfield.EqualFold(key, "client_max_window_bits"):
		i = 3
		if !hasVal {
			pp.ClientMaxWindowBits = 1
			break
		}
		b, ok := windowBits(val)
		if !ok {
			return false
		}
		pp.ClientMaxWindowBits = b
	default:
		return false
	}
	if seen[i] {
		return false
	}
	seen[i] = true
	return true
}

// windowBits parses 8..15 without leading zeros (RFC 7692 §7.1.2).
func windowBits(v []byte) (wsflate.WindowBits, bool) {
	switch {
	case len(v) == 1 && v[0] >= '8' && v[0] <= '9':
		return wsflate.WindowBits(v[0] - '0'), true
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return wsflate.WindowBits(10 + v[1] - '0'), true
	}
	return 0, false
}

// cutValue takes a token or a quoted-string (returned unquoted when it
// holds no escapes, which the only values RFC 7692 defines never need).
func cutValue(p []byte) (val, rest []byte, e *Error) {
	if len(p) > 0 && p[0] == '"' {
		for i := 1; i < len(p); i++ {
			switch c := p[i]; {
			case c == '"':
				return p[1:i], p[i+1:], nil
			case c == '\\':
				i++
				if i == len(p) {
					return nil, nil, errExtensions
				}
				// An escape: the raw form is returned, which no valid
				// permessage-deflate value has, so the offer is declined.
			case !httpfield.IsQdtext(c):
				return nil, nil, errExtensions
			}
		}
		return nil, nil, errExtensions
	}
	val, rest = cutToken(p)
	if len(val) == 0 {
		return nil, nil, errExtensions
	}
	return val, rest, nil
}

func cutToken(p []byte) (tok, rest []byte) {
	i := 0
	for i < len(p) && httpfield.IsTchar(p[i]) {
		i++
	}
	return p[:i], p[i:]
}

func skipOWS(p []byte) []byte {
	for len(p) > 0 && (p[0] == ' ' || p[0] == '\t') {
		p = p[1:]
	}
	return p
}

// hasToken reports whether the comma list v has the element want, compared
// case-insensitively.
func hasToken(v []byte, want string) bool {
	for len(v) > 0 {
		var el []byte
		el, v = httpfield.NextListElem(v)
		if httpfield.EqualFold(el, want) {
			return true
		}
	}
	return false
}

// Requested reports whether a request's Upgrade field names websocket, that is whether the
// request is a WebSocket opening handshake at all, valid or not, rather than an upgrade to
// another protocol (h2c, say) that a server answers as a plain request.
func Requested(headers []abi.Header) bool {
	for i := range headers {
		if httpfield.EqualFold(headers[i].Name, "upgrade") && hasToken(headers[i].Value, "websocket") {
			return true
		}
	}
	return false
}
