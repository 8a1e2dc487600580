package httpfield

import (
	"strings"
	"testing"
)

// TestClasses checks every byte of each class against the RFC 9110 grammar written out
// differently: as sets and ranges rather than as the table's construction.
func TestClasses(t *testing.T) {
	const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := 0; i < 256; i++ {
		c := byte(i)
		vchar := (c >= 0x21 && c <= 0x7e) || c >= 0x80
		for _, tc := range []struct {
			name      string
			got, want bool
		}{
			{"tchar", IsTchar(c), strings.IndexByte(tchars, c) >= 0},
			{"field-vchar", IsVchar(c), vchar},
			{"field-value", IsValueChar(c), vchar || c == ' ' || c == '\t'},
			{"qdtext", IsQdtext(c), (vchar || c == ' ' || c == '\t') && c != '"' && c != '\\'},
		} {
			if tc.got != tc.want {
				t.Errorf("%s(%#02x) = %v", tc.name, c, tc.got)
			}
		}
	}
}

func TestIsToken(t *testing.T) {
	for _, s := range []string{"a", "GET", "x-y.z", "!#$%&'*+-.^_`|~09aZ"} {
		if !IsToken([]byte(s)) {
			t.Errorf("%q rejected", s)
		}
	}
	for _, s := range []string{"", " ", "a b", "a,b", "a:", "\"a\"", "caf\xc3\xa9", "a\x00"} {
		if IsToken([]byte(s)) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		b, lower string
		want     bool
	}{
		{"Content-Length", "content-length", true},
		{"CONTENT-LENGTH", "content-length", true},
		{"content-length", "content-length", true},
		{"content-lengths", "content-length", false},
		{"content-lengt", "content-length", false},
		{"", "", true},
		{"[", "{", false}, // 0x5B and 0x7B differ by the case bit but are not letters
		{"@", "`", false},
		{"\xe2\x84\xaa", "k", false}, // the Kelvin sign folds to k only under Unicode rules
		{"\xc5\xbf", "s", false},     // and the long s to s
	} {
		if got := EqualFold([]byte(tc.b), tc.lower); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v", tc.b, tc.lower, got)
		}
	}
}

func TestTrimOWS(t *testing.T) {
	for in, want := range map[string]string{"": "", " \t": "", "\t a b \t": "a b", "a": "a", " a\x00 ": "a\x00"} {
		if got := string(TrimOWS([]byte(in))); got != want {
			t.Errorf("TrimOWS(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNextListElem(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"a":                "a",
		"a, b":             "a|b",
		" a ,\tb\t,, c , ": "a|b||c|",
		",":                "|",
	} {
		var got []string
		for v := []byte(in); ; {
			elem, rest := NextListElem(v)
			got = append(got, string(elem))
			if rest == nil {
				break
			}
			v = rest
		}
		if s := strings.Join(got, "|"); s != want {
			t.Errorf("NextListElem over %q: %q, want %q", in, s, want)
		}
	}
}

func TestCutLine(t *testing.T) {
	for _, tc := range []struct {
		in, name, value, rest string
	}{
		{"X: y\r\n", "X", "y", ""},
		{"X:y\r\nZ: 1\r\n", "X", "y", "Z: 1\r\n"},
		{"X:\t a  b \t\r\n", "X", "a  b", ""},
		{"X:\r\n\r\n", "X", "", "\r\n"},
		{"!#$%&'*+-.^_`|~09aZ: caf\xc3\xa9\r\n", "!#$%&'*+-.^_`|~09aZ", "caf\xc3\xa9", ""},
	} {
		name, value, rest, f := CutLine([]byte(tc.in))
		if f != NoFault || string(name) != tc.name || string(value) != tc.value || string(rest) != tc.rest {
			t.Errorf("CutLine(%q) = %q, %q, %q, %v", tc.in, name, value, rest, f)
		}
	}
	for _, tc := range []struct {
		in   string
		want Fault
	}{
		{"", BadName},
		{"\r\n", BadName},
		{": 1\r\n", BadName},
		{"X\r\n", BadName},
		{"X", BadName},
		{"X : 1\r\n", BadName},
		{"X(): 1\r\n", BadName},
		{" X: 1\r\n", BadName}, // obs-fold, seen from the continuation line
		{"X: a\x00b\r\n", BadValue},
		{"X: \x7f\r\n", BadValue},
		{"X: 1\nY: 2\r\n", BadValue},
		{"X: 1", BadLineEnd},
		{"X: 1\r", BadLineEnd},
		{"X: 1\rY: 2\r\n", BadLineEnd},
	} {
		name, value, rest, f := CutLine([]byte(tc.in))
		if f != tc.want || name != nil || value != nil || rest != nil {
			t.Errorf("CutLine(%q) = %q, %q, %q, %v; want fault %v", tc.in, name, value, rest, f, tc.want)
		}
	}
	block := []byte("Content-Type: text/plain\r\nContent-Length: 12\r\n")
	if a := testing.AllocsPerRun(100, func() {
		for b := block; len(b) > 0; {
			_, _, rest, f := CutLine(b)
			if f != NoFault {
				t.Fatal(f)
			}
			b = rest
		}
	}); a != 0 {
		t.Fatalf("CutLine allocates %v times", a)
	}
}
