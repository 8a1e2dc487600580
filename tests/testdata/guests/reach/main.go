//go:build wasip1

// Command reach is the test guest of fetch and TCP (tests/reach_test.go). Each path tries one
// thing and answers with what happened: a result, or "ERR CODE message".
//
//	/fetch?url=U[&follow=1][&timeout=MS][&method=M]  the status, then the body (StartFetch)
//	/order?url=U        "after" if the fetch's answer came after StartFetch returned
//	/client?url=U       net/http's Client over wasmhttp.Transport, from a goroutine
//	/clientpost?url=U&n=N  a POST of N bytes through the Client, from a goroutine
//	/blocking?url=U     the Client on the handler's own goroutine: the error it gives
//	/connect?addr=A&send=S  connect, send S, end, answer with all that came back
//	/listen?addr=A      a TCP listen: "ok ADDR" (then closed), or the error
//	/opflood            40,000 stream calls in one callback: how many the host took
//	/streamops?addr=A   the stream functions called directly on a connection to A, a line per
//	                    answer in the order they came (see tests/tcpecho_test.go)
//	/env                the environment, a line per variable
//	/lookup?name=N      the addresses of N, comma-separated
package main

import (
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/guest-sdk/go"
	"github.com/wasmloop/wasmloop/guest-sdk/go/wasmhttp"
)

var client = &http.Client{Transport: wasmhttp.Transport{}}

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	wasmloop.CreateServer(serve).Listen(port, "127.0.0.1")
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

func fail(res wasmloop.Response, err error) {
	code := "ERR"
	var ne *wasmloop.NetError
	if errors.As(err, &ne) {
		code = ne.Code
	}
	res.WriteHead(200, "Content-Type", "text/plain")
	res.End("ERR " + code + " " + err.Error())
}

func serve(req wasmloop.Request, res wasmloop.Response) {
	u, _ := url.Parse(req.URL())
	q := u.Query()
	switch u.Path {
	case "/fetch":
		ms, _ := strconv.Atoi(q.Get("timeout"))
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{Method: q.Get("method"), URL: q.Get("url"),
			FollowRedirects: q.Get("follow") != "", Timeout: time.Duration(ms) * time.Millisecond},
			func(r *wasmloop.FetchResponse, err error) {
				if err != nil {
					fail(res, err)
					return
				}
				r.ReadAll(0, func(body []byte, err error) {
					if err != nil {
						fail(res, err)
						return
					}
					res.WriteHead(200, "X-Upstream-Location", r.Get("Location"))
					res.End(strconv.Itoa(r.Status) + "\n" + string(body))
				})
			})
		if err != nil {
			fail(res, err)
		}
	case "/headfirst": // the head is answered as it comes, the body once it has all come
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: q.Get("url")}, func(r *wasmloop.FetchResponse, err error) {
			if err != nil {
				fail(res, err)
				return
			}
			res.WriteHead(200, "Content-Type", "text/plain")
			res.Write([]byte("head " + strconv.Itoa(r.Status) + "\n"))
			r.ReadAll(0, func(body []byte, err error) {
				if err != nil {
					res.End("ERR " + err.Error())
					return
				}
				res.End(string(body))
			})
		})
		if err != nil {
			fail(res, err)
		}
	case "/order":
		returned := false
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: q.Get("url")}, func(r *wasmloop.FetchResponse, err error) {
			if r != nil {
				r.Close()
			}
			if returned {
				res.End("after")
			} else {
				res.End("inside")
			}
		})
		returned = true
		if err != nil {
			fail(res, err)
		}
	case "/client":
		go func() {
			resp, err := client.Get(q.Get("url"))
			if err != nil {
				fail(res, err)
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				fail(res, err)
				return
			}
			res.End(strconv.Itoa(resp.StatusCode) + " " + string(body))
		}()
	case "/clientpost":
		n, _ := strconv.Atoi(q.Get("n"))
		go func() {
			resp, err := client.Post(q.Get("url"), "application/octet-stream", io.LimitReader(pattern{}, int64(n)))
			if err != nil {
				fail(res, err)
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				fail(res, err)
				return
			}
			res.End(strconv.Itoa(resp.StatusCode) + " " + string(body))
		}()
	case "/blocking":
		_, err := client.Get(q.Get("url"))
		fail(res, err)
	case "/connect":
		err := wasmloop.Connect(q.Get("addr"), func(so *wasmloop.Socket, err error) {
			if err != nil {
				fail(res, err)
				return
			}
			var got []byte
			so.OnData(func(data []byte) { got = append(got, data...) })
			so.OnClose(func(err error) {
				if err != nil {
					fail(res, err)
					return
				}
				res.End(string(got))
			})
			so.Write([]byte(q.Get("send")))
			so.End()
		})
		if err != nil {
			fail(res, err)
		}
	case "/connect-crash":
		// The instance crashes with a connection open: the host closes it, as it closes
		// everything an instance held (tests/tcpecho_test.go).
		err := wasmloop.Connect(q.Get("addr"), func(so *wasmloop.Socket, err error) {
			if err != nil {
				fail(res, err)
				return
			}
			so.Write([]byte("hi"))
			panic("crash with a connection open")
		})
		if err != nil {
			fail(res, err)
		}
	case "/streamops":
		streamOps(q.Get("addr"), res)
	case "/opflood":
		// Stream calls in a loop within one callback: the host bounds what it holds for them.
		started, limited := 0, 0
		id := binary.LittleEndian.AppendUint64(nil, 1<<40) // no such stream: each fails EBADID
		for range 40000 {
			err := wasmloop.Call(abi.FnStreamEnd, id, func([]byte, error) {})
			switch {
			case err == nil:
				started++
			case errors.Is(err, abi.ELIMIT):
				limited++
			}
		}
		res.End(strconv.Itoa(started) + " started, " + strconv.Itoa(limited) + " ELIMIT")
	case "/listen":
		srv, err := wasmloop.ListenTCP(q.Get("addr"), func(so *wasmloop.Socket) { so.Close() })
		if err != nil {
			fail(res, err)
			return
		}
		addr := srv.Addr()
		srv.Close()
		res.End("ok " + addr)
	case "/lookup":
		err := wasmloop.LookupHost(q.Get("name"), func(addrs []string, err error) {
			if err != nil {
				fail(res, err)
				return
			}
			res.End(strings.Join(addrs, ","))
		})
		if err != nil {
			fail(res, err)
		}
	case "/env":
		res.End(strings.Join(os.Environ(), "\n"))
	default:
		res.WriteHead(404)
		res.End(strings.TrimSpace("no such test"))
	}
}

