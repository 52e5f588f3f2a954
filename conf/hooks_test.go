package conf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/supervisor/events"
)

func TestHooksDecode(t *testing.T) {
	cfg, err := Parse("h.toml", []byte(`
[programs.web]
command = ["/usr/bin/web"]
[programs.db]
command = "exec db"
replicas = 2

[hooks.page]
command = ["/usr/local/bin/page-oncall", "--urgent"]
events = ["breaker_open", "watchdog", "critical_exit"]
programs = ["web", "db:1"]
timeout = "3s"

[hooks.all]
command = "logger -t supervise"
`))
	if err != nil {
		t.Fatal(err)
	}
	page := cfg.Hooks["page"]
	if page == nil || page.Line != 8 || !slices.Equal(page.Command, []string{"/usr/local/bin/page-oncall", "--urgent"}) ||
		!slices.Equal(page.Events, []events.Kind{events.BreakerOpen, events.Watchdog, events.CriticalExit}) ||
		!slices.Equal(page.Programs, []string{"web", "db:1"}) || page.Timeout != 3*time.Second {
		t.Fatalf("page = %+v", page)
	}
	all := cfg.Hooks["all"]
	if all == nil || len(all.Events) != 0 || len(all.Programs) != 0 || all.Timeout != DefaultHookTimeout ||
		!slices.Equal(all.Command, []string{"/bin/sh", "-c", "logger -t supervise"}) {
		t.Fatalf("all = %+v", all)
	}
	for _, c := range []struct {
		h       *Hook
		kind    events.Kind
		program string
		want    bool
	}{
		{page, events.BreakerOpen, "web", true},
		{page, events.BreakerOpen, "web:2", true},
		{page, events.BreakerOpen, "db:1", true},
		{page, events.BreakerOpen, "db:0", false},
		{page, events.BreakerOpen, "db", false},
		{page, events.State, "web", false},
		{page, events.Reload, "", false},
		{all, events.Reload, "", true},
		{all, events.State, "db", true},
	} {
		if got := c.h.Wants(c.kind, c.program); got != c.want {
			t.Errorf("%s.Wants(%s, %q) = %v", c.h.Name, c.kind, c.program, got)
		}
	}
	if got, want := page.Summary(), "hooks.page: /usr/local/bin/page-oncall --urgent (events breaker_open, watchdog, critical_exit; programs web, db:1; timeout 3s)"; got != want {
		t.Errorf("Summary = %q", got)
	}
	if got := all.Summary(); !strings.Contains(got, "(all events; all programs; timeout 10s)") {
		t.Errorf("Summary = %q", got)
	}
}

func TestHookEqual(t *testing.T) {
	parse := func(extra string) *Hook {
		cfg, err := Parse("h.toml", []byte("[programs.web]\ncommand = [\"/w\"]\n[hooks.h]\ncommand = [\"/h\"]\n"+extra))
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Hooks["h"]
	}
	base := parse("")
	if !base.Equal(parse("")) || !base.Equal(parse("\n\n")) {
		t.Error("equal hooks differ")
	}
	for _, extra := range []string{`events = ["state"]`, `programs = ["web"]`, `timeout = "1s"`} {
		if base.Equal(parse(extra)) {
			t.Errorf("hook with %s equals the default one", extra)
		}
	}
	var none *Hook
	if none.Equal(base) || !none.Equal(nil) {
		t.Error("nil hooks compare wrongly")
	}
}

