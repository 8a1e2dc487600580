package loop

import (
	"bufio"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

// hostCallRequests are the requests FuzzHostCalls answers: the framing the
// server chooses depends on the method and version, and the 1.0 one closes.
var hostCallRequests = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
}

// hostCallProgram is a fuzz input read as a sequence of response host calls:
// an op byte, a handle byte (0 is the request's handle, else a raw value),
// then the op's arguments, byte strings prefixed by a length byte.
type hostCallProgram struct{ p []byte }

func (g *hostCallProgram) byte() byte {
	if len(g.p) == 0 {
		return 0
	}
	b := g.p[0]
	g.p = g.p[1:]
	return b
}

func (g *hostCallProgram) bytes() []byte {
	n := min(int(g.byte()), len(g.p))
	b := g.p[:n:n]
	g.p = g.p[n:]
	return b
}

func (g *hostCallProgram) int32() int32 {
	var b [4]byte
	g.p = g.p[copy(b[:], g.p):]
	return int32(binary.LittleEndian.Uint32(b[:]))
}

// FuzzHostCalls plays the guest's side of a response with arbitrary
// arguments: respond (any status, header block, body and flags), write, end
// and body_read, on the request's handle or on made-up ones, in any order.
// Modelled on reach's FuzzFunctions: no call panics, each returns 0, a byte
// count or a known errno; and whatever a guest does, what the connection
// has been given to send is exactly one response that net/http reads for
// the request, with nothing after it (a bad header block or a body that
// overruns its Content-Length is refused, not sent), and a body ended short
// of its Content-Length closes the connection. WebSocket calls need a
// guest instance; FuzzServeWebSocket covers those.
func FuzzHostCalls(f *testing.F) {
	op := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	blob := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	i32 := func(v int32) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
	respond := func(status int32, hdr, body string, flags int32) []byte {
		return op([]byte{0, 0}, i32(status), blob(hdr), blob(body), i32(flags))
	}
	for i := range hostCallRequests {
		f.Add(uint8(i), respond(200, "Content-Type: text/plain\r\n", "hi", abi.RespondEnd))
		f.Add(uint8(i), op(respond(200, "", "ab", 0), []byte{1, 0}, blob("cde"), []byte{2, 0}))
		f.Add(uint8(i), op(respond(200, "Content-Length: 5\r\n", "ab", 0), []byte{1, 0}, blob("cdefg"), []byte{2, 0}))
	}
	f.Add(uint8(0), respond(204, "Content-Length: 0\r\n", "", abi.RespondEnd))
	f.Add(uint8(0), respond(200, "X: 1\r\n\r\nHTTP/1.1 200 OK\r\n", "", abi.RespondEnd))
	f.Add(uint8(0), respond(200, "Transfer-Encoding: chunked\r\n", "0\r\n\r\n", abi.RespondEnd))
	f.Add(uint8(0), respond(200, "Connection: close\r\nContent-Length: 1\r\n", "xy", abi.RespondEnd))
	f.Add(uint8(4), op([]byte{3, 0, 2, 3, 0, 9}, respond(999, "", "", 7)))
	f.Add(uint8(0), op([]byte{1, 0}, blob("early"), []byte{2, 0, 2, 5}, respond(99, "", "", abi.RespondEnd)))
	f.Fuzz(func(t *testing.T, which uint8, prog []byte) {
		req := hostCallRequests[int(which)%len(hostCallRequests)]
		l := bareLoop(t)
		c, ex := request(t, l, req)
		calls := &l.cur.calls
		g := &hostCallProgram{p: prog}
		check := func(name string, rc int64) {
			if rc < 0 && !abi.Errno(rc).Known() {
				t.Fatalf("%s = %d, not a known errno", name, rc)
			}
		}
		for steps := 0; len(g.p) > 0 && steps < 64; steps++ {
			o, hb := g.byte(), g.byte()
			h := ex.handle
			if hb != 0 {
				h = abi.Handle(hb)
			}
			switch o % 4 {
			case 0:
				status, hdr, body, flags := g.int32(), g.bytes(), g.bytes(), g.int32()
				check("respond", int64(calls.Respond(h, status, hdr, body, flags)))
			case 1:
				check("write", int64(calls.Write(h, g.bytes())))
			case 2:
				check("end", int64(calls.End(h)))
			case 3:
				dst := make([]byte, g.byte())
				rc := calls.BodyRead(h, dst)
				check("body_read", int64(rc))
				if int(rc) > len(dst) {
					t.Fatalf("body_read of %d bytes into %d", rc, len(dst))
				}
			}
		}
		// Finish the response as a guest that follows the rules would.
		if _, live := l.exchanges.get(ex.handle); live {
			if !ex.started {
				if rc := calls.Respond(ex.handle, 200, nil, nil, abi.RespondEnd); rc != 0 {
					t.Fatalf("a plain respond after the program: %v", abi.Errno(rc))
				}
			} else if rc := calls.End(ex.handle); rc != 0 {
				t.Fatalf("end after the program: %v", abi.Errno(rc))
			}
		}
		if _, live := l.exchanges.get(ex.handle); live {
			t.Fatal("the request is still open after its response ended")
		}
		hreq, err := http.ReadRequest(bufio.NewReader(strings.NewReader(req)))
		if err != nil {
			t.Fatal(err)
		}
		src := strings.NewReader(string(c.out))
		br := bufio.NewReader(src)
		resp, err := http.ReadResponse(br, hreq)
		if err != nil {
			t.Fatalf("net/http cannot read what was sent: %v\n%q", err, c.out)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			// Ended short of its Content-Length: the head is out, so only
			// closing the connection tells the client (endBody).
			if err != io.ErrUnexpectedEOF || c.phase == connOpen {
				t.Fatalf("body: %v (connection left open %v)\n%q", err, c.phase == connOpen, c.out)
			}
		}
		if br.Buffered() != 0 || src.Len() != 0 {
			t.Fatalf("bytes after the response:\n%q", c.out)
		}
	})
}
