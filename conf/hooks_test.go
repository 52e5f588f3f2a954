package conf

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/events"
)

func TestHooksDecode(t *testing.T) {
	cfg, err := Parse("h.toml", []byte(`
[programs.web]
command = ["/usr/bin/web"]
[programs.db]
command = "exec db"

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
	if page == nil || page.Line != 7 || !slices.Equal(page.Command, []string{"/usr/local/bin/page-oncall", "--urgent"}) ||
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
