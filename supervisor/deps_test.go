package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// depends_on conditions (SPEC §12): app waits for migrate to complete,
// for db to be ready and for cache to be started (cache, with notify =
// true and no READY=1, is never ready); the completed one-shot task is
// exited and does not end the supervisor.
func TestDependencyConditions(t *testing.T) {
	h := startSup(t, `
[programs.migrate]
command = ["/bin/sh", "-c", "sleep 1; touch $DIR/migrated"]
restart = "never"
[programs.db]
command = ["/bin/sleep", "1000"]
readiness = { exec = "test -f $DIR/db-ready", interval = "50ms" }
[programs.cache]
command = ["/bin/sleep", "1000"]
notify = true
[programs.app]
command = ["/bin/sh", "-c", "test -f $DIR/migrated && exec sleep 1000"]
depends_on = { migrate = "completed", db = "ready", cache = "started" }
`, nil)
	app := h.status("app")
	if app.State != "waiting" || strings.Join(app.WaitingFor, ",") != "db,migrate" {
		t.Fatalf("app at start (cache is started, db not ready, migrate running): %+v", app)
	}
	h.waitFor("migrate completed", func() bool { return h.status("migrate").State == "exited" })
	if app := h.status("app"); app.State != "waiting" || strings.Join(app.WaitingFor, ",") != "db" || app.Error != "" {
		t.Fatalf("app once migrate completed: %+v", app)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "db-ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.waitFor("app running", func() bool { return h.status("app").State == "running" })
	time.Sleep(200 * time.Millisecond)
	select {
	case code := <-h.done:
		t.Fatalf("the supervisor exited (%d) with a completed task and programs running", code)
	default:
	}
	if st := h.status("migrate"); st.State != "exited" || st.LastExit == nil || st.LastExit.Code != 0 {
		t.Fatalf("migrate %+v", st)
	}
}

// A completed dependency that fails for good keeps its dependent waiting,
// with the reason in status; after a fix and `reset` it completes and the
// dependent starts.
func TestFailedTaskKeepsDependentsWaiting(t *testing.T) {
	h := startSup(t, `
[programs.migrate]
command = ["/bin/sh", "-c", "test -f $DIR/fixed"]
restart = "never"
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = { migrate = "completed" }
`, nil)
	h.waitFor("migrate failed", func() bool { return h.status("migrate").State == "exited" })
	h.waitFor("the reason in status", func() bool { return h.status("app").Error != "" })
	app := h.status("app")
	if app.State != "waiting" || !strings.Contains(app.Error, "dependency migrate failed for good") ||
		!strings.Contains(app.Error, "last exit 1") || !strings.Contains(app.Error, "waiting until it is completed") {
		t.Fatalf("app %+v", app)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := h.ctl(control.CmdReset, "migrate"); !r.OK {
		t.Fatalf("reset: %+v", r)
	}
	h.waitFor("app running", func() bool { return h.status("app").State == "running" })
	if app := h.status("app"); app.Error != "" || len(app.WaitingFor) != 0 {
		t.Fatalf("app %+v", app)
	}
}

// When every program has exited, the supervisor still exits: a task that
// completed and a dependent that ran after it.
func TestEveryProgramExited(t *testing.T) {
	h := startSup(t, `
[programs.migrate]
command = ["/bin/true"]
restart = "never"
[programs.report]
command = ["/bin/true"]
restart = "never"
depends_on = { migrate = "completed" }
`, nil)
	if code := h.exitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
