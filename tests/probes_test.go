package tests

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// The probes and dependency conditions of SPEC §11 and §12, end to end:
// the real binary probes servers and listeners this test runs, and exec
// probes run as real processes.

// freeAddr returns a loopback address nothing listens on yet.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// accept listens on addr and accepts (and closes) connections until the
// test ends or close is called.
func accept(t *testing.T, addr string) (close func()) {
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
	return func() { ln.Close() }
}

// healthServer answers GET /healthz with 503 until healthy is set, then 200.
func healthServer(t *testing.T) (url string, healthy *atomic.Bool) {
	t.Helper()
	healthy = &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "warming up")
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/healthz", healthy
}

// An HTTP readiness probe gates the dependent: it waits while the probe
// fails, starts once it passes; status --json and the table show it.
func TestHTTPReadinessGatesADependent(t *testing.T) {
	t.Parallel()
	url, healthy := healthServer(t)
	s := newSup(t, config{programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
readiness = { http = ` + q(url) + `, interval = "100ms" }
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = ["web"]
`})
	web := s.waitProg(t, "web", "readiness failing", func(p control.ProgramStatus) bool {
		return p.Probes != nil && p.Probes.Readiness != nil && p.Probes.Readiness.State == "failing"
	})
	r := web.Probes.Readiness
	if web.State != "starting" || web.Ready || r.Kind != "http" || r.ConsecutiveFailures < 3 ||
		r.LastError != "HTTP 503 Service Unavailable: warming up" {
		t.Fatalf("web while its probe fails: %s", describe(web))
	}
	if app := s.prog(t, "app"); app.State != "waiting" || strings.Join(app.WaitingFor, ",") != "web" {
		t.Fatalf("app: %s", describe(app))
	}
	table := s.ctl(t, "status").stdout
	if !strings.Contains(table, "PROBES") || !strings.Contains(table, "ready fail") {
		t.Fatalf("the table does not show the probe:\n%s", table)
	}
	healthy.Store(true)
	s.running(t, "app")
	web = s.prog(t, "web")
	if web.State != "running" || !web.Ready || web.Probes.Readiness.State != "passing" || web.Probes.Readiness.ConsecutiveFailures != 0 {
		t.Fatalf("web once healthy: %s", describe(web))
	}
	if table := s.ctl(t, "status").stdout; !strings.Contains(table, "ready ok") {
		t.Fatalf("table:\n%s", table)
	}
}

// A TCP readiness probe passes once something listens.
func TestTCPReadiness(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	s := newSup(t, config{programs: `
[programs.db]
command = ["/bin/sleep", "1000"]
readiness = { tcp = ` + q(addr) + `, interval = "100ms", success_threshold = 2 }
`})
	s.waitProg(t, "db", "probed", func(p control.ProgramStatus) bool {
		return p.Probes != nil && p.Probes.Readiness.Failures >= 2 && p.State == "starting"
	})
	accept(t, addr)
	db := s.running(t, "db")
	if db.Probes.Readiness.State != "passing" || !strings.Contains(db.Probes.Readiness.LastError, "connection refused") {
		t.Fatalf("db: %s", describe(db))
	}
}

// Readiness lost after passing: an exec probe that passed and then fails
// failure_threshold times makes the program starting, with the same pid,
// and its dependent keeps running; it is ready again once it passes.
func TestReadinessLostAfterPassing(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.db]
command = ["/bin/sleep", "1000"]
[programs.db.readiness]
exec = "test -f db.ready"
interval = "100ms"
failure_threshold = 2
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = ["db"]
`})
	flag := filepath.Join(s.dir, "db.ready")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	app := s.running(t, "app")
	db := s.running(t, "db")
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	lost := s.waitProg(t, "db", "not ready", func(p control.ProgramStatus) bool { return p.State == "starting" })
	if lost.PID != db.PID || lost.Ready || lost.Restarts != 0 || lost.Probes.Readiness.State != "failing" ||
		!strings.HasPrefix(lost.Probes.Readiness.LastError, "exit 1") {
		t.Fatalf("db after its readiness was lost: %s", describe(lost))
	}
	if now := s.prog(t, "app"); now.State != "running" || now.PID != app.PID {
		t.Fatalf("app after db's readiness was lost: %s", describe(now))
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if again := s.running(t, "db"); again.PID != db.PID {
		t.Fatalf("db was restarted: %s", describe(again))
	}
}

// A failing liveness probe kills the program and counts a failure, through
// backoff, until the breaker opens; the failures show in status and in
// /metrics.
func TestLivenessRestartsThroughTheBreaker(t *testing.T) {
	t.Parallel()
	metrics := freeAddr(t)
	s := newSup(t, config{supervisor: "metrics = " + q(metrics), programs: `
[programs.hung]
command = ["/bin/sh", "-c", "echo $$ >> pids; exec sleep 1000"]
min_uptime = "1h"
backoff_initial = "100ms"
breaker = { max_failures = 2, reset_timeout = "1h" }
liveness = { tcp = ` + q(freeAddr(t)) + `, interval = "100ms", failure_threshold = 3 }
`})
	open := s.waitProg(t, "hung", "breaker open", func(p control.ProgramStatus) bool { return p.State == "open" })
	if open.Stats.Failures != 2 || open.Stats.Starts != 2 || open.Breaker.State != "open" ||
		open.LastExit == nil || open.LastExit.Signal != "SIGKILL" {
		t.Fatalf("hung: %s", describe(open))
	}
	l := open.Probes.Liveness
	if l.State != "unknown" || l.Failures < 6 || !strings.Contains(l.LastError, "connection refused") {
		t.Fatalf("liveness: %s", describe(open))
	}
	pids := strings.Fields(waitFile(t, filepath.Join(s.dir, "pids"), nil))
	if len(pids) != 2 {
		t.Fatalf("runs %v", pids)
	}
	found := false
	for _, e := range s.logLines() {
		if reason, _ := e["reason"].(string); e["msg"] == "failed" && strings.HasPrefix(reason, "liveness failed: 3 consecutive failures") {
			found = true
		}
	}
	if !found {
		t.Fatal("no failure naming the liveness probe in the log")
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`supervise_probe_failures_total{program="hung",instance="hung",probe="liveness"}`,
		`supervise_probe_duration_seconds_count{program="hung",instance="hung",probe="liveness"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

// A log_line readiness probe passes on the program's own output line.
func TestLogLineReadinessE2E(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.srv]
command = ["/bin/sh", "-c", "echo starting; sleep 1; echo 'ready to accept connections' >&2; exec sleep 1000"]
readiness = { log_line = "ready to accept" }
[programs.client]
command = ["/bin/sleep", "1000"]
depends_on = ["srv"]
`})
	s.running(t, "client")
	srv := s.prog(t, "srv")
	if srv.State != "running" || srv.Probes.Readiness.Kind != "log_line" || srv.Probes.Readiness.State != "passing" {
		t.Fatalf("srv: %s", describe(srv))
	}
}

