// Command httpwasm-sdk-hello is the hello world written with the http-wasm guest SDK
// (github.com/http-wasm/http-wasm-guest-tinygo v0.4.0), as its README shows. The SDK targets
// TinyGo; run.sh builds this with the standard Go compiler only to check whether the result is
// a usable http-wasm guest (it is not: see README.md, "http-wasm and the standard Go
// compiler"). The benchmark's http-wasm guest is ../httpwasm-hello.
package main

import (
	"github.com/http-wasm/http-wasm-guest-tinygo/handler"
	"github.com/http-wasm/http-wasm-guest-tinygo/handler/api"
)

func main() {
	handler.HandleRequestFn = serve
}

func serve(_ api.Request, resp api.Response) (next bool, reqCtx uint32) {
	resp.Headers().Set("Content-Type", "text/plain")
	resp.Body().WriteString("Hello World\n")
	return false, 0 // the response is written: the host calls no next handler
}
