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
	case "/attack-firstpiece": // one Read of up to 100 bytes: what it gave, quoted
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: q.Get("url")}, func(r *wasmloop.FetchResponse, err error) {
			if err != nil {
				fail(res, err)
				return
			}
			if err := r.Read(100, func(data []byte, err error) {
				if err != nil {
					fail(res, err)
					return
				}
				r.Close()
				res.End(strconv.Quote(string(data)))
			}); err != nil {
				fail(res, err)
			}
		})
		if err != nil {
			fail(res, err)
		}
	case "/attack-readclose": // a Read, then Close at once (an abort): how the read ended
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: q.Get("url")}, func(r *wasmloop.FetchResponse, err error) {
			if err != nil {
				fail(res, err)
				return
			}
			if err := r.Read(100, func(data []byte, err error) {
				if err != nil {
					fail(res, err)
					return
				}
				res.End("read " + strconv.Quote(string(data)))
			}); err != nil {
				fail(res, err)
				return
			}
			r.Close()
		})
		if err != nil {
			fail(res, err)
		}
	case "/attack-tworeads": // raw io.read calls on a fetch: a first read, then two at once
		attackTwoReads(q.Get("url"), res)
	case "/attack-twoheads": // the response asked for twice at once, then a read to the end
		attackTwoHeads(q.Get("url"), q.Get("go"), res)
	case "/attack-readspin": // a read pending while a long callback keeps asking for more
		attackReadSpin(q.Get("url"), q.Get("go"), res)
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

// attackFetchID starts a GET of url with the raw fetch call and returns the stream's id.
func attackFetchID(url string) ([]byte, error) {
	in := binary.LittleEndian.AppendUint32(nil, 0) // no timeout
	in = append(in, 0, 0)                          // no flags, method GET
	in = binary.LittleEndian.AppendUint32(in, uint32(len(url)))
	in = append(in, url...)
	in = binary.LittleEndian.AppendUint32(in, 0) // no header lines
	res, err := wasmloop.CallSync(abi.FnFetch, in)
	if err != nil {
		return nil, err
	}
	return res[:8:8], nil
}

func attackReadIn(id []byte, max uint32) []byte {
	return binary.LittleEndian.AppendUint32(append([]byte{}, id...), max)
}

// attackTwoReads reads 2 bytes of url's body, then, in that read's callback, asks for two
// reads of 4 bytes at once, as streamOps does on a TCP connection; a line per answer.
func attackTwoReads(url string, res wasmloop.Response) {
	id, err := attackFetchID(url)
	if err != nil {
		fail(res, err)
		return
	}
	var lines []string
	pending := 0
	note := func(what string) func([]byte, error) {
		pending++
		return func(b []byte, err error) {
			if err != nil {
				code, _, _ := strings.Cut(err.Error(), " ")
				lines = append(lines, what+": "+code)
			} else {
				lines = append(lines, what+": "+strconv.Quote(string(b)))
			}
			if pending--; pending == 0 {
				wasmloop.CallSync(abi.FnStreamClose, id)
				res.End(strings.Join(lines, "\n") + "\n")
			}
		}
	}
	err = wasmloop.Call(abi.FnFetchResponse, id, func(_ []byte, err error) {
		if err != nil {
			fail(res, err)
			return
		}
		first := note("first read")
		wasmloop.Call(abi.FnStreamRead, attackReadIn(id, 2), func(b []byte, err error) {
			wasmloop.Call(abi.FnStreamRead, attackReadIn(id, 4), note("read A"))
			wasmloop.Call(abi.FnStreamRead, attackReadIn(id, 4), note("read B"))
			first(b, err)
		})
	})
	if err != nil {
		fail(res, err)
	}
}

// attackReadSpin fetches url (a body that comes in two parts), asks for a read of 5 bytes
// once the head is in, starts a fetch of goURL (which lets the upstream send the rest) and
// then, in the same callback, keeps asking for reads of 5 bytes for a while: each of those
// is made while the first is pending. The answer is the bytes in the order they were
// delivered, then a line counting the other answers.
func attackReadSpin(url, goURL string, res wasmloop.Response) {
	id, err := attackFetchID(url)
	if err != nil {
		fail(res, err)
		return
	}
	var got []byte
	codes := map[string]int{}
	pending, spinning := 0, true
	finish := func() {
		if pending == 0 && !spinning {
			wasmloop.CallSync(abi.FnStreamClose, id)
			res.End(string(got) + "\n" + strconv.Itoa(codes["EBUSY"]) + " EBUSY, " + strconv.Itoa(codes["EOF"]) + " EOF, " +
				strconv.Itoa(len(codes)) + " kinds")
		}
	}
	record := func(b []byte, err error) {
		pending--
		switch {
		case err != nil:
			code, _, _ := strings.Cut(err.Error(), " ")
			codes[code]++
		case len(b) == 0:
			codes["EOF"]++
		default:
			got = append(got, b...)
		}
		finish()
	}
	read := func() {
		pending++
		if err := wasmloop.Call(abi.FnStreamRead, attackReadIn(id, 5), record); err != nil {
			pending--
			codes["refused"]++
		}
	}
	err = wasmloop.Call(abi.FnFetchResponse, id, func(_ []byte, err error) {
		if err != nil {
			spinning = false
			fail(res, err)
			return
		}
		read() // waits for the rest of the body: the prefetch has it
		if _, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: goURL}, func(r *wasmloop.FetchResponse, err error) {
			if r != nil {
				r.Close()
			}
		}); err != nil {
			codes["go failed"]++
		}
		for deadline := time.Now().Add(700 * time.Millisecond); time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
			read()
		}
		spinning = false
		finish()
	})
	if err != nil {
		fail(res, err)
	}
}

// attackTwoHeads asks for url's response head twice at once, then fetches goURL, which lets
// the upstream send that head; once both answers are in, it reads the body to its end. A line per answer: the status, or the code.
func attackTwoHeads(url, goURL string, res wasmloop.Response) {
	id, err := attackFetchID(url)
	if err != nil {
		fail(res, err)
		return
	}
	var lines []string
	heads := 0
	var body []byte
	var readOn func([]byte, error)
	readOn = func(b []byte, err error) {
		switch {
		case err != nil:
			code, _, _ := strings.Cut(err.Error(), " ")
			lines = append(lines, "body: "+code)
		case len(b) > 0:
			body = append(body, b...)
			wasmloop.Call(abi.FnStreamRead, attackReadIn(id, 3), readOn)
			return
		default:
			lines = append(lines, "body: "+strconv.Quote(string(body)))
		}
		wasmloop.CallSync(abi.FnStreamClose, id)
		res.End(strings.Join(lines, "\n") + "\n")
	}
	head := func(b []byte, err error) {
		if err != nil {
			code, _, _ := strings.Cut(err.Error(), " ")
			lines = append(lines, "head: "+code)
		} else {
			lines = append(lines, "head: "+strconv.Itoa(int(binary.LittleEndian.Uint16(b))))
		}
		if heads++; heads == 2 {
			wasmloop.Call(abi.FnStreamRead, attackReadIn(id, 3), readOn)
		}
	}
	wasmloop.Call(abi.FnFetchResponse, id, head)
	wasmloop.Call(abi.FnFetchResponse, id, head)
	// Both asks are in: let the upstream send the head.
	if _, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: goURL}, func(r *wasmloop.FetchResponse, err error) {
		if r != nil {
			r.Close()
		}
	}); err != nil {
		lines = append(lines, "go: "+err.Error())
	}
}
