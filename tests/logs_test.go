package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// SPEC §14: the console format. Program lines are `TIME NAME | line`, the
// names padded to the longest, stderr marked with "!"; the supervisor's
// entries about a program lead with its name; colours on a terminal only,
// and never with NO_COLOR.
func TestConsoleFormatAndColours(t *testing.T) {
	t.Parallel()
	progs := `
[programs.web]
command = ` + sh(`echo listening; echo trouble >&2; exec sleep 1000`) + `
[programs.worker-long]
command = ` + sh(`echo working; exec sleep 1000`) + `
`
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)`
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: progs}, "--log-format", "console")
		waitFor(t, "the lines", waitDefault, func() (bool, string) {
			text := s.logText()
			return strings.Contains(text, "| working") && strings.Contains(text, "! trouble"), text
		})
		text := s.logText()
		for _, re := range []string{
			`(?m)^` + stamp + ` web         \| listening$`,
			`(?m)^` + stamp + ` web         ! trouble$`,
			`(?m)^` + stamp + ` worker-long \| working$`,
			`(?m)^` + stamp + `\tINFO\tweb\tstarted\t\{"pid": \d+, "why": "autostart"\}$`,
		} {
			if !regexp.MustCompile(re).MatchString(text) {
				t.Errorf("no line matches %s in:\n%s", re, text)
			}
		}
		if strings.Contains(text, "\x1b[") {
			t.Errorf("colours in a file:\n%q", text)
		}
	})
	for _, noColor := range []bool{false, true} {
		t.Run(fmt.Sprintf("terminal NO_COLOR=%v", noColor), func(t *testing.T) {
			t.Parallel()
			env := []string{"TERM=xterm"}
			if noColor {
				env = append(env, "NO_COLOR=1")
			}
			text := runOnTerminal(t, progs, env, "| working")
			coloured := regexp.MustCompile(`\x1b\[\d+mweb\x1b\[0m {9}\x1b\[31m!\x1b\[0m trouble`).MatchString(text)
			plain := regexp.MustCompile(stamp + ` web         ! trouble`).MatchString(text)
			if noColor && (!plain || strings.Contains(text, "\x1b[")) {
				t.Errorf("NO_COLOR: colours, or no plain line:\n%q", text)
			}
			if !noColor && !coloured {
				t.Errorf("a terminal without NO_COLOR: no coloured line:\n%q", text)
			}
		})
	}
}

// runOnTerminal runs the supervisor with a pseudo-terminal as its output
// until the output holds want, and returns the output.
func runOnTerminal(t *testing.T, programs string, env []string, want string) string {
	t.Helper()
	master, slave := openPTY(t)
	dir := t.TempDir()
	sock := filepath.Join(shortDir(t), "ctl.sock")
	cfg := filepath.Join(dir, "supervise.toml")
	text := fmt.Sprintf("[supervisor]\nsocket = %s\n%s", q(sock), programs)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Env = childEnv(env...)
	cmd.Stdout, cmd.Stderr = slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out := make(chan []byte, 64)
	go func() {
		defer close(out)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				out <- bytes.Clone(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	var got []byte
	deadline := time.After(waitDefault)
	for !bytes.Contains(got, []byte(want)) {
		select {
		case b, ok := <-out:
			if !ok {
				t.Fatalf("the terminal closed before %q:\n%q", want, got)
			}
			got = append(got, b...)
		case <-deadline:
			t.Fatalf("no %q on the terminal:\n%q", want, got)
		}
	}
	time.Sleep(200 * time.Millisecond) // the rest of the start-up
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	master.Close()
	for b := range out {
		got = append(got, b...)
	}
	return strings.ReplaceAll(string(got), "\r\n", "\n")
}

// SPEC §14: `supervise logs` prints the kept lines merged by time, -n the
// last ones, --json one object per line; a program's output in a file is
// named instead.
func TestLogsCommand(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.a]
command = ` + sh(`for i in 1 2 3; do echo a$i; sleep 0.05; done; touch a.done; exec sleep 1000`) + `
[programs.b]
command = ` + sh(`for i in 1 2 3; do echo b$i >&2; sleep 0.05; done; touch b.done; exec sleep 1000`) + `
[programs.f]
command = ` + sh(`echo to the file; exec sleep 1000`) + `
stdout = "./f.log"
stderr = "./f.err"
`})
	waitFor(t, "the lines", waitDefault, func() (bool, string) {
		_, ea := os.Stat(filepath.Join(s.dir, "a.done"))
		_, eb := os.Stat(filepath.Join(s.dir, "b.done"))
		return ea == nil && eb == nil, ""
	})
	r := s.ctl(t, "logs")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 6 {
		t.Fatalf("logs: %s", r)
	}
	re := regexp.MustCompile(`^\S+ ([ab]) +([|!]) ([ab]\d)$`)
	var order []string
	for _, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil || (m[1] == "a") != (m[2] == "|") {
			t.Fatalf("line %q", l)
		}
		order = append(order, m[3])
	}
	// Each program's lines in their order, the two merged by time.
	if strings.Join(filter(order, "a"), ",") != "a1,a2,a3" || strings.Join(filter(order, "b"), ",") != "b1,b2,b3" {
		t.Fatalf("order %v", order)
	}
	r = s.ctl(t, "logs", "-n", "2", "a")
	if two := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(two) != 2 || !strings.HasSuffix(two[0], " a | a2") || !strings.HasSuffix(two[1], " a | a3") {
		t.Fatalf("logs -n 2 a: %s", r)
	}
	r = s.ctl(t, "logs", "--json", "b", "-n", "1")
	var l map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || l["program"] != "b" || l["stream"] != "stderr" || l["line"] != "b3" || l["ts"] == nil {
		t.Fatalf("logs --json: %s", r)
	}
	r = s.ctl(t, "logs", "f")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "f: stdout goes to "+filepath.Join(s.dir, "f.log")) || !strings.Contains(r.stderr, "f: stderr goes to "+filepath.Join(s.dir, "f.err")) {
		t.Fatalf("logs of a file program: %s", r)
	}
	if r := s.ctl(t, "logs", "nope"); r.code != 1 || !strings.Contains(r.stderr, `no program named "nope"`) {
		t.Fatalf("logs nope: %s", r)
	}
	if r := s.ctl(t, "logs", "--since", "soon"); r.code != 2 || !strings.Contains(r.stderr, "--since: invalid time") {
		t.Fatalf("logs --since soon: %s", r)
	}
}

