//go:build wasip1

// Command attack2 is the guest of package host's adversarial tests of the Handler's own
// answer reader and its borrowed turns (handler_attack_test.go): answers of unusual shape, and
// callbacks that run long, so that a test can catch the Handler mid-turn.
//
//	/count           counts the request and answers the count so far
//	/echo            the request's body, with a Content-Length
//	/bigheader?n=N   an X-Big field of N bytes, body "ok"
//	/fields?n=N      N distinct fields X-F-0 … X-F-(N-1), three Set-Cookie fields, body "ok"
//	/trap-chunked    starts a chunked answer, writes "partial", then panics (a trap mid-answer)
//	/trap-length     declares a Content-Length of 100, writes 10 bytes, then panics
//	/short           declares a Content-Length of 100, writes 10 bytes, and ends
//	/spin?ms=N       posts "spinning" to the host, then runs N ms without returning (a long
//	                 callback), then answers "spun"
//
// Calls: echo answers its payload.
package main

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	counted := 0
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		path, query, _ := strings.Cut(req.URL(), "?")
		n, _ := strconv.Atoi(strings.TrimPrefix(query, "n="))
		switch path {
		case "/count":
			counted++
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End(strconv.Itoa(counted))
		case "/echo":
			res.WriteHead(200, "Content-Type", "application/octet-stream")
			res.End(string(req.Body()))
		case "/bigheader":
			res.WriteHead(200, "X-Big", strings.Repeat("a", n))
			res.End("ok")
		case "/fields":
			for i := range n {
				res.SetHeader("X-F-"+strconv.Itoa(i), strconv.Itoa(i))
			}
			for _, c := range []string{"a=1", "b=2", "c=3"} {
				res.SetHeader("Set-Cookie", c)
			}
			res.WriteHead(200)
			res.End("ok")
		case "/trap-chunked":
			res.WriteHead(200, "Content-Type", "text/plain")
			res.WriteString("partial")
			panic("a trap mid-answer")
		case "/trap-length":
			res.WriteHead(200, "Content-Length", "100")
			res.WriteString("0123456789")
			panic("a trap mid-answer")
		case "/short":
			res.WriteHead(200, "Content-Length", "100")
			res.WriteString("0123456789")
			res.End("")
		case "/spin":
			ms, _ := strconv.Atoi(strings.TrimPrefix(query, "ms="))
			wasmloop.PostHost([]byte("spinning"))
			for start := time.Now(); time.Since(start) < time.Duration(ms)*time.Millisecond; {
			}
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End("spun")
		default:
			res.WriteHead(404)
			res.End("")
		}
	}).Listen(port, "127.0.0.1")
	wasmloop.HandleCall("echo", func(c *wasmloop.CallRequest) { c.Return(c.Payload()) })
}
