package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/supervise/supervise/control"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseInterleavesFlagsAndStopsAtDashDash(t *testing.T) {
	inv, err := parse([]string{"status", "web", "--json", "-c", "a.toml", "db", "--socket=/s"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Command.Name != "status" || !reflect.DeepEqual(inv.Names, []string{"web", "db"}) || !inv.Bool("json") || inv.Value("config") != "a.toml" || inv.Value("socket") != "/s" {
		t.Fatalf("status: %+v", inv)
	}
	// No command, or a flag first, means run.
	for _, args := range [][]string{
		{"-c", "a.toml", "--log-level=debug", "--", "sh", "-c", "x"},
		{"run", "-c", "a.toml", "--log-level", "debug", "--", "sh", "-c", "x"},
	} {
		inv, err := parse(args)
		if err != nil {
			t.Fatal(err)
		}
		if inv.Command.Name != "run" || inv.Value("config") != "a.toml" || inv.Value("log-level") != "debug" || !reflect.DeepEqual(inv.Rest, []string{"sh", "-c", "x"}) {
			t.Fatalf("%q: %+v", args, inv)
		}
	}
	if inv, err := parse(nil); err != nil || inv.Command.Name != "run" {
		t.Fatalf("no arguments: %+v, %v", inv, err)
	}
	if inv, err := parse([]string{"--", "sleep", "1"}); err != nil || inv.Command.Name != "run" || !reflect.DeepEqual(inv.Rest, []string{"sleep", "1"}) {
		t.Fatalf("-- sleep 1: %+v, %v", inv, err)
	}
	for _, bad := range [][]string{{"status", "--nope"}, {"status", "-c"}, {"status", "--json=maybe"}, {"statuss"}} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%q: no error", bad)
		} else if _, ok := err.(*control.UsageError); !ok {
			t.Errorf("%q: %T is not a usage error", bad, err)
		}
	}
}

// Every local command of the registry has a runner here, and every
// runner a local command.
func TestLocalRunnersCoverRegistry(t *testing.T) {
	for _, c := range control.Commands.All() {
		if c.Local != (local[c.Name] != nil) {
			t.Errorf("command %s: local %v, runner %v", c.Name, c.Local, local[c.Name] != nil)
		}
	}
	for name := range local {
		if control.Commands.Lookup(name) == nil {
			t.Errorf("runner %s has no command", name)
		}
	}
}

