// Package wasmloop is the Go SDK for wasmloop guests: Node's programming model — a server with
// a request handler, timers, exit when nothing is left to do — on top of the wasmloop ABI,
// which it hides completely.
//
// A guest is an ordinary Go main package built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// (`wasmloop run ./dir` does that for you). Its main function is the program's top-level
// code: it runs once per worker when the instance starts, registers handlers and timers, and
// returns; the host then runs the event loop and calls the handlers one at a time, so the
// program needs no locks. Nothing here blocks: a handler that wants to answer later keeps
// the Response and ends it from a timer.
//
//	func main() {
//		wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
//			res.WriteHead(200, "Content-Type", "text/plain")
//			res.End("Hello World\n")
//		}).Listen(1337, "127.0.0.1")
//	}
//
// WebSockets share the server: a request for which req.IsWebSocket() is true is accepted
// with res.Upgrade, and the returned *WebSocket delivers whole messages to OnMessage and sends
// with Send and SendText; the host runs the protocol (see samples/wsecho and samples/chat).
//
// Go's own net/http handlers run too: package wasmhttp serves any http.Handler (an
// http.ServeMux with Go 1.22 patterns, r.PathValue, cookies, encoding/json) with
// wasmhttp.ListenAndServe, each request on a goroutine that may block, and gives net/http's
// client a Transport over the host's fetch.
//
// Goroutines work as Go code expects, within one rule: Go code runs only while the host is
// calling into the program. Every callback lets the goroutines that can run do so before it
// returns, the SDK wakes the program for Go's own timers (time.Sleep, time.After, context
// deadlines in a goroutine fire up to 10 ms late), and a goroutine may answer a request after
// its handler returned. What blocks the callback's own goroutine — time.Sleep or a channel
// receive in a handler, select {} in main — stops the whole worker: start a goroutine instead,
// or use the callback forms (SetTimeout, StartFetch, ReadFile). main must return: the host
// runs the event loop after it.
//
// The package only builds for GOOS=wasip1, so tools need it said:
// `GOOS=wasip1 GOARCH=wasm go doc github.com/wasmloop/wasmloop/guest-sdk/go CreateServer`, and
// for gopls the editor's build environment GOOS=wasip1 GOARCH=wasm (in VS Code,
// "gopls": {"build.env": {"GOOS": "wasip1", "GOARCH": "wasm"}}).
package wasmloop
