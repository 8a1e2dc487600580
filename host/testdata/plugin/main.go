//go:build wasip1

// Command plugin is the guest of package host's call and host-function tests and examples:
// functions the service calls (HandleCall), which call the service's functions in turn.
//
//	render   "<payload>: <lookup_user(payload)> / <slow_lookup(that)>", answered when the
//	         async slow_lookup's result arrives
//	echo     the payload
//	fail     fails with "asked to fail"
//	hold     never answers; logs "cancelled <payload>" when the service gives up
//	probe    "absent" if the service has no optional_fn, else its result
//	hosterr  the error message of the service's failing function
//	sleep    sleeps 20 ms in the Go runtime (WASI poll_oneoff), then answers "slept"
//	spin     calls the service's sync function noop as many times as the payload says (a
//	         decimal count), for measuring what a host function call costs
//	fetch    fetches the payload (a URL) and answers "STATUS BODY" once the body is in
//	crash    panics: the instance is replaced
//	readmany "N PATH": reads the granted file PATH N times at once (wasmloop.ReadFile) and
//	         answers with the total of bytes read, or the first error
//	async    calls the service's async function named by the payload and answers its result,
//	         or "error: " and the error's message
//	shared   "G N": G goroutines (wasmloop.Go) each call the service's echo_sync and
//	         fail_with N times, with answers of 10 bytes to 10 KB, the collector running
//	         every few calls; answers "ok", or the first answer that was another's
//
// A message from the service comes back to it prefixed with "echo:".
package main

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	wasmloop.HandleCall("render", func(c *wasmloop.CallRequest) {
		user, err := wasmloop.CallSync("lookup_user", c.Payload())
		if err != nil {
			c.Fail(err.Error())
			return
		}
		err = wasmloop.Call("slow_lookup", user, func(more []byte, err error) {
			if err != nil {
				c.Fail(err.Error())
				return
			}
			c.Return([]byte(string(c.Payload()) + ": " + string(user) + " / " + string(more)))
		})
		if err != nil {
			c.Fail(err.Error())
		}
	})
	wasmloop.HandleCall("echo", func(c *wasmloop.CallRequest) { c.Return(c.Payload()) })
	wasmloop.HandleCall("fail", func(c *wasmloop.CallRequest) { c.Fail("asked to fail") })
	wasmloop.HandleCall("hold", func(c *wasmloop.CallRequest) {
		c.OnCancel(func() { wasmloop.Log("cancelled", string(c.Payload())) })
		wasmloop.Log("holding", string(c.Payload())) // a test waits for the delivery on it
	})
	wasmloop.HandleCall("probe", func(c *wasmloop.CallRequest) {
		res, err := wasmloop.CallSync("optional_fn", nil)
		if errors.Is(err, wasmloop.ErrNoFunction) {
			res = []byte("absent")
		}
		c.Return(res)
	})
	wasmloop.HandleCall("hosterr", func(c *wasmloop.CallRequest) {
		_, err := wasmloop.CallSync("failing", nil)
		c.Return([]byte(err.Error()))
	})
	// sleep sleeps in the Go runtime (WASI poll_oneoff) as many milliseconds as its payload
	// says (20 without one).
	wasmloop.HandleCall("sleep", func(c *wasmloop.CallRequest) {
		ms, err := strconv.Atoi(string(c.Payload()))
		if err != nil {
			ms = 20
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		c.Return([]byte("slept"))
	})
	wasmloop.HandleCall("spin", func(c *wasmloop.CallRequest) {
		n, _ := strconv.Atoi(string(c.Payload()))
		for range n {
			if _, err := wasmloop.CallSync("noop", nil); err != nil {
				c.Fail(err.Error())
				return
			}
		}
		c.Return(nil)
	})
	wasmloop.HandleCall("fetch", func(c *wasmloop.CallRequest) {
		err := wasmloop.FetchAll(wasmloop.FetchRequest{URL: string(c.Payload())}, 0, func(status int, _ []wasmloop.Header, body []byte, err error) {
			if err != nil {
				c.Fail(err.Error())
				return
			}
			c.Return([]byte(strconv.Itoa(status) + " " + string(body)))
		})
		if err != nil {
			c.Fail(err.Error())
		}
	})
	wasmloop.HandleCall("crash", func(c *wasmloop.CallRequest) { panic("asked to crash") })
	// after answers once a timer of as many milliseconds as its payload says has fired.
	wasmloop.HandleCall("after", func(c *wasmloop.CallRequest) {
		ms, _ := strconv.Atoi(string(c.Payload()))
		t := wasmloop.SetTimeout(func() { c.Return(c.Payload()) }, time.Duration(ms)*time.Millisecond)
		c.OnCancel(func() { wasmloop.ClearTimeout(t) })
		wasmloop.Log("armed", ms)
	})
	wasmloop.HandleCall("readmany", func(c *wasmloop.CallRequest) {
		count, name, _ := strings.Cut(string(c.Payload()), " ")
		n, _ := strconv.Atoi(count)
		total, left, failed := 0, n, false
		for range n {
			err := wasmloop.ReadFile(name, func(data []byte, err error) {
				left--
				total += len(data)
				if err != nil && !failed {
					failed = true
					c.Fail(err.Error())
				}
				if left == 0 && !failed {
					c.Return([]byte(strconv.Itoa(total)))
				}
			})
			if err != nil {
				c.Fail(err.Error())
				return
			}
		}
	})
	wasmloop.HandleCall("async", func(c *wasmloop.CallRequest) {
		err := wasmloop.Call(string(c.Payload()), nil, func(res []byte, err error) {
			if err != nil {
				res = []byte("error: " + err.Error())
			}
			c.Return(res)
		})
		if err != nil {
			c.Fail(err.Error())
		}
	})
	wasmloop.HandleCall("shared", func(c *wasmloop.CallRequest) {
		var goroutines, n int
		fmt.Sscan(string(c.Payload()), &goroutines, &n)
		gcPercent := debug.SetGCPercent(5) // a collection every few calls, until all are done
		left, wrong := goroutines, ""
		for g := range goroutines {
			var want [][]byte
			for _, size := range []int{10, 3000, 10000} {
				w := fmt.Sprintf("%d/%d:", g, size)
				want = append(want, []byte(w+strings.Repeat("x", size-len(w))))
			}
			wasmloop.Go(func() {
				for i := range n {
					if wrong == "" {
						wrong = sharedAnswers(want, i)
					}
					runtime.Gosched() // the others run between this goroutine's calls
				}
				if left--; left == 0 {
					debug.SetGCPercent(gcPercent)
					c.Return([]byte(cmp.Or(wrong, "ok")))
				}
			})
		}
	})
	wasmloop.OnMessage(func(from int, data []byte) {
		if from == wasmloop.FromHost {
			wasmloop.PostHost(append([]byte("echo:"), data...))
		}
	})
}

// sharedAnswers makes goroutine g's i-th pair of calls and says what came back wrong, if
// anything. The answers are copied out of the SDK's shared answer buffer (or fetched whole,
// past 4 KiB), and a copy allocates: an allocation can park the goroutine (it may start a
// collection, or help one), and another goroutine's call must not overwrite the answer
// meanwhile. The questions are made up front: the copies should be most of what allocates.
func sharedAnswers(want [][]byte, i int) string {
	q := want[i%len(want)]
	got, err := wasmloop.CallSync("echo_sync", q)
	if err != nil || string(got) != string(q) {
		return fmt.Sprintf("echo_sync(%.12s…, %d bytes) = %.12s…, %d bytes, %v", q, len(q), got, len(got), err)
	}
	_, err = wasmloop.CallSync("fail_with", q)
	if err == nil || err.Error() != string(q) {
		return fmt.Sprintf("fail_with(%.12s…, %d bytes) = %.12s…", q, len(q), fmt.Sprint(err))
	}
	return ""
}
