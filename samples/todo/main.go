//go:build wasip1

// Command todo is a JSON REST API written as Go's net/http code — an http.ServeMux with Go
// 1.22 patterns, r.PathValue, r.URL.Query, encoding/json, http.Error — served by wasmloop
// through wasmhttp.ListenAndServe.
//
//	GET    /todos            the list (?done=true|false filters it)
//	POST   /todos            {"title": "..."} adds one: 201 and the new item
//	GET    /todos/{id}       one item
//	PATCH  /todos/{id}       {"title": "...", "done": true} changes it
//	DELETE /todos/{id}       removes it: 204
//
// The list lives in the memory of the instance that holds it. Every worker is an instance
// with its own memory, so only worker 0 listens: with --workers 2 the other worker has
// nothing to serve, and every request sees the same list (README, "Workers and state").
package main

import (
	"cmp"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
	"github.com/wasmloop/wasmloop/guest-sdk/go/wasmhttp"
)

// Todo is one item of the list.
type Todo struct {
	ID    int    `json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
}

// store is the list. Handlers run one at a time on a worker, but a handler may block (its
// goroutine waits while others run), so the store is locked as any net/http code's would be.
type store struct {
	mu    sync.Mutex
	next  int
	items map[int]*Todo
	order []int
}

func (s *store) list(done *bool) []Todo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Todo{}
	for _, id := range s.order {
		if t := s.items[id]; done == nil || t.Done == *done {
			out = append(out, *t)
		}
	}
	return out
}

func (s *store) add(title string) Todo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	t := &Todo{ID: s.next, Title: title}
	s.items[t.ID] = t
	s.order = append(s.order, t.ID)
	return *t
}

func (s *store) get(id int) (Todo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.items[id]
	if !ok {
		return Todo{}, false
	}
	return *t, true
}

func (s *store) update(id int, title *string, done *bool) (Todo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.items[id]
	if !ok {
		return Todo{}, false
	}
	if title != nil {
		t.Title = *title
	}
	if done != nil {
		t.Done = *done
	}
	return *t, true
}

func (s *store) remove(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.items[id]; !ok {
		return false
	}
	delete(s.items, id)
	for i, x := range s.order {
		if x == id {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	return true
}

// routes is the API on an http.ServeMux.
func routes(s *store) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /todos", func(w http.ResponseWriter, r *http.Request) {
		var done *bool
		if q := r.URL.Query().Get("done"); q != "" {
			b, err := strconv.ParseBool(q)
			if err != nil {
				http.Error(w, "done must be true or false", http.StatusBadRequest)
				return
			}
			done = &b
		}
		writeJSON(w, http.StatusOK, s.list(done))
	})
	mux.HandleFunc("POST /todos", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Title string `json:"title"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Title == "" {
			http.Error(w, `want {"title": "..."}`, http.StatusBadRequest)
			return
		}
		t := s.add(in.Title)
		w.Header().Set("Location", "/todos/"+strconv.Itoa(t.ID))
		writeJSON(w, http.StatusCreated, t)
	})
	mux.HandleFunc("GET /todos/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := todoID(w, r)
		if !ok {
			return
		}
		t, ok := s.get(id)
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("PATCH /todos/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := todoID(w, r)
		if !ok {
			return
		}
		var in struct {
			Title *string `json:"title"`
			Done  *bool   `json:"done"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		t, ok := s.update(id, in.Title, in.Done)
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("DELETE /todos/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := todoID(w, r)
		if !ok {
			return
		}
		if !s.remove(id) {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func todoID(w http.ResponseWriter, r *http.Request) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		http.Error(w, "id must be a number", http.StatusBadRequest)
		return 0, false
	}
	return id, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func main() {
	if wasmloop.WorkerID() != 0 {
		return // the list lives in worker 0 (see the package comment)
	}
	port := 8080
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	host := cmp.Or(os.Getenv("HOST"), "127.0.0.1") // HOST=0.0.0.0: every interface (in a container)
	s := &store{items: map[int]*Todo{}}
	if err := wasmhttp.ListenAndServe(host+":"+strconv.Itoa(port), routes(s)); err != nil {
		wasmloop.Log("todo: " + err.Error())
		wasmloop.Exit(1)
	}
	wasmloop.Log("Server running at http://" + host + ":" + strconv.Itoa(port) + "/")
}
