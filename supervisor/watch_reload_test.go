package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
)

func TestWatchdogRestartsSilentProgram(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.w]
command = ["/bin/sh", "-c", "touch $DIR/hb/beat; exec sleep 1000"]
backoff_initial = "1s"
[programs.w.watchdog]
heartbeat_file = "$DIR/hb/beat"
timeout = "10s"
start_grace = "20s"
`, clk)
	h.waitFor("first beat makes it ready", func() bool { st := h.status("w"); return st.Ready && st.State == "running" })
	st := h.status("w")
	if st.Heartbeat.LastBeatAt == nil || st.Heartbeat.AgeSeconds == nil {
		t.Fatalf("heartbeat not shown: %+v", st.Heartbeat)
	}
	pid := st.PID
	clk.Advance(9 * time.Second)
	if st := h.status("w"); st.PID != pid || st.Stats.Failures != 0 {
		t.Fatalf("killed before the timeout: %+v", st)
	}
	clk.Advance(time.Second)
	h.waitFor("watchdog failure", func() bool { return h.status("w").Stats.Failures == 1 })
	st = h.status("w")
	if st.State != "backoff" || st.LastExit == nil || st.LastExit.Signal != "SIGKILL" {
		t.Fatalf("after watchdog: %+v %+v", st, st.LastExit)
	}
	if len(h.logs.FilterMessage("watchdog: heartbeat overdue, killing the process group").All()) != 1 {
		t.Fatalf("watchdog not logged:\n%s", h.dump())
	}
	clk.Advance(time.Second)
	h.waitFor("restarted", func() bool { st := h.status("w"); return st.PID != 0 && st.PID != pid })
}

func TestWatchdogStartGraceAndActions(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.silent]
command = ["/bin/sleep", "1000"]
[programs.silent.watchdog]
heartbeat_file = "$DIR/silent.beat"
timeout = "5s"
start_grace = "30s"
action = "stop"
[programs.logonly]
command = ["/bin/sleep", "1000"]
[programs.logonly.watchdog]
heartbeat_file = "$DIR/logonly.beat"
timeout = "5s"
action = "log"
`, clk)
	clk.Advance(29 * time.Second)
	if st := h.status("silent"); st.State != "starting" || st.Ready {
		t.Fatalf("silent before start_grace: %+v", st)
	}
	clk.Advance(time.Second)
	h.waitFor("stopped by watchdog", func() bool { return h.status("silent").State == "stopped" })
	lo := h.status("logonly")
	if lo.PID == 0 || lo.State != "starting" {
		t.Fatalf("action = log must not touch the program: %+v", lo)
	}
	if n := len(h.logs.FilterMessage("watchdog: heartbeat overdue (action = log)").All()); n == 0 {
		t.Fatalf("action = log not logged:\n%s", h.dump())
	}
	// A beat while stopped revives nothing.
	os.WriteFile(filepath.Join(h.dir, "silent.beat"), []byte("x"), 0o644)
	time.Sleep(50 * time.Millisecond) // let a stray event arrive, if any
	if st := h.status("silent"); st.State != "stopped" || st.PID != 0 {
		t.Fatalf("beat revived a stopped program: %+v", st)
	}
}

func TestDependsOnWaitsForFirstBeat(t *testing.T) {
	h := startSup(t, `
[programs.db]
command = ["/bin/sh", "-c", "while [ ! -e $DIR/go ]; do sleep 0.02; done; touch $DIR/db.beat; exec sleep 1000"]
[programs.db.watchdog]
heartbeat_file = "$DIR/db.beat"
timeout = "60s"
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = ["db"]
`, nil)
	time.Sleep(100 * time.Millisecond)
	st := h.status("app")
	if st.PID != 0 || st.State != "waiting" || len(st.WaitingFor) != 1 || st.WaitingFor[0] != "db" {
		t.Fatalf("app started before db was ready: %+v", st)
	}
	os.WriteFile(filepath.Join(h.dir, "go"), nil, 0o644)
	h.waitFor("app started after db beat", func() bool { return h.status("app").PID != 0 })
	if !h.status("db").Ready {
		t.Fatal("db not ready")
	}
}

