package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// checkHeaderSeeds are the TestCheckHeaderBlock rows plus the splitting and
// framing tricks a guest could try on the block it hands the server.
var checkHeaderSeeds = []string{
	"",
	"Content-Type: text/plain\r\nContent-Length: 12\r\n",
	"X:v\r\nY:\t v \t\r\nZ:\r\n",
	"date: x\r\nConnection: keep-alive, Close\r\nTransfer-Encoding: chunked\r\n",
	"X: caf\xc3\xa9\r\n",
	"\r\n",
	"X: 1\r\n\r\nHTTP/1.1 200 OK\r\n",
	"X: 1",
	"X: 1\r",
	"X: 1\nY: 2\r\n",
	"X: 1\rY: 2\r\n",
	"X: a\x00b\r\n",
	"X: \x7f\r\n",
	"X: 1\r\n 2\r\n",
	"X : 1\r\n",
	": 1\r\n",
	"X\r\n",
	"X(): 1\r\n",
	"Content-Length: 1x\r\n",
	"Content-Length:\r\n",
	"Content-Length: 1\r\ncontent-length: 1\r\n",
	"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
	"Transfer-Encoding: chunked\r\nContent-Length: 1\r\n",
	"Content-Length: 9223372036854775807\r\n",
	"Content-Length: 9223372036854775808\r\n",
	"Content-Length: +5\r\n",
	"Content-Length: 0005\r\n",
	"Content-Length: 5\r\nX: hello\r\n",
	"Transfer-Encoding: chunked\r\nTrailer: Content-Length\r\n",
	"Transfer-Encoding: identity\r\n",
	"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
	"Connection: close\r\n",
	"Connection: ,\t,close ,\r\n",
	"Connection: keep-alive\r\nConnection: CLOSE\r\n",
	"Connection: \"close\"\r\n",
	"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nset-cookie: c=3\r\n",
	"X-Obs: \x80\xff\r\n",
	"!#$%&'*+-.^_`|~09aZ: v\r\n",
	"Trailer: X\r\nX: y\r\n",
}

// blockLine is a field line as read by readBlock.
type blockLine struct{ name, value string }

// tchars is RFC 9110 §5.6.2 spelt out, so that this reading shares no
// tables with httpfield.
const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// readBlock is a second, deliberately naive reading of a header block:
// split at CRLF, then each line must be token ":" field-value with no CR,
// LF, NUL or other control byte but HTAB. It reports false for anything
// else, which is what CheckHeaderBlock must refuse.
func readBlock(b []byte) ([]blockLine, bool) {
	s := string(b)
	if s == "" {
		return nil, true
	}
	if !strings.HasSuffix(s, "\r\n") {
		return nil, false
	}
	var out []blockLine
	for _, line := range strings.Split(s[:len(s)-2], "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, false
		}
		for i := 0; i < len(name); i++ {
			if strings.IndexByte(tchars, name[i]) < 0 {
				return nil, false
			}
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, false
			}
		}
		out = append(out, blockLine{name, strings.Trim(value, " \t")})
	}
	return out, true
}

// expectInfo derives BlockInfo from readBlock's lines by RFC 9110/9112 as
// written, and reports whether the framing fields are acceptable at all:
// one Content-Length of plain digits below 2^63, not with Transfer-Encoding.
func expectInfo(lines []blockLine) (BlockInfo, bool) {
	info := BlockInfo{ContentLength: -1}
	cls := 0
	for _, l := range lines {
		switch strings.ToLower(l.name) {
		case "content-length":
			cls++
			n, err := strconv.ParseUint(l.value, 10, 63)
			if err != nil || strings.TrimLeft(l.value, "0123456789") != "" {
				return info, false
			}
			info.ContentLength = int64(n)
		case "transfer-encoding":
			info.HasTransferEncoding = true
		case "date":
			info.HasDate = true
		case "connection":
			for _, el := range strings.Split(l.value, ",") {
				if strings.EqualFold(strings.Trim(el, " \t"), "close") {
					info.ConnectionClose = true
				}
			}
		}
	}
	return info, cls <= 1 && !(cls == 1 && info.HasTransferEncoding)
}

// maxFuzzBody bounds the body put after the head: a larger Content-Length
// is checked as a number only.
const maxFuzzBody = 1 << 12

