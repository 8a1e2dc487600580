package http1

import (
	"bytes"
	"errors"

	"github.com/wasmloop/wasmloop/host/internal/httpfield"
)

// A response head, as the host's own HTTP/1.1 client reads it (a fetch carried by the loop's
// reactor): the status line and the fields, checked as strictly as a request's, and what
// frames the body that follows (RFC 9112 §6).

// ResponseHead is a parsed response head.
type ResponseHead struct {
	Minor  int // HTTP/1.Minor: 0 or 1
	Status int // 100–999
	// Fields is dst with the head's fields appended as "name: value\r\n" lines in the order
	// received (each checked by httpfield.CutLine), but Transfer-Encoding: the body reaches its reader
	// decoded, so the field no longer describes it.
	Fields        []byte
	ContentLength int64 // -1 when the head gives none
	Chunked       bool  // Transfer-Encoding: chunked
	// Close: the server closes the connection after this response (Connection: close, or
	// HTTP/1.0 without keep-alive).
	Close bool
}

// Response-head rejections. A server that sends one is broken or hostile; the fetch fails and
// the connection is closed.
var (
	ErrHeadTooLarge  = errors.New("the response head is larger than the client reads")
	errStatusLine    = errors.New("a malformed status line")
	errStatusVersion = errors.New("the status line is not HTTP/1.0 or HTTP/1.1")
	errStatusCode    = errors.New("the status code is not three digits from 100 to 999")
	errRespField     = errors.New("a malformed header field in the response")
	errRespCL        = errors.New("a malformed Content-Length in the response")
	errRespDupCL     = errors.New("the response has differing Content-Length fields")
	errRespTE        = errors.New("a Transfer-Encoding other than chunked in the response")
	errRespCLTE      = errors.New("the response has both Content-Length and Transfer-Encoding")
	errRespConn      = errors.New("a malformed Connection field in the response")
)

// ParseResponseHead parses the response head at the start of buf. n is the head's length,
// its final CRLF included, or 0 when buf holds no whole head yet (err is then nil, unless buf
// is past max bytes without one: ErrHeadTooLarge). The head's field lines are appended to dst
// (ResponseHead.Fields). Lines end with CRLF, as RFC 9112 asks of a sender: a bare LF, a
// folded line or a field that is not a token and a value is an error, never guessed at.
func ParseResponseHead(buf []byte, max int, dst []byte) (h ResponseHead, n int, err error) {
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		if len(buf) > max {
			return h, 0, ErrHeadTooLarge
		}
		return h, 0, nil
	}
	n = end + 4
	if n > max {
		return h, 0, ErrHeadTooLarge
	}
	line := buf[:bytes.IndexByte(buf, '\n')+1] // the head's first LF is at or before end+3
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return h, 0, errStatusLine
	}
	if h.Minor, h.Status, err = statusLine(line[:len(line)-2]); err != nil {
		return h, 0, err
	}
	h.ContentLength = -1
	keepAlive, sawTE := false, false
	h.Fields = dst
	block := buf[len(line) : end+2]
	if len(line) == end+2 {
		block = nil // no fields
	}
	for len(block) > 0 {
		name, value, rest, fault := httpfield.CutLine(block)
		if fault != httpfield.NoFault {
			return h, 0, errRespField
		}
		block = rest
		switch {
		case httpfield.EqualFold(name, "content-length"):
			cl, ok := parseDigits(value)
			switch {
			case !ok:
				return h, 0, errRespCL
			case h.ContentLength >= 0 && cl != h.ContentLength:
				return h, 0, errRespDupCL
			}
			h.ContentLength = cl
		case httpfield.EqualFold(name, "transfer-encoding"):
			if sawTE || h.Minor == 0 || !httpfield.EqualFold(value, "chunked") {
				return h, 0, errRespTE
			}
			sawTE, h.Chunked = true, true
			continue // the body is decoded: the field is not passed on
		case httpfield.EqualFold(name, "connection"):
			for v := value; ; {
				elem, more := httpfield.NextListElem(v)
				switch {
				case len(elem) == 0:
				case !httpfield.IsToken(elem):
					return h, 0, errRespConn
				case httpfield.EqualFold(elem, "close"):
					h.Close = true
				case httpfield.EqualFold(elem, "keep-alive"):
					keepAlive = true
				}
				if more == nil {
					break
				}
				v = more
			}
		}
		// As "name: value", whatever the spaces around the value were: the form the
		// program reads (ABI.md §10).
		h.Fields = append(append(append(append(h.Fields, name...), ": "...), value...), "\r\n"...)
	}
	if h.Chunked && h.ContentLength >= 0 {
		return h, 0, errRespCLTE
	}
	if h.Minor == 0 && !keepAlive {
		h.Close = true
	}
	return h, n, nil
}

// statusLine parses "HTTP/1.x SP 3DIGIT [SP reason-phrase]", without its CRLF.
func statusLine(b []byte) (minor, status int, err error) {
	if len(b) < 12 || string(b[:7]) != "HTTP/1." || b[8] != ' ' {
		return 0, 0, errStatusLine
	}
	switch b[7] {
	case '0', '1':
		minor = int(b[7] - '0')
	default:
		return 0, 0, errStatusVersion
	}
	code := b[9:12]
	if code[0] < '1' || code[0] > '9' {
		return 0, 0, errStatusCode
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, 0, errStatusCode
		}
		status = status*10 + int(c-'0')
	}
	if reason := b[12:]; len(reason) > 0 {
		if reason[0] != ' ' {
			return 0, 0, errStatusCode
		}
		for _, c := range reason[1:] {
			if !httpfield.IsValueChar(c) {
				return 0, 0, errStatusLine
			}
		}
	}
	return minor, status, nil
}

// BodyFraming is how a response's body is delimited.
type BodyFraming uint8

// The framings.
const (
	BodyNone    BodyFraming = iota // no body: HEAD, 1xx, 204, 304
	BodyLength                     // ContentLength bytes
	BodyChunked                    // chunked
	BodyToClose                    // everything until the server closes
)

// Framing is how the body after h is delimited, for a request made with method head (true
// for HEAD), by RFC 9112 §6.3.
func (h *ResponseHead) Framing(head bool) BodyFraming {
	switch {
	case head || h.Status < 200 || h.Status == 204 || h.Status == 304:
		return BodyNone
	case h.Chunked:
		return BodyChunked
	case h.ContentLength >= 0:
		return BodyLength
	}
	return BodyToClose
}
