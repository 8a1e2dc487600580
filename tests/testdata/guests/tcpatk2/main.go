//go:build wasip1

// Command tcpatk2 is the guest of tests/tcp_attack2_test.go: each HTTP path does one thing
// with raw TCP through the SDK (guest-sdk/go tcp.go) and answers with what happened.
//
//	/pause?addr=A            connect, OnData, Pause at once (a read is pending), write
//	                         "paused\n"; answer "ready". Data while paused is logged.
//	/resume                  Resume the /pause socket; answer the events once data came
//	/spin?addr=A&mode=M      a writer paced by Write/OnDrain, as the godoc says: M=close
//	                         (Close, then write), end (End, then write), peerend (write
//	                         forever; the peer half-closes). Answers "… spins=N": N counts
//	                         OnDrain running the writer at once after Write said false
//	/onend?addr=A            connect; OnEnd writes "bye N\n" (N bytes read); answer at
//	                         OnClose: the events
//	/connect?addr=A          "ok LOCAL REMOTE" or "ERR CODE MESSAGE"
//	/lookup?name=N           the addresses, or "ERR CODE MESSAGE"
//	/many?addr=A&n=N         N connects at once; answer "ok K emfile E other O" (sockets kept)
//	/closemany               close the kept sockets: "closed K"
//	/listen                  ListenTCP 127.0.0.1:0 (echo, first line "LOCAL REMOTE\n");
//	                         answer the address
//	/closelisten             close that listener: "closed"
//	/bigend?addr=A           one 1 MiB Write, then End; answer at OnClose
package main

import (
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

var (
	pausedSock *wasmloop.Socket
	paused     bool
	pauseEv    []string
	pauseWait  func()
	many       []*wasmloop.Socket
	srv        *wasmloop.TCPServer
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	wasmloop.CreateServer(serve).Listen(port, "127.0.0.1")
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

func code(err error) string {
	if err == nil {
		return "nil"
	}
	var ne *wasmloop.NetError
	if errors.As(err, &ne) {
		return ne.Code
	}
	return "ERR(" + err.Error() + ")"
}

func serve(req wasmloop.Request, res wasmloop.Response) {
	u, _ := url.Parse(req.URL())
	q := u.Query()
	addr := q.Get("addr")
	switch u.Path {
	case "/pause":
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				res.End("connect " + code(err))
				return
			}
			pausedSock = so
			so.OnData(func(d []byte) {
				pauseEv = append(pauseEv, "data "+strconv.Quote(string(d))+" paused="+strconv.FormatBool(paused))
				if paused {
					wasmloop.Log("tcpatk2: data while paused")
				}
				if pauseWait != nil {
					f := pauseWait
					pauseWait = nil
					f()
				}
			})
			so.Pause() // the read OnData asked for is pending
			paused = true
			so.Write([]byte("paused\n"))
			res.End("ready")
		})
		if err != nil {
			res.End("connect " + code(err))
		}
	case "/resume":
		answer := func() { res.End(strings.Join(pauseEv, "\n")) }
		paused = false
		pausedSock.Resume()
		if len(pauseEv) > 0 {
			answer()
		} else {
			pauseWait = answer
		}
	case "/spin":
		spin(addr, q.Get("mode"), res)
	case "/onend":
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				res.End("connect " + code(err))
				return
			}
			var ev []string
			got := 0
			so.OnData(func(d []byte) { got += len(d) })
			so.OnEnd(func() {
				ev = append(ev, "end")
				ok := so.Write([]byte("bye " + strconv.Itoa(got) + "\n"))
				ev = append(ev, "write in OnEnd "+strconv.FormatBool(ok))
			})
			so.OnClose(func(err error) {
				ev = append(ev, "close "+code(err))
				ok := so.Write([]byte("after close"))
				ev = append(ev, "write in OnClose "+strconv.FormatBool(ok))
				res.End(strings.Join(ev, "\n"))
			})
		})
		if err != nil {
			res.End("connect " + code(err))
		}
	case "/connect":
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				var ne *wasmloop.NetError
				errors.As(err, &ne)
				res.End("ERR " + code(err) + " " + ne.Message)
				return
			}
			res.End("ok " + so.LocalAddr() + " " + so.RemoteAddr())
			so.Close()
		})
		if err != nil {
			res.End("ERR " + code(err) + " at once")
		}
	case "/lookup":
		err := wasmloop.LookupHost(q.Get("name"), func(addrs []string, err error) {
			if err != nil {
				var ne *wasmloop.NetError
				errors.As(err, &ne)
				res.End("ERR " + code(err) + " " + ne.Message)
				return
			}
			res.End(strings.Join(addrs, ","))
		})
		if err != nil {
			res.End("ERR " + code(err) + " at once")
		}
	case "/many":
		// N connects, at most 1000 in flight (a worker takes 4096 async calls at a time).
		n, _ := strconv.Atoi(q.Get("n"))
		ok, emfile, other, started, left := 0, 0, 0, 0, n
		var others []string
		var next func()
		finish := func() {
			if left--; left == 0 {
				res.End("ok " + strconv.Itoa(ok) + " emfile " + strconv.Itoa(emfile) + " other " + strconv.Itoa(other) + " " + strings.Join(others, "; "))
			}
		}
		next = func() {
			if started >= n {
				return
			}
			started++
			err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
				switch {
				case err == nil:
					ok++
					many = append(many, so)
				case code(err) == "EMFILE":
					emfile++
				default:
					other++
					if len(others) < 3 {
						others = append(others, err.Error())
					}
				}
				finish()
				next()
			})
			if err != nil {
				other++
				if len(others) < 3 {
					others = append(others, err.Error())
				}
				finish()
			}
		}
		for range min(n, 1000) {
			next()
		}
	case "/closemany":
		k := len(many)
		for _, so := range many {
			so.Close()
		}
		many = nil
		res.End("closed " + strconv.Itoa(k))
	case "/listen":
		var err error
		srv, err = wasmloop.ListenTCP("127.0.0.1:0", func(so *wasmloop.Socket) {
			so.Write([]byte(so.LocalAddr() + " " + so.RemoteAddr() + "\n"))
			so.OnData(func(d []byte) { so.Write(d) })
		})
		if err != nil {
			res.End("ERR " + code(err))
			return
		}
		res.End(srv.Addr())
	case "/closelisten":
		srv.Close()
		res.End("closed")
	case "/bigend":
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				res.End("connect " + code(err))
				return
			}
			big := make([]byte, 1<<20)
			for i := range big {
				big[i] = byte(i % 251)
			}
			ok := so.Write(big)
			so.End()
			so.OnData(func([]byte) {})
			so.OnClose(func(err error) { res.End("write " + strconv.FormatBool(ok) + " close " + code(err)) })
		})
		if err != nil {
			res.End("connect " + code(err))
		}
	default:
		res.WriteHead(404)
		res.End("no such test")
	}
}

