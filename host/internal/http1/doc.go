// Package http1 is wasmloop's HTTP/1.1 wire layer: a strict, incremental,
// allocation-free request-head parser, a chunked-body decoder, and the
// append-style helpers that frame responses.
//
// It is written for an edge-triggered event loop that reads whatever bytes
// the kernel has into a per-connection buffer and parses from there, so its
// shape follows from four concerns.
//
// Fail fast. Every rule is checked on the byte that breaks it: a bare LF, a
// bad method character or the first byte past a limit is refused at once,
// not when the head completes. A hostile client cannot make the server hold
// a doomed request while it trickles in the rest, and the server answers the
// same status whether the bytes arrive whole or one at a time.
//
// No rescans. Parser and ChunkedDecoder keep their position and state
// between calls and never look at a byte twice. A parser that rescans the
// buffer on each read does quadratic work for a head sent one byte per
// packet, which turns slowloris into a CPU attack.
//
// Aliasing. Parsed names, values and targets are sub-slices of the caller's
// buffer (capacity-limited, so appending to one cannot overwrite the next).
// Nothing is copied or allocated on the hot path; the parser records offsets
// while scanning and cuts the slices from the buffer of the call that
// completes the head, so the caller may grow or move its buffer meanwhile.
// Rejections are preallocated *Error values.
//
// Strictness. Where two HTTP implementations read a message differently,
// one of them can be made to see a request the other does not (request
// smuggling, RFC 9112 §11.2). The parser is therefore at least as strict as
// the stricter of Go's net/http and Node's llhttp on every rule, and refuses
// rather than repairs: both Content-Length and Transfer-Encoding, any
// repeated Content-Length, a Content-Length that is not plain digits,
// Transfer-Encoding other than exactly "chunked" (501 for codings we do not
// implement), obs-fold, whitespace before a colon, bare CR or LF anywhere
// (chunk lines, extensions and trailers too), HTTP/1.1 without exactly one
// Host, control characters in values, malformed request lines and targets,
// fragments in targets, and HTTP versions other than 1.0 and 1.1 (505; see
// the version rule in request.go for why HTTP/1.2+ is refused although RFC
// 9110 §6.2 suggests treating it as 1.1). Limits on head bytes, field
// count, request-line length, chunk lines, trailers and body size are part
// of the grammar, not an afterthought.
//
// Choices where the RFCs leave room, each documented where it is made: up to
// four empty lines before a request line are skipped (RFC 9112 §2.2);
// Expect other than 100-continue is 417; an absolute-form target must be
// http or https, without userinfo, and with a path if it has a query; a
// Host must be a plain reg-name, IPv4 or IPv6 literal with an optional port;
// percent-escapes are validated in the whole target; whitespace after a
// chunk size is refused (BWS is allowed inside extensions), and so is chunk
// framing that outweighs its data, by net/http's rule; trailer fields that
// affect framing, routing, authentication, request modifiers or content
// format are refused, and so is a Trailer field announcing them.
package http1