// FuzzCheckHeaderBlock holds CheckHeaderBlock, which is all that stands
// between a guest's header bytes and the wire, to two other readings:
//
//   - readBlock/expectInfo: a block is accepted exactly when every line is
//     a well-formed field line (no bare CR or LF, no NUL, no obs-fold, no
//     empty line that would end the head early) and its framing fields are
//     sane, and the BlockInfo verdicts are the ones the RFC gives.
//   - net/http: the response the server builds around an accepted block
//     (status line, the block, the Content-Length the server adds when the
//     block has none, CRLF, a body as framed) reads in http.ReadResponse
//     with the same fields in the same order per name, the same
//     Content-Length, Transfer-Encoding and close verdicts, and the message
//     ends where the server thinks it does, so nothing is left over to be
//     read as a second response.
//
// Deliberate differences: net/http drops Transfer-Encoding from Header, a
// Connection field that says close, and a Trailer field of a chunked
// message; and it refuses Transfer-Encoding other than one "chunked" and
// some Trailer names, which CheckHeaderBlock leaves to its caller (Respond
// refuses every block with Transfer-Encoding).
func FuzzCheckHeaderBlock(f *testing.F) {
	for _, s := range checkHeaderSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		info, err := CheckHeaderBlock(block)
		lines, wellFormed := readBlock(block)
		want, framingOK := expectInfo(lines)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != 500 {
				t.Fatalf("%q: error %v, want a 500 *Error", block, err)
			}
			if wellFormed && framingOK {
				t.Fatalf("%q refused (%v), but every line is well-formed and the framing sane", block, err)
			}
			return
		}
		if !wellFormed {
			t.Fatalf("accepted %q, which is not a sequence of Name: value CRLF lines", block)
		}
		if !framingOK || info != want {
			t.Fatalf("%q: %+v, want %+v (framing ok %v)", block, info, want, framingOK)
		}

		// The response as the server would frame it.
		msg := append([]byte("HTTP/1.1 200 OK\r\n"), block...)
		var body []byte
		switch {
		case info.HasTransferEncoding:
			body = []byte("0\r\n\r\n")
		case info.ContentLength < 0:
			msg = append(msg, "Content-Length: 0\r\n"...)
		case info.ContentLength <= maxFuzzBody:
			body = bytes.Repeat([]byte("x"), int(info.ContentLength))
		}
		msg = append(msg, "\r\n"...)
		msg = append(msg, body...)
		src := bytes.NewReader(msg)
		br := bufio.NewReader(src)
		resp, herr := http.ReadResponse(br, nil)
		if herr != nil {
			if info.HasTransferEncoding && (strings.Contains(herr.Error(), "transfer encoding") ||
				strings.Contains(herr.Error(), "bad trailer key")) {
				return // a deliberate difference
			}
			t.Fatalf("accepted %q; net/http: %v", block, herr)
		}
		wantHeader := http.Header{}
		for _, l := range lines {
			k := textproto.CanonicalMIMEHeaderKey(l.name)
			wantHeader[k] = append(wantHeader[k], l.value)
		}
		wantCL := info.ContentLength
		switch {
		case info.HasTransferEncoding:
			wantCL = -1
			delete(wantHeader, "Transfer-Encoding")
			delete(wantHeader, "Trailer")
		case wantCL < 0:
			wantCL = 0
			wantHeader["Content-Length"] = []string{"0"}
		}
		if info.ConnectionClose {
			delete(wantHeader, "Connection")
		}
		if len(resp.Header) != len(wantHeader) {
			t.Fatalf("%q: net/http fields %q, want %q", block, resp.Header, wantHeader)
		}
		for k, v := range wantHeader {
			if !slices.Equal(resp.Header[k], v) {
				t.Fatalf("%q: net/http field %s %q, want %q", block, k, resp.Header[k], v)
			}
		}
		if resp.ContentLength != wantCL || (len(resp.TransferEncoding) > 0) != info.HasTransferEncoding ||
			resp.Close != info.ConnectionClose {
			t.Fatalf("%q: net/http CL %d TE %q close %v; host %+v", block,
				resp.ContentLength, resp.TransferEncoding, resp.Close, info)
		}
		if info.ContentLength > maxFuzzBody {
			return // no body was written to read
		}
		got, rerr := io.ReadAll(resp.Body)
		if rerr != nil || (!info.HasTransferEncoding && !bytes.Equal(got, body)) || (info.HasTransferEncoding && len(got) != 0) {
			t.Fatalf("%q: body %q, %v", block, got, rerr)
		}
		if br.Buffered() != 0 || src.Len() != 0 {
			t.Fatalf("%q: %d bytes left after the response", block, br.Buffered()+src.Len())
		}
	})
}
