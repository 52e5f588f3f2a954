package tests

import (
	"encoding/json"
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
