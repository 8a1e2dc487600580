package host

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"

	"github.com/wasmloop/wasmloop/host/internal/httpfield"
)

// The program's answer to a request handed in through the Handler comes back over the pipe
// as HTTP/1.1, written by the worker's own response writer. It is read here straight into the
// ResponseWriter's header, with its body framed by its head. http.ReadResponse, used before,
// built a Response, a header map that was then copied field by field, and a transfer reader:
// a third of a handed-in request's CPU (RATIONALE.md, "Embedding"). The rules are the ones
// the worker writes by, checked rather than trusted, since a worker whose instance traps may
// stop mid-answer: a cut head or body is an error, never a shorter answer taken for whole.

// answerHead is what an answer's head says about the answer.
type answerHead struct {
	status  int
	length  int64 // the body's length; -1 when it is chunked or runs to the close
	chunked bool
	close   bool // the connection ends after this answer
}

// errMalformedAnswer is a head that breaks the syntax the worker writes.
var errMalformedAnswer = errors.New("a malformed answer from the program")

// readStatusLine reads "HTTP/1.1 200 OK": the status, and whether the version is 1.0. A
// connection that ends before the first byte returns io.EOF (the Handler may then send the
// request again); one that ends later, io.ErrUnexpectedEOF.
func readStatusLine(br *bufio.Reader) (status int, http10 bool, err error) {
	line, err := readLine(br, true)
	if err != nil {
		return 0, false, err
	}
	line = line[:len(line)-2]
	// "HTTP/1.x SSS" then the end or " reason".
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[7] != '0' && line[7] != '1' ||
		line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return 0, false, errMalformedAnswer
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false, errMalformedAnswer
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return 0, false, errMalformedAnswer
	}
	return status, line[7] == '0', nil
}

// readFields reads the head's field lines into h and returns the framing they give the body
// of an answer with this status to a request with this method. A field the answer repeats is
// appended to; one already in h from before (the embedder's middleware) is replaced, as
// copying a parsed header over it did. Transfer-Encoding frames the body and is not copied,
// nor is a Connection field that says close (http.ReadResponse removed it too).
func readFields(br *bufio.Reader, h http.Header, status int, http10 bool, method string) (_ answerHead, err error) {
	a := answerHead{status: status, length: -1, close: http10}
	var seen nameSet // the names this head has set: a repeat appends rather than replaces
	defer func() {
		if err != nil { // none of a failed head's fields may go out with the answer in its place
			for _, k := range seen.few[:seen.n] {
				delete(h, k)
			}
			for k := range seen.more {
				delete(h, k)
			}
		}
	}()
	var values []string // one backing array for the values' slices, as textproto does
	closeField := false // a Connection field says close: it stays on the pipe, as net/http's client drops it
	for {
		line, err := readLine(br, false)
		if err != nil {
			return a, err
		}
		if len(line) == 2 {
			break // the empty line that ends the head
		}
		name, value, _, fault := httpfield.CutLine(line)
		if fault != httpfield.NoFault {
			return a, errMalformedAnswer
		}
		switch {
		case httpfield.EqualFold(name, "transfer-encoding"):
			if a.chunked || !httpfield.EqualFold(value, "chunked") {
				return a, errMalformedAnswer // the worker writes exactly one "chunked"
			}
			a.chunked = true
			continue
		case httpfield.EqualFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || a.length >= 0 && a.length != n {
				return a, errMalformedAnswer
			}
			a.length = n
		case httpfield.EqualFold(name, "connection"):
			for elem, rest := httpfield.NextListElem(value); elem != nil || len(rest) > 0; elem, rest = httpfield.NextListElem(rest) {
				switch {
				case httpfield.EqualFold(elem, "close"):
					a.close, closeField = true, true
				case http10 && httpfield.EqualFold(elem, "keep-alive"):
					a.close = false
				}
			}
		}
		key := canonicalKey(name)
		if values == nil {
			values = make([]string, 0, 8)
		}
		values = append(values, string(value))
		if seen.has(key) {
			h[key] = append(h[key], values[len(values)-1])
		} else {
			h[key] = values[len(values)-1 : len(values) : len(values)]
			seen.add(key)
		}
	}
	if closeField && seen.has("Connection") {
		delete(h, "Connection")
	}
	switch {
	case a.chunked && a.length >= 0:
		return a, errMalformedAnswer // the worker never writes both
	case method == http.MethodHead || status < 200 || status == http.StatusNoContent || status == http.StatusNotModified:
		a.length, a.chunked = 0, false
	case a.chunked:
	case a.length < 0:
		a.close = true // the body runs to the connection's close
	}
	return a, nil
}

