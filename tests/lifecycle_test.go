package tests

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// A crashing program's last lines are logged before the entry that reports
// its end: they are what an operator reads first.
func TestLastLinesComeBeforeTheExit(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.flaky]
command = ` + sh(`seq 1 12000 > lines; cat lines; echo "flaky: crashing"; exit 1`) + `
restart = "never"
[programs.keep]
command = ["/bin/sleep", "1000"]
`})
	s.waitProg(t, "flaky", "exited", func(p control.ProgramStatus) bool { return p.State == "exited" })
	lastLine, failed := -1, -1
	for i, l := range s.logLines() {
		switch {
		case l["program"] == "flaky" && l["msg"] == "flaky: crashing":
			lastLine = i
		case l["program"] == "flaky" && l["msg"] == "failed" && failed < 0:
			failed = i
		}
	}
	if lastLine < 0 || failed < 0 || lastLine > failed {
		t.Fatalf("last line at entry %d, failure at entry %d: the last line must come first\n%s", lastLine, failed, s.logTail(20))
	}
}

// SPEC §3: becoming ready is not a success. A program that beats and then
// crashes before min_uptime keeps failing until its breaker opens.
func TestReadyThenCrashOpensTheBreaker(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.beater]
command = ` + sh(`touch beat; sleep 0.05; exit 1`) + `
backoff_initial = "10ms"
backoff_max = "20ms"
[programs.beater.breaker]
max_failures = 3
reset_timeout = "1h"
[programs.beater.watchdog]
heartbeat_file = "beat"
timeout = "10s"
[programs.keep]
command = ["/bin/sleep", "1000"]
`})
	p := s.waitProg(t, "beater", "breaker open", func(p control.ProgramStatus) bool { return p.State == "open" })
	if p.Stats.Failures != 3 || p.Stats.Successes != 0 || p.Breaker.State != "open" {
		t.Fatalf("after 3 ready-then-crash runs: %s", describe(p))
	}
}

// SPEC §3: an exit after `supervise signal` is judged like any other, so
// `signal NAME KILL` under on-failure restarts the program.
func TestSignalKillRestartsUnderOnFailure(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
backoff_initial = "10ms"
`})
	first := s.running(t, "web")
	if r := s.ctl(t, "signal", "web", "KILL"); r.code != 0 {
		t.Fatalf("signal: %s", r)
	}
	again := s.waitProg(t, "web", "restarted with a new pid", func(p control.ProgramStatus) bool {
		return p.State == "running" && p.PID != 0 && p.PID != first.PID
	})
	if again.Stats.Failures != 1 || again.LastExit == nil || again.LastExit.Signal != "SIGKILL" {
		t.Fatalf("after signal KILL: %s", describe(again))
	}
}

// SPEC §6: a program whose dependencies are not met is `waiting`, with
// waiting_for naming them, and no process.
func TestWaitingForADependency(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.db]
command = ["/bin/sleep", "1000"]
notify = true
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = ["db"]
`})
	s.waitProg(t, "db", "spawned", func(p control.ProgramStatus) bool { return p.PID != 0 })
	time.Sleep(100 * time.Millisecond)
	app := s.prog(t, "app")
	if app.State != "waiting" || app.PID != 0 || strings.Join(app.WaitingFor, ",") != "db" {
		t.Fatalf("app while db is not ready: %s", describe(app))
	}
	rows := strings.Split(s.ctl(t, "status").stdout, "\n")
	found := false
	for _, r := range rows {
		if strings.HasPrefix(r, "app ") && strings.Contains(r, "waiting") {
			found = true
		}
	}
	if !found {
		t.Fatalf("status table does not show app waiting:\n%s", strings.Join(rows, "\n"))
	}
}

// SPEC §1 / issue: validate warns about what will fail at run time (an
// unknown user, a missing command or directory), naming program and key;
// --strict makes that exit 1, while run starts anyway.
func TestValidateWarnsAboutWhatCannotRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := dir + "/supervise.toml"
	text := `[programs.web]
command = ["/nonexistent/wbe"]
user = "no-such-user-xq"
directory = "/nonexistent/dir"
min_uptime = "5.999999023s"
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, 20*time.Second, "validate", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, "ok, 1 program\n") || !strings.Contains(r.stdout, "min_uptime 6s") {
		t.Fatalf("validate: %s", r)
	}
	for _, want := range []string{`supervise.toml:2: programs.web: key "command"`, `:3: programs.web: key "user"`, `:4: programs.web: key "directory"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("validate warnings lack %q:\n%s", want, r.stderr)
		}
	}
	if r := runBin(t, 20*time.Second, "validate", "--strict", "-c", path); r.code != 1 {
		t.Errorf("validate --strict with warnings: %s, want exit 1", r)
	}
}

// SPEC §18: `check --ready` exits 0 only while every autostart program is
// ready (a completed one-shot task counts), and --json says why not.
func TestCheckReady(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
[programs.once]
command = ["/bin/true"]
restart = "never"
[programs.slow]
command = ["/bin/sleep", "1000"]
notify = true
[programs.manual]
command = ["/bin/sleep", "1000"]
autostart = false
`})
	s.running(t, "web")
	s.waitProg(t, "once", "exited", func(p control.ProgramStatus) bool { return p.State == "exited" })
	s.waitProg(t, "slow", "spawned", func(p control.ProgramStatus) bool { return p.PID != 0 })
	r := s.ctl(t, "check", "--ready", "--json")
	if r.code != 1 || !strings.Contains(r.stdout, `"healthy":false`) || !strings.Contains(r.stdout, `"name":"slow"`) ||
		strings.Contains(r.stdout, `"name":"once"`) || strings.Contains(r.stdout, `"name":"manual"`) {
		t.Fatalf("check --ready while slow is starting: %s", r)
	}
	if r := s.ctl(t, "stop", "slow"); r.code != 0 {
		t.Fatal(r)
	}
	// A stopped autostart program is not ready either: the operator took it down.
	if r := s.ctl(t, "check", "--ready"); r.code != 1 {
		t.Fatalf("check --ready with slow stopped: %s", r)
	}
}
