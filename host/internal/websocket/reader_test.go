package websocket

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The tests below follow the Autobahn testsuite's case groups. Every input
// is fed whole, byte by byte and in uneven chunks (runCases), and must give
// the same events and error each way.

// Autobahn 1: framing.
func TestFraming(t *testing.T) {
	var cases []frameCase
	for _, n := range []int{0, 1, 125, 126, 127, 128, 65535, 65536} {
		s := strings.Repeat("*", n)
		cases = append(cases,
			frameCase{name: "1.1 text " + itoa(n), in: text(s), want: []got{txt(s)}},
			frameCase{name: "1.2 binary " + itoa(n), in: binFrame(pattern(n)), want: []got{bin(pattern(n))}},
		)
	}
	cases = append(cases,
		frameCase{name: "two messages", in: cat(text("a"), binFrame([]byte{0xfe, 0})), want: []got{txt("a"), bin([]byte{0xfe, 0})}},
		frameCase{name: "unmasked text", in: unmaskedFrame(ws.OpText, true, []byte("x")), err: errUnmasked},
		frameCase{name: "unmasked after valid", in: cat(text("ok"), unmaskedFrame(ws.OpBinary, true, nil)), want: []got{txt("ok")}, err: errUnmasked},
		frameCase{name: "unmasked ping", in: unmaskedFrame(ws.OpPing, true, nil), err: errUnmasked},
		frameCase{name: "64-bit length top bit", in: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, err: errLength64},
		frameCase{name: "64-bit length max", in: []byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, err: errTooBig},
		// Non-minimal length encodings are accepted, as by every common
		// implementation; RFC 6455 §5.2 asks senders, not receivers.
		frameCase{name: "non-minimal 16-bit length", in: func() []byte {
			p := []byte{0x82, 0x80 | 126, 0, 3}
			p = append(p, testMask[:]...)
			q := []byte{1, 2, 3}
			ws.Cipher(q, testMask, 0)
			return append(p, q...)
		}(), want: []got{bin([]byte{1, 2, 3})}},
	)
	runCases(t, cases)
}

// Autobahn 2: pings and pongs.
func TestPingPong(t *testing.T) {
	p125 := strings.Repeat("\xfe", 125)
	var binPayload []byte
	for i := range 125 {
		binPayload = append(binPayload, byte(255-i))
	}
	runCases(t, []frameCase{
		{name: "2.1 empty ping", in: ping(""), want: []got{gPing("")}},
		{name: "2.2 ping with text", in: ping("Hello, world!"), want: []got{gPing("Hello, world!")}},
		{name: "2.3 ping with binary", in: frame(ws.OpPing, true, binPayload), want: []got{gPing(string(binPayload))}},
		{name: "2.4 ping 125", in: ping(p125), want: []got{gPing(p125)}},
		{name: "2.5 ping 126", in: ping(p125 + "x"), err: errCtlTooLong},
		{name: "2.5 ping 16-bit length", in: []byte{0x89, 0x80 | 126, 0, 1}, err: errCtlTooLong},
		{name: "2.6 ping then text", in: cat(ping("a"), text("b")), want: []got{gPing("a"), txt("b")}},
		{name: "2.7 unsolicited pong", in: pong(""), want: []got{gPong("")}},
		{name: "2.8 unsolicited pong payload", in: pong("unsolicited"), want: []got{gPong("unsolicited")}},
		{name: "2.10 ten pings", in: bytes.Repeat(ping("x"), 10), want: repeatGot(gPing("x"), 10)},
		{name: "pong 126", in: pong(p125 + "x"), err: errCtlTooLong},
	})
}

