// Command crash is a test guest: /panic panics, /fail reports itself broken through the ABI's
// fail, anything else answers "ok N" where N counts requests on this instance.
package main

import (
	"strconv"
	"unsafe"

	wl "github.com/wasmloop/wasmloop/guest-sdk/go"
)

//go:wasmimport wasmloop_v1 fail
func fail(msg unsafe.Pointer, size uint32)

func main() {
	n := 0
	wl.CreateServer(func(req wl.Request, res wl.Response) {
		n++
		switch req.URL() {
		case "/panic":
			panic("test panic")
		case "/fail":
			msg := "test fail"
			fail(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
		}
		res.End("ok " + strconv.Itoa(n))
	}).Listen(0, "127.0.0.1")
}
