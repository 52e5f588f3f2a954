package supervisor

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/control"
)

// freePort returns a loopback address nothing listens on (yet).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// A program without probes costs nothing: once it has lived min_uptime,
// the supervisor holds no timer at all; a probe holds exactly one.
func TestProgramWithoutProbesHasNoTimer(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.plain]
command = ["/bin/sleep", "1000"]
min_uptime = "1s"
`, clk)
	h.waitFor("running", func() bool { return h.status("plain").State == "running" })
	clk.Advance(time.Second)
	h.waitFor("min_uptime counted", func() bool { return h.status("plain").Stats.Successes == 1 })
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d timers pending for an idle program without probes", n)
	}
	if st := h.status("plain"); st.Probes != nil {
		t.Fatalf("probes in status: %+v", st.Probes)
	}

	clk2 := clock.NewFake(time.Time{})
	h2 := startSup(t, `
[programs.probed]
command = ["/bin/sleep", "1000"]
min_uptime = "1s"
readiness = { tcp = "`+freePort(t)+`", interval = "10s" }
`, clk2)
	h2.waitFor("starting", func() bool { return h2.status("probed").State == "starting" })
	clk2.Advance(time.Second)
	h2.waitFor("min_uptime counted", func() bool { return h2.status("probed").Stats.Successes == 1 })
	if n := clk2.Pending(); n != 1 {
		t.Fatalf("%d timers pending for a program with one probe, want its next attempt only", n)
	}
}

// A TCP readiness probe gates a dependent; when the probe that passed
// fails failure_threshold times, the program is not ready (starting, same
// pid) and its dependent keeps running; it is ready again once it passes.
func TestReadinessProbe(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	addr := freePort(t)
	h := startSup(t, `
[programs.db]
command = ["/bin/sleep", "1000"]
[programs.db.readiness]
tcp = "`+addr+`"
interval = "1s"
failure_threshold = 2
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = ["db"]
`, clk)
	h.waitFor("db starting", func() bool { return h.status("db").State == "starting" })
	clk.Advance(0) // the first attempt: refused
	clk.Advance(time.Second)
	db := h.status("db")
	if db.State != "starting" || db.Probes == nil || db.Probes.Readiness == nil {
		t.Fatalf("db %+v", db)
	}
	if r := db.Probes.Readiness; r.Kind != "tcp" || r.State != "failing" || r.ConsecutiveFailures != 2 ||
		!strings.Contains(r.LastError, "connection refused") || r.Attempts != 2 || r.Failures != 2 {
		t.Fatalf("readiness %+v", r)
	}
	if app := h.status("app"); app.State != "waiting" || app.WaitingFor[0] != "db" {
		t.Fatalf("app %+v", app)
	}
	ln := listen(t, addr)
	clk.Advance(time.Second)
	h.waitFor("app started by db's readiness", func() bool { return h.status("app").State == "running" })
	db = h.status("db")
	pid, appPID := db.PID, h.status("app").PID
	if db.State != "running" || !db.Ready || db.Probes.Readiness.State != "passing" {
		t.Fatalf("db %+v", db)
	}
	ln.Close()
	clk.Advance(time.Second)
	if st := h.status("db"); st.State != "running" {
		t.Fatalf("one failure of two made db %s", st.State)
	}
	clk.Advance(time.Second)
	h.waitFor("db not ready", func() bool { return h.status("db").State == "starting" })
	db, app := h.status("db"), h.status("app")
	if db.PID != pid || db.Ready || app.State != "running" || app.PID != appPID {
		t.Fatalf("after readiness lost: db %+v app %+v", db, app)
	}
	listen(t, addr)
	clk.Advance(time.Second)
	h.waitFor("db ready again", func() bool { return h.status("db").State == "running" })
	if h.status("db").PID != pid {
		t.Fatal("db was restarted")
	}
}

// A liveness probe failing failure_threshold times kills the run and
// counts a failure, through backoff and into the open breaker.
func TestLivenessThroughTheBreaker(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h := startSup(t, `
[programs.hung]
command = ["/bin/sleep", "1000"]
min_uptime = "1h"
backoff_initial = "1s"
breaker = { max_failures = 2, reset_timeout = "1m" }
[programs.hung.liveness]
exec = ["/bin/sh", "-c", "echo stuck; exit 1"]
interval = "1s"
failure_threshold = 2
initial_delay = "3s"
`, clk)
	for run := 1; run <= 2; run++ {
		h.waitFor("running", func() bool { return h.status("hung").State == "running" })
		clk.Advance(2 * time.Second) // before initial_delay: no attempt
		if st := h.status("hung"); st.Probes.Liveness.Attempts != uint64(2*(run-1)) {
			t.Fatalf("run %d: attempts before initial_delay: %+v", run, st.Probes.Liveness)
		}
		clk.Advance(time.Second) // first attempt
		clk.Advance(time.Second) // second: failing
		want := "backoff"
		if run == 2 {
			want = "open"
		}
		h.waitFor("killed: "+want, func() bool { return h.status("hung").State == want })
		st := h.status("hung")
		if st.Stats.Failures != uint64(run) || st.LastExit == nil || st.LastExit.Signal != "SIGKILL" {
			t.Fatalf("run %d: %+v", run, st)
		}
		if l := st.Probes.Liveness; l.State != "unknown" || l.LastError != "exit 1: stuck" || l.Failures != uint64(2*run) {
			t.Fatalf("run %d: liveness %+v", run, l)
		}
		if run == 1 {
			clk.Advance(time.Second) // the backoff
		}
	}
	found := false
	for _, e := range h.logs.FilterMessage("failed").All() {
		if r, _ := e.ContextMap()["reason"].(string); strings.HasPrefix(r, "liveness failed: 2 consecutive failures, last: exit 1: stuck") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no failure naming the liveness probe; log:\n%s", h.dump())
	}
}

// Liveness waits for readiness: with a readiness probe that never passes,
// the liveness probe makes no attempt.
func TestLivenessWaitsForReadiness(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	h := startSup(t, `
[programs.web]
command = ["/bin/sleep", "1000"]
readiness = { tcp = "`+freePort(t)+`" }
liveness = { http = "`+srv.URL+`/live", interval = "1s", failure_threshold = 1 }
`, clk)
	h.waitFor("starting", func() bool { return h.status("web").State == "starting" })
	for i := 0; i < 5; i++ {
		clk.Advance(time.Second)
	}
	st := h.status("web")
	if hits.Load() != 0 || st.Probes.Liveness.Attempts != 0 || st.Probes.Readiness.Attempts < 5 || st.Stats.Failures != 0 {
		t.Fatalf("liveness probed a program not ready: %d hits, %+v", hits.Load(), st.Probes)
	}
}

// action = "log": a failing HTTP liveness probe is logged, the program
// keeps running, and status and metrics show the failures.
func TestLivenessLogAndMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("overloaded"))
	}))
	defer srv.Close()
	h := startSup(t, `
