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