// nameSet is a small set of names: an array for an answer's usual few, a map past them.
type nameSet struct {
	few  [16]string
	n    int
	more map[string]bool
}

func (s *nameSet) has(name string) bool {
	for _, k := range s.few[:s.n] {
		if k == name {
			return true
		}
	}
	return s.more[name]
}

func (s *nameSet) add(name string) {
	if s.n < len(s.few) {
		s.few[s.n] = name
		s.n++
		return
	}
	if s.more == nil {
		s.more = make(map[string]bool)
	}
	s.more[name] = true
}

// maxAnswerLine bounds one line of an answer's head, as net/http's client bounds a head
// (Transport.MaxResponseHeaderBytes, 10 MiB).
const maxAnswerLine = 10 << 20

// readLine reads one line ending in CRLF, CRLF included. first says whether this is the
// answer's first line, where an end before any byte is io.EOF.
func readLine(br *bufio.Reader, first bool) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	// A line longer than br's buffer (16 KiB) is gathered into one of its own: the worker
	// bounds no field a program writes (a long Content-Security-Policy, say), a client on
	// the program's own port reads it whole, and so must the Handler, not answer 503.
	var long []byte
	for err == bufio.ErrBufferFull {
		long = append(long, line...)
		if len(long) > maxAnswerLine {
			return nil, errMalformedAnswer
		}
		line, err = br.ReadSlice('\n')
	}
	if long != nil {
		line = append(long, line...)
	}
	switch {
	case len(line) > maxAnswerLine:
		return nil, errMalformedAnswer
	case err == io.EOF && first && len(line) == 0:
		return nil, io.EOF
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, errMalformedAnswer
	}
	return line, nil
}

// parseLength parses a Content-Length value: digits only, at most 18 of them.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// canonicalKey is textproto's canonical form of name, without allocating for the names an
// answer usually has.
func canonicalKey(name []byte) string {
	switch string(name) {
	case "Content-Type", "content-type":
		return "Content-Type"
	case "Content-Length", "content-length":
		return "Content-Length"
	case "Date", "date":
		return "Date"
	case "Connection", "connection":
		return "Connection"
	case "Cache-Control", "cache-control":
		return "Cache-Control"
	case "Set-Cookie", "set-cookie":
		return "Set-Cookie"
	case "Location", "location":
		return "Location"
	case "Etag", "ETag", "etag":
		return "Etag"
	case "Last-Modified", "last-modified":
		return "Last-Modified"
	case "Vary", "vary":
		return "Vary"
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// answerBody returns the reader of a body framed as a says, reading from br.
func answerBody(br *bufio.Reader, a answerHead) io.Reader {
	switch {
	case a.chunked:
		return &chunkedAnswer{br: br, r: httputil.NewChunkedReader(br)}
	case a.length >= 0:
		return &sizedAnswer{br: br, left: a.length}
	default:
		return br // to the close
	}
}

// sizedAnswer is a body of known length: a connection that ends before the last byte is
// io.ErrUnexpectedEOF, not the end.
type sizedAnswer struct {
	br   *bufio.Reader
	left int64
}

func (s *sizedAnswer) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.br.Read(p)
	s.left -= int64(n)
	if err == io.EOF {
		if s.left > 0 {
			return n, io.ErrUnexpectedEOF
		}
		err = nil
	}
	return n, err
}

// chunkedAnswer is a chunked body; after the last chunk it reads the (empty) trailer section,
// so that the connection is left at the next answer.
type chunkedAnswer struct {
	br   *bufio.Reader
	r    io.Reader
	done bool
}

func (c *chunkedAnswer) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	if err == io.EOF {
		for {
			line, lerr := readLine(c.br, false)
			if lerr != nil {
				return n, lerr
			}
			if len(line) == 2 {
				break
			}
			if _, _, _, fault := httpfield.CutLine(line); fault != httpfield.NoFault {
				return n, errMalformedAnswer
			}
		}
		c.done = true
	}
	return n, err
}
