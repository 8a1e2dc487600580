package abi

// Reach (ABI 1.6): outbound HTTP (fetch) and TCP in and out, as the host's own functions,
// called like the file functions (§9) and answered with wasmloop_on_host_result (ABI.md §10).
// Nothing is reachable unless granted: --allow-connect HOST[:PORT] for fetch and connect,
// --allow-listen ADDR for listen. A fetch's bodies and a TCP connection are streams, named by
// an id u64 the host gives, read, written, ended and closed with the same four functions.
// Integers are little-endian.

import (
	"math"
	"time"
)

const (
	// FnStreamRead (async): in = id u64, max u32; result = at most max bytes (and at most
	// MaxStreamRead), as soon as any are there; empty at the end of the stream. One read per
	// stream at a time (EBUSY).
	FnStreamRead = "wasmloop:io.read"
	// FnStreamWrite (async): in = id u64, data; result = empty once the data is taken (for
	// TCP, queued on the connection while its unsent output is under the host's high-water
	// mark, else once it drains; for a fetch, taken by the transport). One write at a time:
	// a program that waits for each is paced by its peer — the back-pressure.
	FnStreamWrite = "wasmloop:io.write"
	// FnStreamEnd (async): in = id u64; ends the writing side: TCP's FIN (the peer reads
	// the end), a streamed fetch body's end.
	FnStreamEnd = "wasmloop:io.end"
	// FnStreamClose (sync): in = id u64; closes the stream (or listener) at once: its
	// pending operations fail ECLOSED. Closing an unknown id is not an error.
	FnStreamClose = "wasmloop:io.close"

	// FnFetch (sync): in = a fetch request (below); result = the fetch's id u64. The request
	// is sent off the loop; a refusal (not granted, a bad URL) is the failed result here.
	FnFetch = "wasmloop:http.fetch"
	// FnFetchResponse (async): in = id u64; result = status u16, then the response's header
	// block ("Name: value\r\n" lines). Its body is then read with FnStreamRead on the same id.
	FnFetchResponse = "wasmloop:http.response"

	// FnConnect (async): in = timeout ms u32 (0: the default, 30 s), "host:port"; result =
	// a connection record (below). The name is resolved off the loop.
	FnConnect = "wasmloop:net.connect"
	// FnNetListen (sync): in = "host:port" (port 0: the kernel chooses); result = id u64, then
	// the bound address.
	FnNetListen = "wasmloop:net.listen"
	// FnAccept (async): in = the listener's id u64; result = the next connection's record.
	FnAccept = "wasmloop:net.accept"
	// FnSetOption (sync): in = id u64, option u8 (Opt*), value u32.
	FnSetOption = "wasmloop:net.option"
	// FnLookup (async): in = a host name; result = its addresses, one per line. Only names
	// a connect grant names (on any port) may be looked up.
	FnLookup = "wasmloop:net.lookup"
)

// MaxStreamRead is the most one FnStreamRead returns; MaxStreamWrite the most one
// FnStreamWrite takes; MaxFetchBody the most a fetch's body given whole may be (stream a
// larger one).
const (
	MaxStreamRead  = 256 << 10
	MaxStreamWrite = 1 << 20
	MaxFetchBody   = 16 << 20
)

// The fetch request of FnFetch: timeout ms u32 (0: none), flags u8 (Fetch*), method length
// u8, method, URL length u32, URL, header block length u32, header block ("Name: value\r\n"
// lines), then the body — unless FetchStreamBody, when it is written with FnStreamWrite and
// ended with FnStreamEnd on the fetch's id.
const (
	FetchFollowRedirects = 1 // follow up to 10 redirects, each to a granted host
	FetchStreamBody      = 2
)

// A connection record (FnConnect, FnAccept): id u64, local address length u16, local
// address, remote address.

// Options of FnSetOption.
const (
	OptNoDelay   = 1 // value 0 or 1: TCP_NODELAY (on by default, as in Go)
	OptKeepAlive = 2 // value: seconds between keep-alive probes; 0 turns them off
)

// KeepAliveSeconds is OptKeepAlive's value for a probe period: whole seconds, rounded up, so
// that a period under a second asks for probes every second rather than turning them off
// (0), and at most the largest the value holds.
func KeepAliveSeconds(period time.Duration) uint32 {
	if period <= 0 {
		return 0
	}
	secs := period / time.Second
	if period%time.Second != 0 {
		secs++
	}
	if secs > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(secs)
}

// Codes of a failed reach operation's result, "CODE message" as the file functions' (§9),
// which share EACCES (not granted), EINVAL and EIO.
const (
	ReachECONNREFUSED = "ECONNREFUSED" // nothing listens there
	ReachETIMEDOUT    = "ETIMEDOUT"    // the connect or the fetch took longer than its timeout
	ReachENOTFOUND    = "ENOTFOUND"    // the name does not resolve
	ReachECONNRESET   = "ECONNRESET"   // the peer reset the connection
	ReachECLOSED      = "ECLOSED"      // the stream was closed (by the program, or as its instance ended)
	ReachEBUSY        = "EBUSY"        // a read (or write) of the stream is already pending
	ReachEBADID       = "EBADID"       // no such stream: unknown, closed, or another instance's
	ReachEADDRINUSE   = "EADDRINUSE"   // listen: the address is taken
	ReachETLS         = "ETLS"         // the TLS handshake failed (a certificate not trusted, …)
	ReachEMFILE       = "EMFILE"       // the program has too many streams open
)
