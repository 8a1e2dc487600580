//go:build wasip1

// Command static serves the directory granted at /www, as a static file server would:
//
//	wasmloop run --dir ./public:/www:ro ./samples/static
//
// GET and HEAD only. A path names a file under /www ("/" and any directory serve their
// index.html; a directory without the final slash is redirected to it). Answers carry
// Content-Type by extension, Content-Length, Last-Modified, ETag and Accept-Ranges;
// If-None-Match and If-Modified-Since answer 304, a single Range answers 206 (416 when it
// lies past the end), and anything missing — or outside /www: the host resolves every path
// inside the grant — answers 404. The host reads the file into the connection itself
// (Response.SendFile), a large one as the client takes it: its bytes never pass through
// the program.
package main

import (
	"cmp"
	"errors"
	"io/fs"
	"math"
	"mime"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/guest-sdk/go"
)

// root is where the host shows the granted directory.
const root = "/www"

// httpTime is the date format of HTTP (RFC 9110 §5.6.7).
const httpTime = "Mon, 02 Jan 2006 15:04:05 GMT"

func main() {
	port := 1337
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		port = p
	}
	host := cmp.Or(os.Getenv("HOST"), "127.0.0.1") // HOST=0.0.0.0: every interface (in a container)
	wasmloop.CreateServer(serve).Listen(port, host)
	if wasmloop.WorkerID() == 0 {
		wasmloop.Log("Server running at http://" + host + ":" + strconv.Itoa(port) + "/")
	}
}

func serve(req wasmloop.Request, res wasmloop.Response) {
	if m := req.Method(); m != "GET" && m != "HEAD" {
		res.WriteHead(405, "Allow", "GET, HEAD", "Content-Type", "text/plain")
		res.End("method not allowed\n")
		return
	}
	rawPath, query, hasQuery := strings.Cut(req.URL(), "?")
	p, err := url.PathUnescape(rawPath)
	if err != nil || !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		fail(res, 400, "bad path")
		return
	}
	// Cleaning a rooted path cannot climb above the root: "/../../etc/passwd" is
	// "/etc/passwd", looked for under /www. (The host refuses links out of the grant too.)
	name := root
	if clean := path.Clean(p); clean != "/" {
		name += clean // one allocation, where path.Join made two
	}
	wantDir := strings.HasSuffix(p, "/")
	if wantDir {
		name = path.Join(name, "index.html")
	}
	info, ok := stat(name, res)
	switch {
	case !ok:
	case info.IsDir() && !wantDir:
		// As net/http's FileServer: a directory is served with the final slash, so that its
		// index's relative links resolve. The Location is relative to the request's own
		// path — its last segment and a slash — so that no spelling of the path
		// ("//evil.example/..", "/\\evil.example") can send the client to another host.
		loc := "./" + rawPath[strings.LastIndexByte(rawPath, '/')+1:] + "/"
		if hasQuery {
			loc += "?" + query
		}
		res.WriteHead(301, "Location", loc, "Content-Type", "text/plain")
		res.End("moved\n")
	case info.IsDir():
		fail(res, 404, "not found")
	default:
		send(req, res, name, info)
	}
}

// stat stats name, or answers 404 (or 500) and returns false. The stat is made on the event
// loop (Response.StatFile): for files on a local disk, cheaper than a trip off the loop and
// back. A file is held open for the response, so that the head made from its size and time
// describes the bytes SendFile sends, even if the file is replaced meanwhile.
func stat(name string, res wasmloop.Response) (fs.FileInfo, bool) {
	info, err := res.StatFile(name)
	switch {
	case err == nil:
		return info, true
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission), refusedName(err):
		// Also a name no file can have (too long) or a loop of links: the client's path,
		// not the server, is at fault, and logging each would let any client fill the log.
		fail(res, 404, "not found")
	default:
		wasmloop.Log("stat " + name + ": " + err.Error())
		fail(res, 500, "cannot read the file")
	}
	return nil, false
}

// refusedName says whether the host refused the path itself: a file where a directory was
// wanted (ENOTDIR), a loop or too long a chain of links (ELOOP), or a malformed name, such as
// one past the system's length limit (EINVAL).
func refusedName(err error) bool {
	var fe *wasmloop.FileError
	if !errors.As(err, &fe) {
		return false
	}
	switch fe.Code {
	case "ENOTDIR", "ELOOP", "EINVAL":
		return true
	}
	return false
}

// send answers with the file, or the part of it the request asked for.
// fields are a file's validators and type, kept per path while its size and modification
// time stay the same: formatting them (a date, two hexadecimal numbers, a type looked up by
// extension) was a third of a small file's cost in Go's wasm code, and a file server sends
// the same files again and again.
type fields struct {
	size          int64
	mtime         time.Time // UTC
	etag, lastMod string
	ctype, length string
}

const maxCached = 4096 // paths; the cache starts afresh when it is full

var cache = map[string]*fields{}

