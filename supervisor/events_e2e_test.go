package supervisor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/events"
)

// Real probes publish their changes of state as probe events (from, to,
// the failure's detail), besides what those changes make the program do:
// ready and not_ready events, a state change, and a probe firing with its
// action.
func TestEventsOfRealProbes(t *testing.T) {
	addr := freePort(t)
	h := startSup(t, socketConfig(`
[programs.db]
command = ["/bin/sleep", "1000"]
autostart = false
[programs.db.readiness]
tcp = "`+addr+`"
interval = "50ms"
failure_threshold = 1
[programs.db.liveness]
exec = ["/bin/sh", "-c", "if [ -e $DIR/sick ]; then echo sick; exit 1; fi"]
interval = "50ms"
failure_threshold = 1
action = "log"
`), nil)
	st := h.subscribeEvents("db")
	if r := h.ctl(control.CmdStart, "db"); !r.OK {
		t.Fatalf("start: %+v", r)
	}
	probeChange := func(source, from, to string) *events.Event {
		t.Helper()
		for {
			ev := st.next(events.Probe, "db")
			if ev.Source == source && ev.To != "" {
				if ev.From != from || ev.To != to {
					t.Fatalf("%s probe: %s, want %s -> %s; seen:\n%s", source, ev.Text(), from, to, texts(st.seen))
				}
				return ev
			}
		}
	}
	if ev := probeChange("readiness", "unknown", "failing"); !strings.Contains(ev.Detail, "connection refused") {
		t.Fatalf("failing readiness without its error: %s", ev.Text())
	}
	ln := listen(t, addr)
	if ev := probeChange("readiness", "failing", "passing"); !strings.HasSuffix(ev.Text(), " #"+strconv.FormatUint(ev.Seq, 10)+" db probe: readiness failing -> passing") {
		t.Fatalf("text %q", ev.Text())
	}
	if ev := st.next(events.Ready, "db"); ev.Source != "probe" || !strings.Contains(ev.Detail, addr) {
		t.Fatalf("ready: %s", ev.Text())
	}
	if ev := st.next(events.State, "db"); ev.From != "starting" || ev.To != "running" {
		t.Fatalf("state: %s", ev.Text())
	}
	// The liveness probe starts once the program is ready.
	probeChange("liveness", "unknown", "passing")
	if err := os.WriteFile(filepath.Join(h.dir, "sick"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ev := probeChange("liveness", "passing", "failing"); !strings.Contains(ev.Detail, "sick") {
		t.Fatalf("failing liveness without its output: %s", ev.Text())
	}
	// Then the firing, with what is done about it.
	if ev := st.next(events.Probe, "db"); ev.Source != "liveness" || ev.Action != "log" || ev.To != "" {
		t.Fatalf("firing: %s", ev.Text())
	}
	if err := os.Remove(filepath.Join(h.dir, "sick")); err != nil {
		t.Fatal(err)
	}
	probeChange("liveness", "failing", "passing")
	ln.Close()
	probeChange("readiness", "passing", "failing")
	if ev := st.next(events.NotReady, "db"); ev.Source != "probe" {
		t.Fatalf("not_ready: %s", ev.Text())
	}
	if ev := st.next(events.State, "db"); ev.From != "running" || ev.To != "starting" {
		t.Fatalf("state: %s", ev.Text())
	}
	gapless(t, st.seen)
}

// until reads events until one satisfies cond and returns it, failing
// the test after 10 seconds.
func (st *eventStream) until(what string, cond func(*events.Event) bool) *events.Event {
	st.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-st.ch:
			st.seen = append(st.seen, ev)
			if cond(ev) {
				return ev
			}
		case <-deadline:
			st.t.Fatalf("%s: not within 10s; seen:\n%s", what, texts(st.seen))
			return nil
		}
	}
}

