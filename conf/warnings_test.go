package conf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"tool": 0o755, "plain": 0o644} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	file := filepath.Join(dir, "supervise.toml")
	src := strings.ReplaceAll(`[defaults]
user = "no-such-user-supervise"

[programs.ok]
command = ["tool", "x"]
directory = "$DIR"
user = "root"
group = "0"
stdout = "$DIR/ok.log"

[programs.missing]
command = ["$DIR/nope"]
directory = "$DIR/gone"
group = "no-such-group-supervise"
stderr = "$DIR/gone/err.log"

[programs.plain]
command = ["$DIR/bin/plain"]
directory = "$DIR/bin/tool"
user = 4000000
[programs.lookup]
command = "exec nothing-here"
user = "root"
[programs.envpath]
command = ["plain"]
environment = { PATH = "$DIR/elsewhere" }
user = "root"
[programs.relative]
command = ["./bin/tool"]
directory = "$DIR"
user = "root"
[programs.relbad]
command = ["./bin/nope"]
directory = "$DIR"
user = "root"
readiness = { exec = ["./bin/tool"] }
[programs.relbad.liveness]
exec = ["nope-probe", "-x"]

[teardown.t1]
command = ["$DIR/nope"]
`, "$DIR", dir)
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings() {
		got = append(got, w.String())
	}
	want := []string{
		file + `:12: programs.missing: key "command": ` + dir + `/nope does not exist`,
		file + `:13: programs.missing: key "directory": ` + dir + `/gone does not exist`,
		file + `:2: programs.missing: key "user": unknown user "no-such-user-supervise"`,
		file + `:14: programs.missing: key "group": unknown group "no-such-group-supervise"`,
		file + `:15: programs.missing: key "stderr": the directory of ` + dir + `/gone/err.log: ` + dir + `/gone does not exist`,
		file + `:18: programs.plain: key "command": ` + dir + `/bin/plain is not executable`,
		file + `:19: programs.plain: key "directory": ` + dir + `/bin/tool is not a directory`,
		file + `:25: programs.envpath: key "command": "plain" is not found in PATH (` + dir + `/elsewhere)`,
		file + `:33: programs.relbad: key "command": ` + dir + `/bin/nope does not exist`,
		file + `:38: programs.relbad: key "liveness.exec": "nope-probe" is not found in PATH (` + dir + `/bin)`,
		file + `:41: teardown.t1: key "command": ` + dir + `/nope does not exist`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	w := cfg.Warnings()[0]
	if w.File != file || w.Line != 12 || w.Program != "programs.missing" || w.Key != "command" {
		t.Errorf("warning fields %+v", w)
	}
}

// "/bin/sh" is an absolute command[0]: a string command is checked through
// it, and nothing is reported for a good file.
func TestNoWarnings(t *testing.T) {
	cfg := mustParse(t, "[programs.a]\ncommand = \"sleep 1\"\n[programs.b]\ncommand = [\"/bin/sh\", \"-c\", \"x\"]\nuser = \"0\"\n")
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("Warnings of a good file: %v", w)
	}
	if w := Default().Warnings(); len(w) != 0 {
		t.Errorf("Warnings of Default: %v", w)
	}
	c := Default()
	if err := c.AddCommand([]string{"/no/such/binary"}); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 1 || w[0].String() != `programs.main: key "command": /no/such/binary does not exist` {
		t.Errorf("Warnings of a missing command: %v", w)
	}
}
