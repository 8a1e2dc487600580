//go:build wasip1

// Command tcpattack is the guest of tests/tcp_attack_test.go: each HTTP path does one thing
// with raw TCP (guest-sdk/go tcp.go, or the stream functions called directly) and answers
// with what happened once it is over.
//
//	/hold?addr=A&n=N[&read=0]   connect, write N pattern bytes paced by OnDrain (n=0: forever),
//	                            read (unless read=0); answer "close CODE" when it closes
//	/closeonbyte?addr=A&n=N     connect, write N bytes, read; Close() when a byte comes;
//	                            answer "closed"
//	/crashonbyte?addr=A&n=N     connect, write N bytes, read; panic when a byte comes
//	/halfclose?addr=A&n=N       connect, KeepOpen, write N pattern bytes, End, read to the
//	                            end: "read R SHA"
//	/smallreads?addr=A&max=M    connect, io.read with max M to the end: "read R SHA inside=K"
//	/connect?addr=A&timeout=MS  "ok" or "ERR CODE", then " after" or " inside"
//	/badids?addr=A              the stream functions on the wrong kind of id, a line each
//	/twosock?addr=A             two connections; data on one closes the other: the events
//	/closetimer?addr=A          connect, write 16 KiB, busy 600 ms; a 1 ms timer closes:
//	                            the events
//	/info                       "worker W tcp ADDR" (with TCPATTACK_LISTEN=1)
//	/hold?...&answer=now        as /hold, answered "started" at once; the socket is held
//	/closeheld                  Close every held socket: "closed K"
//	/crash                      panic
//	/spincrash?n=MS             keep the worker busy for n ms (as /spin), then panic
//	/bigthenwait?n=N            a response of N bytes begun with one write, then nothing
//	                            more; logs "bigthenwait closed" when the client has gone
//
// With TCPATTACK_LISTEN=1 each worker listens on 127.0.0.1:0 (TCPATTACK_LISTEN_ADDR to
// override), logs "tcp worker W at ADDR", and answers every connection with the worker's id
// id and the instance's, "W INSTANCE\n", then echoes.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