func TestHookWarnings(t *testing.T) {
	cfg, err := Parse("h.toml", []byte("[supervisor]\n[hooks.h]\ncommand = [\"/nonexistent/page\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ws := cfg.Warnings()
	if len(ws) != 1 || ws[0].Program != "hooks.h" || ws[0].Line != 3 || ws[0].Key != "command" {
		t.Fatalf("warnings %v", ws)
	}
}

func TestHookProgramsNameInstances(t *testing.T) {
	_, err := Parse("h.toml", []byte(`[programs.web]
command = ["/w"]
replicas = 2
[programs.db]
command = ["/d"]

[hooks.page]
command = ["/p"]
programs = ["web:1", "web:2", "db:0", "web"]
`))
	want := strings.Join([]string{
		`h.toml:9: hooks.page: key "programs": "web:2": program "web" has 2 replicas (web:0 to web:1)`,
		`h.toml:9: hooks.page: key "programs": "db:0": program "db" has no replicas: name it "db"`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestHooksInIncludedFiles(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": "[supervisor]\ninclude = [\"conf.d/*.toml\"]\n\n[programs.web]\ncommand = \"w\"\n[hooks.page]\ncommand = \"p\"\n",
		// A hook may name a program of another file, which may come later.
		"conf.d/a.toml": "[hooks.audit]\ncommand = \"a\"\nprograms = [\"web\", \"api:1\"]\n",
		"conf.d/b.toml": "[programs.api]\ncommand = \"api\"\nreplicas = 2\n",
	})
	main, a := filepath.Join(dir, "supervise.toml"), filepath.Join(dir, "conf.d/a.toml")
	cfg := mustLoad(t, main)
	audit := cfg.Hooks["audit"]
	if audit == nil || audit.File != a || audit.Line != 1 || audit.Origin() != a+":1" ||
		!slices.Equal(audit.Programs, []string{"web", "api:1"}) || cfg.Hooks["page"] == nil {
		t.Fatalf("hooks %+v", cfg.Hooks)
	}
	if o := cfg.Hooks["page"].Origin(); o != main+":6" {
		t.Errorf("page's origin %q", o)
	}

	// A name defined twice names both places, as for programs.
	b := filepath.Join(dir, "conf.d/b.toml")
	if err := os.WriteFile(b, []byte("[hooks.page]\ncommand = \"p2\"\n[hooks.audit]\ncommand = \"a2\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		a + `:3: hooks.audit: key "programs": unknown program "api:1"`,
		b + `:1: hooks.page: hook "page" is already defined at ` + main + ":6",
		b + `:3: hooks.audit: hook "audit" is already defined at ` + a + ":1",
	}, "\n")
	if got := loadErr(t, main); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestCompareHooks(t *testing.T) {
	parse := func(src string) *Config {
		cfg, err := Parse("h.toml", []byte("[supervisor]\n"+src))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	old := parse("[hooks.keep]\ncommand = \"k\"\n[hooks.edit]\ncommand = \"e\"\n[hooks.gone]\ncommand = \"g\"\n")
	new := parse("[hooks.keep]\ncommand = \"k\"\n[hooks.edit]\ncommand = \"e\"\nevents = [\"state\"]\ntimeout = \"1s\"\n[hooks.born]\ncommand = \"b\"\n")
	d := Compare(old, new)
	h := d.Hooks
	if len(h.Added) != 1 || h.Added[0].Name != "born" || h.Added[0].Origin != "h.toml:8" ||
		len(h.Removed) != 1 || h.Removed[0].Name != "gone" ||
		len(h.Changed) != 1 || h.Changed[0].Name != "edit" || !slices.Equal(h.Changed[0].Keys, []string{"events", "timeout"}) ||
		!slices.Equal(h.Unchanged, []string{"keep"}) {
		t.Fatalf("hooks diff %+v", h)
	}
	if d.Empty() {
		t.Error("a diff of hooks only is empty")
	}
	text := d.String()
	for _, line := range []string{"hook added born (h.toml:8)\n", "hook removed gone (h.toml:6)\n", "hook changed edit (h.toml:4): events, timeout\n"} {
		if !strings.Contains(text, line) {
			t.Errorf("text lacks %q:\n%s", line, text)
		}
	}
	if !Compare(old, old).Empty() {
		t.Error("a configuration differs from itself")
	}
	js, err := json.Marshal(Compare(new, new))
	if err != nil || !strings.Contains(string(js), `"hooks":{"added":[],"removed":[],"changed":[],"unchanged":["born","edit","keep"]}`) {
		t.Errorf("JSON %s, %v", js, err)
	}
}