// Every command answers --help and -h with its own usage and exit 0, as
// does `supervise help COMMAND`; an unknown command lists the commands.
func TestHelpAndUnknownCommand(t *testing.T) {
	for _, c := range control.Commands.All() {
		for _, args := range [][]string{{c.Name, "--help"}, {c.Name, "-h"}, {"help", c.Name}} {
			var out, errOut bytes.Buffer
			code := run(args, &out, &errOut)
			if code != 0 || !strings.HasPrefix(out.String(), "usage: "+c.Synopsis(true)+"\n") || errOut.Len() != 0 {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"statuss"}, &out, &errOut); code != 2 || out.Len() != 0 ||
		!strings.Contains(errOut.String(), `supervise: unknown command "statuss" (did you mean "status"?); commands: run, validate, status, start,`) {
		t.Errorf("statuss: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"sleep", "10"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "supervise -- sleep") {
		t.Errorf("sleep 10: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"help", "nosuch"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "nosuch"`) {
		t.Errorf("help nosuch: exit %d, stderr %q", code, errOut.String())
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
	if !strings.Contains(out.String(), "2 programs") || !strings.Contains(out.String(), "  web: /bin/true") || !strings.Contains(out.String(), "  db: /bin/sh -c sleep 1") {
		t.Fatalf("summary: %s", out.String())
	}
	// A program with replicas is shown with each instance.
	reps := filepath.Join(dir, "replicas.toml")
	os.WriteFile(reps, []byte("[programs.web]\ncommand = [\"/bin/web\", \"--port\", \"80{replica}\"]\nreplicas = 2\n"+
		"stdout = \"/var/log/{name}.log\"\n[programs.off]\ncommand = [\"/bin/off\"]\nreplicas = 0\n"), 0o644)
	out.Reset()
	if code := run([]string{"validate", "-c", reps}, &out, &out); code != 0 {
		t.Fatalf("replicas file: exit %d: %s", code, out.String())
	}
	for _, want := range []string{
		reps + ": ok, 2 programs, 2 instances\n",
		"\n  web: /bin/web --port 80{replica} (replicas 2, ",
		"\n    web:0: /bin/web --port 800 (stdout /var/log/web:0.log)\n    web:1: /bin/web --port 801 (stdout /var/log/web:1.log)\n",
		"\n  off: /bin/off (replicas 0, ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out.String())
		}
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

// countingWriter records each Write call.
type countingWriter struct {
	writes []string
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func TestBatchWriter(t *testing.T) {
	var c countingWriter
	b := newBatchWriter(&c)
	b.Write([]byte("alone\n"))
	if len(c.writes) != 1 {
		t.Fatalf("a write outside a batch was delayed: %q", c.writes)
	}
	b.Batch(true)
	for i := 0; i < 100; i++ {
		b.Write([]byte("line\n"))
	}
	if len(c.writes) != 1 {
		t.Fatalf("lines written before the batch ended: %d writes", len(c.writes))
	}
	b.Batch(false)
	if len(c.writes) != 2 || c.writes[1] != strings.Repeat("line\n", 100) {
		t.Fatalf("batch not written as one: %d writes", len(c.writes))
	}
	b.Batch(true)
	big := strings.Repeat("x", batchFlushAt)
	b.Write([]byte(big))
	if len(c.writes) != 3 {
		t.Fatalf("a full batch buffer was not flushed: %d writes", len(c.writes))
	}
	b.Write([]byte("tail\n"))
	if err := b.Sync(); err != nil || c.writes[len(c.writes)-1] != "tail\n" {
		t.Fatalf("Sync did not write the rest: %v %q", err, c.writes)
	}
	b.Batch(false)
	b.Batch(false) // unbalanced close is harmless
	b.Write([]byte("after\n"))
	if c.writes[len(c.writes)-1] != "after\n" {
		t.Fatal("write after the batch delayed")
	}
}

// TestLineWriterMatchesZap checks that the fast line formatter writes what
// the zap logger would write for the same line, in both formats.
func TestLineWriterMatchesZap(t *testing.T) {
	lines := []string{
		"plain line",
		`quotes " and \ backslash`,
		"tab\there, cr\r, bell\a",
		"utf-8: héllo ✓",
		"bad utf-8: \xff\xfe end",
		"",
	}
	stripTime := func(format, s string) string {
		if format == "json" {
			i := strings.Index(s, `"time":"`)
			j := strings.Index(s[i+8:], `"`)
			return s[:i] + s[i+8+j+1:]
		}
		return s[strings.IndexByte(s, '\t'):]
	}
	for _, format := range []string{"console", "json"} {
		for _, partial := range []bool{false, true} {
			for _, line := range lines {
				var zb, lb bytes.Buffer
				level := zap.NewAtomicLevelAt(zap.InfoLevel)
				log := newLogger(format, level, zapcore.AddSync(&zb)).With(zap.String("program", "web"), zap.String("stream", "stderr"))
				if partial {
					log.Info(line, zap.Bool("partial", true))
				} else {
					log.Info(line)
				}
				newLineWriter(zapcore.AddSync(&lb), format, level).WriteLine("web", "stderr", []byte(line), partial)
				if got, want := stripTime(format, lb.String()), stripTime(format, zb.String()); got != want {
					t.Errorf("%s partial=%v %q:\n got %q\nwant %q", format, partial, line, got, want)
				}
			}
		}
	}
	// Below info, nothing is written.
	var lb bytes.Buffer
	newLineWriter(zapcore.AddSync(&lb), "console", zap.NewAtomicLevelAt(zap.WarnLevel)).WriteLine("web", "stdout", []byte("x"), false)
	if lb.Len() != 0 {
		t.Fatalf("written below its level: %q", lb.String())
	}
}

func BenchmarkLineWriter(b *testing.B) {
	line := []byte(strings.Repeat("x", 99))
	for _, format := range []string{"console", "json"} {
		b.Run(format, func(b *testing.B) {
			w := newLineWriter(zapcore.AddSync(io.Discard), format, zap.NewAtomicLevelAt(zap.InfoLevel))
			b.SetBytes(int64(len(line) + 1))
			for b.Loop() {
				w.WriteLine("spew", "stdout", line, false)
			}
		})
	}
}

func TestAppendRFC3339Nano(t *testing.T) {
	l := &lineWriter{}
	for _, ts := range []time.Time{
		time.Date(2026, 11, 28, 8, 6, 49, 487193526, time.UTC),
		time.Date(2026, 11, 28, 8, 6, 49, 487193526, time.UTC), // cached second
		time.Date(2026, 11, 28, 8, 6, 49, 500000000, time.UTC),
		time.Date(2026, 11, 28, 8, 6, 50, 0, time.UTC),
		time.Date(2026, 11, 28, 8, 6, 50, 1, time.FixedZone("x", 7*3600)),
	} {
		if got, want := string(l.appendRFC3339Nano(nil, ts)), ts.Format(time.RFC3339Nano); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestLineWriterBatchSharesOneTimestamp(t *testing.T) {
	var b bytes.Buffer
	w := newLineWriter(zapcore.AddSync(&b), "json", zap.NewAtomicLevelAt(zap.InfoLevel))
	w.Batch(true)
	w.WriteLine("p", "stdout", []byte("a"), false)
	time.Sleep(2 * time.Millisecond) // a real clock must move between the lines
	w.WriteLine("p", "stdout", []byte("b"), false)
	w.Batch(false)
	time.Sleep(2 * time.Millisecond)
	w.WriteLine("p", "stdout", []byte("c"), false)
	var times []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		i := strings.Index(line, `"time":"`)
		times = append(times, line[i+8:i+8+strings.Index(line[i+8:], `"`)])
	}
	if len(times) != 3 || times[0] != times[1] || times[1] == times[2] {
		t.Fatalf("timestamps %q: want the batch's two equal and the third later", times)
	}
}

// Control commands find the socket with -s, else $SUPERVISE_SOCKET, else
// the file's [supervisor] socket read on its own, else the default.
func TestSocketFor(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", "/xdg")
	t.Setenv("SUPERVISE_SOCKET", "")
	t.Setenv("SUPERVISE_CONFIG", "")
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	broken := write("broken.toml", "[programs.web\ncommand = [\n[supervisor]\nsocket = \"run/ctl.sock\"\n")
	off := write("off.toml", "[supervisor]\nsocket = \"off\"\n")
	bad := write("bad.toml", "[supervisor]\nsocket = 7\n")
	for _, tt := range []struct {
		name, cfg, flag, env, want string
		code                       int
		errWant                    string
	}{
		{"broken file, relative socket", broken, "", "", filepath.Join(dir, "run/ctl.sock"), 0, ""},
		{"flag wins", broken, "/f.sock", "", "/f.sock", 0, ""},
		{"env wins over the file", broken, "", "/e.sock", "/e.sock", 0, ""},
		{"missing -c file", filepath.Join(dir, "nope.toml"), "", "", "", 2, "nope.toml: no such file"},
		{"bad value", bad, "", "", "", 2, "bad.toml:2: supervisor: socket: expected a string, got an integer"},
		{"off", off, "", "", "", 2, "the control socket is disabled"},
		{"off overridden", off, "/f.sock", "", "/f.sock", 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SUPERVISE_SOCKET", tt.env)
			got, code, err := socketFor(tt.cfg, tt.flag)
			if got != tt.want || code != tt.code || (err == nil) != (tt.errWant == "") || (err != nil && !strings.Contains(err.Error(), tt.errWant)) {
				t.Errorf("socketFor(%q, %q) = %q, %d, %v; want %q, %d, %q", tt.cfg, tt.flag, got, code, err, tt.want, tt.code, tt.errWant)
			}
		})
	}
	// No -c: a missing default file means the default socket.
	t.Chdir(t.TempDir())
	if _, err := os.Stat("/etc/supervise/supervise.toml"); err == nil {
		t.Skip("/etc/supervise/supervise.toml exists here")
	}
	if got, code, err := socketFor("", ""); got != "/xdg/supervise.sock" || code != 0 || err != nil {
		t.Errorf("no file: %q, %d, %v", got, code, err)
	}
}
