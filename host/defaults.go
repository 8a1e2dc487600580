package host

import (
	"cmp"
	"fmt"

	"github.com/wasmloop/wasmloop/host/internal/defaults"
)

// Off, as a timeout, an interval or a cap in Config, turns it off. HeaderTimeout,
// BodyTimeout, IdleTimeout, WSIdleTimeout, WSPingInterval, ShutdownTimeout, FetchIdleTimeout
// and MaxConns take it (and the others whose documentation says so); 0 always means the default, so "off" needs a value of its own. `wasmloop run` spells it
// "off".
const Off = defaults.Off

// DefaultConfig returns the default of every limit, timeout and count in Config: what a 0 in
// that field stands for. It is the one table of defaults, the one `wasmloop run` shows and
// starts its flags from. WSPingInterval is left 0, because its default follows
// WSIdleTimeout: half of whatever the idle timeout ends up being. The fields that are not
// settings (Args, Env, Stdout, Stderr, Log, CacheDir) are left zero too.
func DefaultConfig() Config {
	return Config{
		Workers:          defaults.Workers(),
		BodyLimit:        defaults.BodyLimit,
		MaxHeaderBytes:   defaults.MaxHeaderBytes,
		MaxHeaderCount:   defaults.MaxHeaderCount,
		MaxRequestLine:   defaults.MaxRequestLine,
		HeaderTimeout:    defaults.HeaderTimeout,
		BodyTimeout:      defaults.BodyTimeout,
		IdleTimeout:      defaults.IdleTimeout,
		WriteHighWater:   defaults.WriteHighWater,
		MaxOutput:        defaults.MaxOutput,
		MaxConns:         defaults.MaxConns,
		WSMaxMessage:     defaults.WSMaxMessage,
		WSIdleTimeout:    defaults.WSIdleTimeout,
		ShutdownTimeout:  defaults.ShutdownTimeout,
		CallbackBudget:   defaults.CallbackBudget,
		StartBudget:      defaults.StartBudget,
		MemoryLimit:      defaults.MemoryLimit,
		MaxTimers:        defaults.MaxTimers,
		ResponseTimeout:  defaults.ResponseTimeout,
		MaxRestarts:      defaults.MaxRestarts,
		SwapDrainTimeout: defaults.SwapDrainTimeout,
		BufferBudget:     defaults.BufferBudget,
		BodyDeadline:     defaults.BodyDeadline,
		FetchIdleTimeout: defaults.FetchIdleTimeout,
	}
}

// WithDefaults returns c with every limit, timeout and count resolved: a 0 replaced by its
// default from DefaultConfig, and a 0 WSPingInterval by half of the resolved WSIdleTimeout
// (Off when that is Off). Off stays Off. It fails, naming the field, on a negative value
// other than Off, and on Off where the setting cannot be off. Load resolves its Config with
// it, so it is also how to check one, or to see what a Config will mean.
func (c Config) WithDefaults() (Config, error) {
	if err := c.check(); err != nil {
		return Config{}, err
	}
	d := DefaultConfig()
	c.Workers = cmp.Or(c.Workers, d.Workers)
	c.BodyLimit = cmp.Or(c.BodyLimit, d.BodyLimit)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, d.MaxHeaderBytes)
	c.MaxHeaderCount = cmp.Or(c.MaxHeaderCount, d.MaxHeaderCount)
	c.MaxRequestLine = cmp.Or(c.MaxRequestLine, d.MaxRequestLine)
	c.HeaderTimeout = cmp.Or(c.HeaderTimeout, d.HeaderTimeout)
	c.BodyTimeout = cmp.Or(c.BodyTimeout, d.BodyTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, d.IdleTimeout)
	c.WriteHighWater = cmp.Or(c.WriteHighWater, d.WriteHighWater)
	c.MaxOutput = cmp.Or(c.MaxOutput, d.MaxOutput)
	c.MaxConns = cmp.Or(c.MaxConns, d.MaxConns)
	c.WSMaxMessage = cmp.Or(c.WSMaxMessage, d.WSMaxMessage)
	c.WSIdleTimeout = cmp.Or(c.WSIdleTimeout, d.WSIdleTimeout)
	c.WSPingInterval = cmp.Or(c.WSPingInterval, defaults.PingInterval(c.WSIdleTimeout))
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, d.ShutdownTimeout)
	c.CallbackBudget = cmp.Or(c.CallbackBudget, d.CallbackBudget)
	c.StartBudget = cmp.Or(c.StartBudget, d.StartBudget)
	c.MemoryLimit = cmp.Or(c.MemoryLimit, d.MemoryLimit)
	c.MaxTimers = cmp.Or(c.MaxTimers, d.MaxTimers)
	c.ResponseTimeout = cmp.Or(c.ResponseTimeout, d.ResponseTimeout)
	c.MaxRestarts = cmp.Or(c.MaxRestarts, d.MaxRestarts)
	c.SwapDrainTimeout = cmp.Or(c.SwapDrainTimeout, d.SwapDrainTimeout)
	c.BufferBudget = cmp.Or(c.BufferBudget, d.BufferBudget)
	c.BodyDeadline = cmp.Or(c.BodyDeadline, d.BodyDeadline)
	c.FetchIdleTimeout = cmp.Or(c.FetchIdleTimeout, d.FetchIdleTimeout)
	return c, nil
}

