package supervisor

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/events"
)

// recordRun is a hook command that records each run in $DIR/runs: N.stdin
// (its standard input) and N.env (SUPERVISE_EVENT, _KIND, PROGRAM,
// EVENTS_COALESCED, one per line), N counting from 1. It then waits for
// $DIR/release, if wait.
func recordRun(wait bool) string {
	script := `mkdir -p $DIR/runs; n=$(($(cat $DIR/count 2>/dev/null || echo 0) + 1)); cat > $DIR/runs/$n.stdin; ` +
		`printf '%s\n%s\n%s\n%s\n' "$SUPERVISE_EVENT" "$SUPERVISE_EVENT_KIND" "$SUPERVISE_PROGRAM" "$SUPERVISE_EVENTS_COALESCED" > $DIR/runs/$n.env; ` +
		`echo $n > $DIR/count`
	if wait {
		script += `; while [ ! -f $DIR/release ]; do sleep 0.02; done`
	}
	b, _ := json.Marshal(script)
	return `["/bin/sh", "-c", ` + string(b) + `]`
}

func (h *harness) runs() int {
	b, _ := os.ReadFile(filepath.Join(h.dir, "count"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// run returns the stdin and the environment lines of hook run n.
func (h *harness) run(n int) (stdin string, env []string) {
	h.t.Helper()
	in, err := os.ReadFile(filepath.Join(h.dir, "runs", strconv.Itoa(n)+".stdin"))
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := os.ReadFile(filepath.Join(h.dir, "runs", strconv.Itoa(n)+".env"))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(in), strings.Split(strings.TrimSuffix(string(e), "\n"), "\n")
}

func (h *harness) metrics() string {
	var b strings.Builder
	h.sup.writeEventMetrics(&b)
	return b.String()
}

// A hook gets the event on stdin and in its environment; at most one run
// goes on at a time, and the events that arrive meanwhile make one more
// run, of the latest of them, with their count.
func TestHookGetsEventsCoalesced(t *testing.T) {
	h := startSup(t, `
[programs.p]
command = ["/bin/sleep", "1000"]
autostart = false
[programs.other]
command = ["/bin/sleep", "1000"]
[hooks.rec]
command = `+recordRun(true)+`
events = ["state"]
programs = ["p"]
`, nil)
	h.waitFor("other running", func() bool { return h.status("other").PID != 0 })
	if h.runs() != 0 {
		t.Fatal("the hook ran for another program's events")
	}
	h.ctl(control.CmdStart, "p")
	h.waitFor("first run", func() bool { return h.runs() == 1 })
	stdin, env := h.run(1)
	var ev events.Event
	if err := json.Unmarshal([]byte(stdin), &ev); err != nil {
		t.Fatalf("stdin %q: %v", stdin, err)
	}
	if ev.Kind != events.State || ev.Program != "p" || ev.To != "running" || ev.Coalesced != 0 {
		t.Fatalf("first event %s", ev.Text())
	}
	if len(env) != 4 || env[0] != stdin || env[1] != "state" || env[2] != "p" || env[3] != "0" {
		t.Fatalf("environment %q, stdin %q", env, stdin)
	}
	// Three state events while the first run waits: stopping, stopped,
	// running.
	h.ctl(control.CmdStop, "p")
	h.ctl(control.CmdStart, "p")
	h.waitFor("p running again", func() bool { return h.status("p").PID != 0 })
	if h.runs() != 1 {
		t.Fatal("a second run began while the first went on")
	}
	os.WriteFile(filepath.Join(h.dir, "release"), nil, 0o644)
	h.waitFor("second run", func() bool { return h.runs() == 2 })
	stdin, env = h.run(2)
	if err := json.Unmarshal([]byte(stdin), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.From != "stopped" || ev.To != "running" || ev.Coalesced != 2 || env[3] != "2" || env[0] != stdin {
		t.Fatalf("second run: %s, env %q", ev.Text(), env)
	}
	h.waitFor("counted", func() bool {
		m := h.metrics()
		return strings.Contains(m, `supervise_hook_runs_total{hook="rec"} 2`) &&
			strings.Contains(m, `supervise_hook_coalesced_total{hook="rec"} 2`) &&
			strings.Contains(m, `supervise_hook_failures_total{hook="rec"} 0`)
	})
	if m := h.metrics(); !strings.Contains(m, `supervise_events_total{kind="state"} `) || strings.Contains(m, `supervise_events_total{kind="state"} 0`) {
		t.Fatalf("metrics:\n%s", m)
	}
	time.Sleep(100 * time.Millisecond)
	if h.runs() != 2 {
		t.Fatalf("%d runs, want 2", h.runs())
	}
}

func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

func readPID(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// A hook that fails is logged and counted; one that hangs is killed with
// its process group at its timeout. Neither touches the program.
func TestHookFailsOrHangs(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.p]
command = ["/bin/sleep", "1000"]
autostart = false
[hooks.fail]
command = ["/bin/sh", "-c", "exit 7"]
events = ["ready"]
[hooks.hang]
command = ["/bin/sh", "-c", "sleep 1000 & echo $! > $DIR/child.pid; echo $$ > $DIR/hang.pid; wait"]
events = ["ready"]
timeout = "5s"
`, clk)
	h.ctl(control.CmdStart, "p")
	pid := h.status("p").PID
	h.waitFor("hang running", func() bool {
		return readPID(t, filepath.Join(h.dir, "hang.pid")) != 0 && readPID(t, filepath.Join(h.dir, "child.pid")) != 0
	})
	h.waitFor("failure logged", func() bool {
		for _, e := range h.logs.FilterMessage("hook failed").All() {
			if e.ContextMap()["hook"] == "fail" && e.ContextMap()["exit"] == "exit 7" {
				return true
			}
		}
		return false
	})
	hang, child := readPID(t, filepath.Join(h.dir, "hang.pid")), readPID(t, filepath.Join(h.dir, "child.pid"))
	clk.Advance(5*time.Second - time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if gone(hang) {
		t.Fatal("the hook was killed before its timeout")
	}
	clk.Advance(time.Millisecond)
	h.waitFor("hook and its child killed", func() bool { return gone(hang) && gone(child) })
	h.waitFor("kill logged", func() bool {
		return len(h.logs.FilterMessage("hook killed: it ran longer than its timeout").All()) == 1
	})
	m := h.metrics()
	for _, want := range []string{`supervise_hook_failures_total{hook="fail"} 1`, `supervise_hook_failures_total{hook="hang"} 1`,
		`supervise_hook_runs_total{hook="hang"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
	if st := h.status("p"); st.PID != pid || st.State != "running" || st.Stats.Failures != 0 {
		t.Fatalf("the program was touched: %+v", st)
	}
}

// Hooks run the events of the teardown (here a critical exit) before the
// supervisor ends.
func TestHookRunsDuringTeardown(t *testing.T) {
	h := startSup(t, `
[programs.main]
command = ["/bin/sh", "-c", "while [ ! -f $DIR/go ]; do sleep 0.02; done; exit 4"]
restart = "never"
critical = true
[hooks.page]
command = ["/bin/sh", "-c", "sleep 0.3; echo $SUPERVISE_EVENT_KIND $SUPERVISE_PROGRAM >> $DIR/paged"]
events = ["critical_exit"]
`, nil)
	os.WriteFile(filepath.Join(h.dir, "go"), nil, 0o644)
	if code := h.exitCode(); code != 4 {
		t.Fatalf("exit code %d", code)
	}
	b, err := os.ReadFile(filepath.Join(h.dir, "paged"))
	if err != nil || string(b) != "critical_exit main\n" {
		t.Fatalf("paged %q, %v; log:\n%s", b, err, h.dump())
	}
}

// A reload adds, removes and changes hooks, and says so in its event; a
// new hook gets the reload's event itself.
func TestReloadDiffOfHooks(t *testing.T) {
	conf0 := socketConfig(`
[programs.p]
command = ["/bin/sleep", "1000"]
[hooks.a]
command = ["/bin/true"]
[hooks.b]
command = ["/bin/true"]
`)
	h := startSup(t, conf0, nil)
	st := h.subscribeEvents()
	path := filepath.Join(h.dir, "supervise.toml")
	next := socketConfig(`
[programs.p]
command = ["/bin/sleep", "1000"]
[hooks.b]
command = ["/bin/true"]
timeout = "1s"
[hooks.c]
command = ["/bin/sh", "-c", "echo $SUPERVISE_EVENT > $DIR/reload.json"]
events = ["reload"]
`)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(next, "$DIR", h.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := h.ctl(control.CmdReload)
	if !r.OK || r.Message != "no program changed; added hooks c; removed hooks a; changed hooks b" {
		t.Fatalf("reload: %+v", r)
	}
	ev := st.next(events.Reload, "")
	d := reloadDiff(t, ev)
	if hd := d.Hooks; len(hd.Added) != 1 || hd.Added[0].Name != "c" || len(hd.Removed) != 1 || hd.Removed[0].Name != "a" ||
		len(hd.Changed) != 1 || hd.Changed[0].Name != "b" || strings.Join(hd.Changed[0].Keys, ",") != "timeout" ||
		len(d.Added)+len(d.Removed)+len(d.Changed) != 0 {
		t.Fatalf("diff %s", ev.Text())
	}
	if got, want := ev.Text(), "hooks added c; hooks removed a; hooks changed b (timeout) (control request)"; !strings.HasSuffix(got, want) {
		t.Errorf("text %q, want ...%q", got, want)
	}
	h.waitFor("hook c ran for the reload", func() bool {
		b, err := os.ReadFile(filepath.Join(h.dir, "reload.json"))
		var got events.Event
		return err == nil && json.Unmarshal(b, &got) == nil && got.Seq == ev.Seq && got.Kind == events.Reload
	})
}

// /metrics counts the events by kind and the hooks' runs.
func TestMetricsOfEventsAndHooks(t *testing.T) {
	h, addr := startMetrics(t, `
[programs.m]
command = ["/bin/sleep", "1000"]
[hooks.h]
command = ["/bin/true"]
events = ["ready"]
`, nil)
	h.waitFor("m running", func() bool { return h.status("m").PID != 0 })
	var body string
	h.waitFor("the hook's run counted", func() bool {
		_, body, _ = fetch(t, "GET", "http://"+addr+"/metrics")
		return strings.Contains(body, `supervise_hook_runs_total{hook="h"} 1`)
	})
	for _, want := range []string{
		"# TYPE supervise_events_total counter",
		`supervise_events_total{kind="ready"} 1`,
		`supervise_events_total{kind="critical_exit"} 0`,
		`supervise_hook_failures_total{hook="h"} 0`,
		`supervise_hook_coalesced_total{hook="h"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
