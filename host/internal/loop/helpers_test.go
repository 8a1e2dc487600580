package loop

import (
	"bufio"
	"io"
	"net/http"
	"strings"
)

// readResponse checks wire bytes with net/http's own reader and returns the body.
func readResponse(wire, req string) (string, error) {
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(req)))
	if err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(wire)), r)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// testConn is a connection with no socket (fd -1) speaking HTTP/1.1, as if accepted from ln
// (which may be nil). A test that uses one must not let the loop write to it or close it.
func testConn(l *Loop, ln *listener) *Conn {
	c := &Conn{fd: -1, ln: ln}
	c.proto = l.newHTTPConn(c, ln != nil && ln.stream)
	return c
}

// httpOf is the HTTP protocol running on c.
func httpOf(c *Conn) *httpConn { return c.proto.(*httpConn) }
