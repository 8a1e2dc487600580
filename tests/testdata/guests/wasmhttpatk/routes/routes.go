// Package routes is the handlers of the wasmhttpatk guest, the same for net/http's own
// server (tests/wasmhttp_attack_test.go runs them natively to compare) and for the guest.
package routes

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Mux returns the routes.
func Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "id=%s q=%q x=%q", r.PathValue("id"), r.URL.Query()["q"], r.URL.Query().Get("x"))
	})
	mux.HandleFunc("GET /files/{path...}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s", r.PathValue("path"))
	})
	api := http.NewServeMux()
	api.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "api id=%s path=%s", r.PathValue("id"), r.URL.Path)
	})
	mux.Handle("/api/", http.StripPrefix("/api", api))
	mux.HandleFunc("GET /json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"a": 1, "b": []string{"x", "<y>"}})
	})
	mux.HandleFunc("GET /error", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "99") // http.Error deletes it
		http.Error(w, "teapot here", http.StatusTeapot)
	})
	mux.HandleFunc("GET /cookies", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("b")
		v := ""
		if err == nil {
			v = c.Value
		}
		http.SetCookie(w, &http.Cookie{Name: "s1", Value: "one", Path: "/"})
		http.SetCookie(w, &http.Cookie{Name: "s2", Value: "two", HttpOnly: true})
		fmt.Fprintf(w, "b=%s n=%d", v, len(r.Cookies()))
	})
	mux.HandleFunc("GET /twice", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.WriteHeader(500)
		io.WriteString(w, "x")
	})
	// Header fields set after WriteHeader / after the first Write: net/http has already
	// taken its snapshot of the header and does not send them.
	mux.HandleFunc("GET /late-header", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		w.Header().Set("X-Late", "1")
		io.WriteString(w, "x")
		w.Header().Set("X-Later", "1")
	})
	mux.HandleFunc("GET /cl/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("GET /cl/long", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		_, err1 := io.WriteString(w, "hello")
		_, err2 := io.WriteString(w, " world")
		fmt.Printf("wratk: cl/long errs %v %v\n", err1, err2)
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "small body")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("b"), 10000))
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /304body", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e1"`)
		w.WriteHeader(304)
		_, err := io.WriteString(w, "should not go")
		fmt.Printf("wratk: 304 write err %v\n", err)
	})
	mux.HandleFunc("GET /204body", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(204)
		io.WriteString(w, "should not go")
	})
	mux.HandleFunc("GET /rc", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		e1 := rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		e2 := rc.SetReadDeadline(time.Now().Add(5 * time.Second))
		e3 := rc.EnableFullDuplex()
		e4 := rc.Flush()
		fmt.Fprintf(w, "wd=%v rd=%v fd=%v fl=%v", e1, e2, e3, e4)
	})
	mux.Handle("GET /timeout", http.TimeoutHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		_, err := io.WriteString(w, "late")
		fmt.Printf("wratk: timeout inner write err %v\n", err)
	}), 100*time.Millisecond, "timed out"))
	mux.Handle("GET /timeout-fast", http.TimeoutHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Inner", "yes")
		w.WriteHeader(201)
		io.WriteString(w, "fast")
	}), 5*time.Second, "timed out"))
	mux.HandleFunc("POST /max", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1000)
		_, err := io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "fits")
	})
	mux.HandleFunc("POST /partial", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 10)
		n, _ := io.ReadFull(r.Body, buf)
		fmt.Fprintf(w, "read %d %q", n, buf[:n])
	})
	mux.HandleFunc("POST /ignore", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored")
	})
	mux.HandleFunc("POST /form", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "a=%s b=%s q=%s", r.FormValue("a"), r.PostFormValue("b"), r.FormValue("q"))
	})
	mux.HandleFunc("GET /ctlvalue", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Ctl", "a\x01b")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /utf8value", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Name", "José")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /trailer-small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("GET /flushstream", func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("a"), 8000))
		w.(http.Flusher).Flush()
		io.WriteString(w, "mark\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("GET /flushsmall", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "one\n")
		w.(http.Flusher).Flush()
		io.WriteString(w, "two\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("GET /echo/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		n, _ := strconv.Atoi(id)
		if n%3 == 0 {
			time.Sleep(time.Duration(n%7) * time.Millisecond)
		}
		w.Header().Set("X-Id", id)
		http.SetCookie(w, &http.Cookie{Name: "id", Value: id})
		c, _ := r.Cookie("c")
		cv := ""
		if c != nil {
			cv = c.Value
		}
		if n%2 == 0 {
			w.Write(bytes.Repeat([]byte(id+","), 2000)) // committed: streamed
		}
		fmt.Fprintf(w, "id=%s q=%s h=%s c=%s", id, r.URL.Query().Get("q"), r.Header.Get("X-Req"), cv)
	})
	mux.HandleFunc("POST /echobody/{id}", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "id=%s len=%d sum=%x err=%v", r.PathValue("id"), len(b), sha256.Sum256(b), err)
	})
	mux.HandleFunc("GET /afterreturn", func(w http.ResponseWriter, r *http.Request) {
		done := r.Context().Done()
		go func() {
			<-done
			_, err := io.WriteString(w, "late write")
			fmt.Printf("wratk: afterreturn write err=%v\n", err)
		}()
		io.WriteString(w, "returned")
	})
	mux.HandleFunc("GET /panic-small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Before", "1")
		io.WriteString(w, "partial")
		panic("wratk boom")
	})
	return mux
}
