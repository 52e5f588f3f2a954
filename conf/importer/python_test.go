package importer

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The INI reader, the two shlex tokenizers and the % expansion are ports
// of Python code that supervisord runs. These tests run the same inputs
// through Python itself (when python3 is installed) and compare.

// python runs script with the JSON of in on its stdin, and decodes its
// JSON output into out.
func python(t *testing.T, script string, in, out any) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the comparison with Python's own parsers is skipped")
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(got, out); err != nil {
		t.Fatalf("python3 output: %v: %s", err, got)
	}
}

// iniInputs are INI texts that exercise configparser's rules.
var iniInputs = []string{
	"[program:web]\ncommand = /bin/web --port 80\n",
	"[a]\nkey: value\nother=1\n",
	"[a]\nCommand = x\nCOMMAND = y\n",
	"[a]\nk = v ; comment\nk2 = v;not a comment\nk3 = v #comment\nk4 = a#b\n",
	"[a]\nk = one ; c1 ; c2\nj = x;y;z #real\n",
	"[a]\nk = a;b;c;d #e\n",
	"; comment\n# comment\n[a]\n  ; indented comment\nk = v\n",
	"[a]\ncommand = /bin/x\n  --flag 1\n\t--flag 2\nnext = y\n",
	"[a]\nk = first\n\n  continued after a blank\nj = 2\n",
	"[a]\nk = v\n\n\n",
	"[a]\nk = line1\n  ; a comment inside\n  line2\n",
	"[a]\n  indented = key\nk = v\n",
	"[a]\nk = v\n[a]\nk = w\nj = x\n",
	"[DEFAULT]\nshared = 1\n[a]\nown = 2\n[b]\nshared = 3\n",
	"[a] trailing junk\nk = v\n",
	"[a]b]\nk = v\n",
	"[ spaced ]\nk = v\n",
	"[a]\nk =\nj=   \n",
	"[a]\nk = = v\nj : : w\nm = a:b=c\n",
	"[a]\r\nk = v\r\nj = w\r\n",
	"[a]\rk = v\r",
	"[a]\nk = v\x1fw\x1c\n",
	"[a]\nk = tab\tinside  \n",
	"[a]\nk = ünïcödé ; comment\n",
	"k = before any section\n",
	"[a]\nno delimiter here\n",
	"[a]\n= value without key\n",
	"[]\n",
	"[a]\n[]=x\n",
	"",
	"\n\n",
	"[a]\nk = v\n   \n  cont\n",
	"[a]\nk = 'quoted ; not a comment?'\n",
	"[a]\n;k = commented\nj = 1 ;\n",
	"[program:x]\ncommand=/bin/sh -c \"echo a;b\"\nenvironment=A=\"1\",B=\"x y\"\n",
}

const configparserScript = `
import configparser, json, os, sys, tempfile
out = []
for text in json.load(sys.stdin):
    fd, path = tempfile.mkstemp()
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    p = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        with open(path, encoding="utf-8") as f:
            p.read_file(f)
        out.append({"ok": True,
                    "sections": [[s, [[k, v] for k, v in p._sections[s].items()]] for s in p.sections()],
                    "defaults": [[k, v] for k, v in p._defaults.items()]})
    except configparser.Error as e:
        line = getattr(e, "lineno", None)
        if line is None and getattr(e, "errors", None):
            line = e.errors[0][0]
        out.append({"ok": False, "line": line})
    os.unlink(path)
print(json.dumps(out))
`

type pyINI struct {
	OK       bool       `json:"ok"`
	Sections [][]any    `json:"sections"`
	Defaults [][]string `json:"defaults"`
	Line     int        `json:"line"`
}

// flatten writes a parsed file as Python's script does.
func flatten(d *iniDoc) (sections [][]any, defaults [][]string) {
	sections = [][]any{}
	for _, s := range d.sections {
		keys := []any{}
		for _, k := range s.keys {
			keys = append(keys, []any{k.name, k.value})
		}
		sections = append(sections, []any{s.name, keys})
	}
	defaults = [][]string{}
	if d.defaults != nil {
		for _, k := range d.defaults.keys {
			defaults = append(defaults, []string{k.name, k.value})
		}
	}
	return sections, defaults
}

// TestINIByteOrderMark: a UTF-8 byte order mark, which configparser
// reads as a character before the first section (and supervisord then
// refuses the file), is skipped.
func TestINIByteOrderMark(t *testing.T) {
	d := &iniDoc{}
	if err := d.read("f.conf", []byte("\ufeff[a]\nk = v\n")); err != nil {
		t.Fatal(err)
	}
	if len(d.sections) != 1 || d.sections[0].name != "a" || d.sections[0].key("k").value != "v" {
		t.Fatalf("sections %+v", d.sections)
	}
}

// TestINIAgainstConfigparser reads every input with the INI reader and
// with Python's configparser as supervisord configures it: both refuse it
// (at the same line), or both give the same sections, keys and values.
func TestINIAgainstConfigparser(t *testing.T) {
	inputs := append([]string(nil), iniInputs...)
	for _, c := range goldenCases {
		if strings.HasSuffix(c.file, ".conf") {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, string(data))
		}
	}
	var want []pyINI
	python(t, configparserScript, inputs, &want)
	for i, in := range inputs {
		d := &iniDoc{}
		err := d.read("f.conf", []byte(in))
		w := want[i]
		if !w.OK {
			if err == nil {
				t.Errorf("%q: configparser refuses it (line %d), the reader reads it", in, w.Line)
				continue
			}
			if e, ok := err.(*Error); !ok || (w.Line > 0 && e.Line != w.Line) {
				t.Errorf("%q: error %v, configparser's is at line %d", in, err, w.Line)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v, configparser reads it", in, err)
			continue
		}
		secs, defs := flatten(d)
		gotJSON, _ := json.Marshal([]any{secs, defs})
		wantJSON, _ := json.Marshal([]any{w.Sections, w.Defaults})
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("%q:\n got  %s\n want %s", in, gotJSON, wantJSON)
		}
	}
}