func TestReloadAppliesDiff(t *testing.T) {
	h := startSup(t, `
[programs.keep]
command = ["/bin/sleep", "1000"]
[programs.change]
command = ["/bin/sleep", "1000"]
[programs.drop]
command = ["/bin/sleep", "1000"]
`, nil)
	for _, n := range []string{"keep", "change", "drop"} {
		n := n
		h.waitFor(n+" running", func() bool { return h.status(n).PID != 0 })
	}
	keep, change := h.status("keep").PID, h.status("change").PID
	path := filepath.Join(h.dir, "supervise.toml")
	write := func(s string) {
		tmp := path + ".tmp"
		os.WriteFile(tmp, []byte("[supervisor]\nsocket = \"off\"\nwatch_config = false\n"+s), 0o644)
		os.Rename(tmp, path)
	}
	write(`
[programs.keep]
command = ["/bin/sleep", "1000"]
[programs.change]
command = ["/bin/sleep", "1001"]
[programs.add]
command = ["/bin/sleep", "1000"]
`)
	r := h.ctl(control.CmdReload)
	if !r.OK || !strings.Contains(r.Message, "added add") || !strings.Contains(r.Message, "removed drop") || !strings.Contains(r.Message, "changed change") {
		t.Fatalf("reload: %+v", r)
	}
	h.waitFor("diff applied", func() bool {
		st := h.ctl(control.CmdStatus)
		names := map[string]int{}
		for _, p := range st.Programs {
			names[p.Name] = p.PID
		}
		_, dropped := names["drop"]
		return !dropped && names["add"] != 0 && names["change"] != 0 && names["change"] != change
	})
	if h.status("keep").PID != keep {
		t.Fatal("unchanged program was restarted")
	}
	// An invalid edit changes nothing.
	write("[programs.keep]\ncomand = [\"x\"]\n")
	r = h.ctl(control.CmdReload)
	if r.OK || !strings.Contains(r.Error, `unknown key "comand"`) || !strings.Contains(r.Error, "supervise.toml:") {
		t.Fatalf("invalid reload: %+v", r)
	}
	if h.status("keep").PID != keep || h.status("add").PID == 0 {
		t.Fatal("invalid reload disturbed programs")
	}
}

func TestConfigEditAppliedByWatcher(t *testing.T) {
	h := startSup(t, `
[supervisor]
socket = "off"
[programs.a]
command = ["/bin/sleep", "1000"]
`, nil)
	h.waitFor("a running", func() bool { return h.status("a").PID != 0 })
	path := filepath.Join(h.dir, "supervise.toml")
	tmp := path + ".tmp"
	os.WriteFile(tmp, []byte("[supervisor]\nsocket = \"off\"\n[programs.a]\ncommand = [\"/bin/sleep\", \"1000\"]\n[programs.b]\ncommand = [\"/bin/sleep\", \"1000\"]\n"), 0o644)
	os.Rename(tmp, path)
	h.waitFor("b started by the file watch", func() bool {
		for _, p := range h.ctl(control.CmdStatus).Programs {
			if p.Name == "b" && p.PID != 0 {
				return true
			}
		}
		return false
	})
}

func TestReloadRestartsAnOpenProgramWithItsNewSettings(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.broken]
command = ["/bin/sh", "-c", "exit 1"]
[programs.broken.breaker]
max_failures = 1
[programs.other]
command = ["/bin/sleep", "1000"]
`, clk)
	h.waitFor("breaker open", func() bool { return h.status("broken").State == "open" })
	path := filepath.Join(h.dir, "supervise.toml")
	os.WriteFile(path, []byte(`[supervisor]
socket = "off"
watch_config = false
[programs.broken]
command = ["/bin/sleep", "1000"]
[programs.broken.breaker]
max_failures = 1
[programs.other]
command = ["/bin/sleep", "1000"]
`), 0o644)
	if r := h.ctl(control.CmdReload); !r.OK || !strings.Contains(r.Message, "changed broken") {
		t.Fatalf("reload: %+v", r)
	}
	h.waitFor("fixed program running", func() bool {
		st := h.status("broken")
		return st.State == "running" && st.PID != 0 && st.Breaker.State == "closed"
	})
}

func TestUnusableSocketDoesNotKeepProgramsFromRunning(t *testing.T) {
	h := startSup(t, `
[supervisor]
socket = "/proc/no-such-dir/supervise.sock"
watch_config = false
[programs.p]
command = ["/bin/sleep", "1000"]
`, nil)
	h.waitFor("running without a socket", func() bool { return h.status("p").PID != 0 })
	if len(h.logs.FilterMessage("control socket unavailable; running without it (set [supervisor] socket or -s)").All()) != 1 {
		t.Fatalf("missing socket not logged:\n%s", h.dump())
	}
}

func TestSocketInUseRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	other, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	ok := control.Unary(func(context.Context, control.Request) control.Response { return control.Response{OK: true} })
	hs := control.Handlers{}
	for _, name := range control.Commands.Names(true) {
		hs[name] = ok
	}
	go func() {
		other.Serve(ctx, hs)
		close(served)
	}()
	defer func() { cancel(); other.Close(); <-served }()
	path := filepath.Join(dir, "supervise.toml")
	os.WriteFile(path, []byte("[supervisor]\nsocket = \""+sock+"\"\nwatch_config = false\n[programs.p]\ncommand = [\"/bin/sleep\", \"1000\"]\n"), 0o644)
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := New(Options{Config: cfg, Reaper: reaper, RuntimeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	code, err := sup.Run(context.Background())
	if code != 2 || err == nil || !strings.Contains(err.Error(), "another supervisor is listening") {
		t.Fatalf("Run = %d, %v; want 2 and the socket in use", code, err)
	}
}
