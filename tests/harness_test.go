// Package tests holds the end-to-end tests of the supervise command: each
// test builds a configuration, runs the real binary (built once, with the
// race detector) against real processes, and checks what SPEC.md promises
// through the public interface only: the command line, the TOML keys, the
// control socket, exit codes and the status JSON.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/supervise/supervise/control"
)

// bin is the race-enabled supervise binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests spend their time waiting on real processes, not on the
	// CPU: run more of them at once than the default of GOMAXPROCS.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			parallelSet = true
		}
	})
	if !parallelSet {
		_ = flag.Set("test.parallel", "12")
	}

	dir, err := os.MkdirTemp("", "supervise-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		root, err := filepath.Abs("..")
		if err != nil {
			fmt.Fprintln(os.Stderr, "tests:", err)
			return 1
		}
		moduleRoot = root
		bin = filepath.Join(dir, "supervise")
		build := exec.Command("go", "build", "-race", "-o", bin, "./cmd/supervise")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "tests: building supervise: %v\n%s", err, out)
			return 1
		}
		code := m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "tests: leaked goroutines:", err)
				return 1
			}
		}
		return code
	}()
	os.Exit(code)
}

// moduleRoot is the repository root the binary was built from.
var moduleRoot string

// sourcesOnce makes the first test read the binary's sources.
var sourcesOnce sync.Once

// readSources opens every Go file the supervise binary is built from.
// `go test` caches a package's result by the files its tests open (only
// while tests run, not in TestMain); the binary is built by a child
// process, so without this a change to the supervisor would be answered
// with a stale cached "ok".
func readSources(root string) {
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "tests" || name == "testdata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if name := d.Name(); name == "go.mod" || name == "go.sum" || (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) {
			os.ReadFile(path)
		}
		return nil
	})
}

// childEnv is the environment for every supervise process the tests run:
// ours without anything that would change where supervise looks for its
// configuration, socket or service manager.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "SUPERVISE_"), k == "NOTIFY_SOCKET", k == "WATCHDOG_USEC",
			k == "WATCHDOG_PID", k == "LISTEN_FDS", k == "LISTEN_PID", k == "HOME":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME=/root-home-for-tests")
	return append(env, extra...)
}

// q quotes s as a TOML basic string (JSON escapes are valid TOML).
func q(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sh is a TOML argv running script with /bin/sh -c.
func sh(script string) string {
	return fmt.Sprintf(`["/bin/sh", "-c", %s]`, q(script))
}

// config is what a test puts in its configuration file. The harness adds
// the socket, JSON logs and, in [defaults], directory = the test directory,
// so scripts may use relative paths for their marker files.
type config struct {
	supervisor string // extra lines for [supervisor]
	defaults   string // extra lines for [defaults]
	programs   string // [programs.X] and [teardown.X] tables
}

// sup is one running `supervise run`.
type sup struct {
	dir  string // test directory: config, log, marker files
	cfg  string // config file path
	sock string // control socket path
	log  string // path of the captured stderr

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	code int           // exit code (128+N when killed by signal N), valid after done

	mu   sync.Mutex
	pids map[int]bool // program pids seen in status, killed if the supervisor must be

	env []string // extra environment of the supervisor
}

// shortDir makes a directory with a short path (for Unix socket names) that
// is removed when the test ends.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "svt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// render produces the configuration file text.
func (s *sup) render(c config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[supervisor]\nsocket = %s\nlog_format = \"json\"\nlog_level = \"debug\"\n%s\n\n", q(s.sock), c.supervisor)
	fmt.Fprintf(&b, "[defaults]\ndirectory = %s\n%s\n\n", q(s.dir), c.defaults)
	b.WriteString(c.programs)
	b.WriteString("\n")
	return b.String()
}

// writeConfig replaces the configuration file atomically (temporary file in
// the same directory, then rename), as editors do.
func (s *sup) writeConfig(t *testing.T, c config) {
	t.Helper()
	writeAtomic(t, s.cfg, s.render(c))
}

