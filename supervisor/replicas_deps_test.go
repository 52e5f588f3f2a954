package supervisor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/supervise/supervise/control"
)

// Conditions on a program with replicas hold once every instance meets
// them; on NAME:i once that instance does. A one-shot task's instance
// that fails for good keeps the dependents waiting, saying which.
func TestReplicasDependencyConditions(t *testing.T) {
	h := startSup(t, `
[programs.migrate]
command = ["/bin/sh", "-c", "while [ ! -e $DIR/go-{replica} ]; do sleep 0.02; done; exit $(cat $DIR/go-{replica})"]
replicas = 2
restart = "never"

[programs.api]
command = ["/bin/sleep", "1000"]
depends_on = { migrate = "completed" }

[programs.one]
command = ["/bin/sleep", "1000"]
depends_on = { "migrate:1" = "completed" }

[programs.watcher]
command = ["/bin/sleep", "1000"]
depends_on = { migrate = "started" }
`, nil)
	h.waitFor("watcher running once every instance started", func() bool { return h.status("watcher").State == "running" })
	if api, one := h.status("api"), h.status("one"); api.State != "waiting" || one.State != "waiting" {
		t.Fatalf("api %+v\none %+v", api, one)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(h.dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go-1", "0")
	h.waitFor("one running once migrate:1 completed", func() bool { return h.status("one").State == "running" })
	if api := h.status("api"); api.State != "waiting" || !slices.Equal(api.WaitingFor, []string{"migrate"}) || api.Error != "" {
		t.Fatalf("api with migrate:0 still running: %+v", api)
	}
	write("go-0", "3")
	h.waitFor("api held by migrate:0", func() bool {
		return strings.Contains(h.status("api").Error, "dependency migrate:0 failed for good (no restart is due, last exit 3)")
	})
	if api := h.status("api"); api.State != "waiting" {
		t.Fatalf("api %+v", api)
	}
	write("go-0", "0")
	if r := h.ctl(control.CmdStart, "migrate:0"); !r.OK {
		t.Fatalf("start migrate:0: %+v", r)
	}
	h.waitFor("api running once every instance completed", func() bool { return h.status("api").State == "running" })
}

// A program with no instance meets no condition, and says so; scaled up,
// its instances do.
func TestDependencyOnNoInstances(t *testing.T) {
	h := startSup(t, `
[programs.web]
command = ["/bin/sleep", "1000"]
replicas = 0
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = { web = "started" }
`, nil)
	h.waitFor("app held", func() bool {
		return strings.Contains(h.status("app").Error, "dependency web has no instances")
	})
	if r := h.scale("web", 2); !r.OK {
		t.Fatalf("scale: %+v", r)
	}
	h.waitFor("app running", func() bool { return h.status("app").State == "running" })
}