var (
	tcpAddr  string
	instance = strconv.FormatInt(time.Now().UnixNano(), 36) // tells instances apart
	held     = map[*wasmloop.Socket]bool{}                  // /hold?answer=now's sockets
	closedBy = map[*wasmloop.Socket]bool{}                  // closed by /closeheld
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	wasmloop.CreateServer(serve).Listen(port, "127.0.0.1")
	// TCPATTACK_LISTEN=N listens N times (N > 1 wants a fixed TCPATTACK_LISTEN_ADDR: two
	// accept loops on one address, as SO_REUSEPORT allows).
	listens, _ := strconv.Atoi(os.Getenv("TCPATTACK_LISTEN"))
	for i := range listens {
		addr := os.Getenv("TCPATTACK_LISTEN_ADDR")
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		srv, err := wasmloop.ListenTCP(addr, func(so *wasmloop.Socket) {
			so.Write([]byte(strconv.Itoa(wasmloop.WorkerID()) + " " + instance + "\n"))
			so.OnData(func(d []byte) {
				if !so.Write(d) {
					so.Pause()
					so.OnDrain(so.Resume)
				}
			})
		})
		if err != nil {
			wasmloop.Log("tcp worker " + strconv.Itoa(wasmloop.WorkerID()) + " listen: " + err.Error())
		} else {
			tcpAddr = srv.Addr()
			line := "tcp worker " + strconv.Itoa(wasmloop.WorkerID()) + " at " + srv.Addr()
			if i > 0 {
				line += " (listen " + strconv.Itoa(i+1) + ")"
			}
			wasmloop.Log(line)
		}
	}
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

// pattern bytes: position i holds byte(i % 251).
func fill(p []byte, pos int64) {
	for i := range p {
		p[i] = byte((pos + int64(i)) % 251)
	}
}

// writer writes n pattern bytes to so (n 0: without end), paced by OnDrain.
func writer(so *wasmloop.Socket, n int64, done func()) {
	var pos int64
	buf := make([]byte, 64<<10)
	var step func()
	step = func() {
		for n == 0 || pos < n {
			k := int64(len(buf))
			if n > 0 {
				k = min(k, n-pos)
			}
			fill(buf[:k], pos)
			pos += k
			if !so.Write(buf[:k]) {
				so.OnDrain(step)
				return
			}
		}
		if done != nil {
			done()
		}
	}
	step()
}

func serve(req wasmloop.Request, res wasmloop.Response) {
	u, _ := url.Parse(req.URL())
	q := u.Query()
	n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
	addr := q.Get("addr")
	switch u.Path {
	case "/bigthenwait":
		res.OnClose(func() { wasmloop.Log("bigthenwait closed") })
		res.WriteHead(200, "Content-Length", strconv.FormatInt(2*n, 10))
		res.Write(make([]byte, n)) // the rest never comes
	case "/closeheld":
		k := 0
		for so := range held {
			closedBy[so] = true
			so.Close()
			k++
		}
		res.End("closed " + strconv.Itoa(k))
	case "/crash":
		panic("tcpattack: crash on request")
	case "/info":
		res.End("worker " + strconv.Itoa(wasmloop.WorkerID()) + " tcp " + tcpAddr)
	case "/spin", "/spincrash": // keeps the worker busy for n ms: connections wait in the TCP backlog
		wasmloop.Log("spinning")
		for end := time.Now().Add(time.Duration(n) * time.Millisecond); time.Now().Before(end); {
		}
		if u.Path == "/spincrash" {
			panic("tcpattack: crash after spinning")
		}
		res.End("spun")
	case "/hold":
		now := q.Get("answer") == "now"
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				res.End("connect " + code(err))
				return
			}
			var got int64
			if now {
				held[so] = false
				res.End("started")
			}
			so.OnClose(func(err error) {
				delete(held, so)
				if !now {
					res.End("close " + code(err) + " read " + strconv.FormatInt(got, 10))
				}
			})
			if q.Get("read") != "0" {
				so.OnData(func(d []byte) {
					if closedBy[so] {
						wasmloop.Log("tcpattack: data after Close")
					}
					got += int64(len(d))
				})
			}
			writer(so, n, nil)
		})
		if err != nil {
			res.End("connect " + code(err))
		}
	case "/closeonbyte", "/crashonbyte":
		crash := u.Path == "/crashonbyte"
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				res.End("connect " + code(err))
				return
			}
			closed := false
			so.OnClose(func(err error) {
				if !closed {
					res.End("close before the byte " + code(err))
				}
			})
			so.OnData(func(d []byte) {
				if closed {
					wasmloop.Log("tcpattack: data after Close")
					return
				}
				if crash {
					panic("tcpattack: crash with a write and a read pending")
				}
				closed = true
				so.Close()
				res.End("closed")
			})
			writer(so, n, nil)
		})
		if err != nil {
			res.End("connect " + code(err))
		}
	case "/halfclose":
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				res.End("connect " + code(err))
				return
			}
			so.KeepOpen()
			h := sha256.New()
			var got int64
			ended := false
			so.OnDataView(func(d []byte) { got += int64(len(d)); h.Write(d) })
			so.OnEnd(func() { ended = true; so.End() })
			so.OnClose(func(err error) {
				res.End("read " + strconv.FormatInt(got, 10) + " " + hex.EncodeToString(h.Sum(nil)) +
					" close " + code(err) + " ended " + strconv.FormatBool(ended))
			})
			writer(so, n, so.End)
		})
		if err != nil {
			res.End("connect " + code(err))
		}
	case "/smallreads":
		smallReads(addr, q.Get("max"), res)
	case "/connect":
		ms, _ := strconv.Atoi(q.Get("timeout"))
		returned := false
		err := wasmloop.ConnectTimeout(addr, time.Duration(ms)*time.Millisecond, func(so *wasmloop.Socket, err error) {
			where := " inside"
			if returned {
				where = " after"
			}
			if err != nil {
				res.End("ERR " + code(err) + where)
				return
			}
			so.Close()
			res.End("ok" + where)
		})
		returned = true
		if err != nil {
			res.End("ERR " + code(err) + " at once")
		}
	case "/badids":
		badIDs(addr, res)
	case "/twosock":
		twoSock(addr, res)
	case "/closetimer":
		// A timer closes the socket in the same turn as its data is read: the loop fires
		// timers after it reads and before it delivers what it read.
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				res.End("connect " + code(err))
				return
			}
			closed := false
			var events []string
			so.OnData(func(d []byte) {
				if closed {
					events = append(events, "DATA AFTER CLOSE: "+strconv.Quote(string(d)))
				} else {
					events = append(events, "data")
				}
			})
			// Later, once the read waits for the kernel: write 16 KiB (out within the call),
			// set a 1 ms timer that closes, and keep the worker busy while the peer answers.
			wasmloop.SetTimeout(func() {
				so.Write(make([]byte, 16<<10))
				wasmloop.SetTimeout(func() {
					closed = true
					so.Close()
					events = append(events, "closed")
					wasmloop.SetTimeout(func() { res.End(strings.Join(events, "\n") + "\n") }, 200*time.Millisecond)
				}, time.Millisecond)
				start := time.Now()
				for time.Since(start) < 600*time.Millisecond {
				}
			}, 50*time.Millisecond)
		})
		if err != nil {
			res.End("connect " + code(err))
		}
	default:
		res.WriteHead(404)
		res.End("no such test")
	}
}

