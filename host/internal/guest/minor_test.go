package guest

import (
	"context"
	"strings"
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

// The host asks the guest's marker for the minor version it speaks as it instantiates it
// (messages past 4 KiB depend on it); a marker that traps fails the instantiation with its
// name rather than leaving an instance that cannot be trusted.
func TestInstanceMinor(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, RuntimeConfig{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	for _, tc := range []struct {
		body []byte
		want int32
		err  string
	}{
		{[]byte{0x00, 0x41, 0x06, 0x0b}, 6, ""},
		{[]byte{0x00, 0x41, abi.Minor, 0x0b}, abi.Minor, ""},
		{[]byte{0x00, 0x00, 0x0b}, 0, "guest trapped in wasmloop_abi_v1"},
	} {
		m := validGuest()
		m.bodies[abi.ExportMarker] = tc.body
		mod, err := rt.Compile(ctx, m.encode())
		if err != nil {
			t.Fatal(err)
		}
		inst, err := mod.Instantiate(ctx, InstanceConfig{}, &recorder{})
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("marker % x: %v, want an error with %q", tc.body, err, tc.err)
			}
		case err != nil:
			t.Errorf("marker % x: %v", tc.body, err)
		default:
			if inst.Minor() != tc.want {
				t.Errorf("marker % x: Minor %d, want %d", tc.body, inst.Minor(), tc.want)
			}
			inst.Close()
		}
		mod.Close(ctx)
	}
}