// Autobahn 3: reserved bits.
func TestReservedBits(t *testing.T) {
	var cases []frameCase
	for rsv := byte(1); rsv < 8; rsv++ {
		cases = append(cases,
			frameCase{name: "3.x text rsv " + itoa(int(rsv)), in: frameRsv(ws.OpText, true, rsv, []byte("Hello")), err: errRsv},
			frameCase{name: "3.x after valid rsv " + itoa(int(rsv)), in: cat(text("ok"), frameRsv(ws.OpBinary, true, rsv, nil), text("never")), want: []got{txt("ok")}, err: errRsv},
			frameCase{name: "3.x ping rsv " + itoa(int(rsv)), in: frameRsv(ws.OpPing, true, rsv, nil), err: errRsv},
			frameCase{name: "3.x close rsv " + itoa(int(rsv)), in: frameRsv(ws.OpClose, true, rsv, nil), err: errRsv},
		)
		if rsv != 4 {
			cases = append(cases, frameCase{name: "deflate text rsv " + itoa(int(rsv)), deflate: true,
				in: frameRsv(ws.OpText, true, rsv, []byte("Hello")), err: errRsv})
		}
	}
	cases = append(cases,
		frameCase{name: "deflate rsv1 on continuation", deflate: true,
			in: cat(frame(ws.OpText, false, []byte("a")), frameRsv(ws.OpContinuation, true, 4, []byte("b"))), err: errRsv},
		frameCase{name: "deflate rsv1 on ping", deflate: true, in: frameRsv(ws.OpPing, true, 4, nil), err: errRsv},
		frameCase{name: "deflate rsv1 on close", deflate: true, in: frameRsv(ws.OpClose, true, 4, nil), err: errRsv},
	)
	runCases(t, cases)
}

// Autobahn 4: opcodes.
func TestOpcodes(t *testing.T) {
	var cases []frameCase
	for op := ws.OpCode(3); op < 16; op++ {
		if op >= 8 && op <= 10 {
			continue
		}
		cases = append(cases,
			frameCase{name: "4.x reserved " + itoa(int(op)), in: frame(op, true, nil), err: errOpcode},
			frameCase{name: "4.x reserved with payload " + itoa(int(op)), in: frame(op, true, []byte("reserved")), err: errOpcode},
			frameCase{name: "4.x after valid " + itoa(int(op)), in: cat(text("ok"), frame(op, true, nil), ping("")), want: []got{txt("ok")}, err: errOpcode},
		)
	}
	runCases(t, cases)
}

// Autobahn 5: fragmentation.
func TestFragmentation(t *testing.T) {
	var oneByteFrags [][]byte
	oneByteFrags = append(oneByteFrags, frame(ws.OpText, false, []byte("f")))
	for _, c := range "ragment" {
		oneByteFrags = append(oneByteFrags, cont(false, string(c)))
	}
	oneByteFrags = append(oneByteFrags, cont(true, "s"))
	runCases(t, []frameCase{
		{name: "5.1 fragmented ping", in: frame(ws.OpPing, false, []byte("a")), err: errCtlFragmented},
		{name: "5.2 fragmented pong", in: frame(ws.OpPong, false, []byte("a")), err: errCtlFragmented},
		{name: "5.2 fragmented close", in: frame(ws.OpClose, false, nil), err: errCtlFragmented},
		{name: "5.3 text in two", in: cat(frame(ws.OpText, false, []byte("frag")), cont(true, "ment")), want: []got{txt("fragment")}},
		{name: "5.5 text in one-byte frames", in: cat(oneByteFrags...), want: []got{txt("fragments")}},
		{name: "5.6 ping between fragments", in: cat(frame(ws.OpText, false, []byte("frag")), ping("p"), cont(true, "ment")),
			want: []got{gPing("p"), txt("fragment")}},
		{name: "5.7 pong between fragments", in: cat(frame(ws.OpBinary, false, []byte{1}), pong("q"), frame(ws.OpContinuation, false, []byte{2}), ping(""), frame(ws.OpContinuation, true, []byte{3})),
			want: []got{gPong("q"), gPing(""), bin([]byte{1, 2, 3})}},
		{name: "5.9 continuation first", in: cont(true, "x"), err: errContinuation},
		{name: "5.10 continuation not final first", in: cont(false, "x"), err: errContinuation},
		{name: "5.13 continuation after message", in: cat(text("a"), cont(true, "b")), want: []got{txt("a")}, err: errContinuation},
		{name: "5.18 text inside fragmented text", in: cat(frame(ws.OpText, false, []byte("a")), text("b")), err: errInterleaved},
		{name: "5.x binary inside fragmented text", in: cat(frame(ws.OpText, false, []byte("a")), frame(ws.OpBinary, false, nil)), err: errInterleaved},
		{name: "5.19 pings between many fragments", in: cat(frame(ws.OpText, false, []byte("a")), cont(false, "b"), ping("1"), cont(false, ""), ping("2"), cont(true, "c")),
			want: []got{gPing("1"), gPing("2"), txt("abc")}},
		{name: "empty fragments", in: cat(frame(ws.OpBinary, false, nil), cont(false, ""), cont(true, "")), want: []got{bin([]byte{})}},
		{name: "close between fragments", in: cat(frame(ws.OpText, false, []byte("a")), closeCode(1000, ""), cont(true, "b")),
			want: []got{gClose(1000, "")}},
		{name: "message after fragmented message", in: cat(frame(ws.OpText, false, []byte("a")), cont(true, "b"), text("c")),
			want: []got{txt("ab"), txt("c")}},
	})
}

