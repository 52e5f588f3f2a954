package tests

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// A program killed with SIGKILL by someone else is a failure and runs again
// with a new pid.
func TestKilledProgramRestarts(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.sleeper]
command = ["/bin/sleep", "1000"]
backoff_initial = "50ms"
`})
	first := s.running(t, "sleeper")
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again := s.waitProg(t, "sleeper", "running with a new pid", func(p control.ProgramStatus) bool {
		return p.State == "running" && p.PID > 0 && p.PID != first.PID
	})
	if again.Stats.Starts < 2 {
		t.Errorf("stats.starts = %d after a restart, want >= 2", again.Stats.Starts)
	}
	if again.Stats.Failures < 1 {
		t.Errorf("stats.failures = %d after an unexpected SIGKILL, want >= 1", again.Stats.Failures)
	}
	if again.LastExit == nil || !strings.Contains(again.LastExit.Signal, "KILL") {
		t.Errorf("last_exit = %+v, want signal SIGKILL", again.LastExit)
	}
	if !gone(first.PID) {
		t.Errorf("old pid %d still alive", first.PID)
	}
}

// restart = never / on-failure / always, and success_exit_codes.
func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{
		defaults: `backoff_initial = "10ms"
backoff_max = "50ms"`,
		programs: `
[programs.keep]
command = ["/bin/sleep", "1000"]

[programs.never1]
command = ` + sh("exit 1") + `
restart = "never"

[programs.onfail0]
command = ` + sh("exit 0") + `
restart = "on-failure"

[programs.onfail1]
command = ` + sh("exit 1") + `
restart = "on-failure"

[programs.always0]
command = ` + sh("exit 0") + `
restart = "always"

[programs.code3]
command = ` + sh("exit 3") + `
restart = "on-failure"
success_exit_codes = [0, 3]
`})
	s.running(t, "keep")
	exited := func(p control.ProgramStatus) bool { return p.State == "exited" }
	never := s.waitProg(t, "never1", "exited", exited)
	if never.LastExit == nil || never.LastExit.Code != 1 {
		t.Errorf("never1: last_exit = %+v, want code 1", never.LastExit)
	}
	s.waitProg(t, "onfail0", "exited", exited)
	code3 := s.waitProg(t, "code3", "exited", exited)
	s.waitProg(t, "onfail1", "restarted (starts >= 2)", func(p control.ProgramStatus) bool { return p.Stats.Starts >= 2 })
	s.waitProg(t, "always0", "restarted (starts >= 2)", func(p control.ProgramStatus) bool { return p.Stats.Starts >= 2 })

	if code3.Stats.Failures != 0 {
		t.Errorf("code3: stats.failures = %d for exit 3 listed in success_exit_codes, want 0", code3.Stats.Failures)
	}
	if code3.LastExit == nil || code3.LastExit.Code != 3 {
		t.Errorf("code3: last_exit = %+v, want code 3", code3.LastExit)
	}
	// With a 10ms backoff, a restart would have happened long ago.
	time.Sleep(500 * time.Millisecond)
	ps := s.status(t)
	for _, name := range []string{"never1", "onfail0", "code3"} {
		p, _ := find(ps, name)
		if p.Stats.Starts != 1 || p.State != "exited" {
			t.Errorf("%s: state %s, starts %d; want exited after exactly 1 start: %s", name, p.State, p.Stats.Starts, describe(p))
		}
	}
	if p, _ := find(ps, "never1"); p.Stats.Failures != 1 {
		t.Errorf("never1: stats.failures = %d, want 1", p.Stats.Failures)
	}
	if p, _ := find(ps, "onfail0"); p.Stats.Failures != 0 {
		t.Errorf("onfail0: stats.failures = %d, want 0", p.Stats.Failures)
	}
}

// A program that cannot be spawned names the cause, counts failures and is
// retried with backoff.
func TestSpawnFailures(t *testing.T) {
	t.Parallel()
	cause := func(p control.ProgramStatus) string {
		s := p.Error
		if p.LastExit != nil {
			s += " " + p.LastExit.Error
		}
		return s
	}

	t.Run("missing binary and directory", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{
			defaults: `backoff_initial = "50ms"
