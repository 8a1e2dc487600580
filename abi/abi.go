// Package abi holds the constants and encodings of the wasmloop guest ABI, version 1, shared
// by the host and the Go guest SDK. ABI.md beside this file is the normative text; this package
// is its executable form. It imports nothing host-only, so it builds for GOOS=wasip1 too.
package abi

// Version of the ABI this package describes. Minor versions only add.
const (
	Major = 1
	Minor = 8
)

// ModuleName is the import module of every host function. The major version is part of it,
// so a guest built for another major version fails at instantiation, not at run time.
const ModuleName = "wasmloop_v1"

// Names of the guest's exports.
const (
	ExportMarker       = "wasmloop_abi_v1"
	ExportStart        = "wasmloop_on_start"
	ExportOnRequest    = "wasmloop_on_request"
	ExportOnTimer      = "wasmloop_on_timer"
	ExportOnClose      = "wasmloop_on_close"
	ExportOnBody       = "wasmloop_on_body"        // since 1.1
	ExportOnDrain      = "wasmloop_on_drain"       // since 1.1
	ExportOnMessage    = "wasmloop_on_message"     // since 1.2
	ExportOnWSOpen     = "wasmloop_on_ws_open"     // since 1.3
	ExportOnWSMessage  = "wasmloop_on_ws_message"  // since 1.3
	ExportOnWSClose    = "wasmloop_on_ws_close"    // since 1.3
	ExportOnCall       = "wasmloop_on_call"        // since 1.4
	ExportOnHostResult = "wasmloop_on_host_result" // since 1.4
	ExportMemory       = "memory"
	ExportInit         = "_initialize" // WASI reactor initialisation
	ExportCommand      = "_start"      // a WASI command: refused
)

// Names of the host functions in ModuleName.
const (
	FnNegotiate     = "negotiate"
	FnWorkerID      = "worker_id"
	FnWorkerCount   = "worker_count"
	FnInbox         = "inbox"
	FnListen        = "listen"
	FnRespond       = "respond"
	FnWrite         = "write"
	FnEnd           = "end"
	FnBodyRead      = "body_read"
	FnTimerStart    = "timer_start"
	FnClose         = "close"
	FnRef           = "ref"
	FnExit          = "exit"
	FnFail          = "fail"
	FnPause         = "pause"           // since 1.1
	FnPost          = "post"            // since 1.2
	FnWSAccept      = "ws_accept"       // since 1.3
	FnWSSend        = "ws_send"         // since 1.3
	FnWSClose       = "ws_close"        // since 1.3
	FnCallReturn    = "call_return"     // since 1.4
	FnHostCall      = "host_call"       // since 1.4
	FnHostCallAsync = "host_call_async" // since 1.4
	FnHostResult    = "host_result"     // since 1.4
	FnBodyFile      = "body_file"       // since 1.6
	FnMessageRead   = "message_read"    // since 1.7
	FnBroadcast     = "broadcast"       // since 1.7
)

// BodyFileAboveMark is the bit of body_file's result that says the output passed the
// high-water mark: wait for on_drain before the next piece.
const BodyFileAboveMark = 1 << 32

// MinInbox is the smallest inbox the host accepts.
const MinInbox = 4096

// RespondEnd is the respond flag that makes the call the whole response.
const RespondEnd = 1

// ListenStreamBody is the listen flag (since 1.1) that streams request bodies to the guest
// through wasmloop_on_body instead of buffering them.
const ListenStreamBody = 1

// PostAll is the post target (since 1.2) meaning every worker but the sender.
const PostAll = -1

// PostHost is the post target (since 1.4) meaning the embedding program rather than a worker.
const PostHost = -2

// HostCallFailed is the bit of host_call's result (since 1.4) saying the embedder's function
// failed: the result bytes are its error message. The low 32 bits are the result's length.
const HostCallFailed = 1 << 32

