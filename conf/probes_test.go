package conf

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The probe tables of SPEC §11, as written there.
const specProbes = `
[programs.web]
command = ["/usr/bin/web", "--port", "8080"]

[programs.web.readiness]          # gates depends_on; the program is ` + "`starting`" + ` until it passes
http = "http://127.0.0.1:8080/healthz"
interval = "1s"                   # between attempts
timeout = "1s"                    # per attempt
initial_delay = "0s"              # after the spawn
success_threshold = 1             # consecutive passes to count as passing
failure_threshold = 3             # consecutive failures to count as failing

[programs.web.liveness]           # checked once the program is ready
exec = ["/usr/bin/web-ctl", "ping"]
interval = "10s"
failure_threshold = 3
action = "restart"                # restart | stop | log, as for the watchdog
`

func TestSpecProbes(t *testing.T) {
	web := mustParse(t, specProbes).Programs["web"]
	wantR := &Probe{HTTP: "http://127.0.0.1:8080/healthz", Interval: time.Second, Timeout: time.Second,
		SuccessThreshold: 1, FailureThreshold: 3}
	if !reflect.DeepEqual(web.Readiness, wantR) {
		t.Errorf("readiness = %+v, want %+v", web.Readiness, wantR)
	}
	wantL := &Probe{Exec: []string{"/usr/bin/web-ctl", "ping"}, Interval: 10 * time.Second, Timeout: time.Second,
		SuccessThreshold: 1, FailureThreshold: 3, Action: WatchdogRestart}
	if !reflect.DeepEqual(web.Liveness, wantL) {
		t.Errorf("liveness = %+v, want %+v", web.Liveness, wantL)
	}
	if web.Readiness.Kind() != ProbeHTTP || web.Liveness.Kind() != ProbeExec {
		t.Errorf("kinds %q %q", web.Readiness.Kind(), web.Liveness.Kind())
	}
	want := "web: /usr/bin/web --port 8080 (restart on-failure, breaker 5/1m, " +
		"readiness http http://127.0.0.1:8080/healthz every 1s, liveness exec /usr/bin/web-ctl ping every 10s)"
	if got := web.Summary(); got != want {
		t.Errorf("Summary() = %q\nwant        %q", got, want)
	}
}

func TestProbeKinds(t *testing.T) {
	c := mustParse(t, `
[defaults.liveness]
interval = "3s"
failure_threshold = 5
[programs.a]
command = ["/bin/a"]
readiness = { log_line = "listening on :\\d+" }
liveness = { tcp = "127.0.0.1:5432", action = "log" }
[programs.b]
command = ["/bin/b"]
stdout = "null"
readiness = { exec = "pg_isready -q", timeout = "250ms" }
liveness = { http = "https://localhost:8443/", http_verify_tls = true }`)
	a, b := c.Programs["a"], c.Programs["b"]
	if a.Readiness.Kind() != ProbeLogLine || !a.Readiness.LogLine.MatchString("listening on :8080") ||
		a.Readiness.Target() != `listening on :\d+` {
		t.Errorf("a readiness %+v", a.Readiness)
	}
	if a.Liveness.Kind() != ProbeTCP || a.Liveness.Action != WatchdogLog ||
		a.Liveness.Interval != 3*time.Second || a.Liveness.FailureThreshold != 5 {
		t.Errorf("a liveness %+v (with [defaults.liveness])", a.Liveness)
	}
	if got := b.Readiness.Exec; !slices.Equal(got, []string{"/bin/sh", "-c", "pg_isready -q"}) ||
		b.Readiness.Timeout != 250*time.Millisecond || b.Readiness.Interval != DefaultReadinessInterval {
		t.Errorf("b readiness %+v", b.Readiness)
	}
	if !b.Liveness.HTTPVerifyTLS || b.Liveness.Kind() != ProbeHTTP || b.Liveness.Interval != 3*time.Second {
		t.Errorf("b liveness %+v", b.Liveness)
	}
	if a.Readiness.Action != "" {
		t.Errorf("readiness has an action: %q", a.Readiness.Action)
	}
	if !strings.Contains(a.Summary(), `readiness log_line listening on :\d+,`) {
		t.Errorf("Summary %q", a.Summary())
	}
}

func TestDependsOnConditions(t *testing.T) {
	c := mustParse(t, `
[programs.db]
command = ["/bin/db"]
[programs.migrate]
command = ["/bin/migrate"]
restart = "never"
[programs.cache]
command = ["/bin/cache"]
[programs.app]
command = ["/bin/app"]
depends_on = { db = "ready", migrate = "completed", cache = "started" }
[programs.web]
command = ["/bin/web"]
depends_on = ["db", "app"]`)
	app, web := c.Programs["app"], c.Programs["web"]
	wantApp := []Dependency{{"cache", DependsStarted}, {"db", DependsReady}, {"migrate", DependsCompleted}}
	if !slices.Equal(app.DependsOn, wantApp) {
		t.Errorf("app depends_on %v, want %v", app.DependsOn, wantApp)
	}
	if want := []Dependency{{"db", DependsReady}, {"app", DependsReady}}; !slices.Equal(web.DependsOn, want) {
		t.Errorf("web depends_on %v, want %v (the list form means ready, in its order)", web.DependsOn, want)
	}
	if got := web.DependencyNames(); !slices.Equal(got, []string{"db", "app"}) {
		t.Errorf("names %q", got)
	}
	if !strings.Contains(app.Summary(), "depends on cache (started), db, migrate (completed)") {
		t.Errorf("Summary %q", app.Summary())
	}
	if got := dependsCodec.toml(app.DependsOn); got != `{ cache = "started", db = "ready", migrate = "completed" }` {
		t.Errorf("toml %s", got)
	}
	if got := dependsCodec.toml(web.DependsOn); got != `["db", "app"]` {
		t.Errorf("toml %s", got)
	}
	// The two forms of the same dependencies are the same setting.
	same := mustParse(t, `
[programs.db]
command = ["/bin/db"]
[programs.app]
command = ["/bin/app"]
depends_on = { db = "ready" }
[programs.web]
command = ["/bin/app"]
depends_on = ["db"]`)
	if d := same.Programs["app"].Diff(same.Programs["web"]); len(d) != 0 {
		t.Errorf("Diff between the two forms: %q", d)
	}
	// A program may depend on a one-shot task with restart = "on-failure".
	mustParse(t, `
[programs.migrate]
command = ["/bin/migrate"]
[programs.app]
command = ["/bin/app"]
depends_on = { migrate = "completed" }`)
}

// A log_line probe needs one stream in the log; either does.
func TestLogLineNeedsOneLoggedStream(t *testing.T) {
	mustParse(t, `
[programs.a]
command = ["/bin/a"]
stdout = "null"
readiness = { log_line = "ready" }`)
}
