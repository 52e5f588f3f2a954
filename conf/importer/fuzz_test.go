package importer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// The fuzz targets feed each reader of outside input (the INI reader, the
// Procfile reader, the YAML mapping reader) and each converter arbitrary
// bytes: they never panic, they fail with an *Error that has a line within
// the file, and what they accept converts, the same way twice, to a file
// that supervise accepts.

// fuzzOptions reads no real environment.
func fuzzOptions(f Format) Options {
	o := goldenOptions()
	o.Format = f
	return o
}

// addGolden seeds f with the golden inputs whose file name ends in suffix.
func addGolden(f *testing.F, suffix string) {
	for _, c := range goldenCases {
		if strings.HasSuffix(c.file, suffix) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// checkError checks that err is an *Error within data's lines.
func checkError(t *testing.T, err error, data []byte) {
	t.Helper()
	checkErrorLines(t, err, data, textLines(data))
}

// checkErrorLines checks that err is an *Error at a line up to lines.
func checkErrorLines(t *testing.T, err error, data []byte, lines int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not an *Error: %v", err, err)
	}
	if e.Line < 0 || e.Line > lines {
		t.Fatalf("error at line %d of %d lines: %v", e.Line, lines, err)
	}
	if e.Error() == "" || !utf8.ValidString(e.Msg) && utf8.Valid(data) {
		t.Fatalf("error text %q", e.Error())
	}
}

// textLines counts the lines of data as the readers do: "\r\n", "\r"
// and "\n" each end one.
func textLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	return strings.Count(s, "\n") + strings.Count(s, "\r") + 1
}

// checkConversion checks an accepted conversion: valid output, the same
// bytes twice.
func checkConversion(t *testing.T, path string, data []byte, format Format, res *Result) {
	t.Helper()
	if !utf8.Valid(res.TOML) {
		t.Fatalf("output is not UTF-8:\n%q", res.TOML)
	}
	checkValid(t, res.TOML)
	again, err := Convert(path, data, fuzzOptions(format))
	if err != nil || !bytes.Equal(again.TOML, res.TOML) || len(again.Notes) != len(res.Notes) {
		t.Fatalf("a second conversion differs (%v)", err)
	}
	for _, n := range res.Notes {
		if n.File == "" || n.Setting == "" || n.Why == "" {
			t.Fatalf("incomplete note %+v", n)
		}
	}
}

func FuzzINI(f *testing.F) {
	for _, s := range iniInputs {
		f.Add([]byte(s))
	}
	addGolden(f, ".conf")
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &iniDoc{}
		err := d.read("f.conf", data)
		if err != nil {
			checkError(t, err, data)
			return
		}
		lines := textLines(data)
		all := d.sections
		if d.defaults != nil {
			all = append(all, d.defaults)
		}
		for _, s := range all {
			if s.name == "" || s.line < 1 || s.line > lines {
				t.Fatalf("section %q at line %d of %d", s.name, s.line, lines)
			}
			for _, k := range s.keys {
				if k.name == "" || k.name != strings.ToLower(k.name) || strings.ContainsAny(k.name, "=:") || k.line < s.line || k.line > lines {
					t.Fatalf("key %q at line %d in [%s] at %d", k.name, k.line, s.name, s.line)
				}
			}
		}
	})
}

func FuzzSupervisord(f *testing.F) {
	addGolden(f, ".conf")
	for _, s := range []string{
		"[program:a]\ncommand=/bin/a %(process_num)02d\nprocess_name=a%(process_num)d\nnumprocs=3\n",
		"[program:a]\ncommand=/bin/a %(ENV_HOME)s %(host_node_name)s\nenvironment=A=\"%(ENV_PATH)s\"\n",
		"[program:a]\ncommand=x\nstdout_logfile=/l\nredirect_stderr=true\nnumprocs=2\nprocess_name=%(process_num)s\n",
		"[group:g]\nprograms=a\n[program:a]\ncommand=a\npriority=-5\n",
		"[supervisord]\nenvironment=A=1\nloglevel=trace\n[program:a]\ncommand=a\n",
	} {
		f.Add([]byte(s))
	}
	path := "/nonexistent-import-fuzz/supervisord.conf"
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Convert(path, data, fuzzOptions(Supervisord))
		if err != nil {
			checkError(t, err, data)
			return
		}
		checkConversion(t, path, data, Supervisord, res)
	})
}

func FuzzProcfile(f *testing.F) {
	addGolden(f, "Procfile")
	for _, s := range []string{"web: a\n", "# c\n\nweb: a\r\nworker: b\n", "a:b\n", "x: \n", "web: a\nweb: b\n"} {
		f.Add([]byte(s))
	}
	path := "/nonexistent-import-fuzz/Procfile"
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseProcfile(path, data)
		if err != nil {
			checkError(t, err, data)
		}
		for _, e := range entries {
			if e.command == "" || !procfileLine.MatchString(e.name+": "+e.command) {
				t.Fatalf("entry %+v", e)
			}
		}
		res, err := Convert(path, data, fuzzOptions(Procfile))
		if err != nil {
			checkError(t, err, data)
			return
		}
		checkConversion(t, path, data, Procfile, res)
	})
}

func FuzzProcessCompose(f *testing.F) {
	addGolden(f, ".yaml")
	for _, s := range []string{
		"processes:\n  a:\n    command: a\n",
		"x: &x {command: a}\nprocesses:\n  a: *x\n  b:\n    <<: *x\n    depends_on: {a: {condition: process_started}}\n",
		"processes:\n  a:\n    command: \"{{.X}} $$Y ${Z:-w}\"\n    vars: {X: 1}\n",
		"processes:\n  a:\n    entrypoint: [a, b]\n    readiness_probe: {http_get: {port: 80}}\n    liveness_probe: {exec: {command: c}}\n",
	} {
		f.Add([]byte(s))
	}
	path := "/nonexistent-import-fuzz/process-compose.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Convert(path, data, fuzzOptions(ProcessCompose))
		if err != nil {
			// YAML also ends lines with U+0085, U+2028 and U+2029, and
			// may place an error after the last line.
			s := string(data)
			lines := textLines(data) + strings.Count(s, "\u0085") + strings.Count(s, "\u2028") + strings.Count(s, "\u2029") + 1
			checkErrorLines(t, err, data, lines)
			return
		}
		checkConversion(t, path, data, ProcessCompose, res)
	})
}
