//go:build wasip1

package wasmhttp_test

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
	"github.com/wasmloop/wasmloop/guest-sdk/go/wasmhttp"
)

// Go's own http.Handler code in a guest: an http.ServeMux with Go 1.22 patterns. Unlike
// net/http's, ListenAndServe returns at once; the listening server keeps the program alive.
func ExampleListenAndServe() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello, "+r.PathValue("name")+"\n")
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var v any
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	})
	wasmhttp.ListenAndServe("127.0.0.1:8080", mux)
}

// http.Client in a handler: the handler's goroutine waits for the host's fetch while the
// worker serves others. The upstream must be granted (--allow-connect 127.0.0.1:9000).
func ExampleTransport() {
	client := &http.Client{Transport: wasmhttp.Transport{}}
	wasmhttp.ListenAndServe("127.0.0.1:8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Get("http://127.0.0.1:9000/users/1")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	}))
}

// A WebSocket upgrade from an http.Handler: the host runs the protocol and delivers whole
// messages.
func ExampleUpgrade() {
	wasmhttp.ListenAndServe("127.0.0.1:8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !wasmhttp.IsWebSocket(r) {
			http.Error(w, "WebSocket only", http.StatusUpgradeRequired)
			return
		}
		ws, err := wasmhttp.Upgrade(w, r, wasmloop.UpgradeOptions{})
		if err != nil {
			return
		}
		ws.OnMessage(func(data []byte, binary bool) { ws.Send(data, binary) })
	}))
}
