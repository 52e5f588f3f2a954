package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
)

// reaper is the test binary's single reaper: every supervisor under test
// spawns through it, and nothing else in this package waits for children.
var reaper *procs.Reaper

// orphans receives the pids the reaper reaped that it did not spawn (the
// bare processes of the benchmarks' floors).
var orphans = make(chan int, 1024)

func TestMain(m *testing.M) {
	if os.Getenv(helperServerEnv) != "" {
		os.Exit(helperServer())
	}
	var err error
	reaper, err = procs.NewReaper(procs.ReaperOptions{Subreaper: true, OnOrphan: func(pid int, _ unix.WaitStatus) {
		select {
		case orphans <- pid:
		default:
		}
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	reaper.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type harness struct {
	t    *testing.T
	sup  *Supervisor
	clk  clock.Clock
	logs *observer.ObservedLogs
	dir  string
	done chan int
	stop context.CancelFunc
}

// startSup runs a supervisor on the TOML text (with %s replaced by a temp
// dir) with clk (nil = real clock).
func startSup(t *testing.T, toml string, clk clock.Clock) *harness {
	t.Helper()
	dir := t.TempDir()
	toml = strings.ReplaceAll(toml, "$DIR", dir)
	if !strings.Contains(toml, "[supervisor]") {
		toml = "[supervisor]\nsocket = \"off\"\nwatch_config = false\n" + toml
	}
	path := filepath.Join(dir, "supervise.toml")
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	if clk == nil {
		clk = clock.Real()
	}
	sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.New(core), Clock: clk, RuntimeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, sup: sup, clk: clk, logs: logs, dir: dir, done: make(chan int, 1), stop: cancel}
	go func() {
		code, err := sup.Run(ctx)
		if err != nil {
			t.Error(err)
		}
		h.done <- code
	}()
	<-sup.Ready()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(20 * time.Second):
			t.Error("supervisor did not end")
		}
	})
	return h
}

func (h *harness) status(name string) control.ProgramStatus {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := h.sup.Handle(ctx, control.Request{Command: control.CmdStatus, Names: []string{name}})
	if !r.OK || len(r.Programs) != 1 {
		h.t.Fatalf("status %s: %+v", name, r)
	}
	return r.Programs[0]
}

func (h *harness) ctl(cmd string, names ...string) control.Response {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.sup.Handle(ctx, control.Request{Command: cmd, Names: names})
}

// waitFor re-checks cond until it holds: processes really run and exit, so
// the test waits for the loop to have seen them, with a deadline.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; log:\n%s", what, h.dump())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) dump() string {
	var b strings.Builder
	for _, e := range h.logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

func (h *harness) exitCode() int {
	h.t.Helper()
	select {
	case c := <-h.done:
		h.done <- c
		return c
	case <-time.After(15 * time.Second):
		h.t.Fatalf("supervisor did not exit; log:\n%s", h.dump())
	}
	return -1
}

