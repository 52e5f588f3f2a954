package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// trapper is a program that appends its name to the file order when it
// gets SIGTERM (after delay, if any) and exits 0.
func trapper(name, delay string) string {
	pre := ""
	if delay != "" {
		pre = "sleep " + delay + "; "
	}
	return sh(`trap '` + pre + `echo ` + name + ` >> order; exit 0' TERM; while :; do sleep 0.05; done`)
}

// The teardown of SPEC §5: priorities, depends_on, teardown commands,
// stop_timeout and shutdown_timeout.
func TestTeardown(t *testing.T) {
	t.Parallel()
	t.Run("priorities and commands", func(t *testing.T) {
		t.Parallel()
		// Listed (and named) against the expected order.
		s := newSup(t, config{supervisor: `shutdown_timeout = "8s"`, programs: `
[programs.a30]
command = ` + trapper("a30", "") + `
stop_priority = 30

[programs.b20]
command = ` + trapper("b20", "") + `
stop_priority = 20

[programs.c10]
command = ` + trapper("c10", "") + `
stop_priority = 10

[teardown.x]
command = ` + sh("echo x >> order") + `
priority = 15
timeout = "5s"
`})
		for _, n := range []string{"a30", "b20", "c10"} {
			s.running(t, n)
		}
		if code := s.stop(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		b, _ := os.ReadFile(filepath.Join(s.dir, "order"))
		got := strings.Fields(string(b))
		want := []string{"c10", "x", "b20", "a30"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("teardown order %v, want %v", got, want)
		}
	})

	t.Run("depends_on at equal priority", func(t *testing.T) {
		t.Parallel()
		// base's stop is quick and dep's slow, so a parallel stop would
		// write base first.
		s := newSup(t, config{supervisor: `shutdown_timeout = "8s"`, programs: `
[programs.base]
command = ` + trapper("base", "") + `
stop_priority = 50

[programs.dep]
command = ` + trapper("dep", "0.4") + `
stop_priority = 50
depends_on = ["base"]
`})
		for _, n := range []string{"base", "dep"} {
			s.running(t, n)
		}
		if code := s.stop(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		b, _ := os.ReadFile(filepath.Join(s.dir, "order"))
		got := strings.Fields(string(b))
		want := []string{"dep", "base"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("teardown order %v, want %v", got, want)
		}
	})

	t.Run("stop_timeout", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.stubborn]
command = ` + sh(`trap "" TERM; touch armed; while :; do sleep 0.05; done`) + `
stop_timeout = "1s"
`})
		p := s.running(t, "stubborn")
		waitFile(t, filepath.Join(s.dir, "armed"), nil)
		start := time.Now()
		r := s.ctl(t, "stop", "stubborn")
		if r.code != 0 {
			t.Fatalf("stop stubborn: %s", r)
		}
		waitGone(t, 5*time.Second, p.PID)
		d := time.Since(start)
		if d < 900*time.Millisecond || d > 3500*time.Millisecond {
			t.Errorf("a program ignoring SIGTERM was gone %s after stop, want about stop_timeout (1s)", d)
		}
		q := s.waitProg(t, "stubborn", "stopped", func(p control.ProgramStatus) bool { return p.State == "stopped" })
		if q.Stats.Failures != 0 {
			t.Errorf("an operator stop ending in SIGKILL counted as a failure: %s", describe(q))
		}
	})

	t.Run("shutdown_timeout", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{
			supervisor: `shutdown_timeout = "1s"
force_exit_code = 9`,
			programs: `
[programs.ok]
command = ["/bin/sleep", "1000"]

[programs.stubborn]
command = ` + sh(`trap "" TERM; touch armed; while :; do sleep 0.05; done`) + `
stop_timeout = "10s"
`})
		ok := s.running(t, "ok")
		p := s.running(t, "stubborn")
		waitFile(t, filepath.Join(s.dir, "armed"), nil)
		start := time.Now()
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		code := s.wait(t, 15*time.Second)
		d := time.Since(start)
		if code != 9 {
			t.Errorf("exit code %d after the teardown exceeded shutdown_timeout, want force_exit_code 9", code)
		}
		if d > 3*time.Second {
			t.Errorf("supervisor took %s to exit with shutdown_timeout = 1s, want about 1s", d)
		}
		for _, pid := range []int{ok.PID, p.PID} {
			if !gone(pid) {
				t.Errorf("pid %d alive after the forced exit", pid)
			}
		}
		if !strings.Contains(s.logText(), "stubborn") {
			t.Errorf("the log does not name the unfinished step stubborn")
		}
	})

	t.Run("second SIGTERM skips ahead", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{
			supervisor: `shutdown_timeout = "20s"
force_exit_code = 9`,
			programs: `
[programs.stubborn]
command = ` + sh(`trap "" TERM; touch armed; while :; do sleep 0.05; done`) + `
stop_timeout = "15s"
`})
		p := s.running(t, "stubborn")
		waitFile(t, filepath.Join(s.dir, "armed"), nil)
		s.cmd.Process.Signal(syscall.SIGTERM)
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		s.cmd.Process.Signal(syscall.SIGTERM)
		code := s.wait(t, 10*time.Second)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("supervisor took %s to exit after a second SIGTERM", d)
		}
		if code != 9 {
			t.Errorf("exit code %d after a second SIGTERM skipped the teardown, want force_exit_code 9", code)
		}
		if !gone(p.PID) {
			t.Errorf("pid %d alive after the forced exit", p.PID)
		}
	})
}
