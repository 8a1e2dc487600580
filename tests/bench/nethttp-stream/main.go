// Command nethttp-stream is the Go net/http baseline of the wasmloop streaming
// benchmark (tests/bench/stream.sh). It serves three endpoints on
// 127.0.0.1:$PORT (default 1337), the same as node/stream.js and the
// samples/stream guest:
//
//	GET  /download?size=N  N bytes, byte i = i % 251, with Content-Length,
//	                       written in 64 KiB pieces
//	POST /upload           reads the body, answers "<count> <hex sha256>\n"
//	POST /count            reads the body, answers "<count>\n" (no hashing:
//	                       what stream.sh measures uploads with); PUT too
//
// Anything else is 404 (405 for the wrong method, 400 for a bad size).
// Writes block while the socket is full and the body is read as it arrives,
// so neither direction ever holds more than one 64 KiB piece in memory.
// GOMAXPROCS is left at its default (all usable cores), as in ../nethttp.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
)

const (
	piece  = 64 << 10 // bytes per write, and per read of an upload
	period = 251      // byte i of a download is i % period
)

// pattern holds bytes 0..piece+period-1 of the download stream: the piece that
// starts at offset o is pattern[o%period:][:n], for any o and n <= piece.
var pattern = func() []byte {
	b := make([]byte, piece+period)
	for i := range b {
		b[i] = byte(i % period)
	}
	return b
}()

// bufs recycles the 64 KiB read buffers of /upload.
var bufs = sync.Pool{New: func() any { return new([piece]byte) }}

func download(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	size, err := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	if err != nil || size < 0 {
		http.Error(w, "size must be a non-negative integer", http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	for off := int64(0); off < size; {
		n := min(int64(piece), size-off)
		s := off % period
		if _, err := w.Write(pattern[s : s+n]); err != nil {
			return // the client went away
		}
		off += n
	}
}

func upload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	buf := bufs.Get().(*[piece]byte)
	defer bufs.Put(buf)
	sum := sha256.New()
	var count int64
	for {
		n, err := r.Body.Read(buf[:])
		sum.Write(buf[:n])
		count += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "%d %s\n", count, hex.EncodeToString(sum.Sum(nil)))
}

// count reads the body in 64 KiB pieces and answers its length only.
func count(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	buf := bufs.Get().(*[piece]byte)
	defer bufs.Put(buf)
	var total int64
	for {
		n, err := r.Body.Read(buf[:])
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "%d\n", total)
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "1337"
	}
	addr := net.JoinHostPort("127.0.0.1", port)

	mux := http.NewServeMux()
	mux.HandleFunc("/download", download)
	mux.HandleFunc("/upload", upload)
	mux.HandleFunc("/count", count)

	// Listen first, so the line below is only printed once connections
	// are accepted (as with Node's listen).
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Server running at http://%s/\n", addr)

	log.Fatal(http.Serve(ln, mux))
}
