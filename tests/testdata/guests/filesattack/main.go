//go:build wasip1

// Command filesattack is a test guest that runs one of the host's file functions per
// request, with its arguments from the query, so that a test can aim any path at any
// operation (tests/files_attack_test.go):
//
//	GET /op/NAME?p=PATH&q=PATH2&off=N&n=N&data=TEXT&all=1
//	    NAME is read, readat, write, append, stat, statsync, list, mkdir, remove or rename;
//	    the answer is "ok DETAIL" or "err CODE [notexist] [exist] [permission] MESSAGE"
//	GET /many?p=PATH&n=N
//	    starts N stats of PATH at once and answers "done N ok K" once every callback ran
//	GET /wasi?p=PATH
//	    reads PATH with os.ReadFile, through the WASI preopens: "ok CONTENT" or
//	    "err [permission] ERROR" (the kind when errors.Is finds it)
//	GET /send?p=PATH&off=N&n=N
//	    answers with the file through Response.SendFile (chunked: no Content-Length) and logs
//	    "send PATH: ERROR" when it failed
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	wasmloop.CreateServer(serve).Listen(port, "127.0.0.1")
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

// answer is the result of one operation as a line.
func answer(res wasmloop.Response, detail string, err error) {
	if err != nil {
		code := "?"
		var fe *wasmloop.FileError
		if errors.As(err, &fe) {
			code = fe.Code
		}
		kinds := ""
		for _, k := range []struct {
			target error
			name   string
		}{{fs.ErrNotExist, "notexist"}, {fs.ErrExist, "exist"}, {fs.ErrPermission, "permission"}} {
			if errors.Is(err, k.target) {
				kinds += " [" + k.name + "]"
			}
		}
		res.End("err " + code + kinds + " " + err.Error())
		return
	}
	res.End("ok " + detail)
}

func serve(req wasmloop.Request, res wasmloop.Response) {
	route, rawQuery, _ := strings.Cut(req.URL(), "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		res.WriteHead(400)
		res.End(err.Error())
		return
	}
	p := q.Get("p")
	off, _ := strconv.ParseInt(q.Get("off"), 10, 64)
	n, _ := strconv.Atoi(q.Get("n"))
	all := q.Get("all") == "1"
	var start error
	switch route {
	case "/op/read":
		start = wasmloop.ReadFile(p, func(b []byte, err error) { answer(res, string(b), err) })
	case "/op/readat":
		start = wasmloop.ReadAt(p, off, n, func(b []byte, err error) { answer(res, string(b), err) })
	case "/op/write":
		start = wasmloop.WriteFile(p, []byte(q.Get("data")), func(err error) { answer(res, "", err) })
	case "/op/append":
		start = wasmloop.AppendFile(p, []byte(q.Get("data")), func(err error) { answer(res, "", err) })
	case "/op/stat":
		start = wasmloop.Stat(p, func(info fs.FileInfo, err error) {
			if err != nil {
				answer(res, "", err)
				return
			}
			answer(res, fmt.Sprintf("%d %v", info.Size(), info.Mode()), nil)
		})
	case "/op/statsync":
		info, err := wasmloop.StatSync(p)
		if err != nil {
			answer(res, "", err)
			return
		}
		answer(res, fmt.Sprintf("%d %v", info.Size(), info.Mode()), nil)
	case "/op/list":
		start = wasmloop.ReadDir(p, func(entries []fs.DirEntry, err error) {
			var names []string
			for _, e := range entries {
				names = append(names, strconv.Quote(e.Name()))
			}
			answer(res, strings.Join(names, ","), err)
		})
	case "/op/mkdir":
		start = wasmloop.Mkdir(p, all, func(err error) { answer(res, "", err) })
	case "/op/remove":
		start = wasmloop.Remove(p, all, func(err error) { answer(res, "", err) })
	case "/op/rename":
		start = wasmloop.Rename(p, q.Get("q"), func(err error) { answer(res, "", err) })
	case "/many":
		done, ok := 0, 0
		for i := 0; i < n; i++ {
			err := wasmloop.Stat(p, func(_ fs.FileInfo, err error) {
				done++
				if err == nil {
					ok++
				}
				if done == n {
					res.End(fmt.Sprintf("done %d ok %d", done, ok))
				}
			})
			if err != nil {
				res.End(fmt.Sprintf("start %d: %v", i, err))
				return
			}
		}
	case "/wasi":
		b, err := os.ReadFile(p)
		if err != nil {
			kind := ""
			if errors.Is(err, fs.ErrPermission) {
				kind = " [permission]"
			}
			res.End("err" + kind + " " + err.Error())
			return
		}
		res.End("ok " + string(b))
	case "/send":
		res.WriteHead(200, "Content-Type", "application/octet-stream")
		res.SendFile(p, off, int64(n), func(err error) {
			if err != nil {
				wasmloop.Log("send " + p + ": " + err.Error())
			}
		})
	default:
		res.WriteHead(404)
		res.End("")
	}
	if start != nil {
		answer(res, "", start)
	}
}
