package reach

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host/internal/httpfield"
)

// Outbound HTTP through Go's net/http client: connection reuse, HTTP/2, TLS with the
// system's roots, all of it on the client's goroutines. The guest's fetch starts the request
// (FnFetch, on the loop: it only checks and starts), takes the response head when it comes
// (FnFetchResponse) and reads the body as a stream; a streamed request body is written to
// the same id.

// maxRedirects is how many redirects FetchFollowRedirects follows, as Go's client does.
const maxRedirects = 10

// newClient is the program's HTTP client: the configured transport, or one of its own whose
// dials reach only granted hosts and whose proxy (from the host's environment) is used
// only when it is granted too. Redirects are the fetch's to follow (fetchOf).
func (r *Reach) newClient() *http.Client {
	tr := r.cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Go keeps 2 idle connections per host by default: a proxy with 64 requests in
		// flight then dialled for 4 requests in 5 (tests/bench/proxy.sh).
		t.MaxIdleConnsPerHost = 256
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if err := r.allowConnect(addr); err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, network, addr)
		}
		t.Proxy = func(req *http.Request) (*url.URL, error) {
			p, err := http.ProxyFromEnvironment(req)
			if err != nil || p == nil || r.allowConnect(canonicalAddr(p)) != nil {
				return nil, nil // no proxy, or one not granted: go direct (to a granted host)
			}
			return p, nil
		}
		tr = t
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		f, _ := via[0].Context().Value(fetchKey{}).(*fetchState)
		if f == nil || !f.follow {
			return http.ErrUseLastResponse // the 3xx is the answer
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return r.allowConnect(canonicalAddr(req.URL))
	}}
}

// canonicalAddr is u's host and port, the scheme's port when it names none.
func canonicalAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// allowConnect checks host:port against the connect grants.
func (r *Reach) allowConnect(addr string) error {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return coded(abi.FileEINVAL, fmt.Errorf("%q: want host:port", addr))
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return coded(abi.FileEINVAL, fmt.Errorf("%q: the port is not a number from 1 to 65535", addr))
	}
	if r.cfg.Connect.Allows(host, port) {
		return nil
	}
	e := &notGranted{"connect to", addr, "--allow-connect"}
	r.refused("connect", e.Error())
	return coded(abi.FileEACCES, e)
}

// fetchKey finds a request's fetchState in its context (CheckRedirect).
type fetchKey struct{}

// fetchState is one fetch: the stream of its bodies. Read waits for the response head.
type fetchState struct {
	follow bool
	cancel context.CancelFunc
	body   *io.PipeWriter // the request body's writing end, when streamed; else nil
	done   chan struct{}  // closed when the head (or the failure) is in
	resp   *http.Response
	err    error
}

func (f *fetchState) Read(p []byte) (int, error) {
	<-f.done
	if f.err != nil {
		return 0, f.err
	}
	return f.resp.Body.Read(p)
}

func (f *fetchState) Write(p []byte) (int, error) {
	if f.body == nil {
		return 0, coded(abi.FileEINVAL, errors.New("the request body was given whole: fetch with FetchStreamBody to write it"))
	}
	return f.body.Write(p)
}

func (f *fetchState) CloseWrite() error {
	if f.body == nil {
		return nil
	}
	return f.body.Close()
}

func (f *fetchState) Close() error {
	f.cancel()
	if f.body != nil {
		f.body.CloseWithError(errStreamClosed)
	}
	go func() { // the head may still be on its way
		<-f.done
		if f.resp != nil {
			f.resp.Body.Close()
		}
	}()
	return nil
}

// fetch: in = the request (abi.FnFetch); result = the fetch's id. It checks the request and
// the grant here, on the loop, so a refusal is the call's own result, and sends it on a
// goroutine.
func (r *Reach) fetch(ctx context.Context, in []byte) ([]byte, error) {
	req, f, err := r.fetchOf(ctx, in)
	if err != nil {
		return nil, err
	}
	id, err := r.add(ctx, &entry{s: f})
	if err != nil {
		f.cancel()
		return nil, err
	}
	go func() {
		f.resp, f.err = r.client.Do(req)
		if f.err != nil {
			f.err = classify(f.err)
		}
		close(f.done)
	}()
	return binary.LittleEndian.AppendUint64(nil, id), nil
}

