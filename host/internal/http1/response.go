package http1

import (
	"strconv"
	"time"

	"github.com/wasmloop/wasmloop/host/internal/httpfield"
)

// AppendStatusLine appends "HTTP/1.1 200 OK\r\n". Servers should pass minor
// 1 whatever the request said (RFC 9110 §6.2: answer with the highest
// version we conform to); minor 0 writes "HTTP/1.0" for callers that must.
// A status outside 100..999 is a caller bug and is written as 500 rather
// than as a malformed status line. Codes without a registered phrase get an
// empty reason phrase, which RFC 9112 §4 allows and clients ignore.
func AppendStatusLine(dst []byte, minor int, status int) []byte {
	if status < 100 || status > 999 {
		status = 500
	}
	if minor == 0 {
		dst = append(dst, "HTTP/1.0 "...)
	} else {
		dst = append(dst, "HTTP/1.1 "...)
	}
	dst = append(dst, byte('0'+status/100), byte('0'+status/10%10), byte('0'+status%10), ' ')
	dst = append(dst, reasonPhrase(status)...)
	return append(dst, "\r\n"...)
}

// reasonPhrase returns the IANA-registered phrase (RFC 9110 §15 and later
// registrations); 418 is listed as "(Unused)" and gets net/http's phrase.
func reasonPhrase(status int) string {
	switch status {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 102:
		return "Processing"
	case 103:
		return "Early Hints"
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 203:
		return "Non-Authoritative Information"
	case 204:
		return "No Content"
	case 205:
		return "Reset Content"
	case 206:
		return "Partial Content"
	case 207:
		return "Multi-Status"
	case 208:
		return "Already Reported"
	case 226:
		return "IM Used"
	case 300:
		return "Multiple Choices"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 304:
		return "Not Modified"
	case 305:
		return "Use Proxy"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 402:
		return "Payment Required"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 406:
		return "Not Acceptable"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 411:
		return "Length Required"
	case 412:
		return "Precondition Failed"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 415:
		return "Unsupported Media Type"
	case 416:
		return "Range Not Satisfiable"
	case 417:
		return "Expectation Failed"
	case 418:
		return "I'm a teapot"
	case 421:
		return "Misdirected Request"
	case 422:
		return "Unprocessable Content"
	case 423:
		return "Locked"
	case 424:
		return "Failed Dependency"
	case 425:
		return "Too Early"
	case 426:
		return "Upgrade Required"
	case 428:
		return "Precondition Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 451:
		return "Unavailable For Legal Reasons"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	case 506:
		return "Variant Also Negotiates"
	case 507:
		return "Insufficient Storage"
	case 508:
		return "Loop Detected"
	case 510:
		return "Not Extended"
	case 511:
		return "Network Authentication Required"
	}
	return ""
}

// dateLayout is RFC 9110 §5.6.7 IMF-fixdate, the only form a sender may generate.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 GMT"

// AppendDate appends the Date field line for now, in UTC.
func AppendDate(dst []byte, now time.Time) []byte {
	dst = append(dst, "Date: "...)
	dst = now.UTC().AppendFormat(dst, dateLayout)
	return append(dst, "\r\n"...)
}

// DateCache formats the Date field line at most once per second: a loop
// answering many requests a second would otherwise format the same text for
// each. It is owned by one loop goroutine, hence no locks. The zero value is
// ready to use.
type DateCache struct {
	sec  int64
	n    int // 0 until the first format
	line [40]byte
}

// Append appends the Date field line for now's second.
func (c *DateCache) Append(dst []byte, now time.Time) []byte {
	if s := now.Unix(); c.n == 0 || s != c.sec {
		b := AppendDate(c.line[:0], now)
		if len(b) > len(c.line) {
			return append(dst, b...) // a year past 9999: not worth caching
		}
		c.sec, c.n = s, len(b)
	}
	return append(dst, c.line[:c.n]...)
}

// AppendChunk appends data as one chunk. Empty data appends nothing, since
// an empty chunk would end the body.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = strconv.AppendUint(dst, uint64(len(data)), 16)
	dst = append(dst, "\r\n"...)
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendLastChunk appends the last chunk and an empty trailer section.
func AppendLastChunk(dst []byte) []byte {
	return append(dst, "0\r\n\r\n"...)
}

// BlockInfo reports the framing-relevant fields a guest put in its header
// block, so the server can choose Content-Length or chunked framing and
// decide whether to close.
type BlockInfo struct {
	ContentLength       int64 // -1 if absent
	HasDate             bool
	ConnectionClose     bool // Connection has the "close" token
	HasTransferEncoding bool
}

// Guest header-block rejections: the guest, not the client, is at fault, so
// the server answers 500 (or closes) instead of passing the bytes on.
var (
	errGuestName  = &Error{Status: 500, Reason: "guest header: invalid field name"}
	errGuestValue = &Error{Status: 500, Reason: "guest header: invalid character in field value"}
	errGuestCRLF  = &Error{Status: 500, Reason: "guest header: field line not ended by CRLF"}
	errGuestCL    = &Error{Status: 500, Reason: "guest header: invalid Content-Length"}
	errGuestDupCL = &Error{Status: 500, Reason: "guest header: duplicate Content-Length"}
	errGuestCLTE  = &Error{Status: 500, Reason: "guest header: both Content-Length and Transfer-Encoding"}
)

// CheckHeaderBlock validates a header block written by an untrusted guest
// before the server copies it to the wire: zero or more field lines, each
// well-formed by httpfield.CutLine. A malformed line could end the head early
// or split the response, so it is an *Error (Status 500). A bad or repeated
// Content-Length, or one together with Transfer-Encoding (RFC 9112 §6.2), is
// refused for the same reason.
func CheckHeaderBlock(b []byte) (BlockInfo, error) {
	info := BlockInfo{ContentLength: -1}
	for len(b) > 0 {
		name, val, rest, fault := httpfield.CutLine(b)
		switch fault {
		case httpfield.BadName:
			return info, errGuestName
		case httpfield.BadValue:
			return info, errGuestValue
		case httpfield.BadLineEnd:
			return info, errGuestCRLF
		}
		b = rest

		switch {
		case httpfield.EqualFold(name, "content-length"):
			if info.ContentLength >= 0 {
				return info, errGuestDupCL
			}
			n, ok := parseDigits(val)
			if !ok {
				return info, errGuestCL
			}
			if info.HasTransferEncoding {
				return info, errGuestCLTE
			}
			info.ContentLength = n
		case httpfield.EqualFold(name, "transfer-encoding"):
			if info.ContentLength >= 0 {
				return info, errGuestCLTE
			}
			info.HasTransferEncoding = true
		case httpfield.EqualFold(name, "date"):
			info.HasDate = true
		case httpfield.EqualFold(name, "connection"):
			for v := val; ; {
				elem, rest := httpfield.NextListElem(v)
				if httpfield.EqualFold(elem, "close") {
					info.ConnectionClose = true
				}
				if rest == nil {
					break
				}
				v = rest
			}
		}
	}
	return info, nil
}