func writeAtomic(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// newSup writes the configuration and starts `supervise run -c FILE -s SOCK`.
// It does not wait for anything; use waitProg or waitFor.
func newSup(t *testing.T, c config, extraArgs ...string) *sup {
	t.Helper()
	return newSupEnv(t, c, nil, extraArgs...)
}

// newSupEnv is newSup with extra environment variables for the supervisor.
func newSupEnv(t *testing.T, c config, env []string, extraArgs ...string) *sup {
	t.Helper()
	sourcesOnce.Do(func() { readSources(moduleRoot) })
	s := &sup{
		dir:  t.TempDir(),
		pids: map[int]bool{},
		done: make(chan struct{}),
		env:  env,
	}
	s.sock = filepath.Join(shortDir(t), "ctl.sock")
	s.cfg = filepath.Join(s.dir, "supervise.toml")
	s.log = filepath.Join(s.dir, "supervise.log")
	if err := os.WriteFile(s.cfg, []byte(s.render(c)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start(t, extraArgs...)
	return s
}

func (s *sup) start(t *testing.T, extraArgs ...string) {
	t.Helper()
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"run", "-c", s.cfg, "-s", s.sock}, extraArgs...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = s.dir
	s.cmd.Env = childEnv(s.env...)
	s.cmd.Stdout = logf
	s.cmd.Stderr = logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		s.code = exitCode(s.cmd.ProcessState, err)
		close(s.done)
	}()
	t.Cleanup(func() { s.cleanup(t) })
}

// exitCode turns a process state into a shell-style exit code.
func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		if err != nil {
			return -1
		}
		return 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// cleanup ends a supervisor the test left running (gracefully if it can),
// and prints its log when the test failed.
func (s *sup) cleanup(t *testing.T) {
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
	if !s.exited() {
		syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("supervisor did not end within 10s of SIGTERM at cleanup; killing it")
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			s.mu.Lock()
			for pid := range s.pids {
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
			s.mu.Unlock()
			<-s.done
		}
	}
	if text := s.logText(); strings.Contains(text, "WARNING: DATA RACE") || strings.Contains(text, "panic: ") {
		t.Errorf("the supervisor reported a data race or a panic (see its log)")
	}
	if t.Failed() {
		t.Logf("supervisor log (%s), last lines:\n%s", s.log, s.logTail(150))
	}
}

func (s *sup) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// logText is the whole captured stderr of the supervisor.
func (s *sup) logText() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

func (s *sup) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(s.logText(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLines decodes the JSON log lines (others are skipped).
func (s *sup) logLines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// result is the outcome of one command.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// clientRace makes short-lived client commands skip the race runtime's
// one-second pause at exit (races are still reported as they happen).
const clientRace = "GORACE=atexit_sleep_ms=0"

// runBin runs the supervise binary with args and a deadline.
func runBin(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	return runBinEnv(t, childEnv(), timeout, args...)
}

func runBinEnv(t *testing.T, env []string, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("supervise %s: no answer within %s", strings.Join(args, " "), timeout)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("supervise %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), exitCode(cmd.ProcessState, err)}
}

// ctl runs a control verb against this supervisor.
func (s *sup) ctl(t *testing.T, args ...string) result {
	t.Helper()
	return runBinEnv(t, childEnv(clientRace), 20*time.Second, append(args, "-s", s.sock)...)
}

// tryStatus asks for `status --json`.
func (s *sup) tryStatus() ([]control.ProgramStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "status", "--json", "-s", s.sock)
	cmd.Env = childEnv(clientRace)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("status --json: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	var doc struct {
		Programs []control.ProgramStatus `json:"programs"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		return nil, fmt.Errorf("status --json: %v in %q", err, out.String())
	}
	s.mu.Lock()
	for _, p := range doc.Programs {
		if p.PID > 0 {
			s.pids[p.PID] = true
		}
	}
	s.mu.Unlock()
	return doc.Programs, nil
}

// status is tryStatus that fails the test on error.
func (s *sup) status(t *testing.T) []control.ProgramStatus {
	t.Helper()
	ps, err := s.tryStatus()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func find(ps []control.ProgramStatus, name string) (control.ProgramStatus, bool) {
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return control.ProgramStatus{}, false
}

// prog is the status of one program; the test fails if it is missing.
func (s *sup) prog(t *testing.T, name string) control.ProgramStatus {
	t.Helper()
	p, ok := find(s.status(t), name)
	if !ok {
		t.Fatalf("program %q missing from status", name)
	}
	return p
}

// describe is a short form of a program status for failure messages.
func describe(p control.ProgramStatus) string {
	b, _ := json.Marshal(p)
	return string(b)
}

const (
	pollEvery   = 150 * time.Millisecond
	waitDefault = 10 * time.Second
)

// waitFor re-checks cond every pollEvery until it holds or timeout passes;
// cond returns whether it holds and what it saw (for the failure message).
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, seen)
		}
		time.Sleep(pollEvery)
	}
}

// waitProg waits until program name's status satisfies cond and returns it.
func (s *sup) waitProg(t *testing.T, name, what string, cond func(p control.ProgramStatus) bool) control.ProgramStatus {
	t.Helper()
	var got control.ProgramStatus
	waitFor(t, name+": "+what, waitDefault, func() (bool, string) {
		if s.exited() {
			t.Fatalf("supervisor exited (code %d) while waiting for %s: %s", s.code, name, what)
		}
		ps, err := s.tryStatus()
		if err != nil {
			return false, err.Error()
		}
		p, ok := find(ps, name)
		if !ok {
			return false, "no program " + name
		}
		got = p
		return cond(p), describe(p)
	})
	return got
}

// running waits until the program is running (ready) with a pid.
func (s *sup) running(t *testing.T, name string) control.ProgramStatus {
	t.Helper()
	return s.waitProg(t, name, "running with a pid", func(p control.ProgramStatus) bool {
		return p.State == "running" && p.PID > 0
	})
}

// wait waits for the supervisor to exit by itself and returns its code.
func (s *sup) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(timeout):
		t.Fatalf("supervisor still running after %s", timeout)
		return -1
	}
}

// stop sends SIGTERM to the supervisor and returns its exit code.
func (s *sup) stop(t *testing.T) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !s.exited() {
		t.Fatal(err)
	}
	return s.wait(t, 15*time.Second)
}

// procState is the state letter of /proc/PID/stat; ok is false when the
// process does not exist.
func procState(pid int) (state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// gone reports whether pid no longer runs (absent, or a zombie about to be
// reaped).
func gone(pid int) bool {
	st, ok := procState(pid)
	return !ok || st == 'Z' || st == 'X'
}

// waitGone waits until every pid is gone.
func waitGone(t *testing.T, timeout time.Duration, pids ...int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("pids %v to be gone", pids), timeout, func() (bool, string) {
		var alive []string
		for _, pid := range pids {
			if !gone(pid) {
				st, _ := procState(pid)
				alive = append(alive, fmt.Sprintf("%d(%c)", pid, st))
			}
		}
		return len(alive) == 0, "still alive: " + strings.Join(alive, " ")
	})
}

// readPID waits for a file holding a pid and returns it.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "pid file "+path, waitDefault, func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || n <= 0 {
			return false, fmt.Sprintf("content %q", b)
		}
		pid = n
		return true, ""
	})
	return pid
}

// waitFile waits until path exists and returns its content.
func waitFile(t *testing.T, path string, cond func(string) bool) string {
	t.Helper()
	var text string
	waitFor(t, "file "+path, waitDefault, func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		text = string(b)
		return cond == nil || cond(text), fmt.Sprintf("content %q", text)
	})
	return text
}

func isRoot() bool { return os.Geteuid() == 0 }
