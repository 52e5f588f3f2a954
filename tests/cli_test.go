package tests

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// Single-command mode: exit codes pass through, signals give 128+N, and
// SIGTERM is forwarded to the command.
func TestSingleCommand(t *testing.T) {
	t.Parallel()
	t.Run("exit code", func(t *testing.T) {
		t.Parallel()
		if r := runBin(t, 20*time.Second, "--", "sh", "-c", "exit 3"); r.code != 3 {
			t.Errorf("supervise -- sh -c 'exit 3': %s, want exit 3", r)
		}
		if r := runBin(t, 20*time.Second, "run", "--", "/bin/sh", "-c", "exit 0"); r.code != 0 {
			t.Errorf("supervise run -- sh -c 'exit 0': %s, want exit 0", r)
		}
	})
	t.Run("killed by signal", func(t *testing.T) {
		t.Parallel()
		if r := runBin(t, 20*time.Second, "--", "sh", "-c", "kill -TERM $$"); r.code != 143 {
			t.Errorf("supervise -- sh -c 'kill -TERM $$': %s, want exit 143", r)
		}
	})
	t.Run("SIGTERM forwarded", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		ready := filepath.Join(dir, "ready")
		cmd := exec.Command(bin, "--", "sh", "-c", `trap "exit 7" TERM; touch `+ready+`; while :; do sleep 0.1; done`)
		cmd.Env = childEnv()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
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
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("supervisor still running 10s after SIGTERM; output:\n%s", out.String())
		}
		if code := exitCode(cmd.ProcessState, nil); code != 7 {
			t.Errorf("exit code %d after SIGTERM to a child trapping TERM with exit 7, want 7; output:\n%s", code, out.String())
		}
	})
}

// As PID 1 of a pid namespace, supervise reaps orphans and passes the
// command's exit code through.
func TestPID1ReapsOrphans(t *testing.T) {
	t.Parallel()
	if !isRoot() {
		t.Skip("needs root for unshare --pid")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --pid does not work here: %v %s", err, out)
	}
	// Two orphans end at 0.2 and 0.3 s; at 1 s, any zombie left in the
	// namespace makes the command exit 5 instead of 3.
	script := `(sleep 0.2 &) ; (sleep 0.3 &); sleep 1
z=0
for f in /proc/[0-9]*/stat; do
  read -r l < "$f" 2>/dev/null || continue
  case "$l" in *") Z "*) echo "zombie: $l"; z=1;; esac
done
[ "$z" = 1 ] && exit 5
exit 3`
	ctxRun := func(args ...string) result {
		return runBinAs(t, 20*time.Second, "unshare", append([]string{"--pid", "--fork", "--mount-proc", bin}, args...)...)
	}
	r := ctxRun("--", "sh", "-c", script)
	if r.code != 3 {
		t.Errorf("under unshare as PID 1: %s, want exit 3 (5 means a zombie was left)", r)
	}
}

// runBinAs runs an arbitrary program with a deadline.
func runBinAs(t *testing.T, timeout time.Duration, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("%s %v: no exit within %s; stdout %q stderr %q", name, args, timeout, out.String(), errb.String())
	}
	return result{out.String(), errb.String(), exitCode(cmd.ProcessState, nil)}
}

// status --json carries every field of SPEC §6, and the table its header.
func TestStatusFields(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.beating]
command = ` + sh("mkdir -p hb; while :; do touch hb/beat; sleep 0.2; done") + `
[programs.beating.watchdog]
heartbeat_file = "hb/beat"
timeout = "5s"

[programs.ended]
command = ` + sh("exit 2") + `
restart = "never"

