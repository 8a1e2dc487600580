package main

import (
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

func TestSizeValue(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"512k", 512 << 10, true}, {"8m", 8 << 20, true}, {"8MiB", 8 << 20, true},
		{"1g", 1 << 30, true}, {"2KB", 2 << 10, true}, {"0", 0, true},
		{"-1", 0, false}, {"off", 0, false}, {"ten", 0, false}, {"", 0, false}, {"99999999999g", 0, false},
	}
	for _, tc := range tests {
		var n int64
		err := sizeValue[int64]{&n}.Set(tc.in)
		if (err == nil) != tc.ok || (tc.ok && n != tc.want) {
			t.Errorf("Set(%q) = %d, %v; want %d, ok=%v", tc.in, n, err, tc.want, tc.ok)
		}
	}
	// What String shows (the help's defaults) reads back as the same size.
	for _, n := range []int{0, 1, 1000, 1 << 10, 3 << 10, 1<<20 + 1, 16 << 20, 2 << 30} {
		shown := sizeValue[int]{&n}.String()
		var back int
		if err := (sizeValue[int]{&back}).Set(shown); err != nil || back != n {
			t.Errorf("%d is shown as %q, which reads back as %d, %v", n, shown, back, err)
		}
	}
}

func TestDurationValue(t *testing.T) {
	for _, d := range []time.Duration{0, 500 * time.Millisecond, 10 * time.Second, time.Minute, 90 * time.Second, 2 * time.Minute, time.Hour, host.Off} {
		shown := durationValue{&d}.String()
		var back time.Duration
		if err := (durationValue{&back}).Set(shown); err != nil || back != d {
			t.Errorf("%v is shown as %q, which reads back as %v, %v", d, shown, back, err)
		}
	}
	d := 2 * time.Minute
	if got := (durationValue{&d}).String(); got != "2m" {
		t.Errorf("2 minutes are shown as %q, want 2m", got)
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

// The flags of run start from host.DefaultConfig, and the help shows those defaults: typed
// back in, the defaults the help shows make up host.DefaultConfig() again.
func TestRunHelpShowsTheHostDefaults(t *testing.T) {
	var o runOptions
	if err := runFlags(&o, io.Discard).Parse(nil); err != nil {
		t.Fatal(err)
	}
	if want := host.DefaultConfig(); !reflect.DeepEqual(o.cfg, want) {
		t.Errorf("without flags run has\n%+v\nwant host.DefaultConfig()\n%+v", o.cfg, want)
	}

	var help strings.Builder
	if code := run([]string{"help", "run"}, &help, &help); code != 0 {
		t.Fatalf("help run: exit status %d\n%s", code, help.String())
	}
	shown := regexp.MustCompile(`(?m)^  -(\S+) \S+\n[ \t]+.*\(default ([^ :)]+)\)$`).FindAllStringSubmatch(help.String(), -1)
	if len(shown) == 0 {
		t.Fatalf("the help shows no defaults:\n%s", help.String())
	}
	var typed []string
	for _, m := range shown {
		typed = append(typed, "--"+m[1]+"="+m[2])
	}
	var back runOptions
	fs := runFlags(&back, io.Discard)
	back.cfg = host.Config{} // the flags write into back.cfg: only the typed values count
	if err := fs.Parse(typed); err != nil {
		t.Fatalf("%v: %v", typed, err)
	}
	if want := host.DefaultConfig(); !reflect.DeepEqual(back.cfg, want) {
		t.Errorf("the defaults the help shows, %v, make\n%+v\nwant host.DefaultConfig()\n%+v", typed, back.cfg, want)
	}

	for _, want := range []string{
		"0 means the default for every size, count\nand duration; off turns off a duration or --max-conns",
		"means half of --ws-idle-timeout\n",   // the ping interval's default, which shows no value
		"backlog (default " + offWord + ")\n", // a default that is off
	} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("the help lacks %q:\n%s", want, help.String())
		}
	}
}

// From flags to what the host runs with: 0 is the default, off is host.Off, and the ping
// interval follows --ws-idle-timeout unless it is set.
func TestRunFlagsResolve(t *testing.T) {
	def, err := host.Config{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if def.WSPingInterval != def.WSIdleTimeout/2 || def.MaxConns != host.Off {
		t.Fatalf("resolved defaults: ping %v with idle timeout %v, MaxConns %d", def.WSPingInterval, def.WSIdleTimeout, def.MaxConns)
	}
	tests := []struct {
		args []string
		want func(c *host.Config) // applied to the resolved defaults
	}{
		{nil, func(c *host.Config) {}},
		{[]string{"--workers", "0", "--body-limit", "0", "--max-headers", "0", "--idle-timeout", "0", "--max-conns", "0", "--ws-ping-interval", "0"}, func(c *host.Config) {}},
		// The ping interval is half of the idle timeout, whichever sets it.
		{[]string{"--ws-idle-timeout", "2s"}, func(c *host.Config) { c.WSIdleTimeout, c.WSPingInterval = 2*time.Second, time.Second }},
		{[]string{"--ws-idle-timeout", "2s", "--ws-ping-interval", "0"}, func(c *host.Config) { c.WSIdleTimeout, c.WSPingInterval = 2*time.Second, time.Second }},
		{[]string{"--ws-idle-timeout", "2s", "--ws-ping-interval", "300ms"}, func(c *host.Config) { c.WSIdleTimeout, c.WSPingInterval = 2*time.Second, 300*time.Millisecond }},
		{[]string{"--ws-ping-interval", "off"}, func(c *host.Config) { c.WSPingInterval = host.Off }},
		{[]string{"--ws-idle-timeout", "off"}, func(c *host.Config) { c.WSIdleTimeout, c.WSPingInterval = host.Off, host.Off }},
		{[]string{"--header-timeout", "off", "--body-timeout", "off", "--idle-timeout", "off", "--shutdown-timeout", "off"}, func(c *host.Config) {
			c.HeaderTimeout, c.BodyTimeout, c.IdleTimeout, c.ShutdownTimeout = host.Off, host.Off, host.Off, host.Off
		}},
		{[]string{"--max-conns", "4"}, func(c *host.Config) { c.MaxConns = 4 }},
		{[]string{"--max-conns", "off"}, func(c *host.Config) { c.MaxConns = host.Off }},
		{[]string{"--workers", "3", "--body-limit", "512k", "--header-timeout", "1m30s"}, func(c *host.Config) {
			c.Workers, c.BodyLimit, c.HeaderTimeout = 3, 512<<10, 90*time.Second
		}},
	}
	for _, tc := range tests {
		var o runOptions
		if err := runFlags(&o, io.Discard).Parse(tc.args); err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		got, err := o.cfg.WithDefaults()
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		want := def
		tc.want(&want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%v resolve to\n%+v\nwant\n%+v", tc.args, got, want)
		}
	}

	// One spelling of off, and only where a setting can be off; no negative numbers.
	for _, bad := range [][]string{
		{"--body-limit", "off"}, {"--body-limit", "-1"}, {"--max-headers", "off"}, {"--workers", "off"},
		{"--workers", "-1"}, {"--max-conns", "-1"}, {"--header-timeout", "-1s"}, {"--idle-timeout", "never"},
		{"--ws-ping-interval", "-1"}, {"--ws-max-message", "off"},
	} {
		var o runOptions
		if err := runFlags(&o, io.Discard).Parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
