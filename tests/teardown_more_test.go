package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// escaperProgram is a program whose shell starts two descendants and
// records their pids (as seen in the supervisor's pid namespace):
//
//   - an escapee that leaves the program's session and process group with
//     setsid, so stopping the program's group does not reach it; it writes
//     escapee.term when it gets SIGTERM (a SIGKILL, as sent by the kernel to
//     a pid namespace whose PID 1 has exited, leaves no such mark);
//   - a plain grandchild in the program's group, which writes
//     grandchild.term on SIGTERM in the same way.
const escaperProgram = `
[programs.escaper]
command = "setsid sh -c 'echo $$ > escapee.pid; trap \"echo term > escapee.term; exit 0\" TERM; while :; do sleep 0.1; done' & sh -c 'echo $$ > grandchild.pid; trap \"echo term > grandchild.term; exit 0\" TERM; while :; do sleep 0.1; done' & wait"
stop_timeout = "3s"
`

// reapedBeforeExit checks the supervisor's log: every pid in pids was
// reaped (as an orphan) before the "supervisor exiting" entry.
func reapedBeforeExit(t *testing.T, s *sup, pids ...int) {
	t.Helper()
	reaped := map[int]bool{}
	exiting := false
	for _, l := range s.logLines() {
		switch l["msg"] {
		case "reaped orphan":
			if exiting {
				continue
			}
			if f, ok := l["pid"].(float64); ok {
				reaped[int(f)] = true
			}
		case "supervisor exiting":
			exiting = true
		}
	}
	if !exiting {
		t.Errorf("no \"supervisor exiting\" entry in the log")
	}
	for _, pid := range pids {
		if !reaped[pid] {
			t.Errorf("pid %d was not reaped before the supervisor exited", pid)
		}
	}
}