// fieldsOf returns name's fields for info, from the cache when the file has not changed.
func fieldsOf(name string, info fs.FileInfo) *fields {
	size, mtime := info.Size(), info.ModTime()
	if f := cache[name]; f != nil && f.size == size && f.mtime.Equal(mtime) {
		return f
	}
	mtime = mtime.UTC()
	f := &fields{
		size: size, mtime: mtime,
		etag:    `"` + strconv.FormatInt(size, 16) + "-" + strconv.FormatInt(mtime.UnixNano(), 16) + `"`,
		lastMod: mtime.Format(httpTime),
		ctype:   contentType(name),
		length:  strconv.FormatInt(size, 10),
	}
	if len(cache) >= maxCached {
		clear(cache)
	}
	cache[name] = f
	return f
}

func send(req wasmloop.Request, res wasmloop.Response, name string, info fs.FileInfo) {
	f := fieldsOf(name, info)
	size, mtime, etag, lastMod := f.size, f.mtime, f.etag, f.lastMod
	res.SetHeader("ETag", etag)
	res.SetHeader("Last-Modified", lastMod)
	res.SetHeader("Accept-Ranges", "bytes")
	if notModified(req, etag, mtime) {
		res.WriteHead(304)
		res.End("")
		return
	}
	start, n, status := int64(0), size, 200
	if r := req.Header("Range"); r != "" && ifRange(req, etag, lastMod) {
		s, length, ok := parseRange(r, size)
		switch {
		case ok && length < 0:
			res.WriteHead(416, "Content-Range", "bytes */"+strconv.FormatInt(size, 10), "Content-Type", "text/plain")
			res.End("range not satisfiable\n")
			return
		case ok:
			start, n, status = s, length, 206
			res.SetHeader("Content-Range", "bytes "+strconv.FormatInt(s, 10)+"-"+strconv.FormatInt(s+length-1, 10)+"/"+strconv.FormatInt(size, 10))
		}
	}
	length := f.length
	if n != size {
		length = strconv.FormatInt(n, 10)
	}
	res.WriteHead(status, "Content-Type", f.ctype, "Content-Length", length)
	if req.Method() == "HEAD" || n == 0 {
		res.End("")
		return
	}
	// The host reads the file into the connection itself, as the client takes it.
	res.SendFile(name, start, n, func(err error) {
		if err != nil && !errors.Is(err, wasmloop.ErrClosed) {
			wasmloop.Log("send " + name + ": " + err.Error())
		}
	})
}

// notModified applies If-None-Match, or else If-Modified-Since (RFC 9110 §13.2.2).
func notModified(req wasmloop.Request, etag string, mtime time.Time) bool {
	if inm := req.Header("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == etag {
				return true
			}
		}
		return false
	}
	if t, ok := parseHTTPTime(req.Header("If-Modified-Since")); ok {
		return !mtime.Truncate(time.Second).After(t)
	}
	return false
}

// parseHTTPTime reads a date in any of the three formats a recipient must accept (RFC 9110
// §5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms.
func parseHTTPTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{httpTime, time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// ifRange says whether a Range applies: without If-Range, or when it names the current
// version.
func ifRange(req wasmloop.Request, etag, lastMod string) bool {
	ir := req.Header("If-Range")
	return ir == "" || ir == etag || ir == lastMod
}

// parseRange reads a single byte range against size. ok is false for anything this server
// does not take (several ranges, another unit, bad syntax): the whole file is sent then, as
// RFC 9110 allows. A range past the end gives ok with length -1 (416).
func parseRange(h string, size int64) (start, length int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // the last N bytes
		n, ok := digits(last)
		if !ok {
			return 0, 0, false
		}
		if n == 0 || size == 0 {
			return 0, -1, true
		}
		n = min(n, size)
		return size - n, n, true
	}
	s, ok := digits(first)
	if !ok {
		return 0, 0, false
	}
	e := size - 1
	if last != "" {
		if e, ok = digits(last); !ok || e < s {
			return 0, 0, false
		}
		e = min(e, size-1)
	}
	if s >= size {
		return 0, -1, true
	}
	return s, e - s + 1, true
}

// digits reads a range's 1*DIGIT: no sign, no space; a number too large for int64 is the
// largest, since a range end past the file's end means "to the end" (RFC 9110 §14.1.2).
func digits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-9)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// extraTypes are what Go's built-in table lacks (it has .html, .css, .js, .json, .png,
// .jpg, .gif, .svg, .webp, .avif, .wasm, .pdf, .xml and a few more).
var extraTypes = map[string]string{
	".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8",
	".ico": "image/x-icon", ".woff2": "font/woff2", ".woff": "font/woff",
	".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg", ".csv": "text/csv; charset=utf-8",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := extraTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// fail answers a short plain-text error.
func fail(res wasmloop.Response, status int, msg string) {
	res.WriteHead(status, "Content-Type", "text/plain; charset=utf-8")
	res.End(msg + "\n")
}
