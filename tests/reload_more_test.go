package tests

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// SPEC §7: a file written in place is read once its writer has closed it:
// `{ sleep 0.5; cat new; } > supervise.toml` applies one diff, the final
// one, and never the truncated file in between.
func TestSlowInPlaceWriteAppliesOnce(t *testing.T) {
	t.Parallel()
	c := config{programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
[programs.worker]
command = ["/bin/sleep", "1000"]
`}
	s := newSup(t, c)
	web := s.running(t, "web")
	worker := s.running(t, "worker")
	c.programs += `
[programs.added]
command = ["/bin/sleep", "1000"]
`
	next := s.dir + "/next.toml"
	if err := os.WriteFile(next, []byte(s.render(c)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-c", `{ sleep 0.5; cat "$1"; } > "$2"`, "sh", next, s.cfg).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	s.running(t, "added")
	for _, p := range []control.ProgramStatus{web, worker} {
		if now := s.prog(t, p.Name); now.PID != p.PID || now.Stats.Starts != 1 {
			t.Errorf("%s was restarted by a slow in-place write: before %s, after %s", p.Name, describe(p), describe(now))
		}
	}
	if text := s.logText(); strings.Contains(text, "removed web") || strings.Contains(text, "removed worker") {
		t.Errorf("the truncated file was applied:\n%s", s.logTail(30))
	}
}

// SPEC §7: an empty file (or one with only comments) is refused like an
// invalid one; the programs keep running.
func TestEmptyConfigIsRefused(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
`})
	web := s.running(t, "web")
	for _, text := range []string{"", "# nothing here\n\n"} {
		if err := os.WriteFile(s.cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		r := s.ctl(t, "reload")
		if r.code == 0 || !strings.Contains(r.stderr, "no settings") {
			t.Fatalf("reload of %q: %s, want a refusal naming the empty file", text, r)
		}
		if now := s.prog(t, "web"); now.PID != web.PID || now.State != "running" {
			t.Fatalf("an empty file disturbed web: %s", describe(now))
		}
	}
}

// SPEC §4: ready_timeout bounds the wait for readiness; a run not ready in
// time is a failure, killed and restarted through the breaker.
func TestReadyTimeout(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.slow]
command = ["/bin/sleep", "1000"]
notify = true
ready_timeout = "300ms"
backoff_initial = "10ms"
[programs.slow.breaker]
max_failures = 2
reset_timeout = "1h"
`})
	p := s.waitProg(t, "slow", "breaker open after two ready timeouts", func(p control.ProgramStatus) bool { return p.State == "open" })
	if p.Stats.Failures != 2 || p.Stats.Starts != 2 || p.LastExit == nil || p.LastExit.Signal != "SIGKILL" {
		t.Fatalf("after two ready timeouts: %s", describe(p))
	}
	if !strings.Contains(s.logText(), "not ready within ready_timeout") {
		t.Fatalf("the failure does not say why:\n%s", s.logTail(20))
	}
}

// A reload that changes only settings read when the supervisor acts on a
// program (stop_timeout, restart, the breaker...) applies them in place:
// the process keeps running.
func TestReloadAppliesInPlaceSettings(t *testing.T) {
	t.Parallel()
	c := config{programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
stop_timeout = "5s"
`}
	s := newSup(t, c)
	web := s.running(t, "web")
	c.programs = strings.Replace(c.programs, `stop_timeout = "5s"`, "stop_timeout = \"7s\"\nrestart = \"always\"\nstop_priority = 3", 1)
	s.writeConfig(t, c)
	waitFor(t, "the reload", waitDefault, func() (bool, string) {
		return strings.Contains(s.logText(), "changed web"), ""
	})
	time.Sleep(100 * time.Millisecond)
	if now := s.prog(t, "web"); now.PID != web.PID || now.Stats.Starts != 1 {
		t.Fatalf("an in-place change restarted web: before %s, after %s", describe(web), describe(now))
	}
}
