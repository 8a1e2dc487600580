//go:build wasip1

// Command plugin is the guest samples/embed mounts: a wasmloop program that serves HTTP under
// the service's /plugin/ and answers the service's render calls, using the two functions the
// service gives it.
//
//	GET /hello      "hello from the plugin, worker N"
//	GET /user?id=N  the user the service's lookup_user (sync) finds
//	call render(id) "<name> (<profile>)": lookup_user, then slow_lookup (async), answered when
//	                slow_lookup's result arrives
package main

import (
	"os"
	"strconv"
	"strings"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	wasmloop.HandleCall("render", render)
	port, _ := strconv.Atoi(os.Getenv("PORT")) // the service runs it with no port of its own
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		path, query, _ := strings.Cut(req.URL(), "?")
		switch path {
		case "/hello":
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End("hello from the plugin, worker " + strconv.Itoa(wasmloop.WorkerID()) + "\n")
		case "/user":
			name, err := wasmloop.CallSync("lookup_user", []byte(strings.TrimPrefix(query, "id=")))
			if err != nil {
				res.WriteHead(404, "Content-Type", "text/plain")
				res.End(err.Error() + "\n")
				return
			}
			res.WriteHead(200, "Content-Type", "text/plain")
			res.End(string(name) + "\n")
		default:
			res.WriteHead(404, "Content-Type", "text/plain")
			res.End("not found\n")
		}
	}).Listen(port, "127.0.0.1")
}

// render answers the service's call from the async lookup's result.
func render(c *wasmloop.CallRequest) {
	name, err := wasmloop.CallSync("lookup_user", c.Payload())
	if err != nil {
		c.Fail(err.Error())
		return
	}
	err = wasmloop.Call("slow_lookup", c.Payload(), func(profile []byte, err error) {
		if err != nil {
			c.Fail(err.Error())
			return
		}
		c.Return([]byte(string(name) + " (" + string(profile) + ")"))
	})
	if err != nil {
		c.Fail(err.Error())
	}
}
