//go:build wasip1

// Command sdkalias is a test guest that keeps what the Go SDK handed it across callbacks and
// reports what it sees later (tests/sdk_alias_attack_test.go): the SDK reads events from
// buffers it reuses (the inbox, hostOut, pooled request objects), and what a program was
// promised it may keep must not change under it.
//
// On PORT, a wasmloop server:
//
//	/hold?id=N        keeps the request and its response; logs "sdkalias: held N"
//	/release?id=N     answers the held request N with "id=N url=URL tag=X-TAG headers=H body=B"
//	                  read from the kept Request now (and the Headers() it took while held);
//	                  answers "released N" (or "release N: ERR")
//	/abortonclose     never answers; when the client goes, OnClose calls res.Abort() and
//	                  logs "sdkalias: aborted on close"
//	/tcpstart?addr=A  connects to A and reads with OnDataView; answers "connected"
//	/tcpswitch        switches the socket to OnData (whose data "is fn's to keep") and keeps
//	                  what it gets; answers "switched"
//	/tcpreport        "none" until data came; then "same D" if the kept data is what it was
//	                  when received, else "changed: was D now D2"
//	/fetchkeep?u=U    fetches U?tag=one, keeps the response, fetches U?tag=two, then in a timer
//	                  answers "one=X two=Y" from the kept responses' X-Tag fields
//
// On HTTPPORT, the same through wasmhttp (net/http handlers):
//
//	/hold?id=N, /release?id=N  as above (the held handler writes "id=N url=URL")
//	/abort            writes and flushes "x", waits for r.Context() to end (the client left)
//	                  and panics with http.ErrAbortHandler, as httputil.ReverseProxy does when
//	                  its copy fails; logs "sdkalias: http abort"
package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
	"github.com/wasmloop/wasmloop/guest-sdk/go/wasmhttp"
)

type held struct {
	req     wasmloop.Request
	res     wasmloop.Response
	headers []wasmloop.Header
}

var (
	holds    = map[string]held{}
	sock     *wasmloop.Socket
	kept     []byte
	keptCopy string
	httpHold = map[string]chan struct{}{}
)

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	if err := wasmloop.CreateServer(serve).Listen(port, "127.0.0.1"); err != nil {
		wasmloop.Log("sdkalias: listen: " + err.Error())
	}
	if hp := os.Getenv("HTTPPORT"); hp != "" {
		if err := wasmhttp.ListenAndServe("127.0.0.1:"+hp, httpMux()); err != nil {
			wasmloop.Log("sdkalias: http listen: " + err.Error())
		}
	}
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

func query(target, key string) string {
	_, q, _ := strings.Cut(target, "?")
	for _, kv := range strings.Split(q, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			if u, err := url.QueryUnescape(v); err == nil {
				return u
			}
			return v
		}
	}
	return ""
}

func serve(req wasmloop.Request, res wasmloop.Response) {
	target := req.URL()
	path, _, _ := strings.Cut(target, "?")
	switch path {
	case "/hold":
		id := query(target, "id")
		holds[id] = held{req, res, req.Headers()}
		wasmloop.Log("sdkalias: held " + id)
	case "/release":
		id := query(target, "id")
		h, ok := holds[id]
		if !ok {
			res.End("release " + id + ": not held")
			return
		}
		delete(holds, id)
		var hs []string
		for _, f := range h.headers {
			if strings.HasPrefix(f.Name, "x-") {
				hs = append(hs, f.Name+":"+f.Value)
			}
		}
		msg := "id=" + id + " url=" + h.req.URL() + " tag=" + h.req.Header("X-Tag") +
			" headers=" + strings.Join(hs, ",") + " body=" + string(h.req.Body())
		if err := h.res.End(msg); err != nil {
			res.End("release " + id + ": " + err.Error())
			return
		}
		res.End("released " + id)
	case "/abortonclose":
		res.OnClose(func() {
			res.Abort()
			wasmloop.Log("sdkalias: aborted on close")
		})
		wasmloop.Log("sdkalias: abortonclose waiting")
	case "/tcpstart":
		addr := query(target, "addr")
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				res.End("connect: " + err.Error())
				return
			}
			sock = so
			so.OnDataView(func(d []byte) {})
			res.End("connected")
		})
		if err != nil {
			res.End("connect: " + err.Error())
		}
	case "/tcpswitch":
		if sock == nil {
			res.End("no socket")
			return
		}
		sock.OnData(func(d []byte) {
			if kept == nil {
				kept = d // OnData: "data is fn's to keep"
				keptCopy = string(d)
			}
		})
		res.End("switched")
	case "/tcpreport":
		switch {
		case kept == nil:
			res.End("none")
		case string(kept) == keptCopy:
			res.End("same " + keptCopy)
		default:
			res.End(fmt.Sprintf("changed: was %q now %q", keptCopy, kept))
		}
	case "/fetchkeep":
		u := query(target, "u")
		var one *wasmloop.FetchResponse
		_, err := wasmloop.StartFetch(wasmloop.FetchRequest{URL: u + "?tag=one"}, func(r *wasmloop.FetchResponse, err error) {
			if err != nil {
				res.End("fetch one: " + err.Error())
				return
			}
			one = r
			r.ReadAll(0, func(_ []byte, err error) {
				_, err = wasmloop.StartFetch(wasmloop.FetchRequest{URL: u + "?tag=two"}, func(two *wasmloop.FetchResponse, err error) {
					if err != nil {
						res.End("fetch two: " + err.Error())
						return
					}
					two.ReadAll(0, func(_ []byte, err error) {
						wasmloop.SetTimeout(func() {
							res.End("one=" + one.Get("X-Tag") + " two=" + two.Get("X-Tag"))
						}, time.Millisecond)
					})
				})
				if err != nil {
					res.End("fetch two: " + err.Error())
				}
			})
		})
		if err != nil {
			res.End("fetch one: " + err.Error())
		}
	default:
		res.WriteHead(404)
		res.End("no such route\n")
	}
}

func httpMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		ch := make(chan struct{}, 1)
		httpHold[id] = ch
		wasmloop.Log("sdkalias: http held " + id)
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "id=%s url=%s", id, r.URL.String())
	})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		ch, ok := httpHold[id]
		if !ok {
			fmt.Fprintf(w, "release %s: not held", id)
			return
		}
		delete(httpHold, id)
		ch <- struct{}{}
		fmt.Fprintf(w, "released %s", id)
	})
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("x"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		wasmloop.Log("sdkalias: http abort")
		panic(http.ErrAbortHandler)
	})
	return mux
}
