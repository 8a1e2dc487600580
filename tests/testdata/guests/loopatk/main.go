//go:build wasip1

// Command loopatk drives the SDK's timers, exit codes and messages in edge cases, picked by
// MODE, and prints what happened on stdout for tests/loop_attack_test.go.
package main

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	switch os.Getenv("MODE") {
	case "order":
		order()
	case "clear":
		clearing()
	case "unref":
		t := wasmloop.SetTimeout(func() { wasmloop.Log("unref fired") }, 10*time.Second)
		t.Unref()
		wasmloop.Log("main done")
	case "unrefref":
		wasmloop.SetTimeout(func() { wasmloop.Log("unref'd fired") }, 20*time.Millisecond).Unref()
		wasmloop.SetTimeout(func() { wasmloop.Log("ref'd fired") }, 100*time.Millisecond)
		wasmloop.SetTimeout(func() { wasmloop.Log("reref'd fired") }, 50*time.Millisecond).Unref().Ref()
	case "intervalunref":
		n := 0
		var iv *wasmloop.Timer
		iv = wasmloop.SetInterval(func() {
			n++
			wasmloop.Log("tick", n)
			if n == 2 {
				iv.Unref()
			}
		}, 5*time.Millisecond)
	case "limit":
		limit()
	case "exit":
		code, _ := strconv.Atoi(os.Getenv("CODE"))
		wasmloop.SetTimeout(func() { wasmloop.Exit(code) }, time.Millisecond)
		wasmloop.SetTimeout(func() { wasmloop.Log("after exit") }, 2*time.Millisecond)
	case "panictimer":
		wasmloop.Log("main ran")
		wasmloop.SetTimeout(func() { panic("timer boom") }, time.Millisecond)
	case "negative":
		wasmloop.SetTimeout(func() { wasmloop.Log("negative fired") }, -5*time.Second)
		wasmloop.SetTimeout(func() { wasmloop.Log("minint fired") }, math.MinInt64)
		n := 0
		var iv *wasmloop.Timer
		iv = wasmloop.SetInterval(func() {
			n++
			if n == 3 {
				wasmloop.Log("negative interval ticked 3")
				wasmloop.ClearInterval(iv)
			}
		}, -time.Second)
	case "msg":
		messages()
	case "msgearly", "msgcrash":
		msgLife(os.Getenv("MODE"))
	case "intervalorder":
		intervalOrder()
	case "listenclose":
		port, _ := strconv.Atoi(os.Getenv("PORT"))
		srv := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) { res.End("x") })
		if err := srv.Listen(port, "127.0.0.1"); err != nil {
			wasmloop.Log("listen:", err)
		}
		wasmloop.SetInterval(func() {}, 5*time.Millisecond).Unref()
		wasmloop.SetTimeout(func() { wasmloop.Log("closing:", srv.Close()) }, 30*time.Millisecond)
	case "osexittimer":
		wasmloop.SetTimeout(func() { os.Exit(6) }, time.Millisecond)
	case "exitpending":
		wasmloop.SetTimeout(func() { wasmloop.Log("pending fired") }, 30*time.Second)
		wasmloop.SetTimeout(func() { wasmloop.Exit(0) }, time.Millisecond)
	}
}

// order starts timers due at the same time and prints the order they fire in (Node: the
// order they were created): 16 of 5 ms from main, then 16 of 0 from a timer callback.
func order() {
	sameDue("order main:", 5*time.Millisecond, func() { sameDue("order zero:", 0, func() {}) })
}

// sameDue starts 16 timers of one delay and logs label and the order they fired in, then
// runs then.
func sameDue(label string, delay time.Duration, then func()) {
	var got []string
	const n = 16
	for i := range n {
		wasmloop.SetTimeout(func() {
			got = append(got, strconv.Itoa(i))
			if len(got) == n {
				wasmloop.Log(label, strings.Join(got, " "))
				then()
			}
		}, delay)
	}
}

// intervalOrder starts three intervals of one period together and prints, per round, the
// order they ran in (Node: always the order they were created).
func intervalOrder() {
	var round []string
	rounds := 0
	var ivs []*wasmloop.Timer
	for i := range 3 {
		ivs = append(ivs, wasmloop.SetInterval(func() {
			round = append(round, strconv.Itoa(i))
			if len(round) == 3 {
				wasmloop.Log("round:", strings.Join(round, " "))
				round = round[:0]
				if rounds++; rounds == 6 {
					for _, t := range ivs {
						wasmloop.ClearInterval(t)
					}
				}
			}
		}, 3*time.Millisecond))
	}
}

