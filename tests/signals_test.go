package tests

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/watch/heartbeat"
)

// startSingle runs `supervise -- sh -c script` and waits until the script
// has created the file ready.
func startSingle(t *testing.T, script string) (cmd *exec.Cmd, done chan struct{}, out *bytes.Buffer, dir string) {
	t.Helper()
	dir = t.TempDir()
	ready := filepath.Join(dir, "ready")
	cmd = exec.Command(bin, "--", "sh", "-c", strings.ReplaceAll(script, "READY", ready))
	cmd.Env = childEnv()
	out = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	waitFile(t, ready, nil)
	return cmd, done, out, dir
}

// SPEC §1/§5: `supervise -- CMD` honours the teardown like a config: a
// command that ignores SIGTERM is killed with its group after stop_timeout
// (10 s by default), and the supervisor exits with its code (128+9).
func TestSingleCommandKillsACommandIgnoringTERM(t *testing.T) {
	t.Parallel()
	cmd, done, out, _ := startSingle(t, `trap "" TERM INT; sleep 1000 & echo $! > READY.pid; touch READY; wait`)
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		t.Fatalf("still running 25 s after SIGTERM; output:\n%s", out)
	}
	took := time.Since(start)
	if code := exitCode(cmd.ProcessState, nil); code != 137 {
		t.Errorf("exit code %d, want 137 (the command killed by SIGKILL); output:\n%s", code, out)
	}
	if took < 9*time.Second {
		t.Errorf("killed after %v, before its stop_timeout of 10s", took)
	}
}

// A second SIGINT or SIGTERM skips to SIGKILL at once, in single-command
// mode too.
func TestSingleCommandSecondSignalKills(t *testing.T) {
	t.Parallel()
	cmd, done, out, _ := startSingle(t, `trap "" TERM INT; touch READY; while :; do sleep 0.05; done`)
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // beyond the duplicate window
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5 s after the second signal; output:\n%s", out)
	}
	if code := exitCode(cmd.ProcessState, nil); code != 137 {
		t.Errorf("exit code %d, want 137; output:\n%s", code, out)
	}
}

// Two deliveries of one signal within milliseconds (GNU timeout signals
// the process, then its group) are one request: a clean teardown, exit 0.
func TestDuplicateSignalIsOneRequest(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
`})
	s.running(t, "web")
	s.cmd.Process.Signal(syscall.SIGINT)
	s.cmd.Process.Signal(syscall.SIGINT)
	if code := s.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after a doubled SIGINT, want 0 (a clean teardown)\n%s", code, s.logTail(20))
	}
	if text := s.logText(); strings.Contains(text, "teardown forced") || strings.Contains(text, "did not finish") {
		t.Fatalf("a doubled SIGINT forced the teardown:\n%s", s.logTail(20))
	}
}

// A forced teardown lists as unfinished only the steps that really are.
func TestForcedTeardownNamesOnlyUnfinishedSteps(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.quick]
command = ["/bin/sleep", "1000"]
[programs.stubborn]
command = ` + sh(`trap "" TERM; touch stubborn.up; while :; do sleep 0.05; done`) + `
stop_timeout = "20s"
`})
	s.running(t, "quick")
	s.running(t, "stubborn")
	waitFile(t, filepath.Join(s.dir, "stubborn.up"), nil)
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.waitProg(t, "quick", "stopped", func(p control.ProgramStatus) bool { return p.State == "stopped" })
	time.Sleep(300 * time.Millisecond) // beyond the duplicate window
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.wait(t, 15*time.Second)
	for _, l := range s.logLines() {
		if l["msg"] == "teardown did not finish in time" {
			b, _ := json.Marshal(l["unfinished"])
			if strings.Contains(string(b), "quick") || !strings.Contains(string(b), "stubborn") {
				t.Fatalf("unfinished = %s, want stubborn only", b)
			}
			return
		}
	}
	t.Fatalf("no forced teardown logged:\n%s", s.logTail(20))
}

// SPEC §5: the supervisor's own heartbeat is first written once the
// autostart programs are spawned, counting them per state.
func TestFirstSelfBeatCountsThePrograms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	beat := filepath.Join(dir, "self.beat")
	s := newSup(t, config{supervisor: `heartbeat_file = ` + q(beat) + `
heartbeat_interval = "1h"`, programs: `
[programs.a]
command = ["/bin/sleep", "1000"]
[programs.b]
command = ["/bin/sleep", "1000"]
`})
	waitFile(t, beat, nil)
	st, err := heartbeat.Read(beat)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Metadata["programs"].(float64); n != 2 {
		t.Fatalf("first beat metadata %v: want programs = 2", st.Metadata)
	}
	states, _ := st.Metadata["states"].(map[string]any)
	if r, _ := states["running"].(float64); r != 2 {
		t.Fatalf("first beat states %v: want running = 2", states)
	}
	_ = s
}

// [supervisor] stop_signal: an image whose STOPSIGNAL is another signal
// gets the same orderly teardown as with SIGTERM.
func TestConfiguredStopSignal(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{supervisor: `stop_signal = "QUIT"`, programs: `
[programs.web]
command = ["/bin/sleep", "1000"]
`})
	s.running(t, "web")
	s.cmd.Process.Signal(syscall.SIGQUIT)
	if code := s.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGQUIT with stop_signal = QUIT, want 0\n%s", code, s.logTail(10))
	}
	if !strings.Contains(s.logText(), `"reason":"signal SIGQUIT"`) {
		t.Fatalf("no teardown for SIGQUIT:\n%s", s.logTail(10))
	}
}
