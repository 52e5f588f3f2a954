package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

func reloadPrograms(value string, extra string) string {
	return `
[programs.keep]
command = ["/bin/sleep", "1000"]

[programs.change]
command = ` + sh(`echo "$VALUE" > change.out; exec sleep 1000`) + `
environment = { VALUE = "` + value + `" }
` + extra
}

// Edits of the configuration file apply as a diff (SPEC §7).
func TestReloadOnEdit(t *testing.T) {
	t.Parallel()
	c := config{programs: reloadPrograms("1", `
[programs.remove]
command = ["/bin/sleep", "1000"]
`)}
	s := newSup(t, c)
	keep := s.running(t, "keep")
	change := s.running(t, "change")
	remove := s.running(t, "remove")
	waitFile(t, filepath.Join(s.dir, "change.out"), func(s string) bool { return s == "1\n" })

	c.programs = reloadPrograms("2", `
[programs.added]
command = ["/bin/sleep", "1000"]
`)
	s.writeConfig(t, c)
	added := s.running(t, "added")
	s.waitProg(t, "change", "restarted with a new pid", func(p control.ProgramStatus) bool {
		return p.State == "running" && p.PID > 0 && p.PID != change.PID
	})
	waitFile(t, filepath.Join(s.dir, "change.out"), func(s string) bool { return s == "2\n" })
	waitFor(t, "program remove to leave the status", waitDefault, func() (bool, string) {
		ps, err := s.tryStatus()
		if err != nil {
			return false, err.Error()
		}
		p, ok := find(ps, "remove")
		return !ok, describe(p)
	})
	waitGone(t, 5*time.Second, remove.PID, change.PID)
	if p := s.prog(t, "keep"); p.PID != keep.PID || p.Stats.Starts != 1 {
		t.Errorf("unchanged program keep was touched: before %s, after %s", describe(keep), describe(p))
	}
	for _, name := range []string{"keep", "change"} {
		if p := s.prog(t, name); p.Stats.Failures != 0 {
			t.Errorf("%s: a reload counted as a failure: %s", name, describe(p))
		}
	}

	// An invalid edit changes nothing and is logged with its line.
	before := s.status(t)
	writeAtomic(t, s.cfg, s.render(c)+"\n[programs.broken]\ncomand = [\"/bin/true\"]\n")
	waitFor(t, "the invalid edit to be logged", waitDefault, func() (bool, string) {
		return strings.Contains(s.logText(), `unknown key \"comand\"`) || strings.Contains(s.logText(), `unknown key "comand"`), ""
	})
	time.Sleep(300 * time.Millisecond)
	if s.exited() {
		t.Fatalf("supervisor exited (code %d) after an invalid edit", s.code)
	}
	after := s.status(t)
	if len(after) != len(before) {
		t.Errorf("invalid edit changed the program list: %d programs, then %d", len(before), len(after))
	}
	for _, b := range before {
		a, ok := find(after, b.Name)
		if !ok || a.PID != b.PID || a.Stats.Starts != b.Stats.Starts {
			t.Errorf("invalid edit changed %s: before %s, after %s", b.Name, describe(b), describe(a))
		}
	}
	if _, ok := find(after, "broken"); ok {
		t.Errorf("program broken of the invalid edit appeared")
	}
	if a, _ := find(after, "added"); a.PID != added.PID {
		t.Errorf("added changed pid after the invalid edit")
	}
	if !strings.Contains(s.logText(), "supervise.toml:") {
		t.Errorf("the logged config error does not name the file and line")
	}
}

// With watch_config = false, edits apply on `supervise reload` and SIGHUP.
func TestReloadCommand(t *testing.T) {
	t.Parallel()
	c := config{supervisor: "watch_config = false", programs: reloadPrograms("1", "")}
	s := newSup(t, c)
	keep := s.running(t, "keep")
	s.running(t, "change")

	c.programs = reloadPrograms("1", `
[programs.viacmd]
command = ["/bin/sleep", "1000"]
`)
	s.writeConfig(t, c)
	time.Sleep(1 * time.Second)
	if _, ok := find(s.status(t), "viacmd"); ok {
		t.Errorf("an edit applied by itself with watch_config = false")
	}
	if r := s.ctl(t, "reload"); r.code != 0 {
		t.Fatalf("reload: %s", r)
	}
	s.running(t, "viacmd")

	c.programs = reloadPrograms("1", `
[programs.viacmd]
command = ["/bin/sleep", "1000"]

[programs.viahup]
command = ["/bin/sleep", "1000"]
`)
	s.writeConfig(t, c)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.running(t, "viahup")

	// An invalid file on reload: the command reports it, nothing changes.
	before := s.status(t)
	if err := os.WriteFile(s.cfg, []byte("[programs.keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.ctl(t, "reload")
	if r.code == 0 {
		t.Errorf("reload of an invalid file: %s, want a non-zero exit", r)
	}
	if !strings.Contains(r.stdout+r.stderr, "supervise.toml") {
		t.Errorf("reload of an invalid file: %s, want the error naming the file", r)
	}
	after := s.status(t)
	for _, b := range before {
		if a, ok := find(after, b.Name); !ok || a.PID != b.PID {
			t.Errorf("invalid reload changed %s", b.Name)
		}
	}
	if p := s.prog(t, "keep"); p.PID != keep.PID {
		t.Errorf("keep changed pid over reloads")
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}