// spin runs a writer that obeys the godoc (Write false: wait for OnDrain), bounded: it
// counts the times OnDrain ran it at once although Write had just said false.
func spin(addr, mode string, res wasmloop.Response) {
	err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
		if err != nil {
			res.End("connect " + code(err))
			return
		}
		buf := make([]byte, 16<<10)
		spins := 0
		answered := false
		answer := func(s string) {
			if !answered {
				answered = true
				res.End(s + " spins=" + strconv.Itoa(spins))
			}
		}
		var step func()
		step = func() {
			for {
				if so.Write(buf) {
					if mode != "peerend" {
						answer("write true")
						return
					}
					continue
				}
				inCall, ranNow := true, false
				so.OnDrain(func() {
					if inCall {
						ranNow = true
						return
					}
					step()
				})
				inCall = false
				if !ranNow {
					if mode != "peerend" {
						// ended or closed: it never comes, and Writable says so
						answer("write false, waits for a drain, writable=" + strconv.FormatBool(so.Writable()))
					}
					return
				}
				if spins++; spins >= 1000 {
					wasmloop.Log("tcpatk2: the writer spun")
					if mode != "peerend" {
						answer("write false")
					}
					return
				}
			}
		}
		switch mode {
		case "close":
			so.Close()
			step()
		case "end":
			so.OnData(func([]byte) {})
			so.End()
			step()
		case "peerend":
			so.OnData(func([]byte) {})
			so.OnClose(func(err error) { answer("close " + code(err)) })
			step()
		}
	})
	if err != nil {
		res.End("connect " + code(err))
	}
}
