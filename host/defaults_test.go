package host_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmloop/wasmloop/host"
)

// Zero means the default, Off stays off, and the ping interval follows the idle timeout.
func TestWithDefaults(t *testing.T) {
	def := host.DefaultConfig()
	got, err := host.Config{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := def
	want.WSPingInterval = def.WSIdleTimeout / 2
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config{}.WithDefaults() =\n%+v\nwant DefaultConfig() with the ping interval at half the idle timeout\n%+v", got, want)
	}
	if def.Workers != runtime.NumCPU() || def.MaxConns != host.Off || def.WSPingInterval != 0 {
		t.Errorf("DefaultConfig: %d workers, MaxConns %d, WSPingInterval %v; want one per CPU, Off, and 0 (it follows WSIdleTimeout)",
			def.Workers, def.MaxConns, def.WSPingInterval)
	}
	// A value given is kept, Off too.
	set := host.Config{Workers: 3, BodyLimit: 5, IdleTimeout: host.Off, MaxConns: 7, WSIdleTimeout: 2 * time.Second, ShutdownTimeout: host.Off}
	got, err = set.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.Workers != 3 || got.BodyLimit != 5 || got.IdleTimeout != host.Off || got.MaxConns != 7 || got.ShutdownTimeout != host.Off {
		t.Errorf("%+v lost a value given", got)
	}
	if got.WSPingInterval != time.Second {
		t.Errorf("with a 2s WebSocket idle timeout the ping interval is %v, want 1s", got.WSPingInterval)
	}
	got, err = host.Config{WSIdleTimeout: host.Off}.WithDefaults()
	if err != nil || got.WSPingInterval != host.Off {
		t.Errorf("with no WebSocket idle timeout the ping interval is %v (%v), want Off", got.WSPingInterval, err)
	}
	got, err = host.Config{WSIdleTimeout: 2 * time.Second, WSPingInterval: host.Off}.WithDefaults()
	if err != nil || got.WSPingInterval != host.Off {
		t.Errorf("WSPingInterval Off resolves to %v (%v)", got.WSPingInterval, err)
	}
}

// settings are the fields of Config that DefaultConfig covers, with whether each can be Off.
var settings = map[string]bool{
	"Workers": false, "BodyLimit": false, "MaxHeaderBytes": false, "MaxHeaderCount": false,
	"MaxRequestLine": false, "WriteHighWater": false, "MaxOutput": false, "WSMaxMessage": false,
	"HeaderTimeout": true, "BodyTimeout": true, "IdleTimeout": true, "WSIdleTimeout": true,
	"WSPingInterval": true, "ShutdownTimeout": true, "MaxConns": true,
	"CallbackBudget": true, "StartBudget": true, "MemoryLimit": false, "MaxTimers": false, "ResponseTimeout": true, "MaxRestarts": false, "SwapDrainTimeout": true, "BufferBudget": false, "BodyDeadline": true,
}

// Off is taken exactly by the settings that can be off, and no other negative value by any;
// the error names the field.
func TestWithDefaultsRefuses(t *testing.T) {
	typ := reflect.TypeFor[host.Config]()
	for name, offOK := range settings {
		f, ok := typ.FieldByName(name)
		if !ok {
			t.Fatalf("Config has no field %s", name)
		}
		for _, v := range []int64{host.Off, -2} {
			var c host.Config
			reflect.ValueOf(&c).Elem().FieldByIndex(f.Index).SetInt(v)
			_, err := c.WithDefaults()
			if accepted := err == nil; accepted != (offOK && v == host.Off) {
				t.Errorf("Config{%s: %d}.WithDefaults(): %v", name, v, err)
			} else if err != nil && !strings.Contains(err.Error(), "Config."+name+" ") {
				t.Errorf("Config{%s: %d}: the error does not name the field: %v", name, v, err)
			}
		}
	}
}

// Config's documentation gives each setting's default as DefaultConfig has it, in the words
// "0 means the default, X", and says Off exactly where Off is taken.
func TestConfigDocsMatchDefaults(t *testing.T) {
	docs := configDocs(t)
	def := reflect.ValueOf(host.DefaultConfig())
	for name, offOK := range settings {
		doc, ok := docs[name]
		if !ok {
			t.Errorf("Config.%s has no documentation", name)
			continue
		}
		var want string
		switch v := def.FieldByName(name).Interface().(type) {
		case time.Duration:
			want = v.String()
			if strings.HasSuffix(want, "m0s") {
				want = strings.TrimSuffix(want, "0s") // 2m, as one would write it
			}
			switch v {
			case 0:
				want = "half of WSIdleTimeout"
			case host.Off:
				want = "Off"
			}
		case int:
			want = fmt.Sprint(v)
			switch {
			case v == host.Off:
				want = "Off"
			case name == "Workers":
				want = "one per CPU"
			case name != "MaxHeaderCount" && name != "MaxTimers" && name != "MaxRestarts":
				want = docSize(int64(v))
			}
		case int64:
			want = docSize(v)
		}
		phrase := "0 means the default, " + want
		if i := strings.Index(doc, phrase); i < 0 || !strings.ContainsAny((doc + ".")[i+len(phrase):][:1], ".;: (") {
			t.Errorf("Config.%s: the documentation lacks %q:\n%s", name, phrase, doc)
		}
		if strings.Contains(doc, "Off") != offOK {
			t.Errorf("Config.%s: Off taken %v, but the documentation says otherwise:\n%s", name, offOK, doc)
		}
	}
}

// docSize writes a size as the documentation does: 16 KiB, 1 MiB.
func docSize(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// configDocs returns the doc comment of each field of Config, from host.go.
func configDocs(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "host.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Config" {
			return true
		}
		for _, field := range ts.Type.(*ast.StructType).Fields.List {
			for _, name := range field.Names {
				docs[name.Name] = strings.Join(strings.Fields(field.Doc.Text()), " ")
			}
		}
		return false
	})
	return docs
}
