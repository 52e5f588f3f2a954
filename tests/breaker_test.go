package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// The restart circuit breaker of SPEC §3: open after max_failures, start
// refused with the remaining seconds, a half-open trial after
// reset_timeout, reset, and min_uptime clearing the failure count.
func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	t.Run("open and half-open", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.keep]
command = ["/bin/sleep", "1000"]

[programs.flap]
command = ` + sh("exit 1") + `
backoff_initial = "10ms"
backoff_max = "20ms"
[programs.flap.breaker]
max_failures = 3
reset_timeout = "3s"
`})
		p := s.waitProg(t, "flap", "open", func(p control.ProgramStatus) bool { return p.State == "open" })
		opened := time.Now()
		if p.Stats.Starts != 3 {
			t.Errorf("starts = %d when the breaker opened, want 3", p.Stats.Starts)
		}
		if p.Breaker.State != "open" || p.Breaker.MaxFailures != 3 || p.Breaker.Failures != 3 {
			t.Errorf("breaker = %+v, want open with 3/3 failures", p.Breaker)
		}
		if p.Breaker.RemainingSeconds <= 0 || p.Breaker.RemainingSeconds > 3 {
			t.Errorf("breaker.remaining_seconds = %v, want in (0, 3]", p.Breaker.RemainingSeconds)
		}
		if p.PID != 0 {
			t.Errorf("open program shows pid %d", p.PID)
		}
		// The log says when the trial is due as a reader expects it
		// ("3s"), not to the nanosecond ("2.999948874s").
		var halfOpenIn []any
		for _, l := range s.logLines() {
			if l["msg"] == "breaker open: not restarting" {
				halfOpenIn = append(halfOpenIn, l["half_open_in"])
			}
		}
		if len(halfOpenIn) == 0 {
			t.Errorf("no 'breaker open: not restarting' entry in the log:\n%s", s.logTail(20))
		}
		for _, v := range halfOpenIn {
			if d, ok := v.(string); !ok || !regexp.MustCompile(`^[0-9]+(\.[0-9]{1,2})?s$`).MatchString(d) {
				t.Errorf("half_open_in = %v, want a duration rounded to three digits like 3s", v)
			}
		}

		// Half-open trial after reset_timeout: one start, which fails and
		// opens the breaker again.
		s.waitProg(t, "flap", "half-open trial (starts = 4)", func(p control.ProgramStatus) bool { return p.Stats.Starts >= 4 })
		// remaining_seconds, as first seen, tells when the trial is due.
		due := time.Duration(p.Breaker.RemainingSeconds * float64(time.Second))
		if d := time.Since(opened); d < due-500*time.Millisecond {
			t.Errorf("half-open trial %s after the breaker was seen open with %.1fs remaining", d, p.Breaker.RemainingSeconds)
		}
		q := s.waitProg(t, "flap", "open again after the failed trial", func(p control.ProgramStatus) bool {
			return p.State == "open" && p.Breaker.State == "open"
		})
		if time.Since(opened) < due+2500*time.Millisecond && q.Stats.Starts != 4 {
			t.Errorf("starts = %d after one half-open trial, want 4", q.Stats.Starts)
		}
		if q.Stats.StateChanges < 3 {
			t.Errorf("stats.state_changes = %d after closed→open→half_open→open, want >= 3", q.Stats.StateChanges)
		}
	})

	t.Run("start refused, reset", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.keep]
command = ["/bin/sleep", "1000"]

[programs.flap]
command = ` + sh("[ -e ok ] || exit 1; exec sleep 1000") + `
backoff_initial = "10ms"
backoff_max = "20ms"
[programs.flap.breaker]
max_failures = 3
reset_timeout = "60s"
`})
		p := s.waitProg(t, "flap", "open", func(p control.ProgramStatus) bool { return p.State == "open" })
		if p.Stats.Starts != 3 || p.Breaker.RemainingSeconds < 30 {
			t.Errorf("want open after 3 starts with about 60s remaining: %s", describe(p))
		}
		r := s.ctl(t, "start", "flap")
		if r.code == 0 {
			t.Errorf("start of an open program: %s, want refused", r)
		}
		if !regexp.MustCompile(`\b[1-6][0-9](\.[0-9]+)?\s*s\b|\b[1-6][0-9](\.[0-9]+)? second`).MatchString(r.stdout + r.stderr) {
			t.Errorf("refused start %q does not say how many seconds remain (about 60)", r.stdout+r.stderr)
		}
		q := s.prog(t, "flap")
		if q.Stats.Starts != 3 || q.State != "open" {
			t.Errorf("refused start changed the program: %s", describe(q))
		}
		if q.Stats.Rejected < 1 {
			t.Errorf("stats.rejected = %d after a refused start, want >= 1", q.Stats.Rejected)
		}

		// reset closes the breaker and starts the program.
		if err := os.WriteFile(filepath.Join(s.dir, "ok"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if r := s.ctl(t, "reset", "flap"); r.code != 0 {
			t.Fatalf("reset flap: %s", r)
		}
		q = s.running(t, "flap")
		if q.Breaker.State != "closed" || q.Breaker.Failures != 0 {
			t.Errorf("breaker after reset = %+v, want closed with 0 failures", q.Breaker)
		}
		if q.Stats.Starts != 4 {
			t.Errorf("starts = %d after reset, want 4", q.Stats.Starts)
		}
	})

	t.Run("min_uptime clears failures", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.recover]
