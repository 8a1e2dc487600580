package loop

import (
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

// A failed start is reported with the value wasmloop_on_start returned, named when it is an
// errno of the ABI, and what it means.
func TestStartErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		rc   int32
		want string
	}{
		{1, "wasmloop_on_start returned 1 (the program's start-up failed)"},
		{-1, "wasmloop_on_start returned -1 = EBADHANDLE (the program's start-up failed)"},
		{int32(abi.ESTATE), "wasmloop_on_start returned -4 = ESTATE (the program's start-up failed)"},
		{-100, "wasmloop_on_start returned -100 (the program's start-up failed)"},
	} {
		if got := (&startError{tt.rc}).Error(); got != tt.want {
			t.Errorf("on_start returning %d: %q, want %q", tt.rc, got, tt.want)
		}
	}
}