// Autobahn 6: UTF-8 handling.
var (
	validUTF8 = []string{
		"", "Hello-µ@ßöäüàá-UTF-8!!", "κόσμε", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff",
		"\ud7ff", "\ue000", "\ufffd", "\ufeff", "a\x00b", "\x7f",
		strings.Repeat("κόσμε€𝄞", 50),
	}
	// invalidUTF8 pairs a sequence with the index of the first byte that
	// makes it invalid: the byte the reader must fail on.
	invalidUTF8 = []struct {
		s   string
		bad int
	}{
		{"\x80", 0}, {"\xbf", 0}, {"a\x80b", 1}, {"\xc0\xaf", 0}, {"\xc1\xbf", 0},
		{"\xe0\x80\xaf", 1}, {"\xe0\x9f\xbf", 1}, {"\xf0\x80\x80\xaf", 1}, {"\xf0\x8f\xbf\xbf", 1},
		{"\xf8\x88\x80\x80\xaf", 0}, {"\xfc\x84\x80\x80\x80\xaf", 0}, {"\xfe", 0}, {"\xff", 0},
		{"\xed\xa0\x80", 1}, {"\xed\xbf\xbf", 1}, {"\xed\xa0\x80\xed\xb0\x80", 1},
		{"\xf4\x90\x80\x80", 1}, {"\xf5\x80\x80\x80", 0}, {"\xf7\xbf\xbf\xbf", 0},
		{"\xc2\x41", 1}, {"\xe1\x80\x41", 2}, {"\xf1\x80\x80\x41", 3},
		{"κόσμε\xed\xa0\x80edited", 11},
		{"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64", 12},
	}
	// truncatedUTF8 is valid so far but ends inside a character.
	truncatedUTF8 = []string{"\xc2", "\xe0\xa0", "\xf0\x90\x80", "κόσμε\xce", "\xf4\x8f"}
)

func TestUTF8(t *testing.T) {
	var cases []frameCase
	for i, s := range validUTF8 {
		cases = append(cases, frameCase{name: "6.x valid " + itoa(i), in: text(s), want: []got{txt(s)}})
		// Split across two fragments at every byte, and one byte per frame.
		for k := 0; k <= len(s) && len(s) < 40; k++ {
			cases = append(cases, frameCase{name: "6.x valid split " + itoa(i) + "/" + itoa(k),
				in: cat(frame(ws.OpText, false, []byte(s[:k])), cont(true, s[k:])), want: []got{txt(s)}})
		}
		if len(s) > 0 && len(s) < 40 {
			cases = append(cases, frameCase{name: "6.x valid per byte " + itoa(i), in: perByte(s), want: []got{txt(s)}})
		}
		// Binary messages are never checked.
		cases = append(cases, frameCase{name: "6.x binary " + itoa(i), in: binFrame([]byte(s)), want: []got{bin([]byte(s))}})
	}
	for i, c := range invalidUTF8 {
		cases = append(cases,
			frameCase{name: "6.x invalid " + itoa(i), in: text(c.s), err: errUTF8},
			frameCase{name: "6.x invalid after valid " + itoa(i), in: cat(text("ok"), text(c.s)), want: []got{txt("ok")}, err: errUTF8},
			frameCase{name: "6.x invalid per byte " + itoa(i), in: perByte(c.s), err: errUTF8},
			frameCase{name: "6.x invalid binary ok " + itoa(i), in: binFrame([]byte(c.s)), want: []got{bin([]byte(c.s))}},
		)
		for k := 0; k <= len(c.s); k++ {
			cases = append(cases, frameCase{name: "6.x invalid split " + itoa(i) + "/" + itoa(k),
				in: cat(frame(ws.OpText, false, []byte(c.s[:k])), cont(true, c.s[k:])), err: errUTF8})
		}
	}
	for i, s := range truncatedUTF8 {
		cases = append(cases,
			frameCase{name: "6.x truncated " + itoa(i), in: text(s), err: errUTF8},
			frameCase{name: "6.x truncated then completed " + itoa(i), in: cat(frame(ws.OpText, false, []byte(s)), ping("")), want: []got{gPing("")}},
		)
	}
	runCases(t, cases)
}

