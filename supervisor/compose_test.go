package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// writeFile replaces path atomically, as editors do.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// The dry run reads every file as a reload would and changes nothing.
func TestReloadDiffAppliesNothing(t *testing.T) {
	h := startSup(t, `
[supervisor]
socket = "off"
watch_config = false
include = ["conf.d/*.toml"]
[programs.keep]
command = ["/bin/sleep", "1000"]
[programs.web]
command = ["/bin/sh", "-c", "echo $TOKEN > token.out; exec sleep 1000"]
directory = "$DIR"
env_file = ["-web.env"]
`, nil)
	h.waitFor("running", func() bool { p := h.pids(); return p["keep"] != 0 && p["web"] != 0 })
	before := h.pids()
	writeFile(t, filepath.Join(h.dir, "web.env"), "TOKEN=new-secret\n")
	writeFile(t, filepath.Join(h.dir, "conf.d/api.toml"), "[programs.api]\ncommand = [\"/bin/sleep\", \"1000\"]\n")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := h.sup.ReloadDiff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Added) != 1 || d.Added[0].Name != "api" || d.Added[0].Origin != filepath.Join(h.dir, "conf.d/api.toml")+":1" ||
		len(d.Changed) != 1 || d.Changed[0].Name != "web" || !slices.Equal(d.Changed[0].Keys, []string{"env_file"}) || !d.Changed[0].Restart ||
		!slices.Equal(d.Unchanged, []string{"keep"}) || len(d.Removed) != 0 {
		t.Fatalf("diff:\n%s", d)
	}
	if strings.Contains(d.String(), "new-secret") {
		t.Errorf("the diff shows a value: %s", d)
	}
	time.Sleep(100 * time.Millisecond)
	if after := h.pids(); len(after) != 2 || after["keep"] != before["keep"] || after["web"] != before["web"] {
		t.Fatalf("the dry run changed programs: %v, then %v", before, after)
	}

	// An invalid included file: the dry run gives its error, and nothing
	// changes.
	writeFile(t, filepath.Join(h.dir, "conf.d/bad.toml"), "[supervisor]\nlog_level = \"debug\"\n")
	if _, err := h.sup.ReloadDiff(ctx); err == nil || !strings.Contains(err.Error(), "conf.d/bad.toml:1: [supervisor] is not allowed") {
		t.Fatalf("dry run of an invalid file: %v", err)
	}
	if r := h.ctl(control.CmdReload); r.OK || !strings.Contains(r.Error, "conf.d/bad.toml:1:") {
		t.Fatalf("reload of an invalid file: %+v", r)
	}
	if after := h.pids(); len(after) != 2 || after["web"] != before["web"] {
		t.Fatalf("an invalid included file changed programs: %v", after)
	}

	os.Remove(filepath.Join(h.dir, "conf.d/bad.toml"))
	if r := h.ctl(control.CmdReload); !r.OK || r.Message != "added api; changed web" {
		t.Fatalf("reload: %+v", r)
	}
	h.waitFor("web restarted with the new env", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.dir, "token.out"))
		return string(b) == "new-secret\n"
	})
	if after := h.pids(); after["keep"] != before["keep"] || after["web"] == before["web"] || after["api"] == 0 {
		t.Fatalf("after the reload: %v (before %v)", after, before)
	}
	if d, err := h.sup.ReloadDiff(ctx); err != nil || !d.Empty() {
		t.Fatalf("dry run after the reload: %v %v", d, err)
	}
}

// The watcher follows included files, include directories and env files,
// and after a reload the files the new configuration reads.
func TestWatchFollowsIncludedAndEnvFiles(t *testing.T) {
	h := startSup(t, `
[supervisor]
socket = "off"
include = ["conf.d/*.toml"]
[programs.keep]
command = ["/bin/sleep", "1000"]
`, nil)
	h.waitFor("keep running", func() bool { return h.pids()["keep"] != 0 })
	keep := h.pids()["keep"]
	main := filepath.Join(h.dir, "supervise.toml")

	// A new file in a directory that did not exist.
	writeFile(t, filepath.Join(h.dir, "conf.d/a.toml"), `[programs.a]
command = ["/bin/sh", "-c", "echo $V > a.out; exec sleep 1000"]
directory = "`+h.dir+`"
env_file = ["../a.env"]
`)
	// Its env file is missing: an error, nothing changes; creating it is
	// seen, since the failed read watches it.
	h.waitFor("the missing env file to be logged", func() bool {
		return len(h.logs.FilterMessage("reload: invalid configuration, keeping the running one").All()) > 0
	})
	if _, ok := h.pids()["a"]; ok {
		t.Fatal("a program with a missing env file started")
	}
	writeFile(t, filepath.Join(h.dir, "a.env"), "V=1\n")
	h.waitFor("a started", func() bool { return h.pids()["a"] != 0 })
	a := h.pids()["a"]

	// An env edit restarts only the program that reads it.
	writeFile(t, filepath.Join(h.dir, "a.env"), "V=2\n")
	h.waitFor("a restarted", func() bool { p := h.pids()["a"]; return p != 0 && p != a })
	h.waitFor("a has the new value", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.dir, "a.out"))
		return string(b) == "2\n"
	})
	if h.pids()["keep"] != keep {
		t.Fatal("an env edit restarted another program")
	}

	// A new pattern in the main file is watched after the reload.
	writeFile(t, main, "[supervisor]\nsocket = \"off\"\ninclude = [\"conf.d/*.toml\", \"more/*.toml\"]\n[programs.keep]\ncommand = [\"/bin/sleep\", \"1000\"]\n")
	h.waitFor("the new pattern watched", func() bool {
		return slices.Contains(h.watched(), "glob "+filepath.Join(h.dir, "more/*.toml"))
	})
	writeFile(t, filepath.Join(h.dir, "more/b.toml"), "[programs.b]\ncommand = [\"/bin/sleep\", \"1000\"]\n")
	h.waitFor("b started", func() bool { return h.pids()["b"] != 0 })

	// Removing an included file removes its programs.
	os.Remove(filepath.Join(h.dir, "conf.d/a.toml"))
	h.waitFor("a removed", func() bool { _, ok := h.pids()["a"]; return !ok })
	// The env file is no longer read: it is no longer watched.
	h.waitFor("a.env no longer watched", func() bool {
		return !slices.Contains(h.watched(), "file "+filepath.Join(h.dir, "a.env"))
	})
	want := []string{"file " + main, "glob " + filepath.Join(h.dir, "conf.d/*.toml"), "glob " + filepath.Join(h.dir, "more/*.toml")}
	if got := h.watched(); !slices.Equal(got, want) {
		t.Errorf("watched %q, want %q", got, want)
	}
	if h.pids()["keep"] != keep {
		t.Fatal("keep restarted")
	}
}

// watched lists what the configuration watch follows: "file PATH" and
// "glob PATTERN", sorted.
func (h *harness) watched() []string {
	cw := h.sup.watch
	cw.mu.Lock()
	defer cw.mu.Unlock()
	var out []string
	for k := range cw.regs {
		out = append(out, strings.Replace(k, "\x00", " ", 1))
	}
	slices.Sort(out)
	return out
}