[programs.killed]
command = ` + sh("kill -KILL $$") + `
restart = "never"
`})
	s.waitProg(t, "beating", "running with a beat", func(p control.ProgramStatus) bool {
		return p.State == "running" && p.Heartbeat.AgeSeconds != nil
	})
	s.waitProg(t, "ended", "exited", func(p control.ProgramStatus) bool { return p.State == "exited" })
	s.waitProg(t, "killed", "exited", func(p control.ProgramStatus) bool { return p.State == "exited" })

	r := s.ctl(t, "status", "--json")
	if r.code != 0 {
		t.Fatalf("status --json: %s", r)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
	}
	list, ok := doc["programs"].([]any)
	if !ok || len(list) != 3 {
		t.Fatalf("status --json: programs = %v, want a list of 3", doc["programs"])
	}
	byName := map[string]map[string]any{}
	for _, e := range list {
		m, _ := e.(map[string]any)
		name, _ := m["name"].(string)
		byName[name] = m
	}
	need := func(where string, m map[string]any, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: key %q missing in %v", where, k, m)
			}
		}
	}
	sub := func(where string, m map[string]any, key string) map[string]any {
		t.Helper()
		v, ok := m[key].(map[string]any)
		if !ok {
			t.Errorf("%s.%s = %v, want an object", where, key, m[key])
		}
		return v
	}
	for name, m := range byName {
		need(name, m, "name", "state", "pid", "uptime_seconds", "restarts", "breaker", "stats",
			"last_exit", "heartbeat", "ready", "status_text")
		need(name+".breaker", sub(name, m, "breaker"), "state", "failures", "max_failures", "remaining_seconds")
		need(name+".stats", sub(name, m, "stats"), "starts", "successes", "failures", "rejected", "state_changes")
		need(name+".heartbeat", sub(name, m, "heartbeat"), "last_beat_at", "age_seconds", "metadata")
	}
	if b := byName["beating"]; b != nil {
		hb := sub("beating", b, "heartbeat")
		if _, ok := hb["age_seconds"].(float64); !ok {
			t.Errorf("beating.heartbeat.age_seconds = %v, want a number", hb["age_seconds"])
		}
		if _, ok := hb["last_beat_at"].(string); !ok {
			t.Errorf("beating.heartbeat.last_beat_at = %v, want a time", hb["last_beat_at"])
		}
		if ready, _ := b["ready"].(bool); !ready {
			t.Errorf("beating.ready = %v after beats, want true", b["ready"])
		}
	}
	if k := byName["killed"]; k != nil {
		le := sub("killed", k, "last_exit")
		need("killed.last_exit", le, "code", "signal", "at")
		if sig, _ := le["signal"].(string); !strings.Contains(sig, "KILL") {
			t.Errorf("killed.last_exit.signal = %v, want SIGKILL", le["signal"])
		}
	}
	if e := byName["ended"]; e != nil {
		le := sub("ended", e, "last_exit")
		need("ended.last_exit", le, "code", "at")
		if code, _ := le["code"].(float64); code != 2 {
			t.Errorf("ended.last_exit.code = %v, want 2", le["code"])
		}
		if _, ok := le["signal"]; !ok {
			t.Logf("note: ended.last_exit has no \"signal\" key when no signal ended the run: %v", le)
		}
	}

	// One name selects one program.
	if ps := s.status(t); len(ps) != 3 {
		t.Errorf("status: %d programs, want 3", len(ps))
	}
	r = s.ctl(t, "status", "ended", "--json")
	var one struct{ Programs []map[string]any }
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || len(one.Programs) != 1 || one.Programs[0]["name"] != "ended" {
		t.Errorf("status ended --json: %s, want only program ended", r)
	}

	// The table.
	r = s.ctl(t, "status")
	if r.code != 0 {
		t.Fatalf("status: %s", r)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	want := []string{"NAME", "STATE", "PID", "UPTIME", "RESTARTS", "BREAKER", "HEARTBEAT", "LAST", "EXIT"}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("status header = %q, want the columns %v", lines[0], want)
	}
	if len(lines) != 4 {
		t.Fatalf("status table has %d lines, want header + 3:\n%s", len(lines), r.stdout)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = l
	}
	if f := strings.Fields(rows["beating"]); len(f) < 2 || f[1] != "running" {
		t.Errorf("table row for beating = %q, want state running", rows["beating"])
	}
	if !strings.Contains(rows["beating"], "ago") {
		t.Errorf("table row for beating = %q, want a heartbeat age (\"... ago\")", rows["beating"])
	}
	if f := strings.Fields(rows["ended"]); len(f) < 2 || f[1] != "exited" || !strings.Contains(rows["ended"], "exit 2") {
		t.Errorf("table row for ended = %q, want exited ... exit 2", rows["ended"])
	}
}

// validate: an unknown key is reported with file, line, program, key and a
// suggestion; a valid file gives one line per program.
func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("# programs\n\n[programs.web]\ncomand = [\"/bin/true\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, 20*time.Second, "validate", "-c", bad)
	if r.code != 2 {
		t.Errorf("validate of a file with an unknown key: %s, want exit 2", r)
	}
	want := bad + `:4: programs.web: unknown key "comand" (did you mean "command"?)`
	if !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("validate output %q does not contain %q", r.stdout+r.stderr, want)
	}

	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte(`
[programs.alpha]
command = ["/bin/sleep", "10"]

[programs.bravo]
command = "echo hi"
restart = "always"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runBin(t, 20*time.Second, "validate", "-c", good)
	if r.code != 0 {
		t.Fatalf("validate of a good file: %s, want exit 0", r)
	}
	for _, name := range []string{"alpha", "bravo"} {
		n := 0
		for _, l := range strings.Split(r.stdout, "\n") {
			if regexp.MustCompile(`\b` + name + `\b`).MatchString(l) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("validate output names %s on %d lines, want 1:\n%s", name, n, r.stdout)
		}
	}

	// A type error and a bad value also exit 2 naming file and line.
	typ := filepath.Join(dir, "type.toml")
	os.WriteFile(typ, []byte("[programs.x]\ncommand = [\"/bin/true\"]\nrestart = \"sometimes\"\n"), 0o644)
	r = runBin(t, 20*time.Second, "validate", "-c", typ)
	if r.code != 2 || !strings.Contains(r.stdout+r.stderr, typ+":3:") || !strings.Contains(r.stdout+r.stderr, "restart") {
		t.Errorf("validate with restart = \"sometimes\": %s, want exit 2 naming %s:3 and restart", r, typ)
	}
}

