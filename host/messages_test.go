package host_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wasmloop/wasmloop/abi"
	"github.com/wasmloop/wasmloop/host"
)

// Long messages cross between the service and the guest both ways (ABI 1.7): the plugin
// receives MaxMessage-5 bytes (its 64 KiB inbox, then message_read) and posts them back
// behind "echo:", exactly MaxMessage bytes. Past MaxMessage, App.Post is EINVAL.
func TestPostLongMessages(t *testing.T) {
	got := make(chan []byte, 1)
	app := startPlugin(t, host.Config{Workers: 2, OnMessage: func(worker int, data []byte) {
		got <- data
	}})
	msg := make([]byte, abi.MaxMessage-len("echo:"))
	for i := range msg {
		msg[i] = byte(i) ^ byte(i>>8) ^ byte(i>>16)
	}
	for w := range 2 {
		if err := app.Post(w, msg); err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
		if echo := <-got; !bytes.Equal(echo, append([]byte("echo:"), msg...)) {
			t.Fatalf("worker %d echoed %d bytes, want %d, or they differ", w, len(echo), abi.MaxMessage)
		}
	}
	if err := app.Post(0, make([]byte, abi.MaxMessage+1)); !errors.Is(err, abi.EINVAL) {
		t.Fatalf("a message over MaxMessage: %v, want EINVAL", err)
	}
}
