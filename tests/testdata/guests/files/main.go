//go:build wasip1

// Command files is a test guest for the host's file functions. At start-up it reads
// /data/config.txt through WASI (os.ReadFile, as a program reads its configuration) and logs
// "config: <contents>". Then:
//
//	GET /run       runs a script of file operations in /data, one after another, each in the
//	               callback of the one before, and answers a line per step:
//	               "<step>: ok <detail>" or "<step>: <error> [notexist] [exist] [permission]"
//	GET /ro        tries to write in /ro (a read-only grant) and to read /etc/passwd (not
//	               granted), and answers the errors
//	GET /wasi      tries os.WriteFile in /data through WASI (the preopens are read-only)
//	GET /hold?name=PATH
//	               stats PATH for its response (Response.StatFile), logs "held PATH SIZE"
//	               and answers only at the next GET /release: with the size stat'ed as its
//	               Content-Length and the file sent (SendFile)
//
// Every callback checks that it does not run inside the call that started its operation
// ("inside" in the answer if one did).
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

// starting is true while a file operation is being started: a callback that sees it ran
// inside the starting call, which the ABI forbids.
var starting bool

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	if cfg, err := os.ReadFile("/data/config.txt"); err == nil {
		wasmloop.Log("config: " + strings.TrimSpace(string(cfg)))
	} else {
		wasmloop.Log("config: " + err.Error())
	}
	wasmloop.CreateServer(func(req wasmloop.Request, res wasmloop.Response) {
		switch req.URL() {
		case "/run":
			run(res)
		case "/ro":
			readOnly(res)
		case "/wasi":
			err := os.WriteFile("/data/wasi.txt", []byte("x"), 0o644)
			res.End(fmt.Sprintf("wasi write: %v\n", err))
		case "/release":
			release(res)
		default:
			if name, ok := strings.CutPrefix(req.URL(), "/hold?name="); ok {
				hold(name, res)
				return
			}
			res.WriteHead(404)
			res.End("")
		}
	}).Listen(port, "127.0.0.1")
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://127.0.0.1:" + strconv.Itoa(port) + "/")
	}
}

// held is the response /hold stat'ed a file for, answered by /release.
var held struct {
	res  wasmloop.Response
	name string
	size int64
}

func hold(name string, res wasmloop.Response) {
	info, err := res.StatFile(name)
	if err != nil {
		res.WriteHead(500)
		res.End(describe(err) + "\n")
		return
	}
	held.res, held.name, held.size = res, name, info.Size()
	wasmloop.Log("held " + name + " " + strconv.FormatInt(held.size, 10))
}

func release(res wasmloop.Response) {
	h := held
	held.res = wasmloop.Response{}
	h.res.WriteHead(200, "Content-Length", strconv.FormatInt(h.size, 10))
	h.res.SendFile(h.name, 0, h.size, func(err error) {
		if err != nil {
			wasmloop.Log("release: " + err.Error())
		}
	})
	res.End("released\n")
}

// describe is an error and the kinds errors.Is finds in it.
func describe(err error) string {
	s := err.Error()
	for _, k := range []struct {
		target error
		name   string
	}{{fs.ErrNotExist, "notexist"}, {fs.ErrExist, "exist"}, {fs.ErrPermission, "permission"}} {
		if errors.Is(err, k.target) {
			s += " [" + k.name + "]"
		}
	}
	return s
}

// script runs steps one after another; each gets a done func to call from its callback.
type script struct {
	res   wasmloop.Response
	out   strings.Builder
	steps []func(done func(detail string, err error)) error
}

func (s *script) next() {
	if len(s.steps) == 0 {
		s.res.End(s.out.String())
		return
	}
	step := s.steps[0]
	s.steps = s.steps[1:]
	n := strings.Count(s.out.String(), "\n") + 1
	starting = true
	err := step(func(detail string, err error) {
		if starting {
			s.out.WriteString("inside\n")
		}
		if err != nil {
			fmt.Fprintf(&s.out, "%d: %s\n", n, describe(err))
		} else {
			fmt.Fprintf(&s.out, "%d: ok %s\n", n, detail)
		}
		s.next()
	})
	starting = false
	if err != nil {
		fmt.Fprintf(&s.out, "%d: did not start: %v\n", n, err)
		s.next()
	}
}

func run(res wasmloop.Response) {
	s := &script{res: res}
	s.steps = []func(func(string, error)) error{
		func(d func(string, error)) error {
			return wasmloop.Remove("/data/work", true, func(err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.Mkdir("/data/work/a/b", true, func(err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.Mkdir("/data/work/a", false, func(err error) { d("", err) }) // exists
		},
		func(d func(string, error)) error {
			return wasmloop.WriteFile("/data/work/a/note.txt", []byte("hello"), func(err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.AppendFile("/data/work/a/note.txt", []byte(", world"), func(err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.ReadFile("/data/work/a/note.txt", func(b []byte, err error) { d(string(b), err) })
		},
		func(d func(string, error)) error {
			return wasmloop.ReadAt("/data/work/a/note.txt", 7, 100, func(b []byte, err error) { d(string(b), err) })
		},
		func(d func(string, error)) error {
			return wasmloop.Stat("/data/work/a/note.txt", func(fi fs.FileInfo, err error) {
				if err != nil {
					d("", err)
					return
				}
				d(fmt.Sprintf("%s %d dir=%v", fi.Name(), fi.Size(), fi.IsDir()), nil)
			})
		},
		func(d func(string, error)) error {
			return wasmloop.Rename("/data/work/a/note.txt", "/data/work/a/b/moved.txt", func(err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.ReadDir("/data/work/a", func(es []fs.DirEntry, err error) {
				var names []string
				for _, e := range es {
					n := e.Name()
					if e.IsDir() {
						n += "/"
					}
					names = append(names, n)
				}
				d(strings.Join(names, ","), err)
			})
		},
		func(d func(string, error)) error {
			return wasmloop.ReadFile("/data/work/a/note.txt", func(b []byte, err error) { d(string(b), err) }) // moved
		},
		func(d func(string, error)) error {
			return wasmloop.Remove("/data/work/a", false, func(err error) { d("", err) }) // not empty
		},
		func(d func(string, error)) error {
			return wasmloop.Remove("/data/work", true, func(err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.Stat("/data/work", func(_ fs.FileInfo, err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.ReadFile("/data/../../etc/passwd", func(b []byte, err error) { d(string(b), err) })
		},
		func(d func(string, error)) error {
			return wasmloop.ReadFile("/data/escape", func(b []byte, err error) { d(string(b), err) })
		},
		func(d func(string, error)) error {
			return wasmloop.Rename("/data/config.txt", "/ro/config.txt", func(err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.Rename("/data/config.txt", "/scratch/config.txt", func(err error) { d("", err) })
		},
	}
	s.next()
}

func readOnly(res wasmloop.Response) {
	s := &script{res: res}
	s.steps = []func(func(string, error)) error{
		func(d func(string, error)) error {
			return wasmloop.WriteFile("/ro/x.txt", []byte("x"), func(err error) { d("", err) })
		},
		func(d func(string, error)) error {
			return wasmloop.ReadFile("/ro/readme.txt", func(b []byte, err error) { d(string(b), err) })
		},
		func(d func(string, error)) error {
			return wasmloop.ReadFile("/etc/passwd", func(b []byte, err error) { d(string(b), err) })
		},
		func(d func(string, error)) error {
			return wasmloop.ReadFile("relative.txt", func(b []byte, err error) { d(string(b), err) })
		},
	}
	s.next()
}
