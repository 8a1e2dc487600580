package reach

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/wasmloop/wasmloop/abi"
)

// codedError is a failed operation's result: "CODE message" (abi.Reach*, abi.File*).
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.code + " " + e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func coded(code string, err error) error { return &codedError{code, err} }

var errShort = coded(abi.FileEINVAL, errors.New("the request is shorter than its fields"))

// notGranted is the refusal of a host, port or address no grant names; its message says
// which flag would grant it.
type notGranted struct {
	what, addr, flag string
}

func (e *notGranted) Error() string {
	return e.what + " " + e.addr + " not granted; add " + e.flag + " " + e.addr
}

// classify gives an error of the network, the transport or TLS its code. An error that has
// one already keeps it.
func classify(err error) error {
	var ce *codedError
	if errors.As(err, &ce) { // a refusal of ours, perhaps wrapped by the client ("Get …: …")
		return ce
	}
	var (
		ng    *notGranted
		dns   *net.DNSError
		cv    *tls.CertificateVerificationError
		ua    x509.UnknownAuthorityError
		he    x509.HostnameError
		ci    x509.CertificateInvalidError
		rh    tls.RecordHeaderError
		alert tls.AlertError
	)
	code := abi.FileEIO
	switch {
	case errors.As(err, &ng):
		code = abi.FileEACCES
	case errors.As(err, &dns) && !dns.IsTimeout, noAddress(err):
		code = abi.ReachENOTFOUND // a lookup that timed out is a timeout (below), not "no such host"
	case errors.Is(err, syscall.ECONNREFUSED):
		code = abi.ReachECONNREFUSED
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		code = abi.ReachECONNRESET
	case errors.Is(err, syscall.EADDRINUSE):
		code = abi.ReachEADDRINUSE
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		code = abi.FileEINVAL
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		code = abi.ReachETIMEDOUT
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci), errors.As(err, &rh), errors.As(err, &alert):
		code = abi.ReachETLS
	case errors.Is(err, context.Canceled), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrClosedPipe), errors.Is(err, errStreamClosed):
		code = abi.ReachECLOSED
	}
	return coded(code, err)
}

// noAddress says whether err is a name that resolved to no address a dial can use.
func noAddress(err error) bool {
	var ae *net.AddrError
	return errors.As(err, &ae) && ae.Err == "no suitable address found"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errStreamClosed is what operations on a stream closed under them fail with.
var errStreamClosed = errors.New("the stream was closed")