command = ` + sh(`n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -le 2 ] && exit 1; exec sleep 1000`) + `
backoff_initial = "10ms"
min_uptime = "3s"
[programs.recover.breaker]
max_failures = 5
`})
		s.waitProg(t, "recover", "third run with 2 failures counted", func(p control.ProgramStatus) bool {
			return p.Stats.Starts == 3 && p.PID > 0 && p.Breaker.Failures == 2
		})
		p := s.waitProg(t, "recover", "failure count back to 0 after min_uptime", func(p control.ProgramStatus) bool {
			return p.Breaker.Failures == 0
		})
		if p.Stats.Failures != 2 || p.Stats.Successes < 1 || p.Stats.Starts != 3 {
			t.Errorf("stats = %+v, want starts 3, failures 2, successes >= 1", p.Stats)
		}
		if p.UptimeSeconds < 2.9 {
			t.Errorf("failures cleared after %.2fs of uptime, before min_uptime (3s)", p.UptimeSeconds)
		}
		if p.Breaker.State != "closed" || p.State != "running" {
			t.Errorf("want running with a closed breaker: %s", describe(p))
		}
	})
}

// Critical programs and the end of the run (SPEC §3).
func TestRunEnds(t *testing.T) {
	t.Parallel()
	t.Run("critical never exits 4", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.other]
command = ` + sh("sleep 1000 & echo $! > other.gc; wait") + `

[programs.crit]
command = ` + sh("while [ ! -e go ]; do sleep 0.05; done; exit 4") + `
critical = true
restart = "never"
`})
		other := s.running(t, "other")
		gc := readPID(t, filepath.Join(s.dir, "other.gc"))
		os.WriteFile(filepath.Join(s.dir, "go"), nil, 0o644)
		if code := s.wait(t, waitDefault); code != 4 {
			t.Errorf("exit code %d when a critical program exited 4, want 4", code)
		}
		for _, pid := range []int{other.PID, gc} {
			if !gone(pid) {
				t.Errorf("pid %d of another program alive after the supervisor exited", pid)
			}
		}
	})
	t.Run("critical breaker opens", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.other]
command = ["/bin/sleep", "1000"]

[programs.crit]
command = ` + sh("while [ ! -e go ]; do sleep 0.05; done; exit 6") + `
critical = true
backoff_initial = "10ms"
[programs.crit.breaker]
max_failures = 2
`})
		other := s.running(t, "other")
		os.WriteFile(filepath.Join(s.dir, "go"), nil, 0o644)
		if code := s.wait(t, waitDefault); code != 6 {
			t.Errorf("exit code %d when a critical program's breaker opened on exit 6, want 6", code)
		}
		if !gone(other.PID) {
			t.Errorf("pid %d of another program alive after the supervisor exited", other.PID)
		}
	})
	t.Run("all exited cleanly", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.one]
command = ` + sh("sleep 0.2; exit 0") + `

[programs.two]
command = ` + sh("sleep 0.4; exit 0") + `
`})
		if code := s.wait(t, waitDefault); code != 0 {
			t.Errorf("exit code %d when every program exited 0, want 0", code)
		}
	})
	t.Run("one failed under never", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.fine]
command = ` + sh("exit 0") + `

[programs.bad]
command = ` + sh("sleep 0.2; exit 5") + `
restart = "never"
`})
		if code := s.wait(t, waitDefault); code != 5 {
			t.Errorf("exit code %d when a never program exited 5, want 5", code)
		}
	})
	t.Run("stopped by operator keeps running", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.a]
command = ["/bin/sleep", "1000"]

[programs.later]
command = ["/bin/sleep", "1000"]
autostart = false
`})
		s.running(t, "a")
		if p := s.prog(t, "later"); p.State != "stopped" || p.Stats.Starts != 0 {
			t.Errorf("autostart = false program: %s, want stopped, never started", describe(p))
		}
		if r := s.ctl(t, "stop", "a"); r.code != 0 {
			t.Fatalf("stop a: %s", r)
		}
		s.waitProg(t, "a", "stopped", func(p control.ProgramStatus) bool { return p.State == "stopped" })
		time.Sleep(500 * time.Millisecond)
		if s.exited() {
			t.Fatalf("supervisor exited (code %d) with every program stopped by the operator", s.code)
		}
		if code := s.stop(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
	})
}