func filter(xs []string, prefix string) []string {
	var out []string
	for _, x := range xs {
		if strings.HasPrefix(x, prefix) {
			out = append(out, x)
		}
	}
	return out
}

// SPEC §14: `logs -f` follows new lines until interrupted: a follower
// stopped by SIGINT after a deadline printed every line written while it
// followed, and exits 0.
func TestLogsFollowWithDeadline(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.tick]
command = ` + sh(`i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.02; done`) + `
`})
	s.running(t, "tick")
	cmd := exec.Command(bin, "logs", "-f", "-n", "0", "-s", s.sock)
	cmd.Env = childEnv(clientRace)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the deadline
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the follower exited with %v: %s", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the follower did not stop on SIGINT")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 10 {
		t.Fatalf("followed %d lines in 1 s: %q", len(lines), out.String())
	}
	first := tickOf(t, lines[0])
	for i, l := range lines {
		if tickOf(t, l) != first+i {
			t.Fatalf("line %d is %q: a gap", i, l)
		}
	}
}

func tickOf(t *testing.T, line string) int {
	t.Helper()
	i := strings.LastIndex(line, "tick ")
	n, err := strconv.Atoi(line[i+5:])
	if i < 0 || err != nil {
		t.Fatalf("line %q", line)
	}
	return n
}

// SPEC §14: a follower that reads slowly loses lines, marked "N lines
// skipped", and never slows the program down.
func TestLogsSlowFollower(t *testing.T) {
	t.Parallel()
	const n = 100000
	s := newSup(t, config{programs: `
