package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// newSupFiles is newSup with more files (relative path -> text, "$DIR"
// replaced by the test directory) written before the supervisor starts.
func newSupFiles(t *testing.T, c config, files map[string]string) *sup {
	t.Helper()
	sourcesOnce.Do(func() { readSources(moduleRoot) })
	s := &sup{dir: t.TempDir(), pids: map[int]bool{}, done: make(chan struct{})}
	s.sock = filepath.Join(shortDir(t), "ctl.sock")
	s.cfg = filepath.Join(s.dir, "supervise.toml")
	s.log = filepath.Join(s.dir, "supervise.log")
	for name, text := range files {
		s.put(t, name, text)
	}
	if err := os.WriteFile(s.cfg, []byte(s.render(c)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start(t)
	return s
}

// put writes a file below the test directory atomically, "$DIR" replaced.
func (s *sup) put(t *testing.T, name, text string) {
	t.Helper()
	path := filepath.Join(s.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, path, strings.ReplaceAll(text, "$DIR", s.dir))
}

// waitRemoved waits until the program has left the status.
func (s *sup) waitRemoved(t *testing.T, name string) {
	t.Helper()
	waitFor(t, name+" to leave the status", waitDefault, func() (bool, string) {
		ps, err := s.tryStatus()
		if err != nil {
			return false, err.Error()
		}
		p, ok := find(ps, name)
		return !ok, describe(p)
	})
}

func sleeper(name string) string {
	return "[programs." + name + "]\ncommand = [\"/bin/sleep\", \"1000\"]\n"
}

// Included files come and go while the supervisor runs (SPEC §16): every
// way of adding, editing, renaming or removing a match is a reload, and a
// program the edit does not touch keeps its pid.
func TestIncludeGlobAddAndRemoveWhileRunning(t *testing.T) {
	t.Parallel()
	c := config{supervisor: `include = ["conf.d/*.toml"]`, programs: sleeper("keep")}
	s := newSup(t, c)
	keep := s.running(t, "keep")

	// Into a directory that did not exist, by an atomic save.
	s.put(t, "conf.d/a.toml", sleeper("a"))
	a := s.running(t, "a")
	// Written in place: applied once its writer closed it.
	f, err := os.OpenFile(filepath.Join(s.dir, "conf.d/a.toml"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("[programs.a]\n")
	time.Sleep(300 * time.Millisecond)
	if p := s.prog(t, "a"); p.PID != a.PID {
		t.Fatalf("a half-written included file was applied: %s", describe(p))
	}
	f.WriteString("command = [\"/bin/sleep\", \"1001\"]\n")
	f.Close()
	s.waitProg(t, "a", "restarted with its new command", func(p control.ProgramStatus) bool {
		return p.State == "running" && p.PID > 0 && p.PID != a.PID
	})
	// Created by a plain write.
	if err := os.WriteFile(filepath.Join(s.dir, "conf.d/b.toml"), []byte(sleeper("b")), 0o644); err != nil {
		t.Fatal(err)
	}
	b := s.running(t, "b")
	// Renamed out of the pattern, then back.
	if err := os.Rename(filepath.Join(s.dir, "conf.d/b.toml"), filepath.Join(s.dir, "conf.d/b.toml.off")); err != nil {
		t.Fatal(err)
	}
	s.waitRemoved(t, "b")
	waitGone(t, 5*time.Second, b.PID)
	if err := os.Rename(filepath.Join(s.dir, "conf.d/b.toml.off"), filepath.Join(s.dir, "conf.d/b.toml")); err != nil {
		t.Fatal(err)
	}
	s.running(t, "b")
	// Removed.
	if err := os.Remove(filepath.Join(s.dir, "conf.d/a.toml")); err != nil {
		t.Fatal(err)
	}
	s.waitRemoved(t, "a")
	// A match that is a dot-file or another name is no program.
	s.put(t, "conf.d/.c.toml", sleeper("c"))
	s.put(t, "conf.d/c.toml.bak", sleeper("c"))
	s.put(t, "conf.d/d.toml", sleeper("d"))
	s.running(t, "d")
	if _, ok := find(s.status(t), "c"); ok {
		t.Error("a dot-file or a .bak file was included")
	}
	if p := s.prog(t, "keep"); p.PID != keep.PID || p.Stats.Starts != 1 {
		t.Errorf("keep was touched: before %s, after %s", describe(keep), describe(p))
	}
}

// A bad included file is refused with its file and line, whether by
// validate, at a reload or by the watcher, and changes nothing.
func TestIncludeProblems(t *testing.T) {
	t.Parallel()
	c := config{supervisor: `include = ["conf.d/*.toml"]`, programs: sleeper("keep")}
	s := newSupFiles(t, c, map[string]string{"conf.d/a.toml": "\n" + sleeper("a")})
	keep, a := s.running(t, "keep"), s.running(t, "a")
	main, af := s.cfg, filepath.Join(s.dir, "conf.d/a.toml")

	// Defined twice: both files and lines named.
	s.put(t, "conf.d/b.toml", "# b\n"+sleeper("a"))
	r := runBin(t, 20*time.Second, "validate", "-c", main)
	want := filepath.Join(s.dir, "conf.d/b.toml") + `:2: programs.a: program "a" is already defined at ` + af + ":2"
	if r.code != 2 || !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("validate with a duplicate: %s, want exit 2 and %q", r, want)
	}
	waitFor(t, "the duplicate to be logged", waitDefault, func() (bool, string) {
		return strings.Contains(s.logText(), "is already defined at"), ""
	})

	// A [supervisor] table in an included file.
	os.Remove(filepath.Join(s.dir, "conf.d/b.toml"))
	s.put(t, "conf.d/c.toml", sleeper("c")+"\n[supervisor]\nlog_level = \"error\"\n")
	cf := filepath.Join(s.dir, "conf.d/c.toml")
	r = runBin(t, 20*time.Second, "validate", "-c", main)
	want = cf + ":4: [supervisor] is not allowed in an included file, which may hold only [programs.*], [teardown.*] and [hooks.*] tables"
	if r.code != 2 || !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("validate with [supervisor] included: %s, want exit 2 and %q", r, want)
	}
	r = s.ctl(t, "reload")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, cf+":4:") {
		t.Errorf("reload with [supervisor] included: %s, want an error naming %s:4", r, cf)
	}

	// A syntax error in an included file.
	s.put(t, "conf.d/c.toml", sleeper("c")+"[programs.broken\n")
	waitFor(t, "the syntax error to be logged", waitDefault, func() (bool, string) {
		return strings.Contains(s.logText(), cf+":4: syntax error"), ""
	})
	time.Sleep(200 * time.Millisecond)
	ps := s.status(t)
	if len(ps) != 2 {
		t.Errorf("invalid included files changed the program list: %d programs", len(ps))
	}
	for _, before := range []control.ProgramStatus{keep, a} {
		if p, _ := find(ps, before.Name); p.PID != before.PID {
			t.Errorf("invalid included files changed %s: before %s, after %s", before.Name, describe(before), describe(p))
		}
	}

	// Fixed, it applies.
	s.put(t, "conf.d/c.toml", sleeper("c"))
	s.running(t, "c")
	if p := s.prog(t, "keep"); p.PID != keep.PID {
		t.Errorf("keep restarted")
	}
}

// env_file (SPEC §16): files applied in order before environment, "-"
// for a file that may be missing, an edit restarting only the programs
// that read the file, a bad line refused with its file and line, and no
// value ever in the log or the status.
func TestEnvFile(t *testing.T) {
	t.Parallel()
	c := config{programs: `
[programs.web]
command = ` + sh(`echo "$TOKEN $LEVEL $PORT" > web.out; exec sleep 1000`) + `
env_file = ["web.env", "-web.local.env"]
environment = { PORT = "9090" }

[programs.other]
command = ["/bin/sleep", "1000"]
`}
	s := newSupFiles(t, c, map[string]string{
		"web.env": "# web\nexport TOKEN='hunter2'\nLEVEL=\"info\"\nPORT=8080\n",
	})
	out := filepath.Join(s.dir, "web.out")
	waitFile(t, out, func(v string) bool { return v == "hunter2 info 9090\n" })
	web, other := s.running(t, "web"), s.running(t, "other")

	// An edit restarts web only.
	s.put(t, "web.env", "TOKEN='hunter3'\nLEVEL=info\n")
	waitFile(t, out, func(v string) bool { return v == "hunter3 info 9090\n" })
	web2 := s.running(t, "web")
	if web2.PID == web.PID {
		t.Errorf("web was not restarted")
	}
	// The optional file appearing overrides the first.
	s.put(t, "web.local.env", "LEVEL=debug\n")
	waitFile(t, out, func(v string) bool { return v == "hunter3 debug 9090\n" })
	web3 := s.running(t, "web")

	// A bad line changes nothing and names its file and line.
	s.put(t, "web.env", "TOKEN='hunter4'\nLEVEL=\"unterminated\n")
	waitFor(t, "the bad line to be logged", waitDefault, func() (bool, string) {
		return strings.Contains(s.logText(), filepath.Join(s.dir, "web.env")+`:2: programs.web: the value of \"LEVEL\": no closing double quote on the line`), ""
	})
	r := runBin(t, 20*time.Second, "validate", "-c", s.cfg)
	if want := filepath.Join(s.dir, "web.env") + ":2: programs.web:"; r.code != 2 || !strings.Contains(r.stderr+r.stdout, want) {
		t.Errorf("validate with a bad env line: %s, want exit 2 and %q", r, want)
	}
	time.Sleep(200 * time.Millisecond)
	if p := s.prog(t, "web"); p.PID != web3.PID {
		t.Errorf("an invalid env file restarted web")
	}
	// Removing the optional file restarts web; removing the required one
	// is refused.
	s.put(t, "web.env", "TOKEN='hunter5'\n")
	os.Remove(filepath.Join(s.dir, "web.local.env"))
	waitFile(t, out, func(v string) bool { return v == "hunter5  9090\n" })
	web4 := s.running(t, "web")
	os.Remove(filepath.Join(s.dir, "web.env"))
	waitFor(t, "the missing env file to be logged", waitDefault, func() (bool, string) {
		return strings.Contains(s.logText(), filepath.Join(s.dir, "web.env")+` does not exist (a path written with a leading \"-\" may be missing)`), ""
	})
	if p := s.prog(t, "web"); p.PID != web4.PID {
		t.Errorf("a missing env file restarted web")
	}

	if p := s.prog(t, "other"); p.PID != other.PID || p.Stats.Starts != 1 {
		t.Errorf("other was touched by env edits: before %s, after %s", describe(other), describe(p))
	}
	st, err := json.Marshal(s.status(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", "hunter3", "hunter4", "hunter5"} {
		if strings.Contains(s.logText(), secret) || strings.Contains(string(st), secret) {
			t.Errorf("the value %s shows in the log or the status", secret)
		}
	}
	r = runBin(t, 20*time.Second, "validate", "-c", s.cfg)
	if r.code != 2 || !strings.Contains(r.stdout+r.stderr, "web.env does not exist") {
		t.Errorf("validate with a missing env file: %s", r)
	}
}