func clearing() {
	// A timeout cleared from its own callback, and cleared again later.
	var self *wasmloop.Timer
	self = wasmloop.SetTimeout(func() {
		wasmloop.ClearTimeout(self)
		wasmloop.Log("self fired")
		// A stale timer cleared after its slot was reused must not cancel the new one.
		fresh := wasmloop.SetTimeout(func() { wasmloop.Log("fresh fired") }, 5*time.Millisecond)
		wasmloop.ClearTimeout(self)
		self.Unref()
		self.Ref()
		_ = fresh
	}, time.Millisecond)
	// A timer cleared by another callback before it is due: it must not run.
	var victim *wasmloop.Timer
	wasmloop.SetTimeout(func() { wasmloop.ClearTimeout(victim); wasmloop.Log("killer fired") }, 20*time.Millisecond)
	victim = wasmloop.SetTimeout(func() { wasmloop.Log("victim fired") }, 25*time.Millisecond)
	// An interval that clears itself on its third tick.
	n := 0
	var iv *wasmloop.Timer
	iv = wasmloop.SetInterval(func() {
		n++
		wasmloop.Log("interval", n)
		if n == 3 {
			wasmloop.ClearInterval(iv)
		}
	}, 2*time.Millisecond)
	// ClearTimeout(nil) and clearing twice are harmless.
	wasmloop.ClearTimeout(nil)
	c := wasmloop.SetTimeout(func() { wasmloop.Log("cleared fired") }, time.Millisecond)
	wasmloop.ClearTimeout(c)
	wasmloop.ClearTimeout(c)
}

func limit() {
	fired := 0
	for i := range 6 {
		wasmloop.SetTimeout(func() {
			fired++
			wasmloop.Log("fired", i)
		}, time.Duration(i+1)*time.Millisecond)
	}
	wasmloop.Log("started 6")
}

func messages() {
	me, count := wasmloop.WorkerID(), wasmloop.WorkerCount()
	const n = 200
	big := bytes.Repeat([]byte("b"), wasmloop.MaxMessage)
	if me == 0 {
		var seq []int
		sizes := map[string]bool{}
		selfGot := false
		wasmloop.OnMessage(func(from int, data []byte) {
			switch {
			case from == 0:
				selfGot = string(data) == "self"
			case len(data) == 0:
				sizes["empty"] = true
			case len(data) == wasmloop.MaxMessage:
				sizes["max"] = bytes.Equal(data, big)
			case string(data) == "done":
				var bad []string
				for i, v := range seq {
					if v != i {
						bad = append(bad, strconv.Itoa(i)+"="+strconv.Itoa(v))
					}
				}
				wasmloop.Log("seq", len(seq), "bad", len(bad), strings.Join(bad, ","))
				wasmloop.Log("empty", sizes["empty"], "max", sizes["max"], "self", selfGot)
				wasmloop.Exit(0)
			default:
				v, err := strconv.Atoi(string(data))
				if err == nil {
					seq = append(seq, v)
				}
			}
		})
		if err := wasmloop.PostMessage(0, []byte("self")); err != nil {
			wasmloop.Log("post to self:", err)
		}
		srv := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) { res.End("x") })
		port, _ := strconv.Atoi(os.Getenv("PORT"))
		srv.Listen(port, "127.0.0.1")
		wasmloop.Log("Server running at http://127.0.0.1:" + os.Getenv("PORT") + "/")
		return
	}
	if me != 1 {
		return
	}
	report := func(what string, err error) {
		name := "nil"
		var e abi.Errno
		if errors.As(err, &e) {
			name = e.Error()
		} else if err != nil {
			name = "other:" + err.Error()
		}
		wasmloop.Log(what, name)
	}
	report("empty", wasmloop.PostMessage(0, nil))
	report("max", wasmloop.PostMessage(0, big))
	report("over", wasmloop.PostMessage(0, append(big, 'x')))
	report("range", wasmloop.PostMessage(count, []byte("x")))
	report("negative", wasmloop.PostMessage(-7, []byte("x")))
	report("bcast over", wasmloop.Broadcast(append(big, 'x')))
	for i := range n {
		if err := wasmloop.PostMessage(0, []byte(strconv.Itoa(i))); err != nil {
			report("seq "+strconv.Itoa(i), err)
		}
	}
	report("done", wasmloop.PostMessage(0, []byte("done")))
}

// msgLife: msgearly posts to worker 1 before worker 0 listens (ABI.md §3, post: "a worker not
// started yet receives its messages once it starts"); msgcrash makes worker 1 panic on a
// message and posts another right behind it, to see whether the replacement gets it.
func msgLife(mode string) {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	if wasmloop.WorkerID() == 1 {
		wasmloop.OnMessage(func(from int, data []byte) {
			switch string(data) {
			case "crash":
				panic("crash on message")
			default:
				wasmloop.PostMessage(0, []byte("got "+string(data)))
			}
		})
		wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) { res.End("x") }).Listen(port, "127.0.0.1")
		wasmloop.PostMessage(0, []byte("ready"))
		return
	}
	readies := 0
	wasmloop.OnMessage(func(from int, data []byte) {
		switch string(data) {
		case "ready":
			readies++
			wasmloop.Log("ready", readies)
			if mode == "msgcrash" && readies == 1 {
				wasmloop.Log("post crash:", wasmloop.PostMessage(1, []byte("crash")))
				wasmloop.Log("post after:", wasmloop.PostMessage(1, []byte("after")))
			}
		default:
			wasmloop.Log(string(data))
			wasmloop.Exit(0)
		}
	})
	if mode == "msgearly" {
		wasmloop.Log("early post:", wasmloop.PostMessage(1, []byte("early")))
	}
	wasmloop.SetTimeout(func() { wasmloop.Log("lost"); wasmloop.Exit(3) }, 5*time.Second).Unref()
	srv := wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) { res.End("x") })
	srv.Listen(port, "127.0.0.1")
}
