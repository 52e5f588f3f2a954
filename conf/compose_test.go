package conf

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// files writes a tree of files below a new directory and returns it.
func files(t *testing.T, tree map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range tree {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadErr loads path and returns the error text, failing when it loads.
func loadErr(t *testing.T, path string) string {
	t.Helper()
	cfg, err := Load(path)
	if err == nil {
		t.Fatalf("Load succeeded: %v", cfg.Order)
	}
	var list ErrorList
	if cfg != nil || !errors.As(err, &list) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load: %T %v, want an ErrorList and no config", err, err)
	}
	return err.Error()
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestIncludeReadsMatchesInLexicalOrder(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": `[supervisor]
include = ["conf.d/*.toml", "extra/one.toml"]
[defaults]
stdout = "./logs/out"
[programs.main1]
command = ["/bin/m"]
`,
		"conf.d/b.toml":          "[programs.b]\ncommand = [\"/bin/b\"]\n",
		"conf.d/a.toml":          "# a\n\n[programs.a2]\ncommand = [\"/bin/a\"]\n[programs.a1]\ncommand = [\"/bin/a\"]\ndirectory = \"./work\"\n",
		"conf.d/.hidden.toml":    "[supervisor]\n",
		"conf.d/notes.txt":       "not toml",
		"conf.d/dir.toml/x.toml": "[supervisor]\n",
		"extra/one.toml":         "[teardown.flush]\ncommand = \"sync\"\n",
	})
	main := filepath.Join(dir, "supervise.toml")
	cfg := mustLoad(t, main)
	if want := []string{"main1", "a2", "a1", "b"}; !slices.Equal(cfg.Order, want) {
		t.Fatalf("Order = %v, want %v", cfg.Order, want)
	}
	a1 := cfg.Programs["a1"]
	if a1.File != filepath.Join(dir, "conf.d/a.toml") || a1.Line != 5 || a1.Origin() != filepath.Join(dir, "conf.d/a.toml")+":5" {
		t.Errorf("a1 at %q line %d (%s)", a1.File, a1.Line, a1.Origin())
	}
	if a1.Directory != filepath.Join(dir, "conf.d/work") {
		t.Errorf("a1 directory %q: relative to its own file's directory", a1.Directory)
	}
	if a1.Stdout.Path != filepath.Join(dir, "logs/out") {
		t.Errorf("a1 stdout %q: [defaults] paths are relative to the main file", a1.Stdout.Path)
	}
	if p := cfg.Programs["main1"]; p.File != main || p.Line != 5 {
		t.Errorf("main1 at %s:%d", p.File, p.Line)
	}
	if s := cfg.Teardown["flush"]; s == nil || s.Origin() != filepath.Join(dir, "extra/one.toml")+":1" {
		t.Errorf("teardown flush = %+v", s)
	}

	src := cfg.Sources
	var kinds []string
	for _, f := range src.Files {
		kinds = append(kinds, f.Kind.String()+" "+strings.TrimPrefix(f.Path, dir+"/"))
	}
	if want := []string{"main supervise.toml", "include conf.d/a.toml", "include conf.d/b.toml", "include extra/one.toml"}; !slices.Equal(kinds, want) {
		t.Errorf("sources %q, want %q", kinds, want)
	}
	fs, pats := src.Watch()
	if !slices.Equal(fs, []string{main}) || !slices.Equal(pats, []string{filepath.Join(dir, "conf.d/*.toml"), filepath.Join(dir, "extra/one.toml")}) {
		t.Errorf("Watch = %q, %q", fs, pats)
	}
	before := src.Digest()
	if err := os.WriteFile(filepath.Join(dir, "conf.d/c.toml"), []byte("[programs.c]\ncommand = \"c\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg2 := mustLoad(t, main)
	if cfg2.Programs["c"] == nil || cfg2.Sources.Digest() == before {
		t.Errorf("a new match: programs %v, digest unchanged %v", cfg2.Order, cfg2.Sources.Digest() == before)
	}
	if again := mustLoad(t, main); again.Sources.Digest() != cfg2.Sources.Digest() {
		t.Error("the same files gave another digest")
	}

	// Parse follows nothing.
	data, _ := os.ReadFile(main)
	if p, err := Parse(main, data); err != nil || !slices.Equal(p.Order, []string{"main1"}) || p.Sources != nil {
		t.Errorf("Parse = %v, %v", p, err)
	}
}

func TestIncludeMissingDirectoryAndSelfMatch(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": "[supervisor]\ninclude = [\"*.toml\", \"nowhere/*.toml\"]\n[programs.a]\ncommand = \"a\"\n",
		"b.toml":         "[programs.b]\ncommand = \"b\"\n",
	})
	cfg := mustLoad(t, filepath.Join(dir, "supervise.toml"))
	if !slices.Equal(cfg.Order, []string{"a", "b"}) {
		t.Errorf("Order = %v: the main file matched by its own pattern is read once", cfg.Order)
	}
	if len(cfg.Sources.Patterns) != 2 {
		t.Errorf("patterns %q: a missing directory is still watched", cfg.Sources.Patterns)
	}
}

func TestIncludedFileHoldsOnlyProgramsTeardownAndHooks(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": "[supervisor]\ninclude = [\"conf.d/*.toml\"]\n",
		"conf.d/x.toml": `[programs.ok]
command = "x"

[supervisor]
log_level = "debug"
[defaults]
restart = "always"
[hooks.notify]
command = "x"
stray = 1
[metrics.x]
port = 1
`,
	})
	x := filepath.Join(dir, "conf.d/x.toml")
	got := loadErr(t, filepath.Join(dir, "supervise.toml"))
	const allowed = " is not allowed in an included file, which may hold only [programs.*], [teardown.*] and [hooks.*] tables"
	want := strings.Join([]string{
		x + ":4: [supervisor]" + allowed,
		x + ":6: [defaults]" + allowed,
		// A hook is decoded there like in the main file.
		x + `:10: hooks.notify: unknown key "stray"`,
		x + ":11: [metrics]" + allowed,
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if err := os.WriteFile(x, []byte("stray = 1\n[programs.ok]\ncommand = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loadErr(t, filepath.Join(dir, "supervise.toml")); got != x+`:1: key "stray"`+allowed {
		t.Errorf("top-level key: %s", got)
	}
}

func TestIncludeDuplicatesNameBothFiles(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": "[supervisor]\ninclude = [\"conf.d/*.toml\"]\n\n[programs.web]\ncommand = \"w\"\n[teardown.flush]\ncommand = \"f\"\n",
		"conf.d/a.toml":  "[programs.api]\ncommand = \"a\"\n\n[programs.web]\ncommand = \"w2\"\n",
		"conf.d/b.toml":  "[programs.api]\ncommand = \"a2\"\n[teardown.flush]\ncommand = \"f2\"\n[teardown.api2]\ncommand = \"x\"\n[teardown.web]\ncommand = \"x\"\n",
	})
	main, a, b := filepath.Join(dir, "supervise.toml"), filepath.Join(dir, "conf.d/a.toml"), filepath.Join(dir, "conf.d/b.toml")
	got := loadErr(t, main)
	want := strings.Join([]string{
		a + `:4: programs.web: program "web" is already defined at ` + main + ":4",
		b + `:1: programs.api: program "api" is already defined at ` + a + ":1",
		b + `:3: teardown.flush: teardown step "flush" is already defined at ` + main + ":6",
		b + `:7: teardown.web: name "web" is also a program's; teardown steps and programs need distinct names (programs.web is at ` + main + ":4)",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestIncludeErrorsAcrossFiles(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": "[supervisor]\ninclude = [\"conf.d/*.toml\"]\n[programs.db]\ncommand = \"db\"\nrestart = \"sometimes\"\n",
		"conf.d/a.toml":  "[programs.app]\ncommand = \"app\"\ndepends_on = [\"db\", \"cache\"]\n",
		"conf.d/b.toml":  "[programs.c]\ncommand = [\n",
	})
	main, a, b := filepath.Join(dir, "supervise.toml"), filepath.Join(dir, "conf.d/a.toml"), filepath.Join(dir, "conf.d/b.toml")
	got := loadErr(t, main)
	lines := strings.Split(got, "\n")
	if len(lines) != 3 ||
		!strings.HasPrefix(lines[0], main+`:5: programs.db: key "restart": invalid value "sometimes"`) ||
		lines[1] != a+`:3: programs.app: key "depends_on": unknown program "cache"` ||
		!strings.HasPrefix(lines[2], b+":2: syntax error:") {
		t.Errorf("problems, in file order:\n%s", got)
	}

	// Across files, depends_on works both ways.
	os.WriteFile(main, []byte("[supervisor]\ninclude = [\"conf.d/*.toml\"]\n[programs.db]\ncommand = \"db\"\ndepends_on = [\"cache\"]\n"), 0o644)
	os.WriteFile(a, []byte("[programs.app]\ncommand = \"app\"\ndepends_on = [\"db\"]\n"), 0o644)
	os.WriteFile(b, []byte("[programs.cache]\ncommand = \"c\"\n"), 0o644)
	if cfg := mustLoad(t, main); !slices.Equal(cfg.Order, []string{"db", "app", "cache"}) {
		t.Errorf("Order %v", cfg.Order)
	}
	os.WriteFile(b, []byte("[programs.cache]\ncommand = \"c\"\ndepends_on = [\"app\"]\n"), 0o644)
	if got := loadErr(t, main); !strings.Contains(got, "dependency cycle") {
		t.Errorf("cycle across files: %s", got)
	}
}