// check refuses the values a setting cannot take: a negative size or count, and a negative
// timeout, interval or cap other than Off.
func (c Config) check() error {
	if c.LogFormat != "" && c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("host: Config.LogFormat is %q: want text or json", c.LogFormat)
	}
	for _, f := range []struct {
		name string
		v    any   // as the error shows it
		n    int64 // as it is checked
		off  bool  // Off turns the setting off
	}{
		{"Workers", c.Workers, int64(c.Workers), false},
		{"BodyLimit", c.BodyLimit, c.BodyLimit, false},
		{"MaxHeaderBytes", c.MaxHeaderBytes, int64(c.MaxHeaderBytes), false},
		{"MaxHeaderCount", c.MaxHeaderCount, int64(c.MaxHeaderCount), false},
		{"MaxRequestLine", c.MaxRequestLine, int64(c.MaxRequestLine), false},
		{"HeaderTimeout", c.HeaderTimeout, int64(c.HeaderTimeout), true},
		{"BodyTimeout", c.BodyTimeout, int64(c.BodyTimeout), true},
		{"IdleTimeout", c.IdleTimeout, int64(c.IdleTimeout), true},
		{"WriteHighWater", c.WriteHighWater, int64(c.WriteHighWater), false},
		{"MaxOutput", c.MaxOutput, int64(c.MaxOutput), false},
		{"MaxConns", c.MaxConns, int64(c.MaxConns), true},
		{"WSMaxMessage", c.WSMaxMessage, c.WSMaxMessage, false},
		{"WSIdleTimeout", c.WSIdleTimeout, int64(c.WSIdleTimeout), true},
		{"WSPingInterval", c.WSPingInterval, int64(c.WSPingInterval), true},
		{"ShutdownTimeout", c.ShutdownTimeout, int64(c.ShutdownTimeout), true},
		{"CallbackBudget", c.CallbackBudget, int64(c.CallbackBudget), true},
		{"StartBudget", c.StartBudget, int64(c.StartBudget), true},
		{"MemoryLimit", c.MemoryLimit, c.MemoryLimit, false},
		{"MaxTimers", c.MaxTimers, int64(c.MaxTimers), false},
		{"ResponseTimeout", c.ResponseTimeout, int64(c.ResponseTimeout), true},
		{"MaxRestarts", c.MaxRestarts, int64(c.MaxRestarts), false},
		{"SwapDrainTimeout", c.SwapDrainTimeout, int64(c.SwapDrainTimeout), true},
		{"BufferBudget", c.BufferBudget, int64(c.BufferBudget), false},
		{"BodyDeadline", c.BodyDeadline, int64(c.BodyDeadline), true},
		{"FetchIdleTimeout", c.FetchIdleTimeout, int64(c.FetchIdleTimeout), true},
	} {
		switch {
		case f.n >= 0 || f.off && f.n == Off:
		case f.off:
			return fmt.Errorf("host: Config.%s is %v; want 0 for the default, a positive value, or Off", f.name, f.v)
		default:
			return fmt.Errorf("host: Config.%s is %v; want 0 for the default or a positive value", f.name, f.v)
		}
	}
	if err := checkFunctions(c.Functions); err != nil {
		return err
	}
	if c.MemoryLimit > maxMemoryLimit {
		return fmt.Errorf("host: Config.MemoryLimit is %d; a wasm32 guest cannot use more than 4 GiB", c.MemoryLimit)
	}
	return nil
}

// maxMemoryLimit is wasm32's own limit on a linear memory.
const maxMemoryLimit = 4 << 30