[programs.spew]
command = ` + sh(`while [ ! -e go ]; do sleep 0.01; done; seq 1 `+strconv.Itoa(n)+`; touch spew.done; exec sleep 1000`) + `
log_buffer = 200
`})
	s.running(t, "spew")
	cmd := exec.Command(bin, "logs", "-f", "-s", s.sock)
	cmd.Env = childEnv(clientRace)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	os.WriteFile(filepath.Join(s.dir, "go"), nil, 0o644)
	// Read slowly while the program writes, then fast: every line is
	// there or counted as skipped.
	r := bufio.NewReaderSize(pr, 4096)
	var got, skipped, last int
	var took time.Duration
	skip := regexp.MustCompile(` spew ~ (\d+) lines? skipped`)
	for last != n {
		if took == 0 {
			if _, err := os.Stat(filepath.Join(s.dir, "spew.done")); err == nil {
				took = time.Since(start)
			} else if time.Since(start) > 20*time.Second {
				t.Fatal("the program did not get through its output")
			} else {
				time.Sleep(5 * time.Millisecond)
			}
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the follower's output ended at line %d: %v", last, err)
		}
		if m := skip.FindStringSubmatch(line); m != nil {
			k, _ := strconv.Atoi(m[1])
			skipped += k
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.Atoi(f[len(f)-1])
		if err != nil || v <= last {
			t.Fatalf("line %q after %d", line, last)
		}
		last = v
		got++
	}
	if skipped == 0 || got+skipped != n {
		t.Fatalf("read %d lines and %d skipped of %d", got, skipped, n)
	}
	t.Logf("the program wrote %d lines in %v; the follower read %d and was told of %d skipped", n, took, got, skipped)
	if took > 10*time.Second {
		t.Errorf("a slow follower held the program up: %v for %d lines", took, n)
	}
}

// SPEC §14: with log_max_size the supervisor writes the file and rotates
// it, keeping log_max_files old files, each ending at a line boundary.
func TestLogFileRotationCounts(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.w]
command = ` + sh(`seq 100000 199999; touch w.done; exec sleep 1000`) + `
stdout = "./w.log"
log_max_size = "100KB"
log_max_files = 3
`})
	waitFor(t, "the output", waitDefault, func() (bool, string) {
		_, err := os.Stat(filepath.Join(s.dir, "w.done"))
		return err == nil, ""
	})
	path := filepath.Join(s.dir, "w.log")
	waitFor(t, "the last line", waitDefault, func() (bool, string) {
		b, _ := os.ReadFile(path)
		return bytes.HasSuffix(b, []byte("199999\n")), ""
	})
	var all []byte
	for _, name := range []string{path + ".3", path + ".2", path + ".1", path} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 100<<10+6 || !bytes.HasSuffix(b, []byte("\n")) || (name != path && len(b) < 100<<10-7) {
			t.Errorf("%s: %d bytes", filepath.Base(name), len(b))
		}
		all = append(all, b...)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 3 {
		t.Errorf("old files %v, want 3", m)
	}
	// 700,000 bytes in 102,400-byte files: 6 rotations, the last 3 kept,
	// holding the end of the output with nothing missing.
	want := []byte(numberLines(100000, 200000))
	if !bytes.HasSuffix(want, all) || len(all) < 3*(100<<10-7) || (len(want)-len(all))%7 != 0 {
		t.Fatalf("the files hold %d bytes that are not the end of the output", len(all))
	}
	if p := s.prog(t, "w"); p.Output == nil || p.Output.DroppedBytes != 0 {
		t.Errorf("status output %+v", p.Output)
	}
}

