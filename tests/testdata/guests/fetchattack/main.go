//go:build wasip1

// Command fetchattack is the guest of tests/loopfetch_attack_test.go: attacks on the loop's
// own HTTP/1.1 client (host/internal/loop/fetch.go). Each path does one thing and answers with
// what happened.
//
//	/upload?url=U&n=N      a streamed POST of N bytes (chunked), written with back-pressure; the
//	                       answer once the head, the body and the writer have all settled:
//	                       "STATUS BODY | writer: done|ERR CODE"
//	/twofetch?a=A&b=B&sleep=MS&method=M  fetch A (read whole), then, in that callback, block
//	                       the loop MS ms and fetch B with method M: "A-RESULT | B-RESULT"
//	/abort?url=U&n=N       fetch U, read one piece of up to N bytes, abort, then fetch U again
//	                       (read whole): "first: LEN | second: RESULT"
//	/fields?url=U          the answer's fields as the program got them: "NAME"="VALUE" lines
//	/crash?url=U           fetch U and crash (panic) in the head's callback
//	/slowread?url=U&piece=N&every=MS  read U's body N bytes at a time, one read every MS ms:
//	                       "STATUS LEN SUMHEX"
//
// With FETCH_URL in the environment it does not listen: it fetches FETCH_URL once (a streamed
// upload of UPLOAD_N bytes when set), prints "oneshot: RESULT" and has nothing more to do.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"net/url"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	if u := os.Getenv("FETCH_URL"); u != "" {
		n, _ := strconv.Atoi(os.Getenv("UPLOAD_N"))
		done := func(s string) { wasmloop.Log("oneshot: " + s) }
		if n > 0 {
			upload(u, n, done)
		} else {
			fetchAll(u, "GET", 0, done)
		}
		return
	}
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	wasmloop.CreateServer(serve).Listen(port, "127.0.0.1")
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

func errText(err error) string {
	var ne *wasmloop.NetError
	if errors.As(err, &ne) {
		return "ERR " + ne.Code + " " + ne.Message
	}
	return "ERR " + err.Error()
}

// fetchAll fetches u and gives "STATUS\nBODY" or "ERR CODE message" to done.
func fetchAll(u, method string, timeout time.Duration, done func(string)) {
	_, err := wasmloop.StartFetch(wasmloop.FetchRequest{Method: method, URL: u, Timeout: timeout}, func(r *wasmloop.FetchResponse, err error) {
		if err != nil {
			done(errText(err))
			return
		}
		r.ReadAll(0, func(body []byte, err error) {
			if err != nil {
				done(errText(err))
				return
			}
			done(strconv.Itoa(r.Status) + "\n" + string(body))
		})
	})
	if err != nil {
		done(errText(err))
	}
}

// upload streams n bytes to u and gives "STATUS BODY | writer: done|ERR" once the answer has
// been read and the writer has heard the end of its body (or the failure).
func upload(u string, n int, done func(string)) {
	var answer, writer string
	finish := func() {
		if answer != "" && writer != "" {
			done(answer + " | writer: " + writer)
		}
	}
	var f *wasmloop.Fetch
	var err error
	f, err = wasmloop.StartFetch(wasmloop.FetchRequest{Method: "POST", URL: u, StreamBody: true}, func(r *wasmloop.FetchResponse, err error) {
		if err != nil {
			answer = errText(err)
			finish()
			return
		}
		wasmloop.Log("upload answered " + strconv.Itoa(r.Status)) // the host has the head
		r.ReadAll(0, func(body []byte, err error) {
			if err != nil {
				answer = strconv.Itoa(r.Status) + " " + errText(err)
			} else {
				answer = strconv.Itoa(r.Status) + " " + string(body)
			}
			finish()
		})
	})
	if err != nil {
		done(errText(err))
		return
	}
	f.OnError(func(err error) {
		if writer == "" {
			writer = errText(err)
			finish()
		}
	})
	piece := make([]byte, 64<<10)
	for i := range piece {
		piece[i] = 'u'
	}
	sent := 0
	var pump func()
	pump = func() {
		for sent < n && writer == "" {
			k := min(len(piece), n-sent)
			sent += k
			if !f.Write(piece[:k]) {
				f.OnDrain(pump)
				return
			}
		}
		if writer == "" {
			f.End()
			// The end is answered through OnError only on failure: a drain after it says
			// the last write went.
			f.OnDrain(func() {
				if writer == "" {
					writer = "done"
					finish()
				}
			})
		}
	}
	pump()
}

