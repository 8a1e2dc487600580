package http1

import (
	"strings"
	"testing"
)

// decodeResult is what a whole chunked body decodes to.
type decodeResult struct {
	data     string
	consumed int
	done     bool
	err      error
}

// decodeWhole calls Next on src until it is done, fails, or stops making
// progress, dropping consumed bytes as a connection would.
func decodeWhole(d *ChunkedDecoder, src []byte) decodeResult {
	var r decodeResult
	var data strings.Builder
	for {
		piece, c, done, err := d.Next(src[r.consumed:])
		data.Write(piece)
		r.consumed += c
		if err != nil || done {
			r.done, r.err = done, err
			break
		}
		if c == 0 && piece == nil {
			break
		}
	}
	r.data = data.String()
	if r.err != nil {
		r.consumed = 0 // how far a failed decode got is not part of its verdict
	}
	return r
}

// decodeTrickle feeds src one byte at a time, keeping unconsumed bytes at
// the front of a pending buffer like a connection's read buffer.
func decodeTrickle(t *testing.T, d *ChunkedDecoder, src []byte) decodeResult {
	var r decodeResult
	var data strings.Builder
	var pending []byte
	for k := 0; k < len(src) && !r.done && r.err == nil; k++ {
		pending = append(pending, src[k])
		for {
			piece, c, done, err := d.Next(pending)
			if c > len(pending) || (piece != nil && len(piece) == 0) {
				t.Fatalf("Next returned consumed %d of %d, piece %q", c, len(pending), piece)
			}
			data.Write(piece)
			pending = pending[c:]
			r.consumed += c
			if err != nil || done {
				r.done, r.err = done, err
				break
			}
			if c == 0 && piece == nil {
				break
			}
		}
	}
	r.data = data.String()
	if r.err != nil {
		r.consumed = 0 // how far a failed decode got is not part of its verdict
	}
	return r
}

