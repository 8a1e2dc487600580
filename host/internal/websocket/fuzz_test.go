package websocket

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// fuzzSeeds is one representative input per rule, from every Autobahn
// group; TestWriteFuzzCorpus stores them under testdata/fuzz/FuzzReader.
func fuzzSeeds() [][]byte {
	z := deflated([]byte(strings.Repeat("zip", 100)))
	return [][]byte{
		text("Hello"), binFrame(pattern(126)), binFrame(pattern(300)),
		[]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		unmaskedFrame(ws.OpText, true, []byte("x")),
		ping("p"), pong(""), ping(strings.Repeat("a", 126)),
		frameRsv(ws.OpText, true, 2, []byte("r")), frameRsv(ws.OpText, true, 4, deflated([]byte("compressed"))),
		frame(3, true, nil), frame(11, true, []byte("x")),
		cat(frame(ws.OpText, false, []byte("fr")), ping("i"), cont(true, "ag")),
		cont(true, "x"), cat(frame(ws.OpText, false, nil), text("b")), frame(ws.OpPing, false, nil),
		text("κόσμε"), text("\xed\xa0\x80"), cat(frame(ws.OpText, false, []byte("\xce")), cont(true, "\xba")),
		cat(frame(ws.OpText, false, []byte("\xf4")), cont(true, "\x90\x80\x80")), text("a\xc0\xaf"),
		closeFrame(nil), closeFrame([]byte{3}), closeCode(1000, "bye"), closeCode(1005, ""), closeCode(1012, ""),
		closeCode(5000, ""), closeCode(1000, "\xff"),
		cat(frameRsv(ws.OpBinary, false, 4, z[:5]), cont(true, string(z[5:]))),
		zframe(ws.OpText, []byte("ok\xed\xa0\x80")),
		frameRsv(ws.OpBinary, true, 4, []byte{0xff, 0xff}),
		zframe(ws.OpBinary, make([]byte, 5000)),
	}
}

// TestWriteFuzzCorpus regenerates the seed corpus when
// WEBSOCKET_WRITE_CORPUS is set; otherwise it checks the corpus exists.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if os.Getenv("WEBSOCKET_WRITE_CORPUS") == "" {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) < len(fuzzSeeds()) {
			t.Fatalf("seed corpus missing: %v", err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, in := range fuzzSeeds() {
		for _, mode := range []byte{0, 1, 3} {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbyte(%q)\n", in, mode)
			sum := sha256.Sum256([]byte(body))
			name := filepath.Join(dir, fmt.Sprintf("seed-%x", sum[:8]))
			if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzReader: Next never panics; whole input, byte by byte and uneven
// chunks give the same events and error; a text Message is valid UTF-8;
// payloads respect the limits. mode bit 0 negotiates deflate, bit 1 sets a
// small MaxMessage; the rest choose the chunk sizes. Masking is applied to
// the input first when mode bit 2 is set, so the fuzzer can reach payload
// rules with inputs that are mostly plain text.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, byte(0))
		f.Add(s, byte(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, mode byte) {
		mk := func() *Reader {
			r := &Reader{Deflate: mode&1 != 0}
			if mode&2 != 0 {
				r.MaxMessage = 64
			}
			return r
		}
		whole, werr := feedWhole(mk(), in)
		bytewise, berr := feedBytes(mk(), in)
		chunked, cerr := feedChunks(mk(), in, []int{int(mode>>3) + 1, 2, int(mode>>5) + 3})
		if werr != berr || werr != cerr || !slices.Equal(whole, bytewise) || !slices.Equal(whole, chunked) {
			t.Fatalf("whole %v %v\nbytes %v %v\nchunks %v %v", whole, werr, bytewise, berr, chunked, cerr)
		}
		max := int64(DefaultMaxMessage)
		if mode&2 != 0 {
			max = 64
		}
		for i, ev := range whole {
			switch ev.Kind {
			case Message:
				if ev.Op == ws.OpText && !utf8.ValidString(ev.Payload) {
					t.Fatalf("invalid UTF-8 text %q", ev.Payload)
				}
				if int64(len(ev.Payload)) > max {
					t.Fatalf("message of %d bytes", len(ev.Payload))
				}
			case Ping, Pong:
				if len(ev.Payload) > 125 {
					t.Fatal("long control payload")
				}
			case Close:
				if !utf8.ValidString(ev.Payload) || i != len(whole)-1 {
					t.Fatal("bad close")
				}
				if ev.Code != ws.StatusNoStatusRcvd && !ValidCloseCode(ev.Code) {
					t.Fatalf("close code %d", ev.Code)
				}
			default:
				t.Fatalf("kind %v", ev.Kind)
			}
		}
	})
}

// FuzzUTF8 compares the incremental validator, fed in two parts, with
// unicode/utf8.
func FuzzUTF8(f *testing.F) {
	for _, s := range validUTF8 {
		f.Add([]byte(s), uint8(1))
	}
	for _, c := range invalidUTF8 {
		f.Add([]byte(c.s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, p []byte, split uint8) {
		k := int(split)
		if k > len(p) {
			k = len(p)
		}
		var s utf8State
		ok1, _ := s.feed(p[:k])
		ok := ok1
		if ok {
			ok, _ = s.feed(p[k:])
		}
		if got, want := ok && s.complete(), utf8.Valid(p); got != want {
			t.Fatalf("%x split %d: %v, want %v", p, k, got, want)
		}
	})
}
