package abi

import (
	"math"
	"testing"
	"time"
)

// A keep-alive period becomes whole seconds, rounded up: under a second is one second, not 0
// (which turns the probes off).
func TestKeepAliveSeconds(t *testing.T) {
	for _, c := range []struct {
		period time.Duration
		want   uint32
	}{
		{0, 0}, {-time.Second, 0}, {time.Nanosecond, 1}, {500 * time.Millisecond, 1},
		{time.Second, 1}, {1500 * time.Millisecond, 2}, {30 * time.Second, 30},
		{time.Duration(math.MaxInt64), math.MaxUint32},
	} {
		if got := KeepAliveSeconds(c.period); got != c.want {
			t.Errorf("KeepAliveSeconds(%v) = %d, want %d", c.period, got, c.want)
		}
	}
}