// killLater makes sure the recorded pids do not outlive a failed test.
func killLater(t *testing.T, pids ...int) {
	t.Cleanup(func() {
		for _, pid := range pids {
			if !gone(pid) {
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// Nothing started by a program outlives the supervisor (SPEC §5 step 6),
// not even a descendant that left the program's process group.
func TestTeardownLeavesNothing(t *testing.T) {
	t.Parallel()
	t.Run("child subreaper", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{supervisor: `shutdown_timeout = "10s"`, programs: escaperProgram})
		s.running(t, "escaper")
		esc := readPID(t, filepath.Join(s.dir, "escapee.pid"))
		gc := readPID(t, filepath.Join(s.dir, "grandchild.pid"))
		killLater(t, esc, gc)
		if pg, err := syscall.Getpgid(esc); err != nil || pg != esc {
			t.Fatalf("escapee %d: pgid %d (%v), want its own group", esc, pg, err)
		}
		if code := s.stop(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		for _, pid := range []int{esc, gc} {
			if !gone(pid) {
				st, _ := procState(pid)
				t.Errorf("pid %d (state %c) outlived the supervisor", pid, st)
			}
		}
		for _, f := range []string{"escapee.term", "grandchild.term"} {
			if _, err := os.Stat(filepath.Join(s.dir, f)); err != nil {
				t.Errorf("no SIGTERM from the teardown: %v", err)
			}
		}
		reapedBeforeExit(t, s, esc)
	})

	t.Run("PID 1 of a pid namespace", func(t *testing.T) {
		t.Parallel()
		if !isRoot() {
			t.Skip("needs root for unshare --pid")
		}
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Skip("no unshare")
		}
		// How this is checked: when a namespace's PID 1 exits, the kernel
		// SIGKILLs everything left in the namespace, so "no pid survives"
		// seen from outside afterwards proves nothing by itself. Two
		// checks say the supervisor itself ended the escapee first:
		//   - inside: the escapee and the grandchild trap SIGTERM and write
		//     a mark (the kernel's SIGKILL cannot be trapped), and the
		//     supervisor's log shows it reaped the escapee's pid (pids in the pid files
		//     and in the log are both the namespace's own) before "supervisor
		//     exiting";
		//   - outside: the recorded pids are mapped to pids of the root
		//     namespace through the NSpid line of /proc/PID/status, and
		//     none of them runs once the supervisor has exited.
		s, svPID := newSupInPidNS(t, config{supervisor: `shutdown_timeout = "10s"`, programs: escaperProgram})
		s.running(t, "escaper")
		esc := readPID(t, filepath.Join(s.dir, "escapee.pid"))
		gc := readPID(t, filepath.Join(s.dir, "grandchild.pid"))
		outer := outerPIDs(t, svPID, esc, gc)
		killLater(t, outer...)
		if err := syscall.Kill(svPID, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := s.wait(t, 15*time.Second); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		for _, pid := range outer {
			if !gone(pid) {
				t.Errorf("pid %d (root namespace) outlived the supervisor", pid)
			}
		}
		for _, f := range []string{"escapee.term", "grandchild.term"} {
			if _, err := os.Stat(filepath.Join(s.dir, f)); err != nil {
				t.Errorf("no SIGTERM from the teardown (killed by the kernel with the namespace instead?): %v", err)
			}
		}
		// The escapee is our child once its parent, the program, has
		// ended; the grandchild may have been reaped by the program.
		reapedBeforeExit(t, s, esc)
	})
}

// newSupInPidNS starts `unshare --pid --fork --mount-proc supervise run`,
// so that supervise is PID 1 of a new pid namespace, and returns it with
// supervise's pid in our namespace. unshare ignores SIGTERM while it
// waits: signal the returned pid, not s.cmd.
func newSupInPidNS(t *testing.T, c config) (*sup, int) {
	t.Helper()
	s := &sup{dir: t.TempDir(), pids: map[int]bool{}, done: make(chan struct{})}
	s.sock = filepath.Join(shortDir(t), "ctl.sock")
	s.cfg = filepath.Join(s.dir, "supervise.toml")
	s.log = filepath.Join(s.dir, "supervise.log")
	if err := os.WriteFile(s.cfg, []byte(s.render(c)), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
		bin, "run", "-c", s.cfg, "-s", s.sock)
	s.cmd.Dir = s.dir
	s.cmd.Env = childEnv()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		s.code = exitCode(s.cmd.ProcessState, err)
		close(s.done)
	}()
	t.Cleanup(func() {
		if !s.exited() {
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Errorf("supervisor did not end within 10s of SIGTERM at cleanup; killing it")
				syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.done
			}
		}
		if text := s.logText(); strings.Contains(text, "WARNING: DATA RACE") || strings.Contains(text, "panic: ") {
			t.Errorf("the supervisor reported a data race or a panic (see its log)")
		}
		if t.Failed() {
			t.Logf("supervisor log (%s), last lines:\n%s", s.log, s.logTail(150))
		}
	})
	var svPID int
	upid := s.cmd.Process.Pid
	waitFor(t, "supervise to start under unshare", waitDefault, func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", upid, upid))
		if err != nil {
			return false, err.Error()
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false, "no child yet"
		}
		svPID, _ = strconv.Atoi(f[0])
		return svPID > 0, string(b)
	})
	return s, svPID
}

// outerPIDs maps pids of the pid namespace that svPID is PID 1 of to pids
// of our namespace, using the last field of each process's NSpid line.
func outerPIDs(t *testing.T, svPID int, inner ...int) []int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", svPID))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]bool{}
	for _, p := range inner {
		want[p] = true
	}
	found := map[int]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || l != ns {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if f := strings.Fields(string(line)); len(f) >= 3 && f[0] == "NSpid:" {
				in, _ := strconv.Atoi(f[len(f)-1])
				if want[in] {
					found[in] = pid
				}
			}
		}
	}
	var out []int
	for _, p := range inner {
		o, ok := found[p]
		if !ok {
			t.Fatalf("no process of the namespace has inner pid %d", p)
		}
		out = append(out, o)
	}
	return out
}

