package main

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// The flag values of run. Each writes straight into a host.Config field, so a flag's default
// is whatever the field held when the flag was defined (host.DefaultConfig's value), and the
// help shows it in the syntax the flag reads. As in host.Config, 0 means the default; offWord
// is how host.Off is written, and only the flags of settings that can be off take it.

// offWord is host.Off on the command line.
const offWord = "off"

// envFlag collects KEY=value environment entries.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, ",") }
func (e *envFlag) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want KEY=value")
	}
	*e = append(*e, v)
	return nil
}

// listFlag collects values of a repeatable flag; a value may list several, comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			return errors.New("an empty item")
		}
		*l = append(*l, item)
	}
	return nil
}

// inheritEnv returns the entries of environ whose names match a pattern of names (a name,
// NAME_* for a prefix, * for every one), followed by explicit: an explicit KEY=value wins
// over an inherited KEY.
func inheritEnv(environ, names, explicit []string) []string {
	if len(names) == 0 {
		return explicit
	}
	set := map[string]bool{}
	for _, kv := range explicit {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || set[k] {
			continue
		}
		for _, p := range names {
			if p == k || p == "*" || strings.HasSuffix(p, "*") && strings.HasPrefix(k, p[:len(p)-1]) {
				out = append(out, kv)
				break
			}
		}
	}
	return append(out, explicit...)
}

// dirFlag collects directory grants, HOST_PATH[:GUEST_PATH][:ro].
type dirFlag []host.Dir

func (d *dirFlag) String() string {
	var parts []string
	for _, g := range *d {
		s := g.HostPath
		if g.GuestPath != "" {
			s += ":" + g.GuestPath
		}
		if g.ReadOnly {
			s += ":ro"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func (d *dirFlag) Set(v string) error {
	g, err := host.ParseDir(v)
	if err != nil {
		return err
	}
	*d = append(*d, g)
	return nil
}

// sizeUnits are the suffixes a size may carry, largest first.
var sizeUnits = []struct {
	suffix string
	n      int64
}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}}

// sizeValue is a byte count with an optional k, m or g suffix (powers of 1024, also written
// KiB, MB and the like).
type sizeValue[T int | int64] struct{ p *T }

func (s sizeValue[T]) String() string {
	if s.p == nil {
		return "0"
	}
	n := int64(*s.p)
	for _, u := range sizeUnits {
		if n != 0 && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (s sizeValue[T]) Set(v string) error {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(v), "ib"), "b")
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = rest, u.n
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult || int64(T(n*mult)) != n*mult {
		return errors.New("want a size such as 1048576, 512k or 8m, or 0 for the default")
	}
	*s.p = T(n * mult)
	return nil
}

// countValue is a whole number; with off set it also takes offWord.
type countValue struct {
	p   *int
	off bool
}

func (c countValue) String() string {
	switch {
	case c.p == nil:
		return "0"
	case *c.p == host.Off:
		return offWord
	}
	return strconv.Itoa(*c.p)
}

func (c countValue) Set(v string) error {
	if c.off && v == offWord {
		*c.p = host.Off
		return nil
	}
	n, err := strconv.Atoi(v)
	switch {
	case (err != nil || n < 0) && c.off:
		return errors.New("want a number, 0 for the default, or " + offWord)
	case err != nil || n < 0:
		return errors.New("want a number, or 0 for the default")
	}
	*c.p = n
	return nil
}

// durationValue is a duration as Go writes them (10s, 1m30s) or offWord: every timeout and
// interval of host.Config can be off.
type durationValue struct{ p *time.Duration }

func (d durationValue) String() string {
	switch {
	case d.p == nil:
		return "0s"
	case *d.p == host.Off:
		return offWord
	}
	// 2m rather than 2m0s, as one would type it.
	s := d.p.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (d durationValue) Set(v string) error {
	if v == offWord {
		*d.p = host.Off
		return nil
	}
	t, err := time.ParseDuration(v)
	if err != nil || t < 0 {
		return errors.New("want a duration such as 10s or 2m, 0 for the default, or " + offWord)
	}
	*d.p = t
	return nil
}
