//go:build wasip1

// Command wasmhttpatk is the guest of tests/wasmhttp_attack_test.go: the routes of package
// routes, which the test also serves with net/http's own server, served through wasmhttp.
package main

import (
	"os"
	"strconv"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
	"github.com/wasmloop/wasmloop/guest-sdk/go/wasmhttp"
	"github.com/wasmloop/wasmloop/tests/testdata/guests/wasmhttpatk/routes"
)

func main() {
	port, _ := strconv.Atoi(os.Getenv("PORT"))
	if err := wasmhttp.ListenAndServe("127.0.0.1:"+strconv.Itoa(port), routes.Mux()); err != nil {
		wasmloop.Log("listen: " + err.Error())
		wasmloop.Exit(1)
	}
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}
