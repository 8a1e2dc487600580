package websocket

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// testMask is the mask every test frame uses, so inputs (and the fuzz
// corpus made from them) are reproducible. It has no zero byte, so a
// payload left masked by mistake cannot pass.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frame builds a masked client frame the way a gobwas/ws client does:
// ws.NewFrame, ws.MaskFrameWith (ws.Cipher), ws.CompileFrame (ws.WriteHeader).
func frame(op ws.OpCode, fin bool, payload []byte) []byte {
	return frameRsv(op, fin, 0, payload)
}

func frameRsv(op ws.OpCode, fin bool, rsv byte, payload []byte) []byte {
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	f.Header.Rsv = rsv
	f = ws.MaskFrameWith(f, testMask)
	b, err := ws.CompileFrame(f)
	if err != nil {
		panic(err)
	}
	return b
}

// unmaskedFrame is a frame as a server would send it (invalid from a client).
func unmaskedFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	return appendFrame(nil, fin, 0, op, payload)
}

func text(s string) []byte           { return frame(ws.OpText, true, []byte(s)) }
func binFrame(p []byte) []byte       { return frame(ws.OpBinary, true, p) }
func ping(p string) []byte           { return frame(ws.OpPing, true, []byte(p)) }
func pong(p string) []byte           { return frame(ws.OpPong, true, []byte(p)) }
func cont(fin bool, s string) []byte { return frame(ws.OpContinuation, fin, []byte(s)) }
func closeFrame(body []byte) []byte  { return frame(ws.OpClose, true, body) }
func closeCode(c ws.StatusCode, reason string) []byte {
	return closeFrame(ws.NewCloseFrameBody(c, reason))
}

// deflated compresses p as a client would (wsflate, tail removed).
func deflated(p []byte) []byte {
	z, err := wsflate.DefaultHelper.Compress(p)
	if err != nil {
		panic(err)
	}
	return z
}

// zframe is a compressed single-frame message: RSV1 set on the first frame.
func zframe(op ws.OpCode, p []byte) []byte { return frameRsv(op, true, 4, deflated(p)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// got is an Event with its payload copied, comparable with ==.
type got struct {
	Kind    Kind
	Op      ws.OpCode
	Payload string
	Code    ws.StatusCode
}

func (g got) String() string {
	p := g.Payload
	if len(p) > 40 {
		p = fmt.Sprintf("%q...(%d bytes)", p[:40], len(p))
	} else {
		p = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf("{%v op=%d %s code=%d}", g.Kind, g.Op, p, g.Code)
}

func msg(op ws.OpCode, p string) got { return got{Kind: Message, Op: op, Payload: p} }
func txt(s string) got               { return msg(ws.OpText, s) }
func bin(p []byte) got               { return msg(ws.OpBinary, string(p)) }
func gPing(p string) got             { return got{Kind: Ping, Op: ws.OpPing, Payload: p} }
func gPong(p string) got             { return got{Kind: Pong, Op: ws.OpPong, Payload: p} }
func gClose(c ws.StatusCode, r string) got {
	return got{Kind: Close, Op: ws.OpClose, Payload: r, Code: c}
}

func record(ev Event) got {
	return got{Kind: ev.Kind, Op: ev.Op, Payload: string(ev.Payload), Code: ev.Code}
}

// feedWhole gives the Reader all of in at once, calling Next until None.
func feedWhole(r *Reader, in []byte) ([]got, *Error) {
	var out []got
	for {
		ev, n, err := r.Next(in)
		if err != nil {
			return out, err
		}
		if n < 0 || n > len(in) {
			panic("consumed out of range")
		}
		in = in[n:]
		if ev.Kind == None {
			if len(in) > 0 && n == 0 && len(in) >= ws.MaxHeaderSize {
				panic("None with a full header unconsumed")
			}
			return out, nil
		}
		out = append(out, record(ev))
	}
}

// feedChunks gives the Reader in split into chunks of the given sizes
// (cycled), the way a socket might deliver it. Unconsumed bytes are copied
// into a fresh buffer each time, so a Reader that kept a pointer into the
// caller's buffer would be caught.
func feedChunks(r *Reader, in []byte, sizes []int) ([]got, *Error) {
	var out []got
	var pending []byte
	for i := 0; len(in) > 0; i++ {
		k := sizes[i%len(sizes)]
		if k > len(in) {
			k = len(in)
		}
		if k < 1 {
			k = 1
		}
		pending = append(append([]byte(nil), pending...), in[:k]...)
		in = in[k:]
		for {
			ev, n, err := r.Next(pending)
			if err != nil {
				return out, err
			}
			pending = pending[n:]
			if ev.Kind == None {
				break
			}
			out = append(out, record(ev))
		}
	}
	return out, nil
}

func feedBytes(r *Reader, in []byte) ([]got, *Error) { return feedChunks(r, in, []int{1}) }

type frameCase struct {
	name    string
	in      []byte
	deflate bool
	max     int64
	want    []got
	err     *Error
}

func (c frameCase) reader() *Reader { return &Reader{Deflate: c.deflate, MaxMessage: c.max} }

// runCases checks each case whole, byte by byte and in uneven chunks.
func runCases(t *testing.T, cases []frameCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			feeds := []struct {
				name string
				f    func(*Reader, []byte) ([]got, *Error)
			}{
				{"whole", feedWhole},
				{"bytes", feedBytes},
				{"chunks", func(r *Reader, in []byte) ([]got, *Error) { return feedChunks(r, in, []int{3, 1, 7, 2, 13}) }},
			}
			for _, fd := range feeds {
				evs, err := fd.f(c.reader(), c.in)
				if err != c.err {
					t.Fatalf("%s: err = %v, want %v (events %v)", fd.name, err, c.err, evs)
				}
				if !slices.Equal(evs, c.want) {
					t.Fatalf("%s: events\n got %v\nwant %v", fd.name, evs, c.want)
				}
			}
		})
	}
}
