package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlagSetInterleavesFlagsAndStopsAtDashDash(t *testing.T) {
	var cfg, level string
	var asJSON bool
	fs := newFlagSet()
	fs.str(&cfg, "c", "config")
	fs.str(&level, "log-level")
	fs.boolean(&asJSON, "json")
	pos, rest, err := fs.parse([]string{"web", "--json", "-c", "a.toml", "db", "--log-level=debug", "--", "sh", "-c", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pos, []string{"web", "db"}) || !reflect.DeepEqual(rest, []string{"sh", "-c", "x"}) {
		t.Fatalf("pos %q rest %q", pos, rest)
	}
	if cfg != "a.toml" || level != "debug" || !asJSON {
		t.Fatalf("cfg %q level %q json %v", cfg, level, asJSON)
	}
	for _, bad := range [][]string{{"--nope"}, {"-c"}, {"--json=maybe"}} {
		if _, _, err := fs.parse(bad); err == nil {
			t.Errorf("%q: no error", bad)
		} else if _, ok := err.(usageError); !ok {
			t.Errorf("%q: %T is not a usage error", bad, err)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--bogus"},
		{"start"},
		{"signal", "web"},
		{"reload", "extra"},
		{"run", "stray"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, errOut.String())
		}
		if !strings.Contains(errOut.String(), "usage:") {
			t.Errorf("%q: no usage in %q", args, errOut.String())
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "supervise ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "supervise validate") {
		t.Fatalf("help: %d %q", code, out.String())
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[programs.web]\ncommand = [\"/bin/true\"]\n[programs.db]\ncommand = \"sleep 1\"\n"), 0o644)
	var out bytes.Buffer
	if code := run([]string{"validate", "-c", good}, &out, &out); code != 0 {
		t.Fatalf("valid file: exit %d: %s", code, out.String())
	}
	if !strings.Contains(out.String(), "2 programs") || !strings.Contains(out.String(), "  web ") || !strings.Contains(out.String(), "  db ") {
		t.Fatalf("summary: %s", out.String())
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[programs.web]\ncomand = [\"/bin/true\"]\n"), 0o644)
	out.Reset()
	if code := run([]string{"validate", "-c", bad}, &out, &out); code != 2 {
		t.Fatalf("invalid file: exit %d", code)
	}
	want := bad + `:2: programs.web: unknown key "comand" (did you mean "command"?)`
	if !strings.Contains(out.String(), want) {
		t.Fatalf("got %q, want it to contain %q", out.String(), want)
	}
}

func TestParseDuration(t *testing.T) {
	for in, ok := range map[string]bool{"30s": true, "1.5": true, "0": false, "-1s": false, "abc": false, "1m30s": true} {
		if _, err := parseDuration(in); (err == nil) != ok {
			t.Errorf("%q: err %v", in, err)
		}
	}
}
