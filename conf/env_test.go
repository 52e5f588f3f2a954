package conf

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	src := "\ufeff# a comment\n" +
		"\n" +
		"PLAIN=value\n" +
		"  SPACED = some value   # a comment\n" +
		"export EXPORTED=1\n" +
		"export\tTABBED=2\n" +
		"export=3\n" +
		"EMPTY=\n" +
		"EMPTY_COMMENT= # nothing\n" +
		"HASH=a#b\n" +
		"LEADING_HASH=#x\n" +
		"SINGLE='lit $HOME \\n \"q\"' # after\n" +
		"DOUBLE=\"a\\nb\\t\\\"c\\\" \\\\ \\x $HOME\"\n" +
		"EMPTY_QUOTES=\"\"\n" +
		"a.b_C9=dotted\n" +
		"CRLF=yes\r\n" +
		"PLAIN=again\n" +
		"LAST=no newline"
	vars, perr := parseEnv([]byte(src))
	if perr != nil {
		t.Fatalf("line %d: %s", perr.line, perr.msg)
	}
	got := map[string]string{}
	var names []string
	for _, v := range vars {
		got[v.name] = v.value
		names = append(names, v.name)
	}
	want := map[string]string{
		"PLAIN": "again", "SPACED": "some value", "EXPORTED": "1", "TABBED": "2", "export": "3",
		"EMPTY": "", "EMPTY_COMMENT": "", "HASH": "a#b", "LEADING_HASH": "#x",
		"SINGLE": `lit $HOME \n "q"`, "DOUBLE": "a\nb\t\"c\" \\ \\x $HOME", "EMPTY_QUOTES": "",
		"a.b_C9": "dotted", "CRLF": "yes", "LAST": "no newline",
	}
	if !maps.Equal(got, want) {
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s = %q, want %q", k, got[k], want[k])
			}
		}
		t.Fatalf("got %q", got)
	}
	if names[0] != "PLAIN" || names[len(names)-2] != "PLAIN" {
		t.Errorf("order %q: every line in file order", names)
	}

	for _, tt := range []struct {
		src  string
		line int
		msg  string
	}{
		{"A=1\nhunter2\n", 2, `"hunter2" has no "=" and value`},
		{"A=1\n\n  secret value here\n", 3, `expected NAME=VALUE, with a NAME of letters, digits, "_" and "." not beginning with a digit`},
		{"1A=x\n", 1, `expected NAME=VALUE`},
		{"A-B=x\n", 1, `expected NAME=VALUE`},
		{"=x\n", 1, `expected NAME=VALUE`},
		{"export A\n", 1, `"A" has no "=" and value`},
		{"PASSWORD=\"s3cret\n", 1, `the value of "PASSWORD": no closing double quote on the line`},
		{"PASSWORD=\"s3cret\\\"\n", 1, `the value of "PASSWORD": no closing double quote on the line`},
		{"# x\nPASSWORD='s3cret\n", 2, `the value of "PASSWORD": no closing single quote on the line`},
		{"PASSWORD='s3' cret\n", 1, `the value of "PASSWORD": unexpected text after the closing quote (quote the whole value)`},
		{"PASSWORD=\"multi\nline\"\n", 1, `the value of "PASSWORD": no closing double quote on the line`},
		{"A=a\x00b\n", 1, `the line contains a NUL byte, which no environment can hold`},
	} {
		_, perr := parseEnv([]byte(tt.src))
		if perr == nil || perr.line != tt.line || !strings.HasPrefix(perr.msg, tt.msg) {
			t.Errorf("%q: %+v, want line %d %q", tt.src, perr, tt.line, tt.msg)
			continue
		}
		for _, secret := range []string{"s3", "cret", "secret value", "line\""} {
			if strings.Contains(perr.msg, secret) {
				t.Errorf("%q: the message %q shows the value", tt.src, perr.msg)
			}
		}
	}
}

// FuzzParseEnv checks that any input parses or gives a problem on one of
// its lines, never a panic; that parsed names are valid; and that the
// variables, written back double-quoted, parse to themselves.
func FuzzParseEnv(f *testing.F) {
	for _, s := range []string{
		"", "A=1\n", "export A='x y' # c\n", "A=\"a\\nb\\\\\\\"\"\n", "A= # c\nB=#c\n", "\ufeffA=1\r\n",
		"1=2", "A", "A='", "A=\"", "A='x' y", "export\n", "export =1", " \t#\n", "A=\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, perr := parseEnv(data)
		if perr != nil {
			if perr.line < 1 || perr.line > strings.Count(string(data), "\n")+1 || perr.msg == "" || vars != nil {
				t.Fatalf("problem %+v for %d lines, vars %v", perr, strings.Count(string(data), "\n")+1, vars)
			}
			return
		}
		var b strings.Builder
		for _, v := range vars {
			if v.name == "" || !isEnvNameByte(v.name[0], true) || strings.ContainsAny(v.name, "= \t\n\x00") {
				t.Fatalf("invalid name %q", v.name)
			}
			if strings.ContainsRune(v.value, 0) {
				t.Fatalf("NUL in %q", v.name)
			}
			r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)
			fmt.Fprintf(&b, "%s=\"%s\"\n", v.name, r.Replace(v.value))
		}
		back, perr := parseEnv([]byte(b.String()))
		if perr != nil || !slices.Equal(back, vars) {
			t.Fatalf("written back as\n%s\nparsed to %v, %+v; want %v", b.String(), back, perr, vars)
		}
	})
}

