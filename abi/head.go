package abi

import (
	"encoding/binary"
	"errors"
)

// Flags of a packed request head (ABI.md §4).
const (
	HeadKeepAlive   = 1 << 0
	HeadChunked     = 1 << 1
	HeadExpect100   = 1 << 2
	HeadBodyPending = 1 << 3
	HeadUpgrade     = 1 << 4
	HeadWebSocket   = 1 << 5 // since 1.3: a valid WebSocket opening handshake; ws_accept may take it
)

// HeadFixed is the size of the fixed part of a packed head.
const HeadFixed = 32

// Header is one header field: the name as received (compare it case-insensitively) and the
// value. Name and Value alias the buffer the field was decoded or parsed from. The host's
// HTTP/1.1 parser and WebSocket handshake use this type too, so a request's fields reach Encode
// without a copy.
type Header struct {
	Name, Value []byte
}

// Head is a request head as carried across the ABI. Decoding fills it with slices of the
// source buffer, so decoding allocates nothing once Headers has grown to its working size.
type Head struct {
	Flags         uint16
	Major, Minor  uint8
	Method        []byte
	Target        []byte
	ContentLength int64 // -1 when not known in advance
	Headers       []Header
	Body          []byte // the inline body
}

// ErrShortBuffer means the destination cannot hold the encoded head.
var ErrShortBuffer = errors.New("abi: buffer too small for the request head")

// ErrMalformed means a packed head is inconsistent: a length runs past the record.
var ErrMalformed = errors.New("abi: malformed request head")

// Size returns the encoded size of h, inline body included.
func (h *Head) Size() int {
	n := HeadFixed + len(h.Method) + len(h.Target) + len(h.Body)
	for i := range h.Headers {
		n += 8 + len(h.Headers[i].Name) + len(h.Headers[i].Value)
	}
	return n
}

// Encode writes h into dst and returns the bytes written. Header names are written
// lower-cased, which is what the ABI promises guests. It fails with ErrShortBuffer, writing
// nothing meaningful, when dst is too small, and with ErrMalformed when a length does not fit
// its field.
func (h *Head) Encode(dst []byte) (int, error) {
	size := h.Size()
	if size > len(dst) {
		return 0, ErrShortBuffer
	}
	if len(h.Method) > 0xffff || len(h.Headers) > 0xffff || uint64(size) > 0xffffffff {
		return 0, ErrMalformed
	}
	le := binary.LittleEndian
	le.PutUint32(dst[0:], uint32(size))
	le.PutUint16(dst[4:], h.Flags)
	dst[6] = h.Major
	dst[7] = h.Minor
	le.PutUint16(dst[8:], uint16(len(h.Method)))
	le.PutUint16(dst[10:], uint16(len(h.Headers)))
	le.PutUint32(dst[12:], uint32(len(h.Target)))
	le.PutUint64(dst[16:], uint64(h.ContentLength))
	le.PutUint32(dst[24:], uint32(len(h.Body)))
	le.PutUint32(dst[28:], 0)
	p := HeadFixed
	p += copy(dst[p:], h.Method)
	p += copy(dst[p:], h.Target)
	for i := range h.Headers {
		f := &h.Headers[i]
		le.PutUint32(dst[p:], uint32(len(f.Name)))
		le.PutUint32(dst[p+4:], uint32(len(f.Value)))
		p += 8
		for _, c := range f.Name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst[p] = c
			p++
		}
		p += copy(dst[p:], f.Value)
	}
	p += copy(dst[p:], h.Body)
	return p, nil
}

// Decode parses a packed head from src into h. The slices in h alias src; h.Headers is reused.
// It never panics on any input: a record whose lengths do not add up is ErrMalformed.
func (h *Head) Decode(src []byte) error {
	if len(src) < HeadFixed {
		return ErrMalformed
	}
	le := binary.LittleEndian
	size := uint64(le.Uint32(src[0:]))
	if size > uint64(len(src)) || size < HeadFixed {
		return ErrMalformed
	}
	src = src[:size]
	h.Flags = le.Uint16(src[4:])
	h.Major, h.Minor = src[6], src[7]
	mlen := uint64(le.Uint16(src[8:]))
	count := int(le.Uint16(src[10:]))
	tlen := uint64(le.Uint32(src[12:]))
	h.ContentLength = int64(le.Uint64(src[16:]))
	blen := uint64(le.Uint32(src[24:]))
	p := uint64(HeadFixed)
	if p+mlen+tlen > size {
		return ErrMalformed
	}
	h.Method = src[p : p+mlen : p+mlen]
	p += mlen
	h.Target = src[p : p+tlen : p+tlen]
	p += tlen
	h.Headers = h.Headers[:0]
	for i := 0; i < count; i++ {
		if p+8 > size {
			return ErrMalformed
		}
		nl, vl := uint64(le.Uint32(src[p:])), uint64(le.Uint32(src[p+4:]))
		p += 8
		if p+nl+vl > size {
			return ErrMalformed
		}
		h.Headers = append(h.Headers, Header{Name: src[p : p+nl : p+nl], Value: src[p+nl : p+nl+vl : p+nl+vl]})
		p += nl + vl
	}
	if p+blen != size {
		return ErrMalformed
	}
	h.Body = src[p:size:size]
	return nil
}

// Get returns the value of the first header named name (ASCII case-insensitive), or nil.
func (h *Head) Get(name string) []byte {
	for i := range h.Headers {
		if EqualFold(h.Headers[i].Name, name) {
			return h.Headers[i].Value
		}
	}
	return nil
}

// EqualFold reports whether b and s are equal under ASCII case folding, without allocating.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x != y {
			if 'A' <= x && x <= 'Z' {
				x += 'a' - 'A'
			}
			if 'A' <= y && y <= 'Z' {
				y += 'a' - 'A'
			}
			if x != y {
				return false
			}
		}
	}
	return true
}

// HeadFlags returns the flags of the packed head in src without decoding the rest, or 0 for
// a record too short to hold them.
func HeadFlags(src []byte) uint16 {
	if len(src) < HeadFixed {
		return 0
	}
	return binary.LittleEndian.Uint16(src[4:])
}