[programs.web]
command = ["/bin/sleep", "1000"]
liveness = { http = "`+srv.URL+`/healthz", interval = "50ms", failure_threshold = 2, action = "log" }
`, nil)
	h.waitFor("three failures", func() bool {
		p := h.status("web").Probes
		return p != nil && p.Liveness.Failures >= 3
	})
	st := h.status("web")
	if st.State != "running" || st.Stats.Failures != 0 || st.Restarts != 0 {
		t.Fatalf("action = log killed it: %+v", st)
	}
	l := st.Probes.Liveness
	if l.State != "failing" || l.LastError != "HTTP 503 Service Unavailable: overloaded" || l.LastDurationSeconds <= 0 || l.LastAt == nil {
		t.Fatalf("liveness %+v", l)
	}
	if n := h.logs.FilterMessage("liveness: failed (action = log)").Len(); n != 1 {
		t.Fatalf("%d log entries of the failing probe, want one per change; log:\n%s", n, h.dump())
	}
	var b bytes.Buffer
	writeMetrics(&b, []control.ProgramStatus{st})
	m := b.String()
	for _, want := range []string{
		`supervise_probe_state{program="web",instance="web",probe="liveness",state="failing"} 1`,
		`# TYPE supervise_probe_failures_total counter`,
		`supervise_probe_failures_total{program="web",instance="web",probe="liveness"} `,
		`# TYPE supervise_probe_duration_seconds summary`,
		`supervise_probe_duration_seconds_count{program="web",instance="web",probe="liveness"} `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	var plain bytes.Buffer
	writeMetrics(&plain, []control.ProgramStatus{{Name: "x"}})
	if strings.Contains(plain.String(), "probe") {
		t.Errorf("probe metrics without probes:\n%s", plain.String())
	}
}

// A log_line readiness probe passes on the first matching line of either
// stream; the lines are still logged.
func TestLogLineReadiness(t *testing.T) {
	h := startSup(t, `
[programs.srv]
command = ["/bin/sh", "-c", "echo booting; sleep 1; echo 'listening on :8080' >&2; exec sleep 1000"]
readiness = { log_line = "listening on :\\d+" }
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = ["srv"]
`, nil)
	if st := h.status("srv"); st.State != "starting" {
		t.Fatalf("srv %+v", st)
	}
	h.waitFor("app started", func() bool { return h.status("app").State == "running" })
	srv := h.status("srv")
	if srv.State != "running" || srv.Probes.Readiness.Kind != "log_line" || srv.Probes.Readiness.State != "passing" {
		t.Fatalf("srv %+v", srv)
	}
	if h.logs.FilterMessage("listening on :8080").Len() != 1 {
		t.Fatalf("the matching line was not logged:\n%s", h.dump())
	}
}

// An exec readiness probe runs in the program's directory with its
// environment; a probe that cannot be spawned is a failed attempt.
func TestExecProbeEnvironment(t *testing.T) {
	h := startSup(t, `
[programs.db]
command = ["/bin/sleep", "1000"]
directory = "$DIR"
environment = { PROBE_FILE = "ready.flag" }
readiness = { exec = "test -f \"$PROBE_FILE\"", interval = "50ms" }
[programs.broken]
command = ["/bin/sleep", "1000"]
readiness = { exec = ["/no/such/probe"], interval = "50ms", failure_threshold = 1 }
`, nil)
	h.waitFor("broken's probe failed", func() bool {
		p := h.status("broken").Probes
		return p != nil && p.Readiness.State == "failing"
	})
	if e := h.status("broken").Probes.Readiness.LastError; e != "spawn: exec /no/such/probe: no such file or directory" {
		t.Fatalf("last error %q", e)
	}
	time.Sleep(200 * time.Millisecond)
	if st := h.status("db"); st.State != "starting" {
		t.Fatalf("db %+v", st)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "ready.flag"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.waitFor("db ready", func() bool { return h.status("db").State == "running" })
}
