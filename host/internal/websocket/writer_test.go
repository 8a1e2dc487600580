package websocket

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
)

// TestAppendFrameHeader checks the header is byte for byte what
// ws.WriteHeader writes, for every length encoding.
func TestAppendFrameHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpContinuation} {
			for _, fin := range []bool{true, false} {
				p := pattern(n)
				var want bytes.Buffer
				if err := ws.WriteHeader(&want, ws.Header{Fin: fin, OpCode: op, Length: int64(n)}); err != nil {
					t.Fatal(err)
				}
				want.Write(p)
				if got := AppendFrame([]byte("prefix"), op, p, fin); !bytes.Equal(got, append([]byte("prefix"), want.Bytes()...)) {
					t.Fatalf("len %d op %d fin %v: header %x, want %x", n, op, fin, got[6:20], want.Bytes()[:14])
				}
			}
		}
	}
}

func TestAppendFrameControlPanics(t *testing.T) {
	for _, f := range []func(){
		func() { AppendFrame(nil, ws.OpPing, make([]byte, 126), true) },
		func() { AppendFrame(nil, ws.OpPong, nil, false) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		}()
	}
	AppendFrame(nil, ws.OpPing, make([]byte, 125), true)
}

// TestWriterInterop reads what AppendFrame, AppendClose and Writer produce
// with gobwas/ws's own client-side reader, and decompresses with wsflate.
func TestWriterInterop(t *testing.T) {
	var out []byte
	type sent struct {
		op ws.OpCode
		p  []byte
	}
	var want []sent
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		p := pattern(n)
		out = AppendFrame(out, ws.OpBinary, p, true)
		want = append(want, sent{ws.OpBinary, p})
	}
	// A fragmented text message with a ping in between.
	out = AppendFrame(out, ws.OpText, []byte("frag"), false)
	out = AppendFrame(out, ws.OpPing, []byte("p"), true)
	out = AppendFrame(out, ws.OpContinuation, []byte("ment"), true)
	want = append(want, sent{ws.OpPing, []byte("p")}, sent{ws.OpText, []byte("fragment")})
	out = AppendClose(out, 1000, "bye")
	want = append(want, sent{ws.OpClose, ws.NewCloseFrameBody(1000, "bye")})

	var msgs []wsutil.Message
	src := bytes.NewReader(out)
	for src.Len() > 0 {
		var err error
		if msgs, err = wsutil.ReadServerMessage(src, msgs); err != nil {
			t.Fatal(err)
		}
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i := range msgs {
		if msgs[i].OpCode != want[i].op || !bytes.Equal(msgs[i].Payload, want[i].p) {
			t.Fatalf("message %d: op %d %q", i, msgs[i].OpCode, msgs[i].Payload)
		}
	}

	// Compressed messages, with wsflate decompressing each frame.
	var w Writer
	for _, s := range []string{"", "a", "hello hello hello hello", strings.Repeat("κόσμε", 10000), string(pattern(70000))} {
		frame, err := w.AppendMessage(nil, ws.OpText, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		f, err := ws.ReadFrame(bytes.NewReader(frame))
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.Masked || !f.Header.Fin || f.Header.OpCode != ws.OpText {
			t.Fatalf("header %+v", f.Header)
		}
		compressed := f.Header.Rsv1()
		if len(s) > 100 && !compressed {
			t.Fatalf("%d bytes sent uncompressed", len(s))
		}
		if f.Header.Rsv&^4 != 0 {
			t.Fatalf("rsv %x", f.Header.Rsv)
		}
		if compressed && bytes.HasSuffix(f.Payload, []byte{0, 0, 0xff, 0xff}) {
			t.Fatal("tail not removed")
		}
		f, err = wsflate.DecompressFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		if string(f.Payload) != s {
			t.Fatalf("round trip of %d bytes gave %d", len(s), len(f.Payload))
		}
	}
}

// TestWriterReaderRoundTrip passes Writer output, masked as a client would
// mask it, through the Reader.
func TestWriterReaderRoundTrip(t *testing.T) {
	var w Writer
	r := &Reader{Deflate: true}
	for i, s := range []string{"", "x", strings.Repeat("abc", 5000), "κόσμε"} {
		out, err := w.AppendMessage(nil, ws.OpText, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := ws.ReadFrame(bytes.NewReader(out))
		f = ws.MaskFrameWith(f, testMask)
		in, _ := ws.CompileFrame(f)
		evs, e := feedChunks(r, in, []int{i + 1})
		if e != nil || len(evs) != 1 || evs[0] != txt(s) {
			t.Fatalf("%d: %v %v", i, evs, e)
		}
	}
}

// TestClientInterop reads what gobwas/ws's client writers send: random
// masks, and wsutil.Writer's own fragmentation.
func TestClientInterop(t *testing.T) {
	var buf bytes.Buffer
	msgs := []string{"", "hello", strings.Repeat("κόσμε", 3000)}
	for _, m := range msgs {
		if err := wsutil.WriteClientText(&buf, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	w := wsutil.NewWriterSize(&buf, ws.StateClientSide, ws.OpBinary, 64)
	big := pattern(1000)
	w.Write(big)
	w.Flush()
	wsutil.WriteClientMessage(&buf, ws.OpPing, []byte("p"))
	buf.Write(ws.MustCompileFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(1001, "gone")))))
	want := []got{txt(msgs[0]), txt(msgs[1]), txt(msgs[2]), bin(big), gPing("p"), gClose(1001, "gone")}
	for _, sizes := range [][]int{{1 << 30}, {1}, {5, 17}} {
		evs, err := feedChunks(&Reader{}, buf.Bytes(), sizes)
		if err != nil || !slices.Equal(evs, want) {
			t.Fatalf("%v: %v %v", sizes, evs, err)
		}
	}
}

func TestAppendClose(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for _, c := range []struct {
		code   ws.StatusCode
		reason string
		want   []byte
	}{
		{0, "ignored", []byte{0x88, 0}},
		{ws.StatusNoStatusRcvd, "", []byte{0x88, 0}},
		{ws.StatusAbnormalClosure, "", []byte{0x88, 0}},
		{ws.StatusTLSHandshake, "", []byte{0x88, 0}},
		{1000, "", []byte{0x88, 2, 0x03, 0xe8}},
		{1002, "bad", []byte{0x88, 5, 0x03, 0xea, 'b', 'a', 'd'}},
		{1000, long, append([]byte{0x88, 124, 0x03, 0xe8}, long[:122]...)},
		{1000, "a\xffb", append([]byte{0x88, 7, 0x03, 0xe8, 'a'}, "\ufffdb"...)},
	} {
		got := AppendClose(nil, c.code, c.reason)
		if !bytes.Equal(got, c.want) {
			t.Fatalf("%d %q: %x, want %x", c.code, c.reason, got, c.want)
		}
		if len(got) > 2 {
			if !utf8.Valid(got[4:]) || len(got)-2 > 125 {
				t.Fatalf("invalid close body %x", got)
			}
		}
		// Whatever AppendClose writes, a client reads as a valid close.
		f, err := ws.ReadFrame(bytes.NewReader(got))
		if err != nil || !f.Header.Fin || f.Header.OpCode != ws.OpClose {
			t.Fatal(err)
		}
		if len(f.Payload) >= 2 {
			code, reason := ws.ParseCloseFrameData(f.Payload)
			if err := ws.CheckCloseFrameData(code, reason); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestFrameErrorsCloseCodes: every frame error maps to a close code the
// server may send.
func TestFrameErrorsCloseCodes(t *testing.T) {
	for _, e := range []*Error{errUnmasked, errRsv, errOpcode, errCtlFragmented, errCtlTooLong, errContinuation,
		errInterleaved, errLength64, errCloseLen1, errCloseCode, errUTF8, errCloseUTF8, errInflate, errTooBig, errTooBigInflate} {
		if e.Status != 0 || !ValidCloseCode(e.Code) || e.AppendResponse(nil) != nil {
			t.Fatalf("%v", e)
		}
		f, _ := ws.ReadFrame(bytes.NewReader(AppendClose(nil, e.Code, e.Reason)))
		if code, _ := ws.ParseCloseFrameData(f.Payload); code != e.Code {
			t.Fatal(code)
		}
	}
	_ = io.EOF
}