// pattern is an endless reader of the bytes 0, 1, …, 250, 0, 1, … (a period prime to
// every power of two, so a piece out of place changes the checksum).
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(patternPos % 251)
		patternPos++
	}
	return len(p), nil
}

var patternPos int

// streamOps calls the stream functions (ABI.md §10) on a connection to addr, as the SDK would
// not: two reads at once, a read of 0 bytes, a write after the end, a read after the close.
// Each answer is a line "what: result" in the order the answers came.
func streamOps(addr string, res wasmloop.Response) {
	var lines []string
	pending := 0
	done := func() {
		if pending--; pending == 0 {
			res.End(strings.Join(lines, "\n") + "\n")
		}
	}
	note := func(what string) func([]byte, error) {
		pending++
		return func(b []byte, err error) {
			if err != nil {
				code, _, _ := strings.Cut(err.Error(), " ")
				lines = append(lines, what+": "+code)
			} else {
				lines = append(lines, what+": "+strconv.Quote(string(b)))
			}
			done()
		}
	}
	in := func(id []byte, more string) []byte { return append(append([]byte{}, id...), more...) }
	pending++ // the connect
	err := wasmloop.Call(abi.FnConnect, append(binary.LittleEndian.AppendUint32(nil, 0), addr...), func(rec []byte, err error) {
		defer done()
		if err != nil {
			lines = append(lines, "connect: "+err.Error())
			return
		}
		id := rec[:8]
		max := string(binary.LittleEndian.AppendUint32(nil, 100))
		var readAll func([]byte, error)
		readAll = func(b []byte, err error) { // the first read, then the rest to the end
			if err == nil && len(b) > 0 {
				lines = append(lines, "read: "+strconv.Quote(string(b)))
				if err := wasmloop.Call(abi.FnStreamRead, in(id, max), readAll); err != nil {
					lines = append(lines, "read again: "+err.Error())
					done()
				}
				return
			}
			record := note("read to the end")
			record(b, err)
			wasmloop.CallSync(abi.FnStreamClose, id)
			after := note("read after close")
			wasmloop.Call(abi.FnStreamRead, in(id, max), func(b []byte, err error) {
				after(b, err)
				done() // the chain of reads, counted when it began
			})
		}
		pending++
		wasmloop.Call(abi.FnStreamRead, in(id, max), readAll)
		wasmloop.Call(abi.FnStreamRead, in(id, max), note("second read"))
		wasmloop.Call(abi.FnStreamRead, in(id, "\x00\x00\x00\x00"), note("read of 0"))
		wasmloop.Call(abi.FnStreamWrite, in(id, "abc"), note("write"))
		wasmloop.Call(abi.FnStreamEnd, in(id, ""), note("end"))
		wasmloop.Call(abi.FnStreamWrite, in(id, "x"), note("write after end"))
	})
	if err != nil {
		fail(res, err)
	}
}