backoff_max = "100ms"`,
			programs: `
[programs.keep]
command = ["/bin/sleep", "1000"]

[programs.nobin]
command = ["/nonexistent/bin"]
[programs.nobin.breaker]
max_failures = 20

[programs.baddir]
command = ["/bin/sleep", "1000"]
directory = "/nonexistent-dir/sub"
[programs.baddir.breaker]
max_failures = 20
`})
		for _, name := range []string{"nobin", "baddir"} {
			p := s.waitProg(t, name, "retried (stats.failures >= 2)", func(p control.ProgramStatus) bool {
				return p.Stats.Failures >= 2
			})
			if !strings.Contains(cause(p), "no such file or directory") {
				t.Errorf("%s: error/last_exit.error %q does not name the cause (no such file or directory)", name, cause(p))
			}
			if p.State == "running" || p.State == "starting" {
				t.Errorf("%s: state %s for a program that cannot spawn", name, p.State)
			}
		}
		p := s.prog(t, "nobin")
		if !strings.Contains(cause(p), "/nonexistent/bin") {
			t.Errorf("nobin: error %q does not name the binary", cause(p))
		}
		if p := s.prog(t, "keep"); p.State != "running" {
			t.Errorf("keep: state %s, want running beside failing programs", p.State)
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		t.Parallel()
		if !isRoot() {
			t.Skip("user needs root")
		}
		s := newSup(t, config{programs: `
[programs.keep]
command = ["/bin/sleep", "1000"]

[programs.baduser]
command = ["/bin/sleep", "1000"]
user = "no-such-user-xq"
backoff_initial = "50ms"
`})
		// Either the configuration is refused (exit 2, naming the user),
		// or the program fails to spawn and status names the user.
		deadline := time.Now().Add(waitDefault)
		for time.Now().Before(deadline) {
			if s.exited() {
				if s.code != 2 {
					t.Fatalf("supervisor exited %d; want 2 (config error) or to keep running", s.code)
				}
				if !strings.Contains(s.logText(), "no-such-user-xq") {
					t.Fatalf("config error does not name the user")
				}
				return
			}
			if ps, err := s.tryStatus(); err == nil {
				if p, ok := find(ps, "baduser"); ok && p.Stats.Failures >= 1 {
					if !strings.Contains(cause(p), "no-such-user-xq") {
						t.Errorf("baduser: error %q does not name the user", cause(p))
					}
					if p.State == "running" {
						t.Errorf("baduser: running with an unknown user")
					}
					return
				}
			}
			time.Sleep(pollEvery)
		}
		t.Fatalf("unknown user: neither a config error nor a counted spawn failure: %s", describe(s.prog(t, "baduser")))
	})
}

// environment, directory, clear_environment and user.
func TestProgramEnvironment(t *testing.T) {
	t.Parallel()
	out := shortDir(t)
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(out, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	report := `echo "uid=$(id -u)"; echo "pwd=$(pwd)"; echo "foo=$FOO"; echo "home=${HOME-unset}"`
	progs := fmt.Sprintf(`
[programs.plain]
command = %s
directory = %s
environment = { FOO = "bar baz" }

[programs.clear]
command = %s
clear_environment = true
environment = { FOO = "only" }
`, sh("("+report+") > "+out+"/plain.out.tmp && mv "+out+"/plain.out.tmp "+out+"/plain.out; exec sleep 1000"), q(work),
		sh(`echo "foo=$FOO home=${HOME-unset} path=${PATH-unset}" > `+out+`/clear.out.tmp && mv `+out+`/clear.out.tmp `+out+`/clear.out; exec /bin/sleep 1000`))
	var nobodyUID string
	if isRoot() {
		u, err := user.Lookup("nobody")
		if err == nil {
			nobodyUID = u.Uid
			progs += fmt.Sprintf(`