// shlexInputs are commands and environments.
var shlexInputs = []string{
	`/bin/web --port 80`,
	`python3 -m http.server 8000 --bind 127.0.0.1`,
	`/bin/sh -c "echo hello; sleep 1"`,
	`/bin/sh -c 'a "b" c'`,
	`a\ b c\\d "e\"f" "g\h" 'i\j'`,
	`"" '' x""y`,
	"multi\nline\targs",
	`unterminated "quote`,
	`trailing\`,
	`a#b # not a comment in commands`,
	`KEY="value",OTHER="x y"`,
	`A=1,B=2,C=three`,
	`PATH="/usr/bin:/bin",HOME=/root`,
	`A=b$c`,
	`A = "spaced" , B = 'single'`,
	`A="x" # a comment`,
	`A=ünï,B=€`,
	`A=a"b c"d`,
	`A=x=y`,
	`A=1,B`,
	`=1`,
	`A="a\"b",B='a\'`,
	`A=1,,B=2`,
	"A=1\nB=2",
}

const shlexScript = `
import json, shlex, sys
out = []
for s in json.load(sys.stdin):
    r = {}
    try:
        r["split"] = shlex.split(s)
    except ValueError:
        r["split"] = None
    try:
        lx = shlex.shlex(s, posix=True)
        lx.wordchars += "/.+-():"
        r["tokens"] = list(lx)
    except ValueError:
        r["tokens"] = None
    out.append(r)
print(json.dumps(out))
`

// TestShlexAgainstPython compares both tokenizers with Python's shlex.
func TestShlexAgainstPython(t *testing.T) {
	var want []struct {
		Split  []string `json:"split"`
		Tokens []string `json:"tokens"`
	}
	python(t, shlexScript, shlexInputs, &want)
	for i, in := range shlexInputs {
		split, err := shlexSplit(in)
		if (err != nil) != (want[i].Split == nil) || (err == nil && !equalStrings(split, want[i].Split)) {
			t.Errorf("shlex.split(%q): got %q (%v), want %q", in, split, err, want[i].Split)
		}
		l := &lexer{in: []rune(in), commenters: "#", wordchars: envWordchar}
		toks, err := l.tokens()
		if (err != nil) != (want[i].Tokens == nil) || (err == nil && !equalStrings(toks, want[i].Tokens)) {
			t.Errorf("environment tokens of %q: got %q (%v), want %q", in, toks, err, want[i].Tokens)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// formatInputs are values with % expansions.
var formatInputs = []string{
	"%(program_name)s", "%(program_name)s_%(process_num)02d", "%(process_num)d", "%(process_num)3d",
	"%(process_num)-3d|", "%(process_num)+d", "%(process_num) d", "%(process_num)05.3d", "%(process_num)s",
	"%(process_num)4s", "%(program_name).2s", "%(program_name)-8s|", "%(program_name)8s", "100%%",
	"%(here)s/bin", "%(ENV_HOME)s", "%(numprocs)d", "%(group_name)s", "%(program_name)r",
	"a%", "%d", "%(missing)s", "%(program_name)d", "%(process_num)x", "%(program_name", "%(a(b)c)s",
	"%(process_num)", "%(process_num)ld", "plain text", "",
}

const formatScript = `
import json, sys
d = {"here": "/etc/app", "program_name": "web", "group_name": "app", "process_num": 7,
     "numprocs": 12, "ENV_HOME": "/root"}
out = []
for s in json.load(sys.stdin):
    try:
        out.append(s % d)
    except Exception:
        out.append(None)
print(json.dumps(out))
`

// TestFormatAgainstPython compares the % expansion of values known when
// importing with Python's % operator.
func TestFormatAgainstPython(t *testing.T) {
	var want []*string
	python(t, formatScript, formatInputs, &want)
	x := &expansion{static: map[string]any{"here": "/etc/app", "program_name": "web", "group_name": "app",
		"process_num": 7, "numprocs": 12, "ENV_HOME": "/root"}}
	for i, in := range formatInputs {
		ps, err := pyFormat(in, x)
		if want[i] == nil {
			if err == nil && in != "%(process_num)x" {
				t.Errorf("%q: Python refuses it, got %v", in, ps)
			}
			continue
		}
		if in == "%(process_num)x" {
			// Python formats it; supervise import refuses conversions
			// other than s and d.
			if err == nil {
				t.Errorf("%q: want an error", in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v, Python gives %q", in, err, *want[i])
			continue
		}
		got, ok := literal(ps)
		if !ok || got != *want[i] {
			t.Errorf("%q: got %q, Python gives %q", in, got, *want[i])
		}
	}
}

// literal reports whether pieces hold no reference, and their text.
func literal(ps []piece) (string, bool) {
	var b strings.Builder
	for _, p := range ps {
		if p.kind != refNone {
			return "", false
		}
		b.WriteString(p.text)
	}
	return b.String(), true
}