func serve(req wasmloop.Request, res wasmloop.Response) {
	u, _ := url.Parse(req.URL())
	q := u.Query()
	reply := func(s string) {
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End(s)
	}
	switch u.Path {
	case "/upload":
		n, _ := strconv.Atoi(q.Get("n"))
		upload(q.Get("url"), n, reply)
	case "/twofetch":
		ms, _ := strconv.Atoi(q.Get("sleep"))
		method := q.Get("method")
		fetchAll(q.Get("a"), "GET", 0, func(a string) {
			// The loop is blocked in this callback, as a busy program blocks it: whatever the
			// server does meanwhile (the test acts on the line below) is in the kernel, not
			// yet seen by the reactor.
			wasmloop.Log("busy after " + q.Get("a"))
			time.Sleep(time.Duration(ms) * time.Millisecond)
			fetchAll(q.Get("b"), method, 0, func(b string) { reply(a + " | " + b) })
		})
	case "/abort":
		n, _ := strconv.Atoi(q.Get("n"))
		target := q.Get("url")
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: target}, func(r *wasmloop.FetchResponse, err error) {
			if err != nil {
				reply("first: " + errText(err))
				return
			}
			if err := r.Read(n, func(data []byte, err error) {
				first := strconv.Itoa(len(data))
				if err != nil {
					first = errText(err)
				}
				r.Close()
				fetchAll(target, "GET", 0, func(second string) { reply("first: " + first + " | second: " + second) })
			}); err != nil {
				reply("first: " + errText(err))
			}
		})
		if err != nil {
			reply("first: " + errText(err))
		}
	case "/slowread":
		piece, _ := strconv.Atoi(q.Get("piece"))
		every, _ := strconv.Atoi(q.Get("every"))
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: q.Get("url")}, func(r *wasmloop.FetchResponse, err error) {
			if err != nil {
				reply(errText(err))
				return
			}
			h := sha256.New()
			total := 0
			var next func()
			next = func() {
				if err := r.Read(piece, func(data []byte, err error) {
					switch {
					case errors.Is(err, io.EOF):
						reply(strconv.Itoa(r.Status) + " " + strconv.Itoa(total) + " " + hex.EncodeToString(h.Sum(nil)))
					case err != nil:
						reply(strconv.Itoa(total) + " " + errText(err))
					default:
						total += len(data)
						h.Write(data)
						wasmloop.SetTimeout(next, time.Duration(every)*time.Millisecond)
					}
				}); err != nil {
					reply(errText(err))
				}
			}
			next()
		})
		if err != nil {
			reply(errText(err))
		}
	case "/fields": // the answer's fields as the program got them, one quoted pair a line
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: q.Get("url")}, func(r *wasmloop.FetchResponse, err error) {
			if err != nil {
				reply(errText(err))
				return
			}
			r.Close()
			var lines []string
			for _, h := range r.Header {
				lines = append(lines, strconv.Quote(h.Name)+"="+strconv.Quote(h.Value))
			}
			reply(strings.Join(lines, "\n"))
		})
		if err != nil {
			reply(errText(err))
		}
	case "/crash": // a fetch in flight when the instance crashes, in the head's callback
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: q.Get("url")}, func(r *wasmloop.FetchResponse, err error) {
			panic("crash with a fetch in flight")
		})
		if err != nil {
			reply(errText(err))
		}
	default:
		res.WriteHead(404)
		res.End(strings.TrimSpace("no such test"))
	}
}