// While the teardown waits for a step, the log names it about once a
// second (SPEC §5 step 5).
func TestTeardownProgressLog(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{supervisor: `shutdown_timeout = "10s"`, programs: `
[programs.stubborn]
command = ` + sh(`trap "" TERM; touch armed; while :; do sleep 0.05; done`) + `
stop_timeout = "3s"
`})
	s.running(t, "stubborn")
	waitFile(t, filepath.Join(s.dir, "armed"), nil)
	if code := s.stop(t); code != 0 {
		t.Errorf("exit code %d, want 0 (stop_timeout 3s is within shutdown_timeout 10s)", code)
	}
	var begin, end time.Time
	var at []time.Time
	for _, l := range s.logLines() {
		ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
		switch l["msg"] {
		case "teardown":
			begin = ts
		case "supervisor exiting":
			end = ts
		case "teardown: still waiting":
			steps, _ := l["steps"].([]any)
			if len(steps) != 1 || steps[0] != "program stubborn" {
				t.Errorf("still waiting for %v, want [program stubborn]", l["steps"])
			}
			at = append(at, ts)
		}
	}
	if begin.IsZero() || end.IsZero() {
		t.Fatalf("log lacks the teardown's begin or end")
	}
	if len(at) < 2 {
		t.Fatalf("%d \"teardown: still waiting\" entries in a teardown of %s, want at least 2", len(at), end.Sub(begin))
	}
	prev := begin
	for i, ts := range at {
		if ts.Before(begin) || ts.After(end) {
			t.Errorf("entry %d at %s is outside the teardown (%s .. %s)", i, ts, begin, end)
		}
		if d := ts.Sub(prev); d < 700*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("entry %d came %s after the previous (or the teardown's start), want about 1s", i, d)
		}
		prev = ts
	}
}

// stubbornEscapee is a program whose descendant leaves the program's
// process group and ignores SIGTERM: only the final sweep of the teardown
// (SPEC §5 step 6) can end it, with SIGKILL.
const stubbornEscapee = `
[programs.escaper]
command = "setsid sh -c 'echo $$ > escapee.pid; trap \"\" TERM; while :; do sleep 0.1; done' & exec sleep 1000"
`

// The budget bounds the sweep too: an escapee that ignores SIGTERM is
// killed when shutdown_timeout is spent, and the exit code says the
// teardown did not finish in time (SPEC §5 step 4).
func TestTeardownSweepBudget(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{supervisor: `shutdown_timeout = "3s"
force_exit_code = 9`, programs: stubbornEscapee})
	s.running(t, "escaper")
	esc := readPID(t, filepath.Join(s.dir, "escapee.pid"))
	killLater(t, esc)
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := s.wait(t, 15*time.Second)
	if d := time.Since(start); d < 2500*time.Millisecond || d > 6*time.Second {
		t.Errorf("supervisor exited %s after SIGTERM, want about shutdown_timeout (3s)", d)
	}
	if !gone(esc) {
		t.Errorf("escapee %d outlived the supervisor", esc)
	}
	reapedBeforeExit(t, s, esc)
	if code != 9 {
		t.Errorf("exit code %d after the teardown spent shutdown_timeout killing an escapee, want force_exit_code 9", code)
	}
}

// A second SIGTERM also cuts the final sweep short: the escapee gets
// SIGKILL at once (SPEC §5: "skips to step 4 at once").
func TestTeardownSecondSignalDuringSweep(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{supervisor: `shutdown_timeout = "8s"
force_exit_code = 9`, programs: stubbornEscapee})
	s.running(t, "escaper")
	esc := readPID(t, filepath.Join(s.dir, "escapee.pid"))
	killLater(t, esc)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sweep to begin", waitDefault, func() (bool, string) {
		return strings.Contains(s.logText(), "terminating remaining processes"), s.logTail(3)
	})
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := s.wait(t, 15*time.Second)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("supervisor exited %s after a second SIGTERM during the sweep, want at once", d)
	}
	if !gone(esc) {
		t.Errorf("escapee %d outlived the supervisor", esc)
	}
	if code != 9 {
		t.Errorf("exit code %d after a second SIGTERM forced the teardown, want force_exit_code 9", code)
	}
}