// The control socket is owner-only; unknown names are refused and change
// nothing; no supervisor gives a clear error.
func TestControlSocket(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.a]
command = ["/bin/sleep", "1000"]
`})
	a := s.running(t, "a")
	fi, err := os.Lstat(s.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode = %v, want a socket with 0600", fi.Mode())
	}
	for _, args := range [][]string{
		{"stop", "nosuch"}, {"start", "nosuch"}, {"restart", "nosuch"}, {"reset", "nosuch"},
		{"signal", "nosuch", "HUP"}, {"stop", "a", "nosuch"}, {"restart", "nosuch", "a"},
	} {
		r := s.ctl(t, args...)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "nosuch") {
			t.Errorf("supervise %s: %s, want a non-zero exit naming nosuch", strings.Join(args, " "), r)
		}
	}
	if r := s.ctl(t, "signal", "a", "NOSUCHSIG"); r.code == 0 {
		t.Errorf("signal a NOSUCHSIG: %s, want a non-zero exit", r)
	}
	b := s.prog(t, "a")
	if b.PID != a.PID || b.State != "running" || b.Stats.Starts != 1 {
		t.Errorf("program a changed after refused requests: before %s, after %s", describe(a), describe(b))
	}
	// A broken request is survived.
	if conn, err := net.Dial("unix", s.sock); err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte("garbage{{{\n"))
		conn.(*net.UnixConn).CloseWrite()
		io.ReadAll(conn)
		conn.Close()
	} else {
		t.Errorf("dial control socket: %v", err)
	}
	if b := s.prog(t, "a"); b.PID != a.PID {
		t.Errorf("program a changed after a broken request")
	}

	missing := filepath.Join(shortDir(t), "none.sock")
	r := runBin(t, 20*time.Second, "status", "-s", missing)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, missing) {
		t.Errorf("status with no supervisor: %s, want a non-zero exit naming %s", r, missing)
	}
	if r.code != 0 && r.stderr == "" {
		t.Errorf("status with no supervisor: nothing on stderr")
	}
}

// `supervise check` follows the supervisor's own heartbeat file.
func TestCheckHeartbeat(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{
		supervisor: `heartbeat_file = "supervisor.json"
heartbeat_interval = "500ms"`,
		programs: `
[programs.a]
command = ["/bin/sleep", "1000"]
`})
	hb := filepath.Join(s.dir, "supervisor.json")
	s.running(t, "a")
	check := func() result {
		return runBinEnv(t, childEnv(clientRace), 20*time.Second, "check", "--heartbeat", hb, "--max-age", "2s")
	}
	waitFor(t, "check to pass", waitDefault, func() (bool, string) {
		r := check()
		return r.code == 0, r.String()
	})
	var st struct {
		Timestamp time.Time      `json:"timestamp"`
		PID       int            `json:"pid"`
		Hostname  string         `json:"hostname"`
		Metadata  map[string]any `json:"metadata"`
	}
	b, _ := os.ReadFile(hb)
	host, _ := os.Hostname()
	if err := json.Unmarshal(b, &st); err != nil || st.PID != s.cmd.Process.Pid || st.Timestamp.IsZero() || st.Hostname != host ||
		st.Metadata["version"] == nil || st.Metadata["states"] == nil || st.Metadata["programs"] == nil {
		t.Errorf("heartbeat file %q: want timestamp, pid %d, hostname %q, metadata with version, programs and states (err %v)", b, s.cmd.Process.Pid, host, err)
	}

	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
		}
	}()
	time.Sleep(3 * time.Second)
	r := check()
	if r.code != 1 {
		t.Errorf("check while the supervisor is stopped for 3s: %s, want exit 1", r)
	}
	if strings.TrimSpace(r.stdout+r.stderr) == "" {
		t.Errorf("check failed without saying why")
	}
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
	stopped = false
	waitFor(t, "check to pass again after SIGCONT", waitDefault, func() (bool, string) {
		r := check()
		return r.code == 0, r.String()
	})
	if code := s.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if r := runBin(t, 20*time.Second, "check", "--heartbeat", filepath.Join(s.dir, "nope.json"), "--max-age", "2s"); r.code != 1 {
		t.Errorf("check of a missing file: %s, want exit 1", r)
	}
}