func TestCrashLoopOpensBreakerThenHalfOpens(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.crash]
command = ["/bin/sh", "-c", "exit 3"]
backoff_initial = "1s"
backoff_max = "4s"
[programs.crash.breaker]
max_failures = 3
reset_timeout = "60s"
`, clk)
	for i := 1; i <= 2; i++ {
		h.waitFor(fmt.Sprintf("failure %d", i), func() bool { return h.status("crash").Stats.Failures == uint64(i) })
		st := h.status("crash")
		if st.State != "backoff" || st.Breaker.State != "closed" || st.Breaker.Failures != i {
			t.Fatalf("after failure %d: %+v", i, st)
		}
		// Backoff doubles: 1s, then 2s. Just before it, nothing starts.
		delay := time.Duration(1<<(i-1)) * time.Second
		clk.Advance(delay - time.Millisecond)
		if got := h.status("crash").Stats.Starts; got != uint64(i) {
			t.Fatalf("restarted before the backoff of %s: starts %d", delay, got)
		}
		clk.Advance(time.Millisecond)
	}
	h.waitFor("breaker open", func() bool { return h.status("crash").State == "open" })
	st := h.status("crash")
	if st.Stats.Starts != 3 || st.Breaker.State != "open" || st.Breaker.RemainingSeconds != 60 || st.LastExit == nil || st.LastExit.Code != 3 {
		t.Fatalf("open: %+v", st)
	}
	r := h.ctl(control.CmdStart, "crash")
	if r.OK || len(r.Results) != 1 || !strings.Contains(r.Results[0].Error, "half-open in 60s") {
		t.Fatalf("start while open: %+v", r)
	}
	if h.status("crash").Stats.Rejected == 0 {
		t.Fatal("refused start not counted as rejected")
	}
	clk.Advance(59 * time.Second)
	if h.status("crash").Stats.Starts != 3 {
		t.Fatal("trial before reset_timeout")
	}
	clk.Advance(time.Second)
	h.waitFor("half-open trial fails and reopens", func() bool {
		st := h.status("crash")
		return st.Stats.Starts == 4 && st.State == "open"
	})
	r = h.ctl(control.CmdReset, "crash")
	if !r.OK {
		t.Fatalf("reset: %+v", r)
	}
	h.waitFor("start after reset", func() bool { return h.status("crash").Stats.Starts == 5 })
}

func TestMinUptimeCountsSuccessAndClosesFailures(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	marker := "$DIR/runs"
	h := startSup(t, `
[programs.p]
command = ["/bin/sh", "-c", "echo x >> `+marker+`; n=$(wc -l < `+marker+`); if [ $n -le 2 ]; then exit 1; fi; exec sleep 1000"]
min_uptime = "5s"
backoff_initial = "1s"
`, clk)
	h.waitFor("first failure", func() bool { return h.status("p").Stats.Failures == 1 })
	clk.Advance(time.Second)
	h.waitFor("second failure", func() bool { return h.status("p").Stats.Failures == 2 })
	if f := h.status("p").Breaker.Failures; f != 2 {
		t.Fatalf("breaker failures %d, want 2", f)
	}
	clk.Advance(2 * time.Second)
	h.waitFor("third run up", func() bool { return h.status("p").PID != 0 })
	clk.Advance(5 * time.Second)
	st := h.status("p")
	if st.Breaker.Failures != 0 || st.Stats.Successes != 1 || st.State != "running" {
		t.Fatalf("after min_uptime: %+v", st)
	}
}

func TestRestartPolicies(t *testing.T) {
	h := startSup(t, `
[programs.never]
command = ["/bin/sh", "-c", "exit 1"]
restart = "never"
[programs.onfail_ok]
command = ["/bin/true"]
[programs.always]
command = ["/bin/sh", "-c", "sleep 0.05"]
restart = "always"
min_uptime = "0s"
backoff_initial = "10ms"
[programs.codes]
command = ["/bin/sh", "-c", "exit 3"]
success_exit_codes = [0, 3]
`, nil)
	h.waitFor("never exited", func() bool { return h.status("never").State == "exited" })
	h.waitFor("on-failure clean exit", func() bool { return h.status("onfail_ok").State == "exited" })
	h.waitFor("always restarted", func() bool { return h.status("always").Stats.Starts >= 3 })
	h.waitFor("exit 3 is success", func() bool { return h.status("codes").State == "exited" })
	if st := h.status("never"); st.Stats.Starts != 1 || st.Stats.Failures != 1 {
		t.Fatalf("never: %+v", st)
	}
	if st := h.status("codes"); st.Stats.Failures != 0 || st.Stats.Starts != 1 {
		t.Fatalf("codes: %+v", st)
	}
	if st := h.status("always"); st.Stats.Failures != 0 {
		t.Fatalf("always with min_uptime 0 counted failures: %+v", st)
	}
}

func TestSpawnFailureIsAFailureWithCause(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.missing]
command = ["/nonexistent/wbe"]
[programs.baddir]
command = ["/bin/true"]
directory = "/nonexistent/dir"
`, clk)
	st := h.status("missing")
	if st.State != "backoff" || st.Stats.Failures != 1 || st.LastExit == nil ||
		!strings.Contains(st.LastExit.Error, "/nonexistent/wbe: no such file or directory") {
		t.Fatalf("missing binary: %+v %+v", st, st.LastExit)
	}
	if st := h.status("baddir"); !strings.Contains(st.Error, "/nonexistent/dir") {
		t.Fatalf("bad directory: %+v", st)
	}
	if len(h.logs.FilterMessage("cannot start").All()) < 2 {
		t.Fatalf("spawn errors not logged:\n%s", h.dump())
	}
}