// A stream of a program with replicas has the events of every instance,
// those a scale adds too; a stream of NAME:i those of that one. Scaling
// up and down is seen as the state changes of the instances started and
// stopped. Hooks match the same way.
func TestEventsOfInstances(t *testing.T) {
	h := startSup(t, socketConfig(`
[programs.web]
command = ["/bin/sleep", "1000"]
replicas = 2
[programs.db]
command = ["/bin/sleep", "1000"]
[programs.spare]
command = ["/bin/sleep", "1000"]
replicas = 0
[hooks.all_web]
command = ["/bin/sh", "-c", "echo $SUPERVISE_PROGRAM >> $DIR/all_web"]
events = ["state"]
programs = ["web"]
[hooks.one]
command = ["/bin/sh", "-c", "echo $SUPERVISE_PROGRAM >> $DIR/one"]
events = ["state"]
programs = ["web:1"]
`), nil)
	h.allRunning([]string{"web:0", "web:1"}, "web")
	all, one, db := h.subscribeEvents("web"), h.subscribeEvents("web:1"), h.subscribeEvents("db")

	if r := h.scale("web", 3); !r.OK {
		t.Fatalf("scale: %+v", r)
	}
	if ev := all.next(events.State, "web:2"); ev.From != "stopped" || ev.To != "running" || ev.PID == 0 {
		t.Fatalf("web:2: %s", ev.Text())
	}
	h.waitFor("the hook of web ran for web:2", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.dir, "all_web"))
		return slices.Contains(strings.Fields(string(b)), "web:2")
	})

	if r := h.scale("web", 1); !r.OK {
		t.Fatalf("scale: %+v", r)
	}
	stopped := map[string]bool{}
	all.until("web:1 and web:2 stopped", func(ev *events.Event) bool {
		if ev.Kind == events.State && ev.To == "stopped" {
			stopped[ev.Program] = true
		}
		return stopped["web:1"] && stopped["web:2"]
	})
	if stopped["web:0"] {
		t.Fatalf("scale 1 stopped web:0:\n%s", texts(all.seen))
	}
	if ev := one.next(events.State, "web:1"); ev.From != "running" || ev.To != "stopping" {
		t.Fatalf("web:1: %s", ev.Text())
	}
	if ev := one.next(events.State, "web:1"); ev.To != "stopped" {
		t.Fatalf("web:1: %s", ev.Text())
	}
	h.waitFor("the hook of web:1 ran", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.dir, "one"))
		return len(b) > 0
	})

	// A program with no instance yet may be followed: its stream gets the
	// instances a scale makes.
	spare := h.subscribeEvents("spare")
	if r := h.scale("spare", 1); !r.OK {
		t.Fatalf("scale: %+v", r)
	}
	if ev := spare.next(events.State, "spare:0"); ev.To != "running" {
		t.Fatalf("spare:0: %s", ev.Text())
	}

	// db's events reach neither the web streams nor their hooks.
	h.ctl(control.CmdRestart, "db")
	if ev := db.next(events.State, "db"); ev.To != "stopping" {
		t.Fatalf("db: %s", ev.Text())
	}
	db.next(events.State, "db")
	db.next(events.State, "db")
	for _, ev := range all.seen {
		if !strings.HasPrefix(ev.Program, "web:") {
			t.Errorf("the stream of web got %s", ev.Text())
		}
	}
	for _, ev := range one.seen {
		if ev.Program != "web:1" {
			t.Errorf("the stream of web:1 got %s", ev.Text())
		}
	}
	for file, want := range map[string]func(string) bool{
		"all_web": func(p string) bool { return strings.HasPrefix(p, "web:") },
		"one":     func(p string) bool { return p == "web:1" },
	} {
		b, _ := os.ReadFile(filepath.Join(h.dir, file))
		for _, p := range strings.Fields(string(b)) {
			if !want(p) {
				t.Errorf("hook %s ran for %s", file, p)
			}
		}
	}
}

// Hooks may be defined in included files: the dry run of a reload lists
// the hooks it would add, remove and change, the reload's event carries
// that same diff, and a hook defined twice across files is a refused
// reload whose event names both places.
func TestHooksOfIncludedFiles(t *testing.T) {
	h := startSup(t, socketConfig(`include = ["conf.d/*.toml"]
[programs.p]
command = ["/bin/sleep", "1000"]
[hooks.main]
command = ["/bin/true"]
`), nil)
	st := h.subscribeEvents()
	dir := filepath.Join(h.dir, "conf.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	inc := filepath.Join(dir, "hooks.toml")
	hooks := `[hooks.audit]
command = ["/bin/sh", "-c", "cat > $DIR/audit.json"]
events = ["reload"]
programs = []
[hooks.main2]
command = ["/bin/true"]
programs = ["p"]
`
	if err := os.WriteFile(inc, []byte(strings.ReplaceAll(hooks, "$DIR", h.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	dry := h.sup.Handle(t.Context(), control.Request{Command: control.CmdReload, Params: map[string]string{control.ParamDryRun: "true"}})
	if !dry.OK || !strings.Contains(dry.Message, "hook added audit ("+inc+":1)") || !strings.Contains(dry.Message, "hook added main2 ("+inc+":5)") {
		t.Fatalf("dry run: %+v", dry)
	}
	if r := h.ctl(control.CmdReload); !r.OK || !strings.Contains(r.Message, "added hooks audit, main2") {
		t.Fatalf("reload: %+v", r)
	}
	ev := st.next(events.Reload, "")
	d := reloadDiff(t, ev)
	if len(d.Hooks.Added) != 2 || d.Hooks.Added[0].Name != "audit" || d.Hooks.Added[0].Origin != inc+":1" ||
		!slices.Equal(d.Hooks.Unchanged, []string{"main"}) || len(d.Added)+len(d.Removed)+len(d.Changed) != 0 {
		t.Fatalf("diff %s", ev.Diff)
	}
	var js struct{ Hooks any }
	if err := json.Unmarshal(dry.Diff, &js); err != nil || js.Hooks == nil {
		t.Fatalf("the dry run's JSON %s has no hooks: %v", dry.Diff, err)
	}
	// The new hook got the reload's event itself, with the same diff.
	h.waitFor("audit ran", func() bool {
		var got events.Event
		b, err := os.ReadFile(filepath.Join(h.dir, "audit.json"))
		return err == nil && json.Unmarshal(b, &got) == nil && got.Seq == ev.Seq && string(got.Diff) == string(ev.Diff)
	})

	if err := os.WriteFile(filepath.Join(dir, "more.toml"), []byte("[hooks.main]\ncommand = [\"/bin/true\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := h.ctl(control.CmdReload); r.OK {
		t.Fatalf("reload with a hook defined twice: %+v", r)
	}
	refused := st.next(events.Reload, "")
	main := filepath.Join(h.dir, "supervise.toml")
	if want := `hook "main" is already defined at ` + main + ":7"; !strings.Contains(refused.Error, want) || refused.Diff != nil {
		t.Fatalf("refused reload %s, want %q", refused.Text(), want)
	}
}
