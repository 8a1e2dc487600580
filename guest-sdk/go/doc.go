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
//		wasmloop.CreateServer(func(req *wasmloop.Request, res *wasmloop.Response) {
//			res.WriteHead(200, "Content-Type", "text/plain")
//			res.End("Hello World\n")
//		}).Listen(1337, "127.0.0.1")
//	}
//
// WebSockets share the server: a request for which req.IsWebSocket() is true is accepted
// with res.Upgrade, and the returned *WebSocket delivers whole messages to OnMessage and sends
// with Send and SendText; the host runs the protocol (see samples/wsecho and samples/chat).
//
// The package only builds for GOOS=wasip1.
package wasmloop
