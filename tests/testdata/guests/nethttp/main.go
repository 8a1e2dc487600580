//go:build wasip1

// Command nethttp is the end-to-end tests' guest for Go's http.Handler inside a guest
// (wasmhttp.ListenAndServe) and for Go habits: goroutines that answer after the handler
// returned, time.Sleep in a handler's goroutine, http.Client calls from a handler.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
	"github.com/wasmloop/wasmloop/guest-sdk/go/wasmhttp"
)

var served int // requests this instance served: a panic must not reset it

func routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		served++
		fmt.Fprintf(w, "hello %s (q=%s, served=%d)\n", r.PathValue("name"), r.URL.Query().Get("q"), served)
	})
	// /framing says how the request's body was framed: a GET without one has none.
	mux.HandleFunc("/framing", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %q %v", r.ContentLength, r.TransferEncoding, r.Body == http.NoBody)
	})
	// /sum reads the whole body and answers its length and SHA-256.
	mux.HandleFunc("POST /sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	// /echo streams the body back as it comes.
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	// /big?n=N writes N bytes (a repeating pattern) in 32 KiB writes.
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		chunk := make([]byte, 32<<10)
		for i := range chunk {
			chunk[i] = byte(i % 251)
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	// /flush sends a first line, then the second once the client asks /release.
	release := make(chan struct{}, 1)
	mux.HandleFunc("GET /flush", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		<-release
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("GET /release", func(w http.ResponseWriter, r *http.Request) {
		release <- struct{}{}
		io.WriteString(w, "released\n")
	})
	// /sleep?ms=N sleeps in the handler's goroutine: the worker goes on serving meanwhile.
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		start := time.Now()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slept %d ms", time.Since(start).Milliseconds())
	})
	// /timeout waits on a context with a deadline.
	mux.HandleFunc("GET /timeout", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(20 * time.Millisecond):
			io.WriteString(w, "timer fired")
		case <-r.Context().Done():
		}
	})
	// /wait holds the request until the client leaves, then logs it.
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		wasmloop.Log("wait: context done: " + r.Context().Err().Error())
	})
	mux.HandleFunc("GET /cookie", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("visit")
		n := 0
		if err == nil {
			n, _ = strconv.Atoi(c.Value)
		}
		http.SetCookie(w, &http.Cookie{Name: "visit", Value: strconv.Itoa(n + 1), Path: "/"})
		fmt.Fprintf(w, "visit %d", n+1)
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		panic("handler panicked on purpose")
	})
	// /fetch?url=U gets U with net/http's client from the handler itself.
	client := &http.Client{Transport: wasmhttp.Transport{}, Timeout: 10 * time.Second}
	mux.HandleFunc("GET /fetch", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	// /postearly?url=U posts a 64 MiB body, read 16 KiB at a time, to U, which answers
	// before reading it; says the status and whether the transport closed the body (as a
	// RoundTripper must) once the fetch took no more of it.
	mux.HandleFunc("GET /postearly", func(w http.ResponseWriter, r *http.Request) {
		body := &slowBody{closed: make(chan struct{})}
		resp, err := client.Post(r.URL.Query().Get("url"), "application/octet-stream", body)
		status := "error"
		if err == nil {
			status = strconv.Itoa(resp.StatusCode)
			resp.Body.Close()
		}
		select {
		case <-body.closed:
			fmt.Fprintf(w, "%s closed", status)
		case <-time.After(5 * time.Second):
			fmt.Fprintf(w, "%s not closed after %d reads", status, body.reads)
		}
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		if !wasmhttp.IsWebSocket(r) {
			http.Error(w, "want a WebSocket", http.StatusUpgradeRequired)
			return
		}
		ws, err := wasmhttp.Upgrade(w, r, wasmloop.UpgradeOptions{})
		if err != nil {
			return
		}
		ws.OnMessage(func(data []byte, binary bool) {
			ws.Send(append([]byte("echo: "), data...), binary)
		})
	})
	return mux
}

// native serves with the SDK's own handler: /late answers from a goroutine after the handler
// returned, after a Go time.Sleep.
func native(req wasmloop.Request, res wasmloop.Response) {
	if req.URL() == "/forgot" {
		return // neither End nor anything that could end it: the SDK reports it
	}
	ms, _ := strconv.Atoi(req.Header("x-sleep-ms"))
	go func() {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End("late answer\n")
	}()
}

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	if err := wasmhttp.ListenAndServe("127.0.0.1:"+strconv.Itoa(port), routes()); err != nil {
		wasmloop.Log("listen: " + err.Error())
		wasmloop.Exit(1)
	}
	if p, err := strconv.Atoi(os.Getenv("NATIVE_PORT")); err == nil {
		wasmloop.CreateServer(native).Listen(p, "127.0.0.1")
	}
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

// slowBody is a request body of 4096 pieces of 16 KiB (64 MiB: more than the sockets hold)
// that records its Close.
type slowBody struct {
	reads  int
	closed chan struct{}
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.reads++; b.reads > 4096 {
		return 0, io.EOF
	}
	n := min(len(p), 16<<10)
	for i := range p[:n] {
		p[i] = 'x'
	}
	return n, nil
}

func (b *slowBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}