func TestEnvFile(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": `[defaults]
env_file = ["common.env"]
[programs.web]
command = "web"
env_file = ["common.env", "web.env", "-absent.env"]
environment = { PORT = "9090" }
[programs.worker]
command = "worker"
`,
		"common.env": "PORT=8080\nLEVEL=info\n",
		"web.env":    "# secrets\nPASSWORD='hunter2'\nLEVEL=debug\n",
	})
	main := filepath.Join(dir, "supervise.toml")
	cfg := mustLoad(t, main)
	web, worker := cfg.Programs["web"], cfg.Programs["worker"]
	if want := map[string]string{"PORT": "9090", "LEVEL": "debug", "PASSWORD": "hunter2"}; !maps.Equal(web.Env(), want) {
		t.Errorf("web env %v, want %v", web.Env(), want)
	}
	if want := map[string]string{"PORT": "8080", "LEVEL": "info"}; !maps.Equal(worker.Env(), want) {
		t.Errorf("worker env %v: [defaults] env_file, relative to the main file", worker.Env())
	}
	if web.EnvFile[2].Path != filepath.Join(dir, "absent.env") || !web.EnvFile[2].Optional {
		t.Errorf("env_file %+v", web.EnvFile)
	}
	if len(web.Environment) != 1 {
		t.Errorf("Environment %v holds only the table", web.Environment)
	}
	// The values never show: not in Summary, %+v, %#v or JSON.
	js, _ := json.Marshal(web)
	for _, text := range []string{web.Summary(), fmt.Sprintf("%+v", web), fmt.Sprintf("%#v", web), fmt.Sprintf("%v", cfg), string(js)} {
		if strings.Contains(text, "hunter2") || strings.Contains(text, "debug") {
			t.Errorf("a value shows in %s", text)
		}
	}
	if s := web.Summary(); !strings.Contains(s, "env_file "+filepath.Join(dir, "common.env")+","+filepath.Join(dir, "web.env")+",-"+filepath.Join(dir, "absent.env")) {
		t.Errorf("Summary %q", s)
	}
	var kinds []string
	for _, f := range cfg.Sources.Files {
		kinds = append(kinds, fmt.Sprint(f.Kind, " ", filepath.Base(f.Path), " ", f.Missing))
	}
	if want := []string{"main supervise.toml false", "env common.env false", "env web.env false", "env absent.env true"}; !slices.Equal(kinds, want) {
		t.Errorf("sources %q, want %q", kinds, want)
	}
	if files, _ := cfg.Sources.Watch(); len(files) != 4 {
		t.Errorf("watched %q: the main file and every env file, the absent one too", files)
	}

	// A change of the variables is a change of env_file, for web only; a
	// comment is none.
	os.WriteFile(filepath.Join(dir, "web.env"), []byte("PASSWORD='hunter3'\nLEVEL=debug\n"), 0o644)
	cfg2 := mustLoad(t, main)
	if d := web.Diff(cfg2.Programs["web"]); !slices.Equal(d, []string{"env_file"}) || !NeedsRestart("env_file") {
		t.Errorf("Diff after an env edit = %q", d)
	}
	if !worker.Equal(cfg2.Programs["worker"]) {
		t.Error("worker changed by an env file it does not read")
	}
	if cfg2.Sources.Digest() == cfg.Sources.Digest() {
		t.Error("digest unchanged after an env edit")
	}
	os.WriteFile(filepath.Join(dir, "web.env"), []byte("# reworded\nPASSWORD='hunter3'\n\nLEVEL=debug\n"), 0o644)
	if cfg3 := mustLoad(t, main); !cfg3.Programs["web"].Equal(cfg2.Programs["web"]) {
		t.Errorf("a comment changed the program: %q", cfg2.Programs["web"].Diff(cfg3.Programs["web"]))
	}
	// The optional file appearing is a change too.
	os.WriteFile(filepath.Join(dir, "absent.env"), []byte("X=1\n"), 0o644)
	if d := cfg2.Programs["web"].Diff(mustLoad(t, main).Programs["web"]); !slices.Equal(d, []string{"env_file"}) {
		t.Errorf("Diff after the optional file appeared = %q", d)
	}

	// AddCommand reads the env files [defaults] gives the new program.
	if err := cfg.AddCommand([]string{"/bin/app"}); err != nil {
		t.Fatal(err)
	}
	if env := cfg.Programs["main"].Env(); env["LEVEL"] != "info" {
		t.Errorf("main env %v", env)
	}
}

func TestEnvFileProblems(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": `[defaults]
env_file = ["shared.env"]
[programs.a]
command = "a"
[programs.b]
command = "b"
[programs.c]
command = "c"

env_file = ["/nonexistent/c.env", "-/nonexistent/optional.env", "dir.env"]
`,
		"shared.env":   "OK=1\nTOKEN=\"abc\n",
		"dir.env/file": "",
	})
	main := filepath.Join(dir, "supervise.toml")
	got := loadErr(t, main)
	want := strings.Join([]string{
		main + `:10: programs.c: key "env_file": /nonexistent/c.env does not exist (a path written with a leading "-" may be missing)`,
		main + `:10: programs.c: key "env_file": cannot read ` + filepath.Join(dir, "dir.env") + `: not a regular file`,
		// Reported once, for the first program that reads it.
		filepath.Join(dir, "shared.env") + `:2: defaults: the value of "TOKEN": no closing double quote on the line (an env_file of ` + main + `:2)`,
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{`[""]`, `["-"]`, `"x.env"`, `[1]`} {
		_, err := Parse("s.toml", []byte("[programs.a]\ncommand = \"a\"\nenv_file = "+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), `s.toml:3: programs.a: key "env_file": `) {
			t.Errorf("env_file = %s: %v", bad, err)
		}
	}
}