[programs.asnobody]
command = %s
directory = %s
user = "nobody"
environment = { FOO = "nob" }
`, sh("("+report+") > "+out+"/nobody.out.tmp && mv "+out+"/nobody.out.tmp "+out+"/nobody.out; exec sleep 1000"), q(work))
		}
	}
	s := newSup(t, config{programs: progs})

	got := waitFile(t, filepath.Join(out, "plain.out"), nil)
	want := fmt.Sprintf("uid=%d\npwd=%s\nfoo=bar baz\nhome=/root-home-for-tests\n", os.Geteuid(), work)
	if got != want {
		t.Errorf("plain program wrote\n%s\nwant\n%s", got, want)
	}
	got = waitFile(t, filepath.Join(out, "clear.out"), nil)
	if !strings.HasPrefix(got, "foo=only home=unset ") {
		t.Errorf("clear_environment program wrote %q, want FOO=only and no HOME", got)
	}
	if nobodyUID == "" {
		t.Log("not root or no user nobody: user = \"nobody\" not tested")
		return
	}
	got = waitFile(t, filepath.Join(out, "nobody.out"), nil)
	lines := strings.Split(got, "\n")
	if len(lines) < 4 || lines[0] != "uid="+nobodyUID || lines[1] != "pwd="+work || lines[2] != "foo=nob" || lines[3] == "home=unset" {
		t.Errorf("user = nobody program wrote %q, want uid=%s, pwd=%s, foo=nob and HOME set", got, nobodyUID, work)
	}
	s.running(t, "asnobody")
}

// `supervise stop NAME` kills the program's whole process group.
func TestStopKillsGroup(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.parent]
command = ` + sh("sleep 1000 & echo $! > gc.pid; wait") + `
stop_timeout = "5s"
`})
	p := s.running(t, "parent")
	gc := readPID(t, filepath.Join(s.dir, "gc.pid"))
	if gone(gc) {
		t.Fatalf("grandchild %d not running before stop", gc)
	}
	if r := s.ctl(t, "stop", "parent"); r.code != 0 {
		t.Fatalf("stop parent: %s", r)
	}
	waitGone(t, 5*time.Second, p.PID, gc)
	q := s.waitProg(t, "parent", "stopped", func(p control.ProgramStatus) bool { return p.State == "stopped" })
	if q.PID != 0 {
		t.Errorf("stopped program shows pid %d", q.PID)
	}
	if q.Stats.Failures != 0 {
		t.Errorf("an operator stop counted as a failure: %s", describe(q))
	}
	// And it can be started again.
	if r := s.ctl(t, "start", "parent"); r.code != 0 {
		t.Fatalf("start parent: %s", r)
	}
	s.waitProg(t, "parent", "running again with a new pid", func(q control.ProgramStatus) bool {
		return q.State == "running" && q.PID > 0 && q.PID != p.PID
	})
}

// SIGTERM to the supervisor stops every program and exits 0.
func TestSIGTERMStopsAll(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.a]
command = ["/bin/sleep", "1000"]

[programs.b]
command = ` + sh("sleep 1000 & echo $! > b.gc; wait") + `