// perByte sends s as a text message with one payload byte per frame.
func perByte(s string) []byte {
	var out []byte
	for i := range len(s) {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		out = append(out, frame(op, i == len(s)-1, []byte{s[i]})...)
	}
	return out
}

// TestUTF8FailFast checks an invalid text message is refused on the very
// byte that makes it invalid, before the rest of the frame (or message)
// arrives, whether the bad byte is in the first frame or a continuation.
func TestUTF8FailFast(t *testing.T) {
	tail := strings.Repeat("x", 300) // the frame goes on well past the bad byte
	for i, c := range invalidUTF8 {
		s := c.s + tail
		for _, split := range []int{-1, 0, c.bad, c.bad + 1} {
			var in []byte
			var badAt int // offset in the input of the offending byte
			if split < 0 || split > len(s) {
				in = text(s)
				badAt = len(in) - len(s) + c.bad
			} else {
				first := frame(ws.OpText, false, []byte(s[:split]))
				second := cont(true, s[split:])
				in = cat(first, second)
				if c.bad < split {
					badAt = len(first) - split + c.bad
				} else {
					badAt = len(first) + len(second) - len(s) + split + (c.bad - split)
				}
			}
			r := &Reader{}
			var pending []byte
			for k := range in {
				pending = append(pending, in[k])
				_, n, err := r.Next(pending)
				if err != nil {
					if err != errUTF8 || k != badAt {
						t.Fatalf("case %d split %d: %v at byte %d, want errUTF8 at %d", i, split, err, k, badAt)
					}
					break
				}
				if k >= badAt {
					t.Fatalf("case %d split %d: no error at byte %d (bad byte %d)", i, split, k, badAt)
				}
				pending = pending[n:]
			}
		}
	}
}

// TestUTF8Validator compares the incremental validator with unicode/utf8
// on every 1- and 2-byte input, every 3-byte input with a multi-byte lead,
// and 4-byte inputs around every lead byte's limits, fed whole and byte by
// byte.
func TestUTF8Validator(t *testing.T) {
	check := func(p []byte) {
		var s utf8State
		ok, _ := s.feed(p)
		whole := ok && s.complete()
		var s2 utf8State
		ok2 := true
		for i := range p {
			if o, _ := s2.feed(p[i : i+1]); !o {
				ok2 = false
				break
			}
		}
		bytewise := ok2 && s2.complete()
		if want := utf8.Valid(p); whole != want || bytewise != want {
			t.Fatalf("%x: whole %v bytewise %v, utf8.Valid %v", p, whole, bytewise, want)
		}
	}
	for a := range 256 {
		check([]byte{byte(a)})
		for b := range 256 {
			check([]byte{byte(a), byte(b)})
		}
	}
	for a := 0xC0; a < 256; a++ {
		for b := range 256 {
			for c := range 256 {
				check([]byte{byte(a), byte(b), byte(c)})
			}
		}
	}
	edges := []byte{0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff}
	for a := 0xF0; a < 256; a++ {
		for _, b := range edges {
			for _, c := range edges {
				for _, d := range edges {
					check([]byte{byte(a), b, c, d})
				}
			}
		}
	}
	// The ASCII fast path with multi-byte characters at every alignment.
	for off := range 17 {
		p := append(bytes.Repeat([]byte("a"), off), "€\xed\xa0\x80"...)
		check(p)
		check(p[:off+3])
	}
}