// Status of call_return and wasmloop_on_host_result (since 1.4).
const (
	CallOK     = 0 // the bytes are the result
	CallFailed = 1 // the bytes are an error message
)

// MaxMessage is the largest message post and broadcast take (since 1.7) from a guest built
// for 1.7 or later, and the largest the embedding program posts. A message longer than the
// receiver's inbox arrives with the inbox full and the rest read with message_read.
const MaxMessage = 1 << 20

// MaxShortMessage is the largest message (since 1.2) a guest built for 1.2–1.6 may post, and
// the largest such a guest is given: it fits the smallest inbox, so it arrives in one piece.
const MaxShortMessage = MinInbox

// LongMessages is the first minor version whose guests post and receive messages longer
// than MaxShortMessage (message_read, broadcast).
const LongMessages = 7

// WSAcceptDeflate is the ws_accept flag (since 1.3) that turns on permessage-deflate when the
// client offered it.
const WSAcceptDeflate = 1

// Flags of ws_send and wasmloop_on_ws_message (since 1.3).
const (
	WSBinary = 1 << 0 // a binary message; without it the message is text (valid UTF-8)
	WSMore   = 1 << 1 // on_ws_message only: the inbox holds the first part; body_read the rest
)

// AboveMark is what respond and write return (since 1.1) when the data was accepted but the
// connection's unsent output is above the high-water mark: wait for wasmloop_on_drain.
const AboveMark = 1

// Reasons given to wasmloop_on_close.
const (
	ClosePeer = 1 // the peer closed or reset the connection
	CloseHost = 2 // the host closed it (timeout, write cap, shutdown)
)

// Errno is a negative result of a host function.
type Errno int32

// The error codes of ABI.md §1. They are never renumbered.
const (
	EBADHANDLE Errno = -1
	EFAULT     Errno = -2
	EINVAL     Errno = -3
	ESTATE     Errno = -4
	ECLOSED    Errno = -5
	EADDR      Errno = -6
	ENOTSUP    Errno = -7
	ELIMIT     Errno = -8
	EDENIED    Errno = -9 // not granted (since 1.6): listen on an address --allow-listen does not name
)

var errnoNames = [...]string{"", "EBADHANDLE", "EFAULT", "EINVAL", "ESTATE", "ECLOSED", "EADDR", "ENOTSUP", "ELIMIT", "EDENIED"}

// Known reports whether e is one of the codes of ABI.md §1, which have names.
func (e Errno) Known() bool { return e < 0 && int(-e) < len(errnoNames) }

// Error returns the code's name, so an Errno can be returned as an error.
func (e Errno) Error() string {
	if e < 0 && int(-e) < len(errnoNames) {
		return errnoNames[-e]
	}
	return "wasmloop errno " + itoa(int64(e))
}

// Kind is the object a handle names.
type Kind uint8

// Handle kinds. Never renumbered.
const (
	KindListener Kind = 1
	KindRequest  Kind = 2
	KindTimer    Kind = 3
	KindSocket   Kind = 4 // a WebSocket (since 1.3)
	KindCall     Kind = 5 // a call from the embedding program (since 1.4)
)

// Handle is an i64 the host gives a guest to name one object. See ABI.md §1.
type Handle uint64

// MaxGen is the largest generation a handle can carry; generations wrap from MaxGen to 1.
const MaxGen = 1<<24 - 1

// MakeHandle packs a kind, a generation (1…MaxGen) and a slot index.
func MakeHandle(k Kind, gen uint32, index uint32) Handle {
	return Handle(uint64(k&0x7f)<<56 | uint64(gen&MaxGen)<<32 | uint64(index))
}

// Kind returns the handle's kind.
func (h Handle) Kind() Kind { return Kind(h >> 56 & 0x7f) }

// Gen returns the handle's generation.
func (h Handle) Gen() uint32 { return uint32(h>>32) & MaxGen }

// Index returns the handle's slot index.
func (h Handle) Index() uint32 { return uint32(h) }

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	for {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
