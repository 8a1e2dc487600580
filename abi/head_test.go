package abi

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		head Head
	}{
		{"empty", Head{Major: 1, Minor: 1, Method: []byte("GET"), Target: []byte("/"), ContentLength: -1}},
		{"headers and body", Head{
			Flags: HeadKeepAlive | HeadChunked, Major: 1, Minor: 1,
			Method: []byte("POST"), Target: []byte("/upload?x=1"), ContentLength: 5,
			Headers: []Header{{[]byte("host"), []byte("a")}, {[]byte("x-empty"), nil}, {[]byte("x-dup"), []byte("1")}, {[]byte("x-dup"), []byte("2")}},
			Body:    []byte("hello"),
		}},
		{"http/1.0 pending body", Head{Flags: HeadBodyPending, Major: 1, Minor: 0, Method: []byte("PUT"), Target: []byte("*"), ContentLength: 1 << 40}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.head.Size())
			n, err := tc.head.Encode(buf)
			if err != nil || n != len(buf) {
				t.Fatalf("Encode = %d, %v; want %d, nil", n, err, len(buf))
			}
			var got Head
			if err := got.Decode(buf); err != nil {
				t.Fatal(err)
			}
			assertHeadEqual(t, &got, &tc.head)
			if _, err := tc.head.Encode(buf[:len(buf)-1]); !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("short buffer: err = %v", err)
			}
		})
	}
}

func TestEncodeLowercasesNames(t *testing.T) {
	h := Head{Method: []byte("GET"), Target: []byte("/"), Headers: []Header{{[]byte("Content-Type"), []byte("Text/Plain")}}}
	buf := make([]byte, h.Size())
	if _, err := h.Encode(buf); err != nil {
		t.Fatal(err)
	}
	var got Head
	if err := got.Decode(buf); err != nil {
		t.Fatal(err)
	}
	if string(got.Headers[0].Name) != "content-type" || string(got.Headers[0].Value) != "Text/Plain" {
		t.Fatalf("got %q: %q", got.Headers[0].Name, got.Headers[0].Value)
	}
	if v := got.Get("CONTENT-TYPE"); string(v) != "Text/Plain" {
		t.Fatalf("Get = %q", v)
	}
	if v := got.Get("content-length"); v != nil {
		t.Fatalf("Get(missing) = %q", v)
	}
}

func TestDecodeRejectsInconsistentRecords(t *testing.T) {
	h := Head{Method: []byte("GET"), Target: []byte("/x"), Headers: []Header{{[]byte("a"), []byte("b")}}, Body: []byte("zz")}
	good := make([]byte, h.Size())
	if _, err := h.Encode(good); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	bad := map[string][]byte{
		"short":            good[:HeadFixed-1],
		"size past end":    mutate(func(b []byte) { b[0]++ }),
		"size below fixed": mutate(func(b []byte) { b[0], b[1], b[2], b[3] = 4, 0, 0, 0 }),
		"method too long":  mutate(func(b []byte) { b[8] = 0xff }),
		"too many headers": mutate(func(b []byte) { b[10] = 9 }),
		"body overruns":    mutate(func(b []byte) { b[24] = 9 }),
		"body too short":   mutate(func(b []byte) { b[24] = 1 }),
	}
	for name, b := range bad {
		var got Head
		if err := got.Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestDecodeAllocatesNothing(t *testing.T) {
	h := Head{Method: []byte("GET"), Target: []byte("/"), Headers: make([]Header, 8)}
	for i := range h.Headers {
		h.Headers[i] = Header{[]byte("name"), []byte("value")}
	}
	buf := make([]byte, h.Size())
	if _, err := h.Encode(buf); err != nil {
		t.Fatal(err)
	}
	var got Head
	allocs := testing.AllocsPerRun(100, func() {
		if err := got.Decode(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Encode(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode+Encode allocate %v times, want 0", allocs)
	}
}

func TestHandlePacking(t *testing.T) {
	for _, tc := range []struct {
		k     Kind
		gen   uint32
		index uint32
	}{{KindListener, 1, 0}, {KindRequest, MaxGen, 1<<32 - 1}, {KindTimer, 12345, 777}} {
		h := MakeHandle(tc.k, tc.gen, tc.index)
		if int64(h) <= 0 {
			t.Errorf("%v: handle %d not positive", tc, int64(h))
		}
		if h.Kind() != tc.k || h.Gen() != tc.gen || h.Index() != tc.index {
			t.Errorf("%v: unpacked %v %v %v", tc, h.Kind(), h.Gen(), h.Index())
		}
	}
}

func TestErrnoNames(t *testing.T) {
	for _, tc := range []struct {
		e    Errno
		want string
	}{{EBADHANDLE, "EBADHANDLE"}, {ELIMIT, "ELIMIT"}, {-99, "wasmloop errno -99"}, {3, "wasmloop errno 3"}} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Errno(%d) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts re-encodes to the
// same bytes (names aside, which Encode lower-cases).
func FuzzDecode(f *testing.F) {
	h := Head{Flags: HeadKeepAlive, Major: 1, Minor: 1, Method: []byte("GET"), Target: []byte("/"), ContentLength: -1,
		Headers: []Header{{[]byte("host"), []byte("x")}}, Body: []byte("b")}
	buf := make([]byte, h.Size())
	h.Encode(buf)
	f.Add(buf)
	f.Add(buf[:HeadFixed])
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Head
		if err := got.Decode(b); err != nil {
			return
		}
		out := make([]byte, got.Size())
		n, err := got.Encode(out)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		// The reserved word is ignored on decode (a later minor version may use it).
		in := bytes.Clone(b[:n])
		copy(in[28:32], []byte{0, 0, 0, 0})
		if !bytes.EqualFold(out[:n], in) || n != int(uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24) {
			t.Fatalf("re-encode differs:\n%x\n%x", out[:n], b[:n])
		}
	})
}

func assertHeadEqual(t *testing.T, got, want *Head) {
	t.Helper()
	if got.Flags != want.Flags || got.Major != want.Major || got.Minor != want.Minor || got.ContentLength != want.ContentLength ||
		!bytes.Equal(got.Method, want.Method) || !bytes.Equal(got.Target, want.Target) || !bytes.Equal(got.Body, want.Body) ||
		len(got.Headers) != len(want.Headers) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for i := range got.Headers {
		if !bytes.Equal(got.Headers[i].Name, want.Headers[i].Name) || !bytes.Equal(got.Headers[i].Value, want.Headers[i].Value) {
			t.Fatalf("header %d: got %q: %q, want %q: %q", i, got.Headers[i].Name, got.Headers[i].Value, want.Headers[i].Name, want.Headers[i].Value)
		}
	}
}