func TestOperatorStopStartRestart(t *testing.T) {
	h := startSup(t, `
[programs.s]
command = ["/bin/sleep", "1000"]
stop_timeout = "5s"
`, nil)
	h.waitFor("running", func() bool { return h.status("s").State == "running" })
	pid := h.status("s").PID
	r := h.ctl(control.CmdRestart, "s")
	if !r.OK || len(r.Programs) != 1 || r.Programs[0].PID == 0 || r.Programs[0].PID == pid {
		t.Fatalf("restart: %+v", r)
	}
	if st := h.status("s"); st.Stats.Failures != 0 {
		t.Fatalf("operator restart counted a failure: %+v", st)
	}
	r = h.ctl(control.CmdStop, "s")
	if !r.OK || r.Programs[0].State != "stopped" || r.Programs[0].PID != 0 {
		t.Fatalf("stop: %+v", r)
	}
	r = h.ctl(control.CmdStart, "s")
	if !r.OK {
		t.Fatalf("start: %+v", r)
	}
	h.waitFor("running again", func() bool { return h.status("s").PID != 0 })
	if r := h.ctl(control.CmdStop, "nosuch"); r.OK || !strings.Contains(r.Error, `no program named "nosuch"`) {
		t.Fatalf("unknown name: %+v", r)
	}
}

func TestStopKillsGroupAfterStopTimeout(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.stubborn]
command = ["/bin/sh", "-c", "trap '' TERM; echo ready > $DIR/ready; while :; do sleep 0.05; done"]
stop_timeout = "7s"
`, clk)
	h.waitFor("trap installed", func() bool { _, err := os.Stat(filepath.Join(h.dir, "ready")); return err == nil })
	done := make(chan control.Response, 1)
	go func() { done <- h.ctl(control.CmdStop, "stubborn") }()
	h.waitFor("stopping", func() bool { return h.status("stubborn").State == "stopping" })
	clk.Advance(7 * time.Second)
	select {
	case r := <-done:
		if !r.OK || r.Programs[0].State != "stopped" {
			t.Fatalf("stop: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("not killed after stop_timeout:\n%s", h.dump())
	}
}

func TestTeardownOrderAndDependents(t *testing.T) {
	trap := func(name string) string {
		return fmt.Sprintf(`["/bin/sh", "-c", "trap 'echo %s >> $DIR/order; exit 0' TERM; touch $DIR/%s.up; while :; do sleep 0.02; done"]`, name, name)
	}
	h := startSup(t, `
[programs.db]
command = `+trap("db")+`
stop_priority = 50
[programs.api]
command = `+trap("api")+`
stop_priority = 50
depends_on = ["db"]
[programs.web]
command = `+trap("web")+`
stop_priority = 10
[teardown.drain]
command = ["/bin/sh", "-c", "echo drain >> $DIR/order"]
priority = 20
`, nil)
	for _, n := range []string{"db", "api", "web"} {
		n := n
		h.waitFor(n+" up", func() bool { _, err := os.Stat(filepath.Join(h.dir, n+".up")); return err == nil })
	}
	h.sup.Shutdown("test", 0)
	if code := h.exitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	b, _ := os.ReadFile(filepath.Join(h.dir, "order"))
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "web drain api db" {
		t.Fatalf("teardown order %v, want web drain api db", got)
	}
}

func TestCriticalNeverEndsRunWithItsCode(t *testing.T) {
	h := startSup(t, `
[programs.main]
command = ["/bin/sh", "-c", "sleep 0.1; exit 4"]
restart = "never"
critical = true
[programs.other]
command = ["/bin/sleep", "1000"]
`, nil)
	if code := h.exitCode(); code != 4 {
		t.Fatalf("exit code %d, want 4", code)
	}
}

func TestAllExitedEndsRun(t *testing.T) {
	h := startSup(t, `
