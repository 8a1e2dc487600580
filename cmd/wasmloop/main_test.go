package main

import "testing"

func TestSizeFlag(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"512k", 512 << 10, true}, {"8m", 8 << 20, true}, {"8MiB", 8 << 20, true},
		{"1g", 1 << 30, true}, {"2KB", 2 << 10, true},
		{"0", 0, false}, {"-1", 0, false}, {"ten", 0, false}, {"", 0, false}, {"99999999999g", 0, false},
	}
	for _, tc := range tests {
		var s sizeFlag
		err := s.Set(tc.in)
		if (err == nil) != tc.ok || (tc.ok && int64(s) != tc.want) {
			t.Errorf("Set(%q) = %d, %v; want %d, ok=%v", tc.in, s, err, tc.want, tc.ok)
		}
	}
}

func TestEnvFlag(t *testing.T) {
	var e envFlag
	for _, bad := range []string{"NOEQUALS", "=v"} {
		if e.Set(bad) == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	if err := e.Set("PORT=8080"); err != nil || e.String() != "PORT=8080" {
		t.Fatalf("Set: %v, %q", err, e.String())
	}
	if err := e.Set("EMPTY="); err != nil || len(e) != 2 {
		t.Fatalf("an empty value must be allowed: %v", err)
	}
}
