package loop

import (
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

// A failed start is reported with what wasmloop_on_start returned: one of the ABI's error
// codes by name, any other value as the program's own failure status (never "wasmloop errno
// 1"), and what it means.
func TestStartErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		rc   int32
		want string
	}{
		{1, "wasmloop_on_start failed with status 1 (the program's start-up failed)"},
		{-1, "wasmloop_on_start returned EBADHANDLE (-1) (the program's start-up failed)"},
		{int32(abi.ESTATE), "wasmloop_on_start returned ESTATE (-4) (the program's start-up failed)"},
		{-100, "wasmloop_on_start failed with status -100 (the program's start-up failed)"},
	} {
		if got := (&startError{tt.rc}).Error(); got != tt.want {
			t.Errorf("on_start returning %d: %q, want %q", tt.rc, got, tt.want)
		}
	}
}

// Every callback's non-zero result is described the same way in the host's log lines.
func TestCallbackResult(t *testing.T) {
	for _, tt := range []struct {
		export string
		rc     int32
		want   string
	}{
		{abi.ExportOnRequest, 1, "wasmloop_on_request failed with status 1"},
		{abi.ExportOnBody, int32(abi.ECLOSED), "wasmloop_on_body returned ECLOSED (-5)"},
		{abi.ExportOnMessage, int32(abi.EDENIED), "wasmloop_on_message returned EDENIED (-9)"},
		{abi.ExportOnWSMessage, -10, "wasmloop_on_ws_message failed with status -10"},
		{abi.ExportOnCall, 2, "wasmloop_on_call failed with status 2"},
	} {
		if got := callbackResult(tt.export, tt.rc); got != tt.want {
			t.Errorf("%s returning %d: %q, want %q", tt.export, tt.rc, got, tt.want)
		}
	}
}