var chunkedValid = []struct {
	name, in, data string
	rest           string // bytes after the body, left unconsumed
}{
	{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", ""},
	{"several chunks, hex sizes", "1\r\na\r\nA\r\n0123456789\r\nf\r\n0123456789abcde\r\n0\r\n\r\n", "a0123456789" + "0123456789abcde", ""},
	{"empty body", "0\r\n\r\n", "", ""},
	{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", ""},
	{"fifteen digits", "000000000000005\r\nhello\r\n0\r\n\r\n", "hello", ""},
	{"extension name", "5;foo\r\nhello\r\n0;bar\r\n\r\n", "hello", ""},
	{"extension token value", "5;foo=bar;baz=1\r\nhello\r\n0\r\n\r\n", "hello", ""},
	{"extension quoted value", "5;foo=\"a b;\\\"c\\\\\"\r\nhello\r\n0\r\n\r\n", "hello", ""},
	{"extension BWS", "5; foo = bar \t;baz\t=\t\"x\" ;q\r\nhello\r\n0\r\n\r\n", "hello", ""},
	{"extension quoted obs-text", "5;n=\"\xe2\x82\xac\"\r\nhello\r\n0\r\n\r\n", "hello", ""},
	{"trailers", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\nx-ows: \t v \t\r\n\r\n", "hello", ""},
	{"data containing CRLF", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", ""},
	{"pipelined request after body", "3\r\nabc\r\n0\r\n\r\n", "abc", "GET / HTTP/1.1\r\n\r\n"},
}

func TestChunkedValid(t *testing.T) {
	for _, tc := range chunkedValid {
		t.Run(tc.name, func(t *testing.T) {
			want := decodeResult{data: tc.data, consumed: len(tc.in), done: true}
			var d ChunkedDecoder
			if got := decodeWhole(&d, []byte(tc.in+tc.rest)); got != want {
				t.Fatalf("whole: %+v; want %+v", got, want)
			}
			// Done is sticky and consumes nothing more.
			if data, c, done, err := d.Next([]byte(tc.rest)); data != nil || c != 0 || !done || err != nil {
				t.Fatalf("after done: %q %d %v %v", data, c, done, err)
			}
			d.Reset()
			if got := decodeTrickle(t, &d, []byte(tc.in+tc.rest)); got != want {
				t.Fatalf("trickle: %+v; want %+v", got, want)
			}
		})
	}
}

func TestChunkedDataAliasesSrc(t *testing.T) {
	src := []byte("5\r\nhello\r\n0\r\n\r\n")
	var d ChunkedDecoder
	data, c, done, err := d.Next(src)
	if string(data) != "hello" || c != 8 || done || err != nil {
		t.Fatalf("%q %d %v %v", data, c, done, err)
	}
	if &data[0] != &src[3] || cap(data) != len(data) {
		t.Fatalf("data does not alias src with limited capacity")
	}
	// A partial chunk is delivered as it arrives.
	d.Reset()
	data, c, _, _ = d.Next(src[:5])
	if string(data) != "he" || c != 5 {
		t.Fatalf("partial: %q %d", data, c)
	}
	// A partial chunk line is consumed: its state lives in the decoder, so
	// the caller need not keep it and it is never scanned twice.
	d.Reset()
	if data, c, done, err := d.Next([]byte("1")); data != nil || c != 1 || done || err != nil {
		t.Fatalf("partial size: %q %d %v %v", data, c, done, err)
	}
	if data, c, _, _ := d.Next([]byte(`0;x="y`)); data != nil || c != 6 {
		t.Fatalf("partial extension: %q %d", data, c)
	}
	if data, c, _, _ := d.Next([]byte("\"\r\n0123456789abcdef")); string(data) != "0123456789abcdef" || c != 19 {
		t.Fatalf("data after split line: %q %d", data, c)
	}
}

// Like the request rejects, each input ends on the offending byte.
var chunkedReject = []struct {
	name, in string
	err      *Error
	lim      Limits
}{
	{"empty size line", "\r", errChunkSize, Limits{}},
	{"bare LF as size line", "\n", errBareLF, Limits{}},
	{"bare LF after size", "5\n", errBareLF, Limits{}},
	{"bare CR after size", "5\rx", errBareCR, Limits{}},
	{"non-hex size", "g", errChunkSize, Limits{}},
	{"0x prefix", "0x", errChunkSize, Limits{}},
	{"sign", "+", errChunkSize, Limits{}},
	{"negative", "-", errChunkSize, Limits{}},
	{"leading space", " ", errChunkSize, Limits{}},
	{"whitespace after size", "5 ", errChunkSize, Limits{}},
	{"tab after size", "5\t", errChunkSize, Limits{}},
	{"garbage after size", "5x", errChunkSize, Limits{}},
	{"sixteen digits", "0000000000000000", errChunkOverflow, Limits{}},
	{"int64 overflow", "FFFFFFFFFFFFFFFF", errChunkOverflow, Limits{MaxBodyBytes: 1<<63 - 1}},
	{"chunk above body limit", "100001", errBodyTooLarge, Limits{}},
	{"sum above body limit", "5\r\nhello\r\n6", errBodyTooLarge, Limits{MaxBodyBytes: 10}},
	{"empty extension name", "5;\r", errChunkExt, Limits{}},
	{"extension bad name", "5;@", errChunkExt, Limits{}},
	{"extension empty value", "5;a=\r", errChunkExt, Limits{}},
	{"extension space in name", "5;a b", errChunkExt, Limits{}},
	{"extension space in value", "5;a=b c", errChunkExt, Limits{}},
	{"extension trailing BWS", "5;a=b \r", errChunkExt, Limits{}},
	{"extension bare LF", "5;a\n", errBareLF, Limits{}},
	{"extension value bare LF", "5;a=b\n", errBareLF, Limits{}},
	{"extension bare CR", "5;a\rx", errBareCR, Limits{}},
	{"CR in quoted extension", "5;a=\"x\r", errChunkExt, Limits{}},
	{"LF in quoted extension", "5;a=\"x\n", errBareLF, Limits{}},
	{"NUL in quoted extension", "5;a=\"\x00", errChunkExt, Limits{}},
	{"CTL in quoted-pair", "5;a=\"\\\x01", errChunkExt, Limits{}},
	{"garbage after quoted", "5;a=\"x\"y", errChunkExt, Limits{}},
	{"chunk line too long", "5;aaaaaaa", errChunkLine, Limits{MaxChunkLine: 10}}, // 8 bytes + CRLF fit
	{"data not followed by CRLF", "5\r\nhellox", errChunkData, Limits{}},
	{"data followed by bare LF", "5\r\nhello\n", errBareLF, Limits{}},
	{"data followed by bare CR", "5\r\nhello\rx", errBareCR, Limits{}},
	{"last chunk bare LF", "0\n", errBareLF, Limits{}},
	{"end bare LF", "0\r\n\n", errBareLF, Limits{}},
	{"end bare CR", "0\r\n\rx", errBareCR, Limits{}},
	{"trailer obs-fold", "0\r\nA: b\r\n ", errObsFold, Limits{}},
	{"trailer leading space", "0\r\n\t", errObsFold, Limits{}},
	{"trailer space before colon", "0\r\nA ", errSpaceBeforeColon, Limits{}},
	{"trailer empty name", "0\r\n:", errEmptyName, Limits{}},
	{"trailer bad name", "0\r\nA@", errNameChar, Limits{}},
	{"trailer bad first name byte", "0\r\n@", errNameChar, Limits{}},
	{"trailer no colon", "0\r\nA\r", errNoColon, Limits{}},
	{"trailer name bare LF", "0\r\nA\n", errBareLF, Limits{}},
	{"trailer value bare LF", "0\r\nA: b\n", errBareLF, Limits{}},
	{"trailer value bare CR", "0\r\nA: b\rc", errBareCR, Limits{}},
	{"trailer value NUL", "0\r\nA: \x00", errValueChar, Limits{}},
	{"trailer value DEL", "0\r\nA: b\x7f", errValueChar, Limits{}},
	{"trailer Content-Length", "0\r\nContent-Length:", errTrailerField, Limits{}},
	{"trailer transfer-encoding", "0\r\ntransfer-encoding:", errTrailerField, Limits{}},
	{"trailer Host", "0\r\nHOST:", errTrailerField, Limits{}},
	{"trailer Authorization", "0\r\nAuthorization:", errTrailerField, Limits{}},
	{"trailer Content-Type", "0\r\nContent-Type:", errTrailerField, Limits{}},
	{"trailer If-Unmodified-Since", "0\r\nIf-Unmodified-Since:", errTrailerField, Limits{}},
	{"trailer Trailer", "0\r\nTrailer:", errTrailerField, Limits{}},
	{"trailer too large", "0\r\nX: " + strings.Repeat("v", 17), errTrailerTooLarge, Limits{MaxTrailerBytes: 19}},
}

func TestChunkedReject(t *testing.T) {
	for _, tc := range chunkedReject {
		t.Run(tc.name, func(t *testing.T) {
			d := ChunkedDecoder{Limits: tc.lim}
			got := decodeWhole(&d, []byte(tc.in+"\r\n0\r\n\r\n"))
			if got.err != tc.err {
				t.Fatalf("whole: %+v; want %v", got, tc.err)
			}
			if _, _, _, err := d.Next([]byte("0\r\n\r\n")); err != tc.err {
				t.Fatalf("not sticky: %v", err)
			}
			d = ChunkedDecoder{Limits: tc.lim}
			var pending []byte
			for k := 0; k < len(tc.in); k++ {
				pending = append(pending, tc.in[k])
				for {
					data, c, done, err := d.Next(pending)
					pending = pending[c:]
					if done {
						t.Fatalf("byte %d: done", k)
					}
					if err != nil {
						if k != len(tc.in)-1 || err != tc.err {
							t.Fatalf("byte %d/%d: %v; want %v on the last byte", k, len(tc.in), err, tc.err)
						}
						return
					}
					if c == 0 && data == nil {
						break
					}
				}
			}
			t.Fatalf("never rejected")
		})
	}
}

func TestChunkedOverhead(t *testing.T) {
	// One byte per chunk is legitimate streaming...
	var body []byte
	for range 10000 {
		body = append(body, "1\r\nX\r\n"...)
	}
	var d ChunkedDecoder
	if got := decodeWhole(&d, append(body, "0\r\n\r\n"...)); !got.done || got.err != nil || len(got.data) != 10000 {
		t.Fatalf("one-byte chunks: done=%v err=%v len=%d", got.done, got.err, len(got.data))
	}
	// ...but long extensions on tiny chunks are not.
	body = body[:0]
	for range 1000 {
		body = append(body, "1;"+strings.Repeat("e", 100)+"\r\nX\r\n"...)
	}
	d.Reset()
	if got := decodeWhole(&d, body); got.err != errChunkOverhead {
		t.Fatalf("extension flood: %+v", got.err)
	}
}

func TestForbiddenTrailerNameLength(t *testing.T) {
	for _, f := range forbiddenTrailers {
		if len(f) > maxTrailerName {
			t.Fatalf("%q longer than maxTrailerName", f)
		}
		if !forbiddenTrailer([]byte(strings.ToUpper(f))) {
			t.Fatalf("%q not matched case-insensitively", f)
		}
	}
	// A long name sharing a forbidden prefix is fine.
	var d ChunkedDecoder
	if got := decodeWhole(&d, []byte("0\r\nIf-Unmodified-Since-X: 1\r\n\r\n")); got.err != nil || !got.done {
		t.Fatalf("%+v", got)
	}
}

const benchChunked = "400;ext=1\r\n" // 1 KiB chunks

func chunkedBody(chunks int) []byte {
	var b []byte
	data := strings.Repeat("x", 1024)
	for range chunks {
		b = append(b, benchChunked...)
		b = append(b, data...)
		b = append(b, "\r\n"...)
	}
	return append(b, "0\r\nX-Sum: 1\r\n\r\n"...)
}

func TestChunkedAllocs(t *testing.T) {
	body := chunkedBody(8)
	var d ChunkedDecoder
	allocs := testing.AllocsPerRun(1000, func() {
		d.Reset()
		src := body
		total := 0
		for {
			data, c, done, err := d.Next(src)
			if err != nil {
				t.Fatal(err)
			}
			total += len(data)
			src = src[c:]
			if done {
				break
			}
		}
		if total != 8*1024 {
			t.Fatalf("total %d", total)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %v times per body", allocs)
	}
}

// BenchmarkChunkedNext decodes an 8 KiB body of 1 KiB chunks; the ns/op is
// per body (17 Next calls).
func BenchmarkChunkedNext(b *testing.B) {
	body := chunkedBody(8)
	var d ChunkedDecoder
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d.Reset()
		src := body
		for {
			_, c, done, err := d.Next(src)
			if err != nil {
				b.Fatal(err)
			}
			src = src[c:]
			if done {
				break
			}
		}
	}
}
