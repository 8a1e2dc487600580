package reach

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/httpfield"
	"github.com/wasmloop/wasmloop/host/internal/loop"
)

// The loop's own HTTP/1.1 client carries a plain http:// fetch (loop.StartFetch): a fetch
// then costs no goroutine, no channel hand-off inside net/http's transport and no wake-up of
// the loop from another thread, which were a fifth of a proxy's CPU (RATIONALE.md, "Reach").
// What that client does not do stays with Go's client: TLS, HTTP/2, a proxy from the
// environment, redirects, userinfo in the URL, and an embedder's Transport.

// userAgent is what a fetch that names no User-Agent sends, as Go's client does, so that a
// server sees the same request whichever client carries it.
const userAgent = "Go-http-client/1.1"

// onLoop reports whether fr goes on the loop's client: plain http, no redirects to follow, no
// transport or proxy of the embedder's or the environment's, and a program's call.
func (r *Reach) onLoop(ctx context.Context, fr *fetchRequest) bool {
	return fr.url.Scheme == "http" && fr.flags&abi.FetchFollowRedirects == 0 && fr.url.User == nil &&
		r.cfg.Transport == nil && !r.envProxy && loop.CarriesFetches(ctx)
}

// envProxied reports whether the environment names a proxy for http:// URLs, which Go's
// client would use (when it is granted): such fetches stay with it.
func envProxied() bool {
	return os.Getenv("HTTP_PROXY") != "" || os.Getenv("http_proxy") != ""
}

// idempotent methods may be sent again (RFC 9110 §9.2.2), as Go's transport does.
func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// loopSpec makes the request's bytes for the loop's client, in one buffer: the request line,
// Host, the program's fields (but the ones that frame the message, which are the client's),
// and the body's framing; a body given whole follows the head.
func (r *Reach) loopSpec(fr *fetchRequest) loop.FetchSpec {
	u := fr.url
	streamed := fr.flags&abi.FetchStreamBody != 0
	spec := loop.FetchSpec{
		Addr: canonicalAddr(u), Head: fr.method == "HEAD", Streamed: streamed, BodyLength: -1,
		Timeout: fr.timeout, Dial: dialFD,
	}
	host := []byte(u.Host)
	for block := fr.block; len(block) > 0; { // the program's Host, which goes first
		name, value, rest, _ := httpfield.CutLine(block) // checked by decodeFetch
		if httpfield.EqualFold(name, "host") {
			host = value
		}
		block = rest
	}
	uri := u.RequestURI()
	b := make([]byte, 0, len(fr.method)+len(uri)+len(host)+len(fr.block)+len(fr.body)+96)
	b = append(append(append(append(b, fr.method...), ' '), uri...), " HTTP/1.1\r\nHost: "...)
	b = append(append(b, host...), "\r\n"...)
	hasUA, replay := false, idempotent(fr.method)
	for block := fr.block; len(block) > 0; {
		name, value, rest, _ := httpfield.CutLine(block)
		line := block[:len(block)-len(rest)]
		block = rest
		switch {
		case httpfield.EqualFold(name, "host"):
		case httpfield.EqualFold(name, "content-length"):
			if streamed { // a streamed body of a known length goes without chunks
				if cl, err := strconv.ParseInt(string(value), 10, 64); err == nil && cl >= 0 {
					spec.BodyLength = cl
				}
			}
		case httpfield.EqualFold(name, "transfer-encoding"), httpfield.EqualFold(name, "connection"):
			// the client's business
		default:
			hasUA = hasUA || httpfield.EqualFold(name, "user-agent")
			replay = replay || httpfield.EqualFold(name, "idempotency-key") || httpfield.EqualFold(name, "x-idempotency-key")
			b = append(b, line...)
		}
	}
	if !hasUA {
		b = append(b, "User-Agent: "+userAgent+"\r\n"...)
	}
	switch {
	case streamed && spec.BodyLength >= 0:
		b = append(strconv.AppendInt(append(b, "Content-Length: "...), spec.BodyLength, 10), "\r\n"...)
	case streamed:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case len(fr.body) > 0 || fr.method == "POST" || fr.method == "PUT" || fr.method == "PATCH":
		b = append(strconv.AppendInt(append(b, "Content-Length: "...), int64(len(fr.body)), 10), "\r\n"...)
	}
	spec.Request = append(append(b, "\r\n"...), fr.body...)
	spec.Replayable = replay && !streamed
	return spec
}

// dialFD opens a connection to addr for the loop's client and detaches it from Go's net:
// a non-blocking, close-on-exec descriptor (loop.FetchSpec.Dial).
func dialFD(ctx context.Context, addr string) (int, error) {
	d := net.Dialer{Timeout: defaultConnectTimeout, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return -1, classify(err)
	}
	fd, err := detach(c.(*net.TCPConn))
	if err != nil {
		return -1, classify(err)
	}
	return fd, nil
}