[programs.a]
command = ["/bin/true"]
[programs.b]
command = ["/bin/sh", "-c", "exit 5"]
restart = "never"
`, nil)
	if code := h.exitCode(); code != 5 {
		t.Fatalf("exit code %d, want 5", code)
	}
}

func TestTeardownBudgetForcesExitCode(t *testing.T) {
	h := startSup(t, `
[supervisor]
socket = "off"
watch_config = false
shutdown_timeout = "500ms"
force_exit_code = 9
[programs.stubborn]
command = ["/bin/sh", "-c", "trap '' TERM; touch $DIR/up; while :; do sleep 0.05; done"]
stop_timeout = "30s"
`, nil)
	h.waitFor("up", func() bool { _, err := os.Stat(filepath.Join(h.dir, "up")); return err == nil })
	start := time.Now()
	h.sup.Shutdown("test", 0)
	if code := h.exitCode(); code != 9 {
		t.Fatalf("exit code %d, want force_exit_code 9", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("teardown took %s with a 500ms budget", d)
	}
	if len(h.logs.FilterMessage("teardown did not finish in time").All()) != 1 {
		t.Fatalf("unfinished steps not logged:\n%s", h.dump())
	}
}

// TestOperatorSignalIsJudgedLikeAnyExit is SPEC §3: an exit after
// `supervise signal` is judged like any other exit, so a program killed by
// it under on-failure is restarted.
func TestOperatorSignalIsJudgedLikeAnyExit(t *testing.T) {
	h := startSup(t, `
[programs.s]
command = ["/bin/sleep", "1000"]
[programs.keep]
command = ["/bin/sleep", "1000"]
`, nil)
	h.waitFor("running", func() bool { return h.status("s").PID != 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := h.sup.Handle(ctx, control.Request{Command: control.CmdSignal, Names: []string{"s"}, Params: map[string]string{control.ParamSignal: "TERM"}})
	if !r.OK {
		t.Fatalf("signal: %+v", r)
	}
	h.waitFor("restarted", func() bool { st := h.status("s"); return st.Stats.Starts == 2 && st.PID != 0 })
	if st := h.status("s"); st.Stats.Failures != 1 || st.LastExit.Signal != "SIGTERM" {
		t.Fatalf("after operator TERM: %+v", st)
	}
}

func TestLogRateKeepsBurstAndReportsDrops(t *testing.T) {
	clk := clock.NewFake(time.Time{}) // no refill: exactly log_burst lines are kept
	h := startSup(t, `
[programs.chatty]
command = ["/bin/sh", "-c", "i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo line $i; done"]
restart = "never"
log_rate = 1
log_burst = 5
[programs.keep]
command = ["/bin/sleep", "1000"]
`, clk)
	h.waitFor("drops reported", func() bool {
		return len(h.logs.FilterMessage("dropped lines above log_rate").All()) > 0
	})
	kept := 0
	for _, e := range h.logs.FilterField(zap.String("stream", "stdout")).All() {
		if strings.HasPrefix(e.Message, "line ") {
			kept++
		}
	}
	var dropped uint64
	for _, e := range h.logs.FilterMessage("dropped lines above log_rate").All() {
		dropped += e.ContextMap()["dropped"].(uint64)
	}
	if kept != 5 || dropped != 95 {
		t.Fatalf("kept %d lines and reported %d dropped, want 5 and 95:\n%s", kept, dropped, h.dump())
	}
}

func TestSpawnFailureExitCodesLikeAShell(t *testing.T) {
	for _, c := range []struct {
		command string
		code    int
	}{{`["/nonexistent/x"]`, 127}, {`["/etc/passwd"]`, 126}} {
		h := startSup(t, "[programs.main]\ncommand = "+c.command+"\nrestart = \"never\"\ncritical = true\n", nil)
		if code := h.exitCode(); code != c.code {
			t.Errorf("%s: exit code %d, want %d", c.command, code, c.code)
		}
	}
}
