package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// Heartbeat watchdogs and readiness (SPEC §4).
func TestWatchdog(t *testing.T) {
	t.Parallel()
	t.Run("steady beats", func(t *testing.T) {
		t.Parallel()
		// The heartbeat directory does not exist: the supervisor creates it.
		s := newSup(t, config{programs: `
[programs.good]
command = ` + sh("while :; do touch hb/good; sleep 0.2; done") + `
[programs.good.watchdog]
heartbeat_file = "hb/good"
timeout = "3s"
`})
		if fi, err := os.Stat(filepath.Join(s.dir, "hb")); err != nil || !fi.IsDir() {
			// Give the supervisor the time to start before judging.
			s.waitProg(t, "good", "spawned", func(p control.ProgramStatus) bool { return p.Stats.Starts >= 1 })
			if fi, err := os.Stat(filepath.Join(s.dir, "hb")); err != nil || !fi.IsDir() {
				t.Fatalf("heartbeat directory not created: %v", err)
			}
		}
		p := s.waitProg(t, "good", "ready and running", func(p control.ProgramStatus) bool {
			return p.Ready && p.State == "running" && p.PID > 0
		})
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			q := s.prog(t, "good")
			if q.PID != p.PID || q.State != "running" || !q.Ready {
				t.Fatalf("a program beating every 200ms with timeout 3s changed: before %s, now %s", describe(p), describe(q))
			}
			// Generous bound: on a loaded machine the beating loop itself can stall.
			if q.Heartbeat.AgeSeconds == nil || *q.Heartbeat.AgeSeconds > 2.5 || q.Heartbeat.LastBeatAt == nil {
				t.Errorf("heartbeat = %+v, want a recent beat with age_seconds < 2.5", q.Heartbeat)
			}
			time.Sleep(300 * time.Millisecond)
		}
		if q := s.prog(t, "good"); q.Stats.Starts != 1 || q.Stats.Failures != 0 {
			t.Errorf("stats = %+v, want 1 start and no failure", q.Stats)
		}
	})

	t.Run("silent after two beats", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.silent]
command = ` + sh("touch hb; sleep 0.2; touch hb; date +%s%N >> runs; exec sleep 1000") + `
backoff_initial = "10ms"
[programs.silent.watchdog]
heartbeat_file = "hb"
timeout = "1s"
`})
		first := s.waitProg(t, "silent", "ready", func(p control.ProgramStatus) bool { return p.Ready && p.PID > 0 })
		start := time.Now()
		again := s.waitProg(t, "silent", "restarted by the watchdog", func(p control.ProgramStatus) bool {
			return p.Stats.Starts >= 2 && p.PID > 0 && p.PID != first.PID
		})
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("restart %s after the last beat, want about the 1s timeout", d)
		}
		if again.Stats.Failures < 1 {
			t.Errorf("a watchdog timeout did not count as a failure: %s", describe(again))
		}
		if !gone(first.PID) {
			t.Errorf("the silent run %d is still alive", first.PID)
		}
		// The two beats and the kill are about 1s apart.
		runs := strings.Fields(waitFile(t, filepath.Join(s.dir, "runs"), func(s string) bool { return len(strings.Fields(s)) >= 2 }))
		a, _ := strconv.ParseInt(runs[0], 10, 64)
		b, _ := strconv.ParseInt(runs[1], 10, 64)
		if d := time.Duration(b - a); d < 900*time.Millisecond || d > 4*time.Second {
			t.Errorf("runs %s apart, want about timeout (1s) + 0.2s", d)
		}
	})

	t.Run("never beats", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.mute]
command = ["/bin/sleep", "1000"]
backoff_initial = "10ms"
[programs.mute.watchdog]
heartbeat_file = "mute.hb"
timeout = "30s"
start_grace = "1s"
`})
		first := s.waitProg(t, "mute", "spawned", func(p control.ProgramStatus) bool { return p.PID > 0 })
		if first.Ready || first.State != "starting" {
			t.Errorf("a watchdog program before its first beat: state %s ready %v, want starting, not ready", first.State, first.Ready)
		}
		start := time.Now()
		s.waitProg(t, "mute", "restarted after start_grace", func(p control.ProgramStatus) bool {
			return p.Stats.Starts >= 2
		})
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("restart %s after spawn, want about start_grace (1s)", d)
		}
	})

	t.Run("depends_on waits for the first beat", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.dependent]
command = ` + sh("date +%s%N > dependent.started; exec sleep 1000") + `
depends_on = ["slow"]

[programs.slow]
command = ` + sh("sleep 1; date +%s%N > slow.beat; while :; do touch slow.hb; sleep 0.2; done") + `
[programs.slow.watchdog]
heartbeat_file = "slow.hb"
timeout = "3s"
`})
		// In every snapshot before slow is ready, dependent has not started.
		waitFor(t, "slow to become ready", waitDefault, func() (bool, string) {
			ps, err := s.tryStatus()
			if err != nil {
				return false, err.Error()
			}
			slow, _ := find(ps, "slow")
			dep, _ := find(ps, "dependent")
			if !slow.Ready && (dep.Stats.Starts != 0 || dep.PID != 0) {
				t.Fatalf("dependent started before its dependency was ready: %s / %s", describe(dep), describe(slow))
			}
			return slow.Ready, describe(slow)
		})
		s.running(t, "dependent")
		beat := readNanos(t, filepath.Join(s.dir, "slow.beat"))
		started := readNanos(t, filepath.Join(s.dir, "dependent.started"))
		if started < beat {
			t.Errorf("dependent started %s before slow's first beat", time.Duration(beat-started))
		}
	})
}

func readNanos(t *testing.T, path string) int64 {
	t.Helper()
	text := waitFile(t, path, func(s string) bool { return strings.HasSuffix(s, "\n") })
	n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}