// fetchOf decodes a fetch request and makes the http.Request for it.
func (r *Reach) fetchOf(ctx context.Context, in []byte) (*http.Request, *fetchState, error) {
	bad := func(why string) (*http.Request, *fetchState, error) {
		return nil, nil, coded(abi.FileEINVAL, errors.New(why))
	}
	if len(in) < 6 {
		return bad("the request is shorter than its fields")
	}
	timeout := time.Duration(binary.LittleEndian.Uint32(in)) * time.Millisecond
	flags := in[4]
	mlen := int(in[5])
	in = in[6:]
	if len(in) < mlen+4 {
		return bad("the request is shorter than its fields")
	}
	method := string(in[:mlen])
	in = in[mlen:]
	ulen := binary.LittleEndian.Uint32(in)
	if uint64(ulen)+4 > uint64(len(in))-4 {
		return bad("the request is shorter than its fields")
	}
	rawURL := string(in[4 : 4+ulen])
	in = in[4+ulen:]
	hlen := binary.LittleEndian.Uint32(in)
	if uint64(hlen) > uint64(len(in))-4 {
		return bad("the request is shorter than its fields")
	}
	block, body := in[4:4+hlen], in[4+hlen:]
	if len(body) > abi.MaxFetchBody {
		return bad(fmt.Sprintf("a body of %d bytes given whole, more than %d: stream it (FetchStreamBody)", len(body), abi.MaxFetchBody))
	}

	if method == "" {
		method = "GET"
	}
	if !httpfield.IsToken([]byte(method)) {
		return bad(fmt.Sprintf("method %q is not a token", method))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return bad(err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad(fmt.Sprintf("%q: want an http:// or https:// URL", rawURL))
	}
	if u.Host == "" {
		return bad(fmt.Sprintf("%q has no host", rawURL))
	}
	if err := r.allowConnect(canonicalAddr(u)); err != nil {
		return nil, nil, err
	}
	f := &fetchState{follow: flags&abi.FetchFollowRedirects != 0, done: make(chan struct{})}
	var rctx context.Context
	if timeout > 0 {
		rctx, f.cancel = context.WithTimeout(ctx, timeout)
	} else {
		rctx, f.cancel = context.WithCancel(ctx)
	}
	rctx = context.WithValue(rctx, fetchKey{}, f)
	var reqBody io.Reader
	length := int64(len(body))
	if flags&abi.FetchStreamBody != 0 {
		if len(body) > 0 {
			f.cancel()
			return bad("a streamed body is written with io.write, not given with the request")
		}
		pr, pw := io.Pipe()
		f.body, reqBody, length = pw, pr, -1
	} else if len(body) > 0 {
		reqBody = bytes.NewReader(bytes.Clone(body)) // in is the loop's until the call returns
	}
	req, err := http.NewRequestWithContext(rctx, method, u.String(), reqBody)
	if err != nil {
		f.cancel()
		return bad(err.Error())
	}
	req.ContentLength = length
	if length == 0 {
		req.Body = nil
	}
	for len(block) > 0 {
		name, value, rest, fault := httpfield.CutLine(block)
		if fault != 0 {
			f.cancel()
			return bad(fmt.Sprintf("a malformed header line: %q", truncate(block, 80)))
		}
		block = rest
		switch n := string(name); {
		case strings.EqualFold(n, "Host"):
			req.Host = string(value)
		case strings.EqualFold(n, "Content-Length"):
			if f.body != nil { // a streamed body of a known length goes without chunks
				if cl, err := strconv.ParseInt(string(value), 10, 64); err == nil && cl >= 0 {
					req.ContentLength = cl
				}
			}
		case strings.EqualFold(n, "Transfer-Encoding"), strings.EqualFold(n, "Connection"):
			// the transport's business
		default:
			req.Header.Add(n, string(value))
		}
	}
	return req, f, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// response: in = id u64; result = status u16 and the response's header block, once the head
// is in.
func (r *Reach) response(ctx context.Context, in []byte) ([]byte, error) {
	id, _, err := idOf(in)
	if err != nil {
		return nil, err
	}
	e, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	f, ok := e.s.(*fetchState)
	if !ok {
		return nil, coded(abi.FileEINVAL, fmt.Errorf("stream %d is not a fetch", id))
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, classify(ctx.Err())
	}
	if f.err != nil {
		return nil, f.err
	}
	out := binary.LittleEndian.AppendUint16(nil, uint16(f.resp.StatusCode))
	if f.resp.ContentLength >= 0 && f.resp.Header.Get("Content-Length") == "" && !f.resp.Uncompressed {
		out = append(out, "Content-Length: "+strconv.FormatInt(f.resp.ContentLength, 10)+"\r\n"...)
	}
	for name, values := range f.resp.Header {
		for _, v := range values {
			out = append(append(append(append(out, name...), ": "...), v...), "\r\n"...)
		}
	}
	return out, nil
}