// smallReads reads a connection with io.read calls of max bytes each, to the end.
func smallReads(addr, max string, res wasmloop.Response) {
	m, _ := strconv.Atoi(max)
	inside := 0
	err := wasmloop.Call(abi.FnConnect, append(binary.LittleEndian.AppendUint32(nil, 0), addr...), func(rec []byte, err error) {
		if err != nil {
			res.End("connect " + err.Error())
			return
		}
		id := append([]byte(nil), rec[:8]...)
		in := binary.LittleEndian.AppendUint32(append([]byte(nil), id...), uint32(m))
		h := sha256.New()
		var got int64
		var next func()
		var calling bool
		var onRead func([]byte, error)
		onRead = func(b []byte, err error) {
			if calling {
				inside++
			}
			switch {
			case err != nil:
				res.End("read error " + err.Error())
			case len(b) == 0:
				wasmloop.CallSync(abi.FnStreamClose, id)
				res.End("read " + strconv.FormatInt(got, 10) + " " + hex.EncodeToString(h.Sum(nil)) + " inside=" + strconv.Itoa(inside))
			case len(b) > m:
				res.End("read of " + strconv.Itoa(len(b)) + " bytes, more than " + strconv.Itoa(m))
			default:
				got += int64(len(b))
				h.Write(b)
				next()
			}
		}
		next = func() {
			calling = true
			if err := wasmloop.Call(abi.FnStreamRead, in, onRead); err != nil {
				res.End("read call " + err.Error())
			}
			calling = false
		}
		next()
	})
	if err != nil {
		res.End("connect call " + err.Error())
	}
}