func numberLines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// SPEC §14: `supervise reopen-logs` and SIGUSR1 reopen the files the
// supervisor writes: after a move (logrotate's create mode), the program's
// next lines go to a new file, and none is lost between the two.
func TestLogFileReopenAfterMove(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.w]
command = ` + sh(`i=0; while :; do i=$((i+1)); echo "line $i"; sleep 0.01; done`) + `
stdout = "./w.log"
log_max_size = "10MB"
`})
	path := filepath.Join(s.dir, "w.log")
	for round, reopen := range []func(){
		func() {
			if r := s.ctl(t, "reopen-logs"); r.code != 0 || r.stdout != "reopened 1 log file\n" {
				t.Fatalf("reopen-logs: %s", r)
			}
		},
		func() { s.cmd.Process.Signal(syscall.SIGUSR1) },
	} {
		moved := fmt.Sprintf("%s.moved%d", path, round)
		waitFor(t, "lines in the file", waitDefault, func() (bool, string) {
			b, _ := os.ReadFile(path)
			return bytes.Count(b, []byte("\n")) >= 5, ""
		})
		if err := os.Rename(path, moved); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // lines still go to the moved file
		reopen()
		waitFor(t, "a new file", waitDefault, func() (bool, string) {
			b, err := os.ReadFile(path)
			return err == nil && bytes.Count(b, []byte("\n")) >= 3, fmt.Sprint(err)
		})
		old, _ := os.ReadFile(moved)
		cur, _ := os.ReadFile(path)
		oldLines := strings.Split(strings.TrimSpace(string(old)), "\n")
		lastOld := lineNumber(t, oldLines[len(oldLines)-1])
		firstNew := lineNumber(t, strings.SplitN(string(cur), "\n", 2)[0])
		if firstNew != lastOld+1 {
			t.Fatalf("round %d: the moved file ends at line %d, the new one starts at %d", round, lastOld, firstNew)
		}
	}
	if !strings.Contains(s.logText(), "SIGUSR1") {
		t.Errorf("the reopen on SIGUSR1 was not logged")
	}
}

func lineNumber(t *testing.T, line string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(line, "line "))
	if err != nil {
		t.Fatalf("line %q", line)
	}
	return n
}

// SPEC §14: a file the supervisor cannot write never blocks the program:
// its output is dropped and counted in status and metrics, and the error
// logged (once per 10 s).
func TestLogFileUnwritable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := newSup(t, config{supervisor: "metrics = " + q(addr), programs: `
[programs.w]
command = ` + sh(`seq 1 20000; touch w.done; exec sleep 1000`) + `
stdout = "./missing/dir/w.log"
log_max_size = "1MB"
`})
	waitFor(t, "the program to get through its output", waitDefault, func() (bool, string) {
		_, err := os.Stat(filepath.Join(s.dir, "w.done"))
		return err == nil, ""
	})
	p := s.waitProg(t, "w", "dropped bytes counted", func(p control.ProgramStatus) bool {
		return p.Output != nil && p.Output.DroppedBytes == uint64(len(numberLines(1, 20001)))
	})
	if !strings.Contains(p.Output.FileError, "no such file or directory") || p.State != "running" {
		t.Errorf("status %s", describe(p))
	}
	if r := s.ctl(t, "status"); !strings.Contains(r.stdout, "w: output lost: 108894 bytes not written to its log file (open log file:") {
		t.Errorf("status table:\n%s", r.stdout)
	}
	n := 0
	for _, l := range s.logLines() {
		if m, _ := l["msg"].(string); strings.Contains(m, "output dropped") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d log entries about the file, want 1", n)
	}
	resp, err := plainGet("http://" + addr + "/metrics")
	if err != nil || !strings.Contains(resp, `supervise_program_output_dropped_bytes_total{program="w",instance="w"} 108894`) {
		t.Errorf("metrics: %v\n%s", err, resp)
	}
}

// plainGet fetches url with a plain HTTP/1.0 request (no client keeps a
// connection, or a goroutine, behind).
func plainGet(url string) (string, error) {
	host, path, _ := strings.Cut(strings.TrimPrefix(url, "http://"), "/")
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host)
	b, err := io.ReadAll(c)
	return string(b), err
}

// SPEC §13 and §14 together: the console pads to the longest instance
// name; `logs NAME` is every instance of a program with replicas (and
// those a scale adds while following), `logs NAME:i` one; each instance
// has its own rotated file; status rows carry the output counts.
func TestLogsWithReplicas(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.db]
command = ` + sh(`echo db up; exec sleep 1000`) + `
[programs.web]
replicas = 2
command = ` + sh(`echo "hello $SUPERVISE_INSTANCE"; exec sleep 1000`) + `
[programs.job]
replicas = 2
command = ` + sh(`echo "job $SUPERVISE_REPLICA"; echo "job $SUPERVISE_REPLICA on stderr" >&2; exec sleep 1000`) + `
stdout = "./job-{replica}.log"
stderr = "./job-{replica}.log"
log_max_size = "1MB"
`}, "--log-format", "console")
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)`
	waitFor(t, "the lines", waitDefault, func() (bool, string) {
		text := s.logText()
		return strings.Contains(text, "| db up") && strings.Contains(text, "| hello web:1"), text
	})
	text := s.logText()
	for _, re := range []string{
		`(?m)^` + stamp + ` db    \| db up$`,
		`(?m)^` + stamp + ` web:0 \| hello web:0$`,
		`(?m)^` + stamp + ` web:1 \| hello web:1$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("no line matches %s in:\n%s", re, text)
		}
	}
	for i := range 2 {
		fileHolds(t, filepath.Join(s.dir, fmt.Sprintf("job-%d.log", i)), fmt.Sprintf("job %d\n", i), fmt.Sprintf("job %d on stderr\n", i))
	}
	if r := s.ctl(t, "reopen-logs"); r.code != 0 || r.stdout != "reopened 2 log files\n" {
		t.Errorf("reopen-logs: %s", r)
	}

	r := s.ctl(t, "logs", "web")
	if got := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(got) != 2 ||
		!slices.ContainsFunc(got, func(l string) bool { return strings.HasSuffix(l, " web:0 | hello web:0") }) ||
		!slices.ContainsFunc(got, func(l string) bool { return strings.HasSuffix(l, " web:1 | hello web:1") }) {
		t.Errorf("logs web: %s", r)
	}
	r = s.ctl(t, "logs", "web:1")
	if r.code != 0 || !regexp.MustCompile(`^\S+ web:1 \| hello web:1\n$`).MatchString(r.stdout) {
		t.Errorf("logs web:1: %s", r)
	}
	r = s.ctl(t, "logs", "job")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "job:0: stdout goes to "+filepath.Join(s.dir, "job-0.log")) ||
		!strings.Contains(r.stderr, "job:1: stdout goes to "+filepath.Join(s.dir, "job-1.log")) {
		t.Errorf("logs job: %s", r)
	}
	if r := s.ctl(t, "logs", "web:2"); r.code != 1 || !strings.Contains(r.stderr, `no instance "web:2"`) {
		t.Errorf("logs web:2: %s", r)
	}

	rows := s.instances(t, "web")
	if p := rows["web:1"]; p.Program != "web" || p.Replica != 1 || p.Output == nil || p.Output.DroppedLines != 0 {
		t.Errorf("status of web:1: %+v", p)
	}

	// A follower of web gets the instance a scale adds.
	cmd := exec.Command(bin, "logs", "-f", "-n", "0", "-s", s.sock, "web")
	cmd.Env = childEnv(clientRace)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(200 * time.Millisecond) // following
	if r := s.ctl(t, "scale", "web", "3"); r.code != 0 {
		t.Fatalf("scale: %s", r)
	}
	select {
	case l := <-lines:
		if !strings.HasSuffix(l, " web:2 | hello web:2") {
			t.Errorf("followed %q, want web:2's line", l)
		}
	case <-time.After(waitDefault):
		t.Errorf("the follower of web did not get the line of web:2")
	}
}
