package tests

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A syntax error anywhere else in the file does not lock the operator
// out: the control commands read [supervisor] socket on its own, reload
// reports the error, and shutdown works.
func TestBrokenConfigKeepsControl(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{supervisor: "watch_config = false", programs: `
[programs.a]
command = ["/bin/sleep", "1000"]
`})
	a := s.running(t, "a")
	broken := s.render(config{supervisor: "watch_config = false", programs: `
[programs.a]
command = ["/bin/sleep", "1000"
[programs.b
`})
	writeAtomic(t, s.cfg, broken)
	ctl := func(args ...string) result {
		return runBinEnv(t, childEnv(clientRace), 20*time.Second, append(args, "-c", s.cfg)...)
	}
	r := ctl("status")
	if r.code != 0 || !strings.Contains(r.stdout, "running") {
		t.Fatalf("status -c broken file: %s, want exit 0 and the table", r)
	}
	r = ctl("reload")
	if r.code != 1 || !strings.Contains(r.stderr, "configuration unchanged") || !strings.Contains(r.stderr, s.cfg+":") {
		t.Errorf("reload of a broken file: %s, want exit 1 with the parse error naming the file", r)
	}
	if b := s.prog(t, "a"); b.PID != a.PID {
		t.Errorf("program a restarted after a refused reload")
	}
	r = ctl("shutdown")
	if r.code != 0 || !strings.Contains(r.stdout, "shutting down") {
		t.Errorf("shutdown -c broken file: %s", r)
	}
	if code := s.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d after shutdown, want 0", code)
	}
	// A -c file that cannot be read is an error of its own.
	if r := runBin(t, 20*time.Second, "status", "-c", filepath.Join(s.dir, "nope.toml")); r.code != 2 || !strings.Contains(r.stderr, "nope.toml") {
		t.Errorf("status -c missing file: %s, want exit 2 naming it", r)
	}
}

// The command line refuses a socket served by another user (here a real
// supervisor run as uid 65534 on the path) before sending anything: a
// shutdown never reaches it, and nothing it says is printed.
func TestCLIRefusesForeignServer(t *testing.T) {
	t.Parallel()
	if !isRoot() {
		t.Skip("needs root to run a supervisor as another uid")
	}
	dir := shortDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "supervise")
	copyExecutable(t, bin, own)
	sock := filepath.Join(dir, "ctl.sock")
	cmd := exec.Command(own, "-s", sock, "--", "/bin/sleep", "1000")
	cmd.Env = childEnv("TMPDIR=" + dir)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	waitFor(t, "the socket of uid 65534's supervisor", waitDefault, func() (bool, string) {
		fi, err := os.Lstat(sock)
		return err == nil && fi.Mode()&os.ModeSocket != 0, fmt.Sprint(err)
	})
	for _, verb := range []string{"status", "shutdown"} {
		r := runBin(t, 20*time.Second, verb, "-s", sock)
		want := "supervise: refusing to talk to the socket at " + sock + ": it is served by uid 65534 (pid "
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) || r.stdout != "" {
			t.Errorf("%s against a supervisor of uid 65534: %s, want exit 1 and %q...", verb, r, want)
		}
	}
	select {
	case <-done:
		t.Fatal("the other user's supervisor ended: the shutdown reached it")
	case <-time.After(500 * time.Millisecond):
	}
}

// `supervise COMMAND --help` prints the command's usage and exits 0; an
// unknown command says so and lists the commands.
func TestCLIHelp(t *testing.T) {
	t.Parallel()
	r := runBin(t, 20*time.Second, "status", "--help")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: supervise status [NAME...] [--json]") || r.stderr != "" {
		t.Errorf("status --help: %s", r)
	}
	r = runBin(t, 20*time.Second, "help", "signal")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: supervise signal NAME SIGNAL") {
		t.Errorf("help signal: %s", r)
	}
	r = runBin(t, 20*time.Second, "statuss")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown command "statuss" (did you mean "status"?); commands: run, validate, status`) {
		t.Errorf("statuss: %s", r)
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