// A one-shot migration gates the app (completed), a cache only needs to
// have started; the completed task is exited and the supervisor keeps
// running the others.
func TestOneShotTaskGatesAnApp(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.migrate]
command = "sleep 1; echo done > migrated"
restart = "never"
[programs.cache]
command = ["/bin/sleep", "1000"]
notify = true
[programs.app]
command = "test -f migrated && exec sleep 1000"
depends_on = { migrate = "completed", cache = "started" }
`})
	app := s.waitProg(t, "app", "waiting", func(p control.ProgramStatus) bool { return p.State == "waiting" })
	if strings.Join(app.WaitingFor, ",") != "migrate" {
		t.Fatalf("app while migrate runs (cache started, never ready): %s", describe(app))
	}
	s.running(t, "app")
	if m := s.prog(t, "migrate"); m.State != "exited" || m.LastExit == nil || m.LastExit.Code != 0 {
		t.Fatalf("migrate: %s", describe(m))
	}
	time.Sleep(300 * time.Millisecond)
	if s.exited() {
		t.Fatalf("the supervisor exited (%d) after the task completed", s.code)
	}
	if app := s.prog(t, "app"); app.State != "running" {
		t.Fatalf("app: %s", describe(app))
	}
}

// A failing migration keeps the app waiting with the reason in status;
// once fixed, `supervise reset migrate` completes it and the app starts.
func TestFailingTaskThenReset(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.migrate]
command = "test -f schema.ok || { echo 'schema error' >&2; exit 4; }"
restart = "never"
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = { migrate = "completed" }
`})
	s.waitProg(t, "migrate", "failed", func(p control.ProgramStatus) bool {
		return p.State == "exited" && p.LastExit != nil && p.LastExit.Code == 4
	})
	app := s.waitProg(t, "app", "the reason in status", func(p control.ProgramStatus) bool { return p.Error != "" })
	if app.State != "waiting" || !strings.Contains(app.Error, "dependency migrate failed for good") ||
		!strings.Contains(app.Error, "exit 4") {
		t.Fatalf("app: %s", describe(app))
	}
	time.Sleep(300 * time.Millisecond)
	if s.exited() {
		t.Fatalf("the supervisor exited (%d) with a program waiting", s.code)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "schema.ok"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.ctl(t, "reset", "migrate"); r.code != 0 {
		t.Fatalf("reset: %v", r)
	}
	s.running(t, "app")
	if app := s.prog(t, "app"); app.Error != "" {
		t.Fatalf("app: %s", describe(app))
	}
}

// A failing migration fixed by an edit of the file runs again on the
// reload, and its dependent starts once it completes.
func TestFailingTaskThenReload(t *testing.T) {
	t.Parallel()
	programs := func(cmd string) config {
		return config{programs: `
[programs.migrate]
command = ` + q(cmd) + `
restart = "never"
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = { migrate = "completed" }
`}
	}
	s := newSup(t, programs("exit 3"))
	s.waitProg(t, "app", "stuck", func(p control.ProgramStatus) bool { return p.Error != "" })
	s.writeConfig(t, programs("exit 0"))
	s.running(t, "app")
}

// Probe settings that cannot work are refused with the file and line.
func TestProbeConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte(`[programs.web]
command = ["/bin/web"]
[programs.web.readiness]
http = "http://127.0.0.1:8080/"
tcp = "127.0.0.1:8080"
[programs.db]
command = ["/bin/db"]
liveness = { log_line = "ok" }
[programs.app]
command = ["/bin/app"]
depends_on = { web = "healthy" }
`), 0o644)
	r := runBin(t, 20*time.Second, "validate", "-c", path)
	if r.code != 2 {
		t.Fatalf("validate: %v", r)
	}
	for _, want := range []string{
		"bad.toml:5: programs.web: readiness: a probe has one kind, this one has http and tcp",
		`bad.toml:8: programs.db: key "liveness.log_line": log_line is a readiness probe only`,
		`bad.toml:11: programs.app: key "depends_on.web": invalid value "healthy"`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("validate does not say %q:\n%s", want, r.stderr)
		}
	}
}
