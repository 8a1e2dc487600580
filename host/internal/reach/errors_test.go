package reach

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

// Each failure of a lookup, a dial or a transfer gets the code the SDK turns into its error:
// a lookup that timed out is a timeout, not "no such host" (a connect's deadline can expire
// while its name is being resolved).
func TestClassifyCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		code string
	}{
		{&net.DNSError{Err: "no such host", Name: "db", IsNotFound: true}, abi.ReachENOTFOUND},
		{&net.DNSError{Err: "i/o timeout", Name: "db", IsTimeout: true}, abi.ReachETIMEDOUT},
		{&net.OpError{Op: "dial", Err: &net.DNSError{Err: "i/o timeout", Name: "db", IsTimeout: true}}, abi.ReachETIMEDOUT},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), abi.ReachECONNREFUSED},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), abi.ReachECONNRESET},
		{context.DeadlineExceeded, abi.ReachETIMEDOUT},
		{context.Canceled, abi.ReachECLOSED},
		{&notGranted{"connect to", "db:5432", "--allow-connect"}, abi.FileEACCES},
		{errors.New("something else"), abi.FileEIO},
	} {
		got := classify(c.err).Error()
		if !strings.HasPrefix(got, c.code+" ") {
			t.Errorf("classify(%v) = %q, want the code %s", c.err, got, c.code)
		}
	}
}
