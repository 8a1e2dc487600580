//go:build wasip1

// Command sandboxatk is the guest of tests/sandbox_attack_test.go: it spins, grows its
// memory or blocks in the places the hostile guest does not reach.
//
//	/ok              "ok from worker W"
//	/spin            spins in the request
//	/fetch-spin?url=U   fetches U (FetchAll); the completion spins; the request waits
//	/tcp-spin?addr=A    connects to A; the first data spins; the request waits
//	/tcp-connect-spin?addr=A  connects to A; the connect callback spins
//	/grow?mb=N       allocates N MiB more (every page touched) and keeps it: "held T"
//	/grow-hold?mb=N  as /grow, logs "holding T MiB" and never answers
//	/readv?path=P&n=N&mb=M  one WASI fd_read of P into N iovecs over one M MiB buffer
//	/write-then-oom  writes a head and 1 KiB of body, then allocates until memory runs out
//	/read?path=P     os.ReadFile(P) through WASI on the loop: "read N"
//
// At start-up it reads /ctl/mode when a directory is granted there: "spin-start" spins in
// main (a swap's new program that never starts), "oom-start" allocates until memory runs
// out, "listen-then-spin" listens and then spins, "idle" does not listen (workers 1… are not
// started) and stays alive on a timer. Every instance logs "instance up mode=M worker W".
package main

import (
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

var hoard [][]byte

//go:wasmimport wasi_snapshot_preview1 fd_read
func fdRead(fd int32, iovs unsafe.Pointer, n int32, nread unsafe.Pointer) int32

func spin(where string) {
	wasmloop.Log("spinning in " + where)
	n := 0
	for {
		n++
	}
}

func grow(mb int) int {
	for range mb {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hoard = append(hoard, b)
	}
	return len(hoard)
}

func query(url, key string) string {
	_, q, _ := strings.Cut(url, "?")
	for _, kv := range strings.Split(q, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func main() {
	mode := ""
	if b, err := os.ReadFile("/ctl/mode"); err == nil {
		mode = strings.TrimSpace(string(b))
	}
	switch mode {
	case "spin-start":
		spin("start")
	case "oom-start":
		grow(1 << 12)
	}
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	if mode == "idle" { // alive, and not listening: workers 1… are not started
		wasmloop.SetInterval(func() {}, time.Hour)
		wasmloop.Log("instance up mode=" + mode + " worker " + strconv.Itoa(wasmloop.WorkerID()))
		return
	}
	srv := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		path, _, _ := strings.Cut(req.URL(), "?")
		switch path {
		case "/spin":
			spin(path)
		case "/fetch-spin":
			err := wasmloop.FetchAll(wasmloop.FetchRequest{URL: query(req.URL(), "url")}, 0,
				func(int, []wasmloop.Header, []byte, error) { spin("a fetch completion") })
			if err != nil {
				res.WriteHead(500)
				res.End(err.Error())
			}
			return
		case "/tcp-spin", "/tcp-connect-spin":
			err := wasmloop.Connect(query(req.URL(), "addr"), func(so *wasmloop.Socket, err error) {
				if path == "/tcp-connect-spin" || err != nil {
					spin("a TCP connect")
				}
				so.OnData(func([]byte) { spin("a TCP data callback") })
			})
			if err != nil {
				res.WriteHead(500)
				res.End(err.Error())
			}
			return
		case "/grow":
			mb, _ := strconv.Atoi(query(req.URL(), "mb"))
			res.End("held " + strconv.Itoa(grow(mb)) + "\n")
			return
		case "/grow-hold": // as /grow, and the request is never answered
			mb, _ := strconv.Atoi(query(req.URL(), "mb"))
			wasmloop.Log("holding " + strconv.Itoa(grow(mb)) + " MiB")
			return
		case "/readv": // one fd_read of n iovecs, each the same mb MiB buffer
			n, _ := strconv.Atoi(query(req.URL(), "n"))
			mb, _ := strconv.Atoi(query(req.URL(), "mb"))
			f, err := os.Open(query(req.URL(), "path"))
			if err != nil {
				res.WriteHead(500)
				res.End(err.Error())
				return
			}
			defer f.Close()
			buf := make([]byte, mb<<20)
			iovs := make([]uint32, 2*n)
			for i := 0; i < n; i++ {
				iovs[2*i] = uint32(uintptr(unsafe.Pointer(&buf[0])))
				iovs[2*i+1] = uint32(len(buf))
			}
			var got uint32
			errno := fdRead(int32(f.Fd()), unsafe.Pointer(&iovs[0]), int32(n), unsafe.Pointer(&got))
			res.End("errno " + strconv.Itoa(int(errno)) + " read " + strconv.Itoa(int(got)) + "\n")
			return
		case "/write-then-oom":
			res.WriteHead(200, "Content-Type", "text/plain")
			res.Write([]byte(strings.Repeat("x", 1024)))
			grow(1 << 12)
			res.End("unreachable")
			return
		case "/read":
			b, err := os.ReadFile(query(req.URL(), "path"))
			if err != nil {
				res.WriteHead(500)
				res.End(err.Error())
				return
			}
			res.End("read " + strconv.Itoa(len(b)) + "\n")
			return
		}
		res.WriteHead(200, "Content-Type", "text/plain")
		res.End("ok from worker " + strconv.Itoa(wasmloop.WorkerID()) + "\n")
	})
	srv.Listen(port, "127.0.0.1")
	if mode == "listen-then-spin" {
		spin("start after listening")
	}
	wasmloop.Log("instance up mode=" + mode + " worker " + strconv.Itoa(wasmloop.WorkerID()))
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}