// badIDs calls the stream functions on the wrong kind of id: a read, write and end on a
// listener, an accept on a connection, and checks each answer comes after its call.
func badIDs(addr string, res wasmloop.Response) {
	lres, err := wasmloop.CallSync(abi.FnNetListen, []byte("127.0.0.1:0"))
	if err != nil {
		res.End("listen " + err.Error())
		return
	}
	lid := append([]byte(nil), lres[:8]...)
	var lines []string
	pending := 0
	inCall := false
	finish := func() {
		if pending--; pending == 0 {
			wasmloop.CallSync(abi.FnStreamClose, lid)
			res.End(strings.Join(lines, "\n") + "\n")
		}
	}
	note := func(what string) func([]byte, error) {
		pending++
		return func(b []byte, err error) {
			w := what
			if inCall {
				w += " (INSIDE THE CALL)"
			}
			if err != nil {
				c, _, _ := strings.Cut(err.Error(), " ")
				lines = append(lines, w+": "+c)
			} else {
				lines = append(lines, w+": ok "+strconv.Quote(string(b)))
			}
			finish()
		}
	}
	call := func(fn string, in []byte, cb func([]byte, error)) {
		inCall = true
		if err := wasmloop.Call(fn, in, cb); err != nil {
			lines = append(lines, fn+" refused: "+err.Error())
			finish()
		}
		inCall = false
	}
	max := binary.LittleEndian.AppendUint32(nil, 100)
	pending++ // the connect
	call(abi.FnConnect, append(binary.LittleEndian.AppendUint32(nil, 0), addr...), func(rec []byte, err error) {
		defer finish()
		if err != nil {
			lines = append(lines, "connect: "+err.Error())
			return
		}
		cid := append([]byte(nil), rec[:8]...)
		call(abi.FnStreamRead, append(append([]byte(nil), lid...), max...), note("read listener"))
		call(abi.FnStreamWrite, append(append([]byte(nil), lid...), "x"...), note("write listener"))
		call(abi.FnStreamEnd, append([]byte(nil), lid...), note("end listener"))
		call(abi.FnAccept, append([]byte(nil), cid...), note("accept connection"))
		call(abi.FnStreamRead, append(append([]byte(nil), 1, 2, 3), max...), note("read short id"))
		call(abi.FnStreamRead, append(binary.LittleEndian.AppendUint64(nil, 1<<40), max...), note("read unknown id"))
		call(abi.FnStreamWrite, append(append([]byte(nil), cid...), "ok"...), note("write connection"))
		_, oerr := wasmloop.CallSync(abi.FnSetOption, binary.LittleEndian.AppendUint32(append(append([]byte(nil), lid...), abi.OptNoDelay), 1))
		c := "ok"
		if oerr != nil {
			c, _, _ = strings.Cut(oerr.Error(), " ")
		}
		lines = append(lines, "option listener: "+c)
		wasmloop.CallSync(abi.FnStreamClose, cid)
	})
}

// twoSock connects twice to addr. When both are up it writes 16 KiB on the first and then
// keeps the worker busy for 600 ms, so that the peer's bytes for both arrive together; data
// on either closes the other. It answers with the events.
func twoSock(addr string, res wasmloop.Response) {
	var socks [2]*wasmloop.Socket
	var closed [2]bool
	var events []string
	up := 0
	answered := false
	answer := func() {
		if !answered {
			answered = true
			res.End(strings.Join(events, "\n") + "\n")
		}
	}
	for i := range 2 {
		err := wasmloop.Connect(addr, func(so *wasmloop.Socket, err error) {
			if err != nil {
				events = append(events, "connect "+code(err))
				answer()
				return
			}
			socks[i] = so
			so.OnData(func(d []byte) {
				if closed[i] {
					events = append(events, "DATA AFTER CLOSE on "+strconv.Itoa(i)+": "+strconv.Quote(string(d)))
					return
				}
				events = append(events, "data on "+strconv.Itoa(i))
				o := 1 - i
				if !closed[o] {
					closed[o] = true
					socks[o].Close()
					events = append(events, "closed "+strconv.Itoa(o))
				}
				wasmloop.SetTimeout(func() {
					for _, s := range socks {
						s.Close()
					}
					answer()
				}, 300*time.Millisecond)
			})
			if up++; up == 2 {
				// 16 KiB go out within the call (the host writes a piece that large at
				// once); then the worker is busy, so that the peer's bytes for both sockets
				// arrive before the loop looks again.
				socks[0].Write(make([]byte, 16<<10))
				start := time.Now()
				for time.Since(start) < 600*time.Millisecond {
				}
				events = append(events, "spun "+time.Since(start).String())
			}
		})
		if err != nil {
			events = append(events, "connect call "+code(err))
			answer()
		}
	}
}

var _ hash.Hash // (sha256.New returns one)