[programs.c]
command = ` + sh(`trap 'exit 0' TERM; while :; do sleep 0.1; done`) + `
`})
	var pids []int
	for _, n := range []string{"a", "b", "c"} {
		pids = append(pids, s.running(t, n).PID)
	}
	pids = append(pids, readPID(t, filepath.Join(s.dir, "b.gc")))
	if code := s.stop(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("pid %d still alive after the supervisor exited", pid)
		}
	}
}

// The control verbs restart, signal and shutdown.
func TestControlVerbs(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.a]
command = ` + sh(`trap 'echo usr1 >> got' USR1; while :; do sleep 0.05; done`) + `

[programs.b]
command = ["/bin/sleep", "1000"]
`})
	a := s.running(t, "a")
	b := s.running(t, "b")
	if r := s.ctl(t, "signal", "a", "USR1"); r.code != 0 {
		t.Fatalf("signal a USR1: %s", r)
	}
	waitFile(t, filepath.Join(s.dir, "got"), func(s string) bool { return s == "usr1\n" })
	if r := s.ctl(t, "signal", "a", "SIGUSR1"); r.code != 0 {
		t.Fatalf("signal a SIGUSR1: %s", r)
	}
	waitFile(t, filepath.Join(s.dir, "got"), func(s string) bool { return s == "usr1\nusr1\n" })
	if p := s.prog(t, "a"); p.PID != a.PID {
		t.Errorf("a changed pid after signals it survives")
	}

	if r := s.ctl(t, "restart", "b"); r.code != 0 {
		t.Fatalf("restart b: %s", r)
	}
	q := s.waitProg(t, "b", "running with a new pid", func(p control.ProgramStatus) bool {
		return p.State == "running" && p.PID > 0 && p.PID != b.PID
	})
	if q.Stats.Failures != 0 || q.Stats.Starts != 2 {
		t.Errorf("after an operator restart: %s, want 2 starts and no failure", describe(q))
	}
	waitGone(t, 5*time.Second, b.PID)

	if r := s.ctl(t, "shutdown"); r.code != 0 {
		t.Errorf("shutdown: %s", r)
	}
	if code := s.wait(t, waitDefault); code != 0 {
		t.Errorf("exit code %d after supervise shutdown, want 0", code)
	}
	for _, pid := range []int{a.PID, q.PID} {
		if !gone(pid) {
			t.Errorf("pid %d alive after shutdown", pid)
		}
	}
}

// -c FILE with -- CMD adds the command as critical program main.
func TestConfigPlusCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSup(t, config{
		defaults: `backoff_initial = "10ms"`,
		programs: `
[programs.other]
command = ` + sh("echo $$ > other.pid; exec sleep 1000") + `
`}, "--", "/bin/sh", "-c", "while [ ! -e "+dir+"/go ]; do sleep 0.05; done; exit 4")
	m := s.running(t, "main")
	other := readPID(t, filepath.Join(s.dir, "other.pid"))
	if m.PID <= 0 {
		t.Fatalf("main: %s", describe(m))
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := s.wait(t, waitDefault); code != 4 {
		t.Errorf("exit code %d when the critical command exited 4, want 4", code)
	}
	if !gone(other) {
		t.Errorf("program other (pid %d) alive after the supervisor exited", other)
	}
}

// notify = true: sd_notify READY=1 and STATUS= from systemd-notify.
func TestNotify(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		t.Skip("no systemd-notify")
	}
	s := newSup(t, config{programs: `
[programs.n]
command = ` + sh(`[ -n "$NOTIFY_SOCKET" ] || exit 9; sleep 0.5; touch sending; systemd-notify --ready --status="serving 42"; touch sent; exec sleep 1000`) + `
notify = true
`})
	p := s.waitProg(t, "n", "spawned", func(p control.ProgramStatus) bool { return p.PID > 0 })
	if _, err := os.Stat(filepath.Join(s.dir, "sending")); err != nil && (p.Ready || p.State != "starting") {
		t.Errorf("notify program before READY=1: state %s ready %v, want starting, not ready", p.State, p.Ready)
	}
	q := s.waitProg(t, "n", "ready after READY=1", func(p control.ProgramStatus) bool { return p.Ready && p.State == "running" })
	if q.StatusText != "serving 42" {
		t.Errorf("status_text = %q, want %q", q.StatusText, "serving 42")
	}
	if q.PID != p.PID {
		t.Errorf("pid changed: %d then %d", p.PID, q.PID)
	}
	sending, _ := os.Stat(filepath.Join(s.dir, "sending"))
	waitFile(t, filepath.Join(s.dir, "sent"), nil)
	sent, _ := os.Stat(filepath.Join(s.dir, "sent"))
	if d := sent.ModTime().Sub(sending.ModTime()); d > 3*time.Second {
		t.Errorf("systemd-notify took %s to return: its BARRIER=1 fd was held", d)
	}
}
