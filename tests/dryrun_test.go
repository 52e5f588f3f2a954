package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SPEC §16: `reload --dry-run` and `validate --diff` print the difference
// a reload would apply and apply nothing: every PID stays.
func TestReloadDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	// No file watch: the edit must not reload by itself while the test looks.
	c := config{supervisor: "watch_config = false", programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
[programs.worker]
command = ["/bin/sleep", "1000"]
[programs.gone]
command = ["/bin/sleep", "1000"]
`}
	s := newSupEnv(t, c, nil)
	before := map[string]int{}
	for _, n := range []string{"web", "worker", "gone"} {
		before[n] = s.running(t, n).PID
	}
	c.programs = `
[programs.web]
command = ["/bin/sleep", "1001"]
[programs.worker]
command = ["/bin/sleep", "1000"]
stop_timeout = "3s"
[programs.added]
command = ["/bin/sleep", "1000"]
`
	s.writeConfig(t, c)
	r := s.ctl(t, "reload", "--dry-run")
	if r.code != 0 {
		t.Fatalf("reload --dry-run: %s", r)
	}
	for _, want := range []string{"added added", "removed gone", "changed web", "command; restarts", "changed worker", "stop_timeout; in place"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run lacks %q:\n%s", want, r.stdout)
		}
	}
	js := s.ctl(t, "reload", "--dry-run", "--json")
	var d map[string]any
	if err := json.Unmarshal([]byte(js.stdout), &d); err != nil || d["added"] == nil {
		t.Fatalf("reload --dry-run --json: %v %s", err, js)
	}
	v := runBinEnv(t, childEnv(clientRace), 20e9, "validate", "--diff", "-c", s.cfg, "-s", s.sock)
	if v.code != 0 || !strings.Contains(v.stdout, "reload would apply:") || !strings.Contains(v.stdout, "removed gone") ||
		!strings.Contains(v.stdout, "supervise.toml:") {
		t.Fatalf("validate --diff: %s", v)
	}
	for n, pid := range before {
		if p := s.prog(t, n); p.PID != pid || p.Stats.Starts != 1 {
			t.Errorf("%s changed by a dry run: %s", n, describe(p))
		}
	}
	if _, ok := find(s.status(t), "added"); ok {
		t.Error("a dry run added a program")
	}
}

// A program with replicas, defined in an included file: validate shows
// it with its origin and instances, and the dry run of an edit of its
// count says what starts, from what runs (after a scale, its count).
func TestReloadDryRunReplicas(t *testing.T) {
	t.Parallel()
	c := config{supervisor: "watch_config = false\ninclude = [\"conf.d/*.toml\"]", programs: `
[programs.db]
command = ["/bin/sleep", "1000"]
`}
	s := newSupEnv(t, c, nil)
	if err := os.Mkdir(filepath.Join(s.dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	web := func(n int) {
		t.Helper()
		writeAtomic(t, filepath.Join(s.dir, "conf.d", "web.toml"), fmt.Sprintf(`
[programs.web]
command = ["/bin/sleep", "1000"]
replicas = %d
`, n))
	}
	s.running(t, "db")
	web(2)
	if r := s.ctl(t, "reload"); r.code != 0 || !strings.Contains(r.stdout, "added web:0, web:1") {
		t.Fatalf("reload: %s", r)
	}
	s.running(t, "web:1")
	origin := filepath.Join(s.dir, "conf.d", "web.toml") + ":2"
	v := runBinEnv(t, childEnv(clientRace), 20e9, "validate", "-c", s.cfg)
	if v.code != 0 || !strings.Contains(v.stdout, "ok, 2 programs, 3 instances") ||
		!strings.Contains(v.stdout, "replicas 2, restart on-failure, breaker 5/1m)  ["+origin+"]\n") ||
		!strings.Contains(v.stdout, "    web:1: /bin/sleep 1000\n") {
		t.Fatalf("validate: %s", v)
	}

	web(4)
	r := s.ctl(t, "reload", "--dry-run")
	if want := "changed web (" + origin + "): replicas 2 -> 4 (starts web:2, web:3); in place"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("reload --dry-run: %s\nwant %s", r, want)
	}
	js := s.ctl(t, "reload", "--dry-run", "--json")
	var d struct {
		Changed []struct {
			Name     string
			Restart  bool
			Replicas struct{ From, To int }
		}
	}
	if err := json.Unmarshal([]byte(js.stdout), &d); err != nil || len(d.Changed) != 1 || d.Changed[0].Restart ||
		d.Changed[0].Replicas.From != 2 || d.Changed[0].Replicas.To != 4 {
		t.Fatalf("reload --dry-run --json: %v %s", err, js)
	}
	if r := s.ctl(t, "scale", "web", "6"); r.code != 0 {
		t.Fatalf("scale: %s", r)
	}
	r = s.ctl(t, "reload", "--dry-run")
	if want := "replicas 6 -> 4 (stops web:4, web:5); in place"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("reload --dry-run after scale: %s\nwant %s", r, want)
	}
}