func TestIncludePatterns(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{`"*/x.toml"`, `element 0: pattern "*/x.toml": only the last element of a pattern may hold wildcards`},
		{`"conf.d/["`, `element 0: pattern "conf.d/[": syntax error in pattern`},
		{`""`, `element 0: empty pattern`},
		{`"conf.d/"`, `element 0: pattern "conf.d/": no file name pattern after the directory`},
		{`"ok/*.toml", 3`, `element 1: expected a string, got integer`},
	} {
		_, err := Parse("s.toml", []byte("[supervisor]\ninclude = ["+tt.pattern+"]\n"))
		if want := `s.toml:2: supervisor: key "include": ` + tt.want; err == nil || err.Error() != want {
			t.Errorf("include = [%s]: %v\nwant %s", tt.pattern, err, want)
		}
	}
	dir := files(t, map[string]string{
		"supervise.toml": "[supervisor]\ninclude = [\"conf.d/*.toml\"]\n",
		"conf.d/a.toml":  "",
	})
	// An empty included file is allowed: it adds nothing.
	if cfg := mustLoad(t, filepath.Join(dir, "supervise.toml")); len(cfg.Order) != 0 {
		t.Errorf("programs %v", cfg.Order)
	}
	// A FIFO (or anything but a regular file) is refused, never waited on.
	os.Remove(filepath.Join(dir, "conf.d/a.toml"))
	if err := mkfifo(filepath.Join(dir, "conf.d/a.toml")); err != nil {
		t.Skip(err)
	}
	if got := loadErr(t, filepath.Join(dir, "supervise.toml")); !strings.Contains(got, "a.toml: cannot read the included file: ") ||
		!strings.Contains(got, "a.toml: not a regular file") {
		t.Errorf("FIFO: %s", got)
	}
}

func TestWarningsNameIncludedFile(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": "[supervisor]\ninclude = [\"conf.d/*.toml\"]\n[defaults]\ndirectory = \"/nonexistent-dir-for-test\"\n",
		"conf.d/a.toml":  "\n[programs.a]\ncommand = [\"/nonexistent/bin/a\"]\n",
	})
	cfg := mustLoad(t, filepath.Join(dir, "supervise.toml"))
	var got []string
	for _, w := range cfg.Warnings() {
		got = append(got, strings.TrimPrefix(w.String(), dir+"/"))
	}
	want := []string{
		`conf.d/a.toml:3: programs.a: key "command": /nonexistent/bin/a does not exist`,
		`supervise.toml:4: programs.a: key "directory": /nonexistent-dir-for-test does not exist`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }
