package http1

import "strconv"

// Error is a rejection: the server answers Status and closes the connection.
// Parsers return the package's preallocated values, so rejecting a hostile
// request costs no allocation either; callers must not modify them.
type Error struct {
	Status int    // HTTP status to answer with: 400, 413, 414, 417, 431, 501, 505, 500 (guest header blocks)
	Reason string // short human text for logs; never sent as a reason phrase
}

// Error formats the rejection for logs.
func (e *Error) Error() string {
	return "http1: " + strconv.Itoa(e.Status) + " " + e.Reason
}

func bad(reason string) *Error { return &Error{Status: 400, Reason: reason} }

// Request-head rejections. One value per distinct reason, so tests and logs
// can tell which rule fired.
var (
	errBareLF           = bad("bare LF")
	errBareCR           = bad("bare CR")
	errLeadingLines     = bad("too many empty lines before request line")
	errMethodChar       = bad("invalid character in method")
	errEmptyMethod      = bad("empty method")
	errRequestLine      = bad("malformed request line")
	errTargetChar       = bad("invalid character in request target")
	errPercent          = bad("malformed percent-encoding in request target")
	errEmptyTarget      = bad("empty request target")
	errTargetForm       = bad("request target form not allowed for method")
	errAbsoluteTarget   = bad("malformed absolute-form request target")
	errAuthorityTarget  = bad("malformed authority-form request target")
	errVersion          = bad("malformed HTTP version")
	errVersionNotSupp   = &Error{Status: 505, Reason: "HTTP version not supported"}
	errLeadingSpace     = bad("whitespace before first header field")
	errObsFold          = bad("obsolete line folding")
	errEmptyName        = bad("empty field name")
	errNameChar         = bad("invalid character in field name")
	errSpaceBeforeColon = bad("whitespace between field name and colon")
	errNoColon          = bad("field line without colon")
	errValueChar        = bad("invalid character in field value")
	errDupCL            = bad("duplicate Content-Length")
	errBadCL            = bad("invalid Content-Length")
	errCLAndTE          = bad("both Content-Length and Transfer-Encoding")
	errBadTE            = bad("malformed Transfer-Encoding")
	errTEUnsupported    = &Error{Status: 501, Reason: "unsupported Transfer-Encoding"}
	errTE10             = bad("Transfer-Encoding in HTTP/1.0 request")
	errNoHost           = bad("missing Host")
	errDupHost          = bad("duplicate Host")
	errBadHost          = bad("invalid Host")
	errBadConnection    = bad("malformed Connection")
	errBadTrailerDecl   = bad("Trailer names a field not allowed in trailers")
	errExpect           = &Error{Status: 417, Reason: "unsupported expectation"}
	errLineTooLong      = &Error{Status: 414, Reason: "request line too long"}
	errHeadTooLarge     = &Error{Status: 431, Reason: "request header too large"}
	errTooManyFields    = &Error{Status: 431, Reason: "too many header fields"}
	errBodyTooLarge     = &Error{Status: 413, Reason: "request body too large"}
)

// Chunked-body rejections.
var (
	errChunkSize       = bad("malformed chunk size")
	errChunkOverflow   = bad("chunk size overflow")
	errChunkExt        = bad("malformed chunk extension")
	errChunkLine       = bad("chunk line too long")
	errChunkData       = bad("missing CRLF after chunk data")
	errChunkOverhead   = bad("too much chunk overhead for the data")
	errTrailerField    = bad("field not allowed in trailer")
	errTrailerTooLarge = &Error{Status: 431, Reason: "trailer section too large"}
)
