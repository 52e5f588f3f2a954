package supervisor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/control"
)

// stubborn ignores SIGTERM, touches its heartbeat once and marks $DIR/up.
const stubborn = `["/bin/sh", "-c", "trap '' TERM; touch $DIR/hb; touch $DIR/up; while :; do sleep 0.05; done"]`

func (h *harness) waitUp() {
	h.t.Helper()
	h.waitFor("program up", func() bool { _, err := os.Stat(filepath.Join(h.dir, "up")); return err == nil })
}

func TestWatchdogDuringOperatorStopDoesNotRestart(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.w]
command = `+stubborn+`
stop_timeout = "20s"
backoff_initial = "1s"
[programs.w.watchdog]
heartbeat_file = "$DIR/hb"
timeout = "5s"
[programs.other]
command = ["/bin/sleep", "1000"]
`, clk)
	h.waitUp()
	done := make(chan control.Response, 1)
	go func() { done <- h.ctl(control.CmdStop, "w") }()
	h.waitFor("stopping", func() bool { return h.status("w").State == "stopping" })
	clk.Advance(6 * time.Second) // the watchdog fires while the stop waits
	time.Sleep(50 * time.Millisecond)
	if st := h.status("w"); st.State != "stopping" {
		t.Fatalf("watchdog changed a stop in progress: %+v", st)
	}
	clk.Advance(14 * time.Second) // stop_timeout: SIGKILL
	r := <-done
	if !r.OK || r.Programs[0].State != "stopped" || r.Programs[0].Stats.Failures != 0 {
		t.Fatalf("operator stop ended as %+v", r.Programs)
	}
}

func TestReaddedWhileBeingRemovedStartsAgain(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	with := `[supervisor]
socket = "off"
watch_config = false
[programs.w]
command = ` + stubborn + `
stop_timeout = "7s"
[programs.other]
command = ["/bin/sleep", "1000"]
`
	h := startSup(t, with, clk)
	h.waitUp()
	pid := h.status("w").PID
	path := filepath.Join(h.dir, "supervise.toml")
	os.WriteFile(path, []byte(strings.ReplaceAll(`[supervisor]
socket = "off"
watch_config = false
[programs.other]
command = ["/bin/sleep", "1000"]
`, "$DIR", h.dir)), 0o644)
	if r := h.ctl(control.CmdReload); !r.OK || !strings.Contains(r.Message, "removed w") {
		t.Fatalf("reload 1: %+v", r)
	}
	os.WriteFile(path, []byte(strings.ReplaceAll(with, "$DIR", h.dir)), 0o644)
	if r := h.ctl(control.CmdReload); !r.OK {
		t.Fatalf("reload 2: %+v", r)
	}
	clk.Advance(7 * time.Second) // the removal's stop_timeout: SIGKILL
	var again int
	h.waitFor("w running again", func() bool {
		for _, p := range h.ctl(control.CmdStatus).Programs {
			if p.Name == "w" && p.PID != 0 && p.PID != pid {
				again = p.PID
				return true
			}
		}
		return false
	})
	// It ignores SIGTERM and the fake clock will not reach its stop_timeout
	// during the teardown: end it here.
	syscall.Kill(-again, syscall.SIGKILL)
}

func TestUnknownCommandAndMissingNamesAreRefused(t *testing.T) {
	h := startSup(t, "[programs.p]\ncommand = [\"/bin/sleep\", \"1000\"]\n", nil)
	for _, req := range []control.Request{{Command: "explode"}, {Command: control.CmdStart}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r := h.sup.Handle(ctx, req)
		cancel()
		if r.OK || r.Error == "" {
			t.Errorf("%+v answered %+v, want an error", req, r)
		}
	}
}

func TestWatchdogTriggerWithoutWatchdogTable(t *testing.T) {
	notify, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed")
	}
	h := startSup(t, `
[programs.n]
command = ["/bin/sh", "-c", "`+notify+` --ready; sleep 0.2; `+notify+` WATCHDOG=trigger; exec sleep 1000"]
notify = true
backoff_initial = "10ms"
[programs.other]
command = ["/bin/sleep", "1000"]
`, nil)
	h.waitFor("killed by its own trigger and restarted", func() bool {
		st := h.status("n")
		return st.Stats.Failures >= 1 && st.Stats.Starts >= 2
	})
	if st := h.status("other"); st.PID == 0 {
		t.Fatal("supervisor disturbed")
	}
}

func TestTeardownCommandKilledAtItsTimeout(t *testing.T) {
	h := startSup(t, `
[programs.p]
command = ["/bin/sleep", "1000"]
[teardown.slow]
command = ["/bin/sh", "-c", "echo $$ > $DIR/slow.pid; exec sleep 1000"]
timeout = "300ms"
`, nil)
	h.waitFor("running", func() bool { return h.status("p").PID != 0 })
	start := time.Now()
	h.sup.Shutdown("test", 0)
	if code := h.exitCode(); code != 0 {
		t.Fatalf("exit code %d: a failed step is not a budget overrun", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("teardown took %s with a 300ms command timeout", d)
	}
	b, err := os.ReadFile(filepath.Join(h.dir, "slow.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	if _, err := os.Stat("/proc/" + pid + "/cmdline"); err == nil {
		if st, _ := os.ReadFile("/proc/" + pid + "/stat"); !strings.Contains(string(st), ") Z ") {
			t.Fatalf("teardown command %s still alive", pid)
		}
	}
	found := false
	for _, e := range h.logs.FilterMessage("teardown step failed").All() {
		found = found || strings.Contains(e.ContextMap()["error"].(string), "killed after its timeout of 300ms")
	}
	if !found {
		t.Fatalf("timeout not reported:\n%s", h.dump())
	}
}

func TestNotifyWatchdogPingsKeepAProgramAlive(t *testing.T) {
	notify, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed")
	}
	// No file beats at all: only WATCHDOG=1 keeps it alive.
	h := startSup(t, `
[programs.n]
command = ["/bin/sh", "-c", "echo $WATCHDOG_USEC > $DIR/usec; `+notify+` --ready; while :; do `+notify+` WATCHDOG=1; sleep 0.2; done"]
notify = true
[programs.n.watchdog]
heartbeat_file = "$DIR/never-written"
timeout = "2s"
`, nil)
	h.waitFor("ready through READY=1", func() bool { st := h.status("n"); return st.Ready && st.State == "running" })
	pid := h.status("n").PID
	time.Sleep(3 * time.Second) // longer than the timeout: pings must have kept it
	st := h.status("n")
	if st.PID != pid || st.Stats.Failures != 0 || st.Heartbeat.AgeSeconds == nil {
		t.Fatalf("WATCHDOG=1 pings did not keep it alive: %+v", st)
	}
	if b, _ := os.ReadFile(filepath.Join(h.dir, "usec")); strings.TrimSpace(string(b)) != "2000000" {
		t.Fatalf("WATCHDOG_USEC = %q, want 2000000", b)
	}
}
