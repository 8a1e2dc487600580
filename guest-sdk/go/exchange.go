//go:build wasip1

package wasmloop

import (
	"github.com/wasmloop/wasmloop/abi"
)

// exchange is one request and its response. Exchanges are pooled: in Go's wasm code an
// allocation costs about as much as the rest of a request (RATIONALE.md), so the steady-state
// request path allocates nothing. Request and Response are small values that name an exchange
// and its generation; once an exchange is recycled its generation moves on, and a Request or
// Response kept past that reports itself stale (empty values, ESTATE) instead of reading
// another request's data.
type exchange struct {
	gen uint32
	h   int64 // the request handle

	src     []byte // the packed head: the inbox during the callback, then a copy
	decoded bool
	head    abi.Head
	headers [16]abi.Header
	record  [512]byte // holds src when the request outlives its callback, if it fits
	body    []byte
	bodyAll bool // body holds the whole body (copied, or read from the host)

	status    int
	hdr       []byte // response header lines in wire form
	hdrBuf    [192]byte
	sent      bool
	ended     bool
	closed    bool
	finishing bool // finished ran: the exchange is unregistered and retired, once
	inHandler bool
	onClose   []func()

	// A streamed body (Server.StreamBodies).
	stream     bool
	onData     func([]byte)
	onEnd      func()
	paused     bool
	userPaused bool // the program paused the body itself
	autoPaused bool // paused by the SDK until the program listens to the body
	bodyEnded  bool
	full       bool // a write answered AboveMark; cleared by on_drain
	onDrain    []func()
}

var (
	freeExchanges []*exchange
	retired       []*exchange // ended outside their handler; recycled at the next callback
)

const maxFreeExchanges = 256

func getExchange(h int64, src []byte) *exchange {
	var x *exchange
	if n := len(freeExchanges); n > 0 {
		x = freeExchanges[n-1]
		freeExchanges = freeExchanges[:n-1]
	} else {
		x = &exchange{}
	}
	x.h, x.src, x.decoded = h, src, false
	x.body, x.bodyAll = nil, false
	x.status, x.hdr = 200, x.hdrBuf[:0]
	x.sent, x.ended, x.closed, x.finishing, x.inHandler = false, false, false, false, true
	x.onClose = x.onClose[:0]
	x.stream, x.onData, x.onEnd, x.paused, x.bodyEnded, x.full = false, nil, nil, false, false, false
	x.userPaused, x.autoPaused = false, false
	x.onDrain = x.onDrain[:0]
	return x
}

// recycle returns x to the pool; every Request and Response naming it goes stale.
func recycle(x *exchange) {
	x.gen++
	x.src = nil
	for i := range x.onClose {
		x.onClose[i] = nil
	}
	for i := range x.onDrain {
		x.onDrain[i] = nil
	}
	x.onData, x.onEnd = nil, nil
	if len(freeExchanges) < maxFreeExchanges {
		freeExchanges = append(freeExchanges, x)
	}
}

// recycleRetired recycles exchanges that ended during an earlier callback: the code that
// ended them has returned, so nothing can be using them legitimately any more.
func recycleRetired() {
	for i, x := range retired {
		recycle(x)
		retired[i] = nil
	}
	retired = retired[:0]
}

// keep makes the exchange independent of the inbox, which the next event overwrites.
func (x *exchange) keep() {
	if len(x.src) <= len(x.record) {
		x.src = x.record[:copy(x.record[:], x.src)]
	} else {
		x.src = append([]byte(nil), x.src...)
	}
	x.decoded = false
	if !x.bodyAll {
		x.body = nil
	}
}

func (x *exchange) decode() *abi.Head {
	if !x.decoded {
		x.head.Headers = x.headers[:0]
		if x.head.Decode(x.src) != nil {
			x.head = abi.Head{ContentLength: -1}
		}
		x.decoded = true
	}
	return &x.head
}

// finished is called when the response ended or the connection went away — possibly both
// in one callback (an Abort from an OnClose function, a wasmhttp handler's panic after its
// client left), and it acts once: an exchange retired twice was recycled twice, and two
// later requests shared it (one's answer went to the other's client).
func (x *exchange) finished() {
	if x.finishing {
		return
	}
	x.finishing = true
	open.del(x.h)
	if !x.inHandler {
		retired = append(retired, x)
	}
}

// bodyPending reports a streamed body still to come through on_body.
func (x *exchange) bodyPending() bool {
	return x.stream && !x.bodyEnded && abi.HeadFlags(x.src)&abi.HeadBodyPending != 0
}