// Autobahn 7: close handling.
func TestClose(t *testing.T) {
	valid := []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}
	invalid := []ws.StatusCode{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
	r123 := strings.Repeat("r", 123)
	cases := []frameCase{
		{name: "7.1.1 close", in: closeCode(1000, ""), want: []got{gClose(1000, "")}},
		{name: "7.1.2 close twice", in: cat(closeCode(1000, ""), closeCode(1000, "")), want: []got{gClose(1000, "")}},
		{name: "7.1.3 ping after close ignored", in: cat(closeCode(1000, ""), ping("x")), want: []got{gClose(1000, "")}},
		{name: "7.1.4 text after close ignored", in: cat(closeCode(1000, ""), text("x"), []byte{0xff, 0xff}), want: []got{gClose(1000, "")}},
		{name: "7.1.6 text then close", in: cat(text("hi"), ping(""), closeCode(1000, "")), want: []got{txt("hi"), gPing(""), gClose(1000, "")}},
		{name: "7.3.1 empty close", in: closeFrame(nil), want: []got{gClose(ws.StatusNoStatusRcvd, "")}},
		{name: "7.3.2 one byte", in: closeFrame([]byte{0x03}), err: errCloseLen1},
		{name: "7.3.3 code only", in: closeFrame([]byte{0x03, 0xe8}), want: []got{gClose(1000, "")}},
		{name: "7.3.4 code and reason", in: closeCode(1000, "bye"), want: []got{gClose(1000, "bye")}},
		{name: "7.3.5 reason 123", in: closeCode(1000, r123), want: []got{gClose(1000, r123)}},
		{name: "7.3.6 reason 124", in: closeFrame(append([]byte{0x03, 0xe8}, r123+"r"...)), err: errCtlTooLong},
		{name: "7.5.1 invalid utf8 reason", in: closeCode(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"), err: errCloseUTF8},
		{name: "truncated utf8 reason", in: closeCode(1000, "ab\xce"), err: errCloseUTF8},
		{name: "valid utf8 reason", in: closeCode(1001, "κόσμε"), want: []got{gClose(1001, "κόσμε")}},
		{name: "close 126 bytes", in: []byte{0x88, 0x80 | 126, 0, 126}, err: errCtlTooLong},
	}
	for _, c := range valid {
		cases = append(cases, frameCase{name: "7.7.x valid " + itoa(int(c)), in: closeCode(c, "ok"), want: []got{gClose(c, "ok")}})
	}
	for _, c := range invalid {
		b := []byte{byte(c >> 8), byte(c)}
		cases = append(cases, frameCase{name: "7.9.x invalid " + itoa(int(c)), in: closeFrame(b), err: errCloseCode})
	}
	runCases(t, cases)
}

// Autobahn 9 (limits): MaxMessage applies to the message, not the frame,
// and is enforced when a header announces a length, before the payload.
func TestLimits(t *testing.T) {
	runCases(t, []frameCase{
		{name: "at limit", max: 1000, in: binFrame(pattern(1000)), want: []got{bin(pattern(1000))}},
		{name: "over limit", max: 1000, in: binFrame(pattern(1001)), err: errTooBig},
		{name: "over limit header only", max: 1000, in: frame(ws.OpText, true, pattern(1001))[:8], err: errTooBig},
		{name: "fragments sum over", max: 10, in: cat(frame(ws.OpText, false, []byte("123456")), cont(true, "78901")), err: errTooBig},
		{name: "fragments sum at", max: 10, in: cat(frame(ws.OpText, false, []byte("123456")), ping("not counted"), cont(true, "7890")),
			want: []got{gPing("not counted"), txt("1234567890")}},
		{name: "limit per message", max: 4, in: cat(text("1234"), text("5678")), want: []got{txt("1234"), txt("5678")}},
		{name: "default limit", in: []byte{0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 1}, err: errTooBig},
		{name: "compressed size over", deflate: true, max: 10, in: frameRsv(ws.OpBinary, true, 4, pattern(11)), err: errTooBig},
	})
	// A 9.x-sized message (16 MiB) with a raised limit, in 64 KiB frames.
	big := pattern(16 << 20)
	var in []byte
	for off := 0; off < len(big); off += 65536 {
		op := ws.OpContinuation
		if off == 0 {
			op = ws.OpBinary
		}
		in = append(in, frame(op, off+65536 >= len(big), big[off:off+65536])...)
	}
	r := &Reader{MaxMessage: 16 << 20}
	evs, err := feedChunks(r, in, []int{4096, 1000, 1 << 20})
	if err != nil || len(evs) != 1 || evs[0].Payload != string(big) {
		t.Fatalf("16 MiB message: err %v, %d events", err, len(evs))
	}
}

// Autobahn 12/13: permessage-deflate.
func TestCompression(t *testing.T) {
	hello := []byte("Hello, Hello, Hello, compressed world!")
	zeros := make([]byte, 100000)
	z := deflated(zeros)
	zt := deflated([]byte(strings.Repeat("κόσμε", 1000)))
	var cases []frameCase
	for _, n := range []int{0, 1, 16, 64, 256, 1024, 4096, 32768, 65536, 131072} {
		p := []byte(strings.Repeat("compress me ", n/12+1))[:n]
		cases = append(cases,
			frameCase{name: "12.x text " + itoa(n), deflate: true, in: zframe(ws.OpText, p), want: []got{txt(string(p))}},
			frameCase{name: "12.x binary " + itoa(n), deflate: true, in: zframe(ws.OpBinary, pattern(n)), want: []got{bin(pattern(n))}},
		)
	}
	cases = append(cases,
		frameCase{name: "uncompressed with deflate", deflate: true, in: text("plain"), want: []got{txt("plain")}},
		frameCase{name: "mixed", deflate: true, in: cat(zframe(ws.OpText, hello), text("plain"), zframe(ws.OpBinary, hello)),
			want: []got{txt(string(hello)), txt("plain"), bin(hello)}},
		frameCase{name: "fragmented compressed", deflate: true,
			in:   cat(frameRsv(ws.OpBinary, false, 4, z[:10]), ping("p"), cont(false, string(z[10:20])), cont(true, string(z[20:]))),
			want: []got{gPing("p"), bin(zeros)}},
		frameCase{name: "fragmented compressed text", deflate: true,
			in:   cat(frameRsv(ws.OpText, false, 4, zt[:3]), cont(true, string(zt[3:]))),
			want: []got{txt(strings.Repeat("κόσμε", 1000))}},
		frameCase{name: "decompressed cap", deflate: true, max: 99999, in: frameRsv(ws.OpBinary, true, 4, z), err: errTooBigInflate},
		frameCase{name: "decompressed at cap", deflate: true, max: 100000, in: frameRsv(ws.OpBinary, true, 4, z), want: []got{bin(zeros)}},
		frameCase{name: "corrupt", deflate: true, in: frameRsv(ws.OpBinary, true, 4, []byte{0xff, 0xff, 0xff}), err: errInflate},
		frameCase{name: "invalid utf8 compressed", deflate: true, in: zframe(ws.OpText, []byte("ok\xed\xa0\x80")), err: errUTF8},
		frameCase{name: "truncated utf8 compressed", deflate: true, in: zframe(ws.OpText, []byte("ok\xce")), err: errUTF8},
		frameCase{name: "rsv1 without deflate", in: zframe(ws.OpText, hello), err: errRsv},
	)
	runCases(t, cases)
}

func TestReaderReset(t *testing.T) {
	r := &Reader{}
	if _, err := feedWhole(r, cont(true, "x")); err != errContinuation {
		t.Fatal(err)
	}
	if _, _, err := r.Next(text("a")); err != errContinuation {
		t.Fatal("error not sticky")
	}
	r.Reset()
	evs, err := feedWhole(r, text("a"))
	if err != nil || len(evs) != 1 {
		t.Fatal(evs, err)
	}
}

func TestValidCloseCode(t *testing.T) {
	for c := 0; c < 65536; c++ {
		code := ws.StatusCode(c)
		want := (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999)
		if ValidCloseCode(code) != want {
			t.Fatalf("%d: %v", c, !want)
		}
	}
}

// TestNextAllocs: a reused Reader parses an unfragmented, uncompressed
// 1 KiB binary message without allocating.
func TestNextAllocs(t *testing.T) {
	in := binFrame(pattern(1024))
	r := &Reader{}
	feedWhole(r, in)
	allocs := testing.AllocsPerRun(1000, func() {
		ev, n, err := r.Next(in)
		if err != nil || n != len(in) || ev.Kind != Message || len(ev.Payload) != 1024 {
			panic("bad parse")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Next", allocs)
	}
	tin := text(strings.Repeat("κόσμε", 200))
	feedWhole(r, tin)
	if a := testing.AllocsPerRun(100, func() { r.Next(tin) }); a != 0 {
		t.Fatalf("%v allocations per text Next", a)
	}
}

func BenchmarkNextBinary1K(b *testing.B) {
	in := binFrame(pattern(1024))
	r := &Reader{}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if ev, _, _ := r.Next(in); ev.Kind != Message {
			b.Fatal("no message")
		}
	}
}

func BenchmarkNextText1K(b *testing.B) {
	in := text(strings.Repeat("κόσμε ascii text ", 1024/17+1)[:1024])
	r := &Reader{}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if ev, _, err := r.Next(in); ev.Kind != Message {
			b.Fatal("no message", err)
		}
	}
}

func BenchmarkNextCompressed1K(b *testing.B) {
	in := zframe(ws.OpText, []byte(strings.Repeat("compressible text ", 1024/18+1)[:1024]))
	r := &Reader{Deflate: true}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if ev, _, err := r.Next(in); ev.Kind != Message {
			b.Fatal("no message", err)
		}
	}
}

func repeatGot(g got, n int) []got {
	out := make([]got, n)
	for i := range out {
		out[i] = g
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
