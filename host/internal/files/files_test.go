package files

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

func TestParseGrant(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Grant
		bad  bool
	}{
		{in: "./public", want: Grant{HostPath: "./public"}},
		{in: "./public:/www", want: Grant{HostPath: "./public", GuestPath: "/www"}},
		{in: "./public:/www:ro", want: Grant{HostPath: "./public", GuestPath: "/www", ReadOnly: true}},
		{in: "/srv:ro", want: Grant{HostPath: "/srv", ReadOnly: true}},
		{in: "", bad: true},
		{in: ":/www", bad: true},
		{in: "a:b:c:ro", bad: true},
	} {
		g, err := ParseGrant(c.in)
		if (err != nil) != c.bad || !c.bad && g != c.want {
			t.Errorf("ParseGrant(%q) = %+v, %v", c.in, g, err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for name, grants := range map[string][]Grant{
		"relative guest path": {{HostPath: dir, GuestPath: "www"}},
		"unclean guest path":  {{HostPath: dir, GuestPath: "/www/../x"}},
		"twice":               {{HostPath: dir, GuestPath: "/a"}, {HostPath: dir, GuestPath: "/a"}},
		"missing":             {{HostPath: filepath.Join(dir, "nope"), GuestPath: "/a"}},
		"a file":              {{HostPath: file, GuestPath: "/a"}},
	} {
		if m, err := Open(grants); err == nil {
			m.Close()
			t.Errorf("%s: opened", name)
		}
	}
}

// The deepest grant holds a path; a grant's name is not a prefix of another's.
func TestResolve(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	m, err := Open([]Grant{{HostPath: a, GuestPath: "/www"}, {HostPath: b, GuestPath: "/www/private"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, c := range []struct{ in, guest, name string }{
		{"/www", "/www", "."},
		{"/www/x/../y", "/www", "y"},
		{"/www/private/z", "/www/private", "z"},
		{"/www/privatez", "/www", "privatez"},
		{"/www/../www/private", "/www/private", "."},
	} {
		mt, name, err := m.resolve(c.in)
		if err != nil || mt.GuestPath != c.guest || name != c.name {
			t.Errorf("resolve(%q) = %v %q %v, want %s %q", c.in, mt, name, err, c.guest, c.name)
		}
	}
	for _, p := range []string{"/wwwx", "/", "/etc/passwd", "/www/../etc", "www/x", "", "/www/a\x00b"} {
		if _, _, err := m.resolve(p); err == nil {
			t.Errorf("resolve(%q) succeeded", p)
		}
	}
}

// opOn runs the file function name on m with in, and releases its result as the loop would
// once delivered.
func opOn(m *Mounts, name string, in []byte) ([]byte, error) {
	out, err := m.Ops()[name](context.Background(), in)
	m.Release(out, err != nil)
	return out, err
}

func withLen(p string, rest string) []byte {
	return append(append(binary.LittleEndian.AppendUint32(nil, uint32(len(p))), p...), rest...)
}

// Links that leave the grant, absolute or climbing, are refused, for reading and for writing
// through them.
func TestLinksStayInside(t *testing.T) {
	base := t.TempDir()
	grant := filepath.Join(base, "g")
	os.Mkdir(grant, 0o755)
	os.WriteFile(filepath.Join(base, "secret"), []byte("SECRET"), 0o644)
	os.Symlink(filepath.Join(base, "secret"), filepath.Join(grant, "abs"))
	os.Symlink("../secret", filepath.Join(grant, "rel"))
	os.Symlink("..", filepath.Join(grant, "up"))
	m, err := Open([]Grant{{HostPath: grant, GuestPath: "/g"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, p := range []string{"/g/abs", "/g/rel", "/g/up/secret"} {
		if out, err := opOn(m, abi.FnReadFile, []byte(p)); err == nil || strings.Contains(string(out), "SECRET") {
			t.Errorf("readFile %s = %q, %v", p, out, err)
		} else if !strings.HasPrefix(err.Error(), abi.FileEACCES+" ") && !strings.HasPrefix(err.Error(), abi.FileENOENT+" ") {
			t.Errorf("readFile %s: %v, want EACCES or ENOENT", p, err)
		}
		if _, err := opOn(m, abi.FnWriteFile, withLen(p, "pwned")); err == nil {
			t.Errorf("writeFile %s succeeded", p)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(base, "secret")); string(b) != "SECRET" {
		t.Errorf("the file outside was changed: %q", b)
	}
}

// Malformed requests are EINVAL (or a refusal), never a panic: FuzzOps, over every function.
func FuzzOps(f *testing.F) {
	f.Add(uint8(0), []byte("/g/a.txt"))
	f.Add(uint8(1), append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, 3), 10), "/g/a.txt"...))
	f.Add(uint8(2), withLen("/g/new.txt", "data"))
	f.Add(uint8(8), withLen("/g/a.txt", "/g/b.txt"))
	f.Add(uint8(6), []byte("\x01/g/d/e"))
	f.Add(uint8(1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add(uint8(2), []byte{0xff, 0xff, 0xff, 0xff})
	names := []string{abi.FnReadFile, abi.FnRead, abi.FnWriteFile, abi.FnAppendFile, abi.FnStat,
		abi.FnReadDir, abi.FnMkdir, abi.FnRemove, abi.FnRename}
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		base := t.TempDir()
		grant := filepath.Join(base, "g")
		os.Mkdir(grant, 0o755)
		os.WriteFile(filepath.Join(grant, "a.txt"), []byte("0123456789"), 0o644)
		os.WriteFile(filepath.Join(base, "outside"), []byte("keep"), 0o644)
		m, err := Open([]Grant{{HostPath: grant, GuestPath: "/g"}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		out, err := opOn(m, names[int(which)%len(names)], in)
		if err != nil {
			if code, _, _ := strings.Cut(err.Error(), " "); !strings.HasPrefix(code, "E") {
				t.Errorf("an error without a code: %v", err)
			}
		}
		if len(out) > abi.MaxReadFile {
			t.Errorf("a result of %d bytes", len(out))
		}
		if !m.Idle() {
			t.Errorf("bytes are still reserved after the result was released")
		}
		entries, _ := os.ReadDir(base)
		if len(entries) != 2 {
			t.Errorf("something appeared beside the grant: %v", entries)
		}
		if b, _ := os.ReadFile(filepath.Join(base, "outside")); string(b) != "keep" {
			t.Errorf("the file outside the grant changed: %q", b)
		}
	})
}
