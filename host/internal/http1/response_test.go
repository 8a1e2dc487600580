package http1

import (
	"net/http"
	"testing"
	"time"
)

func TestAppendStatusLine(t *testing.T) {
	for _, tc := range []struct {
		minor, status int
		want          string
	}{
		{1, 200, "HTTP/1.1 200 OK\r\n"},
		{1, 404, "HTTP/1.1 404 Not Found\r\n"},
		{1, 413, "HTTP/1.1 413 Content Too Large\r\n"},
		{1, 431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
		{1, 101, "HTTP/1.1 101 Switching Protocols\r\n"},
		{0, 200, "HTTP/1.0 200 OK\r\n"},
		{1, 299, "HTTP/1.1 299 \r\n"},
		{1, 999, "HTTP/1.1 999 \r\n"},
		{1, 99, "HTTP/1.1 500 Internal Server Error\r\n"},
		{1, 1000, "HTTP/1.1 500 Internal Server Error\r\n"},
		{1, -1, "HTTP/1.1 500 Internal Server Error\r\n"},
	} {
		if got := string(AppendStatusLine([]byte("x"), tc.minor, tc.status)); got != "x"+tc.want {
			t.Errorf("AppendStatusLine(%d, %d) = %q want %q", tc.minor, tc.status, got, tc.want)
		}
	}
	// Every code net/http knows has a phrase here, and they agree except
	// where RFC 9110 renamed one (net/http keeps the RFC 7231 names).
	renamed := map[int]bool{413: true, 414: true, 416: true, 422: true}
	for code := 100; code < 1000; code++ {
		std, got := http.StatusText(code), reasonPhrase(code)
		if std != got && !renamed[code] {
			t.Errorf("%d: %q, net/http has %q", code, got, std)
		}
	}
}

func TestAppendDate(t *testing.T) {
	now := time.Date(1994, 11, 15, 8, 12, 31, 0, time.FixedZone("X", 3600))
	want := "Date: Tue, 15 Nov 1994 07:12:31 GMT\r\n"
	if got := string(AppendDate(nil, now)); got != want {
		t.Fatalf("AppendDate = %q want %q", got, want)
	}
	var c DateCache
	if got := string(c.Append(nil, now)); got != want {
		t.Fatalf("DateCache = %q", got)
	}
	// Same second: cached text even though the instant moved.
	if got := string(c.Append([]byte("a"), now.Add(999*time.Millisecond))); got != "a"+want {
		t.Fatalf("same second = %q", got)
	}
	next := now.Add(time.Second)
	if got := string(c.Append(nil, next)); got != string(AppendDate(nil, next)) {
		t.Fatalf("next second = %q", got)
	}
	far := time.Date(12345, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := string(c.Append(nil, far)); got != string(AppendDate(nil, far)) {
		t.Fatalf("far future = %q", got)
	}
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		buf = c.Append(buf[:0], now)
		buf = AppendDate(buf[:0], now)
	})
	if allocs != 0 {
		t.Fatalf("date helpers allocate %v times", allocs)
	}
}

func TestAppendChunk(t *testing.T) {
	if got := string(AppendChunk(nil, []byte("hello"))); got != "5\r\nhello\r\n" {
		t.Fatalf("%q", got)
	}
	big := make([]byte, 300)
	if got := string(AppendChunk(nil, big)[:5]); got != "12c\r\n" {
		t.Fatalf("%q", got)
	}
	if got := AppendChunk([]byte("x"), nil); string(got) != "x" {
		t.Fatalf("empty chunk wrote %q", got)
	}
	if got := string(AppendLastChunk([]byte("x"))); got != "x0\r\n\r\n" {
		t.Fatalf("%q", got)
	}
	// What we frame, our decoder reads back.
	body := AppendLastChunk(AppendChunk(AppendChunk(nil, []byte("abc")), big))
	var d ChunkedDecoder
	if got := decodeWhole(&d, body); !got.done || got.err != nil || len(got.data) != 303 {
		t.Fatalf("%+v", got)
	}
}

func TestCheckHeaderBlock(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     BlockInfo
	}{
		{"empty", "", BlockInfo{ContentLength: -1}},
		{"typical", "Content-Type: text/plain\r\nContent-Length: 12\r\n", BlockInfo{ContentLength: 12}},
		{"no space, OWS", "X:v\r\nY:\t v \t\r\nZ:\r\n", BlockInfo{ContentLength: -1}},
		{"framing fields", "date: x\r\nConnection: keep-alive, Close\r\nTransfer-Encoding: chunked\r\n",
			BlockInfo{ContentLength: -1, HasDate: true, ConnectionClose: true, HasTransferEncoding: true}},
		{"obs-text value", "X: caf\xc3\xa9\r\n", BlockInfo{ContentLength: -1}},
	} {
		got, err := CheckHeaderBlock([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name, in string
		err      *Error
	}{
		{"empty line", "\r\n", errGuestName},
		{"empty line then body", "X: 1\r\n\r\nHTTP/1.1 200 OK\r\n", errGuestName},
		{"no CRLF at end", "X: 1", errGuestCRLF},
		{"CR only", "X: 1\r", errGuestCRLF},
		{"bare LF", "X: 1\nY: 2\r\n", errGuestValue},
		{"bare CR inside", "X: 1\rY: 2\r\n", errGuestCRLF},
		{"NUL in value", "X: a\x00b\r\n", errGuestValue},
		{"DEL in value", "X: \x7f\r\n", errGuestValue},
		{"obs-fold", "X: 1\r\n 2\r\n", errGuestName},
		{"space before colon", "X : 1\r\n", errGuestName},
		{"empty name", ": 1\r\n", errGuestName},
		{"no colon", "X\r\n", errGuestName},
		{"bad name char", "X(): 1\r\n", errGuestName},
		{"bad Content-Length", "Content-Length: 1x\r\n", errGuestCL},
		{"empty Content-Length", "Content-Length:\r\n", errGuestCL},
		{"duplicate Content-Length", "Content-Length: 1\r\ncontent-length: 1\r\n", errGuestDupCL},
		{"Content-Length and Transfer-Encoding", "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n", errGuestCLTE},
		{"Transfer-Encoding and Content-Length", "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n", errGuestCLTE},
	} {
		if _, err := CheckHeaderBlock([]byte(tc.in)); err != tc.err {
			t.Errorf("%s: %v; want %v", tc.name, err, tc.err)
		} else if tc.err.Status != 500 {
			t.Errorf("%s: status %d", tc.name, tc.err.Status)
		}
	}
	block := []byte("Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := CheckHeaderBlock(block); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("CheckHeaderBlock allocates %v times", allocs)
	}
}

func TestResponseAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	data := []byte("hello")
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendStatusLine(buf[:0], 1, 200)
		buf = AppendChunk(buf, data)
		buf = AppendLastChunk(buf)
	})
	if allocs != 0 {
		t.Fatalf("response helpers allocate %v times", allocs)
	}
}
