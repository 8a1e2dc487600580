//go:build wasip1

// Command httpkit is the guest of tests/wasmhttp_test.go: net/http semantics that a
// handler relies on.
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
	"github.com/wasmloop/wasmloop/guest-sdk/go/wasmhttp"
)

func routes() *http.ServeMux {
	mux := http.NewServeMux()
	// 204 with a Content-Length: 0 (CORS preflight handlers do this): net/http drops the field.
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
	})
	// 304 with the Content-Length and Content-Type of the full representation.
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotModified)
	})
	// A handler that sets Transfer-Encoding: chunked itself (streaming code often does).
	mux.HandleFunc("/te", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		io.WriteString(w, "hello")
	})
	// A header value with a newline: net/http sends it with the newline as a space.
	mux.HandleFunc("/newline", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Msg", "line1\nline2")
		io.WriteString(w, "ok")
	})
	// An invalid field name: net/http drops it.
	mux.HandleFunc("/badname", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X Bad", "v")
		io.WriteString(w, "ok")
	})
	// A trailer announced and set after the body (net/http sends it in the chunked trailer).
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Write(make([]byte, 8<<10))
		w.Header().Set("X-Sum", "42")
	})
	// http.ErrAbortHandler after the response has started: net/http cuts the response so
	// that the client sees it incomplete.
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial ")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/panicafter", func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 16<<10)) // committed: chunked
		panic("boom after commit")
	})
	// /duplex reads the body on one goroutine while the handler writes n bytes.
	mux.HandleFunc("POST /duplex", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		done := make(chan int64, 1)
		go func() {
			k, _ := io.Copy(io.Discard, r.Body)
			done <- k
		}()
		chunk := []byte(strings.Repeat("x", 64<<10))
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		select {
		case k := <-done:
			fmt.Fprintf(w, "\nreader got %d", k)
		case <-time.After(3 * time.Second):
			fmt.Fprintf(w, "\nreader stuck")
		}
	})
	// /waitctx holds the request, without sending anything, until its context is done.
	mux.HandleFunc("/waitctx", func(w http.ResponseWriter, r *http.Request) {
		wasmloop.Log("waitctx: started")
		<-r.Context().Done()
		wasmloop.Log("waitctx: context done: " + r.Context().Err().Error())
	})
	// /info reports what the handler sees of the request.
	mux.HandleFunc("/info/", func(w http.ResponseWriter, r *http.Request) {
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "Path=%q RawPath=%q Escaped=%q RequestURI=%q Host=%q URLHost=%q RemoteAddr=%q Proto=%q\n",
			r.URL.Path, r.URL.RawPath, r.URL.EscapedPath(), r.RequestURI, r.Host, r.URL.Host, r.RemoteAddr, r.Proto)
		for _, k := range keys {
			fmt.Fprintf(w, "%s=%q\n", k, r.Header[k])
		}
	})
	mux.HandleFunc("/seg/{x}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "x=%q", r.PathValue("x"))
	})
	// /slowsum sleeps, then reads the whole body.
	mux.HandleFunc("POST /slowsum", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d %v", n, err)
	})
	// /leak reads the body on a goroutine after the handler returned (a misuse net/http
	// answers with an error from Read, not a goroutine blocked for ever).
	mux.HandleFunc("POST /leak", func(w http.ResponseWriter, r *http.Request) {
		go func() {
			_, err := io.Copy(io.Discard, r.Body)
			wasmloop.Log("leak: reader returned: " + fmt.Sprint(err))
		}()
	})
	// /proxy/ forwards to UPSTREAM through httputil.ReverseProxy over wasmhttp.Transport.
	if up, err := url.Parse(os.Getenv("UPSTREAM")); err == nil && up.Host != "" {
		rp := httputil.NewSingleHostReverseProxy(up)
		rp.Transport = wasmhttp.Transport{}
		mux.Handle("/proxy/", rp)
	}
	return mux
}

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	if err := wasmhttp.ListenAndServe("127.0.0.1:"+strconv.Itoa(port), routes()); err != nil {
		wasmloop.Log("listen: " + err.Error())
		wasmloop.Exit(1)
	}
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}
