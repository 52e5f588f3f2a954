package procs

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestExitCodeReported(t *testing.T) {
	r, ol := newTestReaper(t)
	p, ch := spawn(t, r, Spec{Argv: []string{"sh", "-c", "exit 3"}})
	e := waitExit(t, ch)
	if e.Pid != p.Pid() || e.Code() != 3 || e.Signal() != 0 || e.ShellCode() != 3 || e.String() != "exit 3" {
		t.Fatalf("exit = %+v (%s), pid %d", e, e, p.Pid())
	}
	waitClosed(t, p.Done(), "done")
	if got, ok := p.Exit(); !ok || got != e {
		t.Fatalf("Exit() = %v, %v", got, ok)
	}
	if p.Pid() <= 0 {
		t.Fatalf("pid lost after release: %d", p.Pid())
	}
	if ol.count() != 0 {
		t.Fatalf("orphans reported: %v", ol.seen)
	}
}

func TestSignalReportedAndErrFinished(t *testing.T) {
	r, _ := newTestReaper(t)
	p, ch := spawn(t, r, Spec{Argv: []string{"sleep", "30"}})
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, ch)
	if e.Signal() != syscall.SIGKILL || e.Code() != -1 || e.ShellCode() != 137 || e.String() != "signal SIGKILL" {
		t.Fatalf("exit = %+v (%s)", e, e)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, ErrFinished) {
		t.Fatalf("Signal after reap = %v, want ErrFinished", err)
	}
	if err := p.SignalGroup(syscall.SIGTERM); !errors.Is(err, ErrFinished) {
		t.Fatalf("SignalGroup after reap = %v, want ErrFinished", err)
	}
}

func TestExitMethods(t *testing.T) {
	for _, tc := range []struct {
		ws          unix.WaitStatus
		code, shell int
		sig         syscall.Signal
		str         string
	}{
		{0, 0, 0, 0, "exit 0"},
		{3 << 8, 3, 3, 0, "exit 3"},
		{255 << 8, 255, 255, 0, "exit 255"},
		{9, -1, 137, syscall.SIGKILL, "signal SIGKILL"},
		{15, -1, 143, syscall.SIGTERM, "signal SIGTERM"},
		{11 | 0x80, -1, 139, syscall.SIGSEGV, "signal SIGSEGV"}, // core dumped
	} {
		e := Exit{Status: tc.ws}
		if e.Code() != tc.code || e.ShellCode() != tc.shell || e.Signal() != tc.sig || e.String() != tc.str {
			t.Errorf("status %#x: code %d shell %d sig %v str %q", int(tc.ws), e.Code(), e.ShellCode(), e.Signal(), e.String())
		}
	}
}

func TestConcurrentInstantExits(t *testing.T) {
	r, ol := newTestReaper(t)
	const n, workers = 200, 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	type result struct {
		pid  int
		exit Exit
	}
	results := make(chan result, n)
	var calls sync.Map // pid -> number of onExit calls
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				var pid int
				ready := make(chan struct{})
				p, err := r.Spawn(Spec{Argv: []string{"/bin/true"}}, func(e Exit) {
					<-ready // the exit may come before Spawn returns
					v, _ := calls.LoadOrStore(e.Pid, new(int))
					*v.(*int)++
					results <- result{pid, e}
				})
				if err != nil {
					errs <- err
					close(ready)
					continue
				}
				pid = p.Pid()
				close(ready)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range n {
		select {
		case res := <-results:
			if res.exit.Pid != res.pid || res.exit.Code() != 0 {
				t.Fatalf("onExit of pid %d got %+v", res.pid, res.exit)
			}
		case <-time.After(waitLimit):
			t.Fatalf("not every exit delivered")
		}
	}
	calls.Range(func(k, v any) bool {
		if *v.(*int) != 1 {
			t.Errorf("pid %v: onExit called %d times", k, *v.(*int))
		}
		return true
	})
	if c := ol.count(); c != 0 {
		t.Fatalf("%d exits reported as unknown", c)
	}
}

func TestOrphanReapedNoZombie(t *testing.T) {
	r, ol := newTestReaper(t)
	_, ch := spawn(t, r, Spec{Argv: []string{"sh", "-c", "(sleep 0.2 &) ; exit 0"}})
	if e := waitExit(t, ch); e.Code() != 0 {
		t.Fatalf("exit %s", e)
	}
	ol.waitFor(t, "orphan", func() bool { return ol.count() >= 1 })
	for pid, ws := range ol.seen {
		if !ws.Exited() || ws.ExitStatus() != 0 {
			t.Fatalf("orphan %d status %#x", pid, int(ws))
		}
	}
	if z := zombiesOf(os.Getpid()); len(z) > 0 {
		t.Fatalf("zombies left: %v", z)
	}
}

func TestSignalGroupKillsGrandchild(t *testing.T) {
	r, ol := newTestReaper(t)
	var ll lineLog
	p, ch := spawn(t, r, Spec{
		Argv:   []string{"sh", "-c", "sleep 30 & echo $! ; wait"},
		Stdout: ll.output(),
	})
	grandchild, _ := strconv.Atoi(ll.waitLines(t, 1)[0])
	if st, err := readStat(grandchild); err != nil || st.pgrp != p.Pid() {
		t.Fatalf("grandchild %d: %+v %v; want pgrp %d", grandchild, st, err, p.Pid())
	}
	if err := p.SignalGroup(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, ch); e.Signal() != syscall.SIGKILL {
		t.Fatalf("leader exit %s", e)
	}
	// The killed grandchild is reparented to us (subreaper) and reaped.
	ol.waitFor(t, "grandchild reaped", func() bool { _, ok := ol.get(grandchild); return ok })
	if ws, _ := ol.get(grandchild); ws.Signal() != syscall.SIGKILL {
		t.Fatalf("grandchild status %#x", int(ws))
	}
	waitClosed(t, p.OutputDone(), "output")
}

func TestChildrenFindsSetsidEscapee(t *testing.T) {
	r, ol := newTestReaper(t)
	var ll lineLog
	p, ch := spawn(t, r, Spec{
		Argv:   []string{"sh", "-c", "setsid sleep 30 >/dev/null 2>&1 & echo $!"},
		Stdout: ll.output(),
	})
	waitExit(t, ch)
	waitClosed(t, p.OutputDone(), "output")
	lines := ll.get()
	if len(lines) != 1 {
		t.Fatalf("output %q", lines)
	}
	escapee, _ := strconv.Atoi(lines[0])
	kids, err := Children()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, escapee) {
		t.Fatalf("Children() = %v, escapee %d missing", kids, escapee)
	}
	if st, _ := readStat(escapee); st.pgrp == p.Pid() {
		t.Fatalf("escapee still in the group %d", st.pgrp)
	}
	if err := unix.Kill(escapee, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ol.waitFor(t, "escapee reaped", func() bool { _, ok := ol.get(escapee); return ok })
	kids, _ = Children()
	if slices.Contains(kids, escapee) {
		t.Fatalf("escapee %d still listed", escapee)
	}
}

func TestDirEnvAndEmptyEnv(t *testing.T) {
	r, _ := newTestReaper(t)
	dir := t.TempDir()
	e, lines := runLines(t, r, Spec{
		Argv: []string{"sh", "-c", `pwd; echo "$FOO"; echo "${HOME-unset}"`},
		Dir:  dir,
		Env:  []string{testPath, "FOO=bar baz"},
	})
	want := []string{dir, "bar baz", "unset"}
	if e.Code() != 0 || !slices.Equal(lines, want) {
		t.Fatalf("got %s %q, want %q", e, lines, want)
	}
	// nil Env is empty, not ours.
	t.Setenv("PROCS_LEAK", "1")
	var ll lineLog
	ch := make(chan Exit, 1)
	p, err := r.Spawn(Spec{Argv: []string{"/usr/bin/env"}, Stdout: ll.output()}, func(e Exit) { ch <- e })
	if err != nil {
		t.Fatal(err)
	}
	waitExit(t, ch)
	waitClosed(t, p.OutputDone(), "output")
	if l := ll.get(); len(l) != 0 {
		t.Fatalf("nil Env gave %q", l)
	}
}

func TestPathLookupUsesSpecEnv(t *testing.T) {
	r, _ := newTestReaper(t)
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "hello-procs"), []byte("#!/bin/sh\necho hi \"$0\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e, lines := runLines(t, r, Spec{Argv: []string{"hello-procs"}, Env: []string{"PATH=/nonexistent:" + bin}})
	if want := "hi " + filepath.Join(bin, "hello-procs"); e.Code() != 0 || len(lines) != 1 || lines[0] != want {
		t.Fatalf("got %s %q, want %q", e, lines, want)
	}
	_, err := r.Spawn(Spec{Argv: []string{"hello-procs"}, Env: []string{"PATH=/usr/bin:/bin"}}, nil)
	if err == nil || err.Error() != "exec hello-procs: executable file not found in $PATH" || !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestSpawnErrors(t *testing.T) {
	r, ol := newTestReaper(t)
	for _, tc := range []struct {
		name  string
		spec  Spec
		msg   string
		cause error
	}{
		{"missing binary", Spec{Argv: []string{"/usr/bin/wbe"}}, "exec /usr/bin/wbe: no such file or directory", syscall.ENOENT},
		{"not executable", Spec{Argv: []string{"/etc/passwd"}}, "exec /etc/passwd: permission denied", syscall.EACCES},
		{"bad dir", Spec{Argv: []string{"/bin/true"}, Dir: "/nope"}, "chdir /nope: no such file or directory", syscall.ENOENT},
		{"dir is a file", Spec{Argv: []string{"/bin/true"}, Dir: "/etc/passwd"}, "chdir /etc/passwd: not a directory", syscall.ENOTDIR},
		{"unknown user", Spec{Argv: []string{"/bin/true"}, User: "nosuch"}, `user "nosuch": unknown user`, ErrUnknownUser},
		{"unknown group", Spec{Argv: []string{"/bin/true"}, Group: "nosuchgroup"}, `group "nosuchgroup": unknown group`, ErrUnknownGroup},
		{"output dir missing", Spec{Argv: []string{"/bin/true"}, Stdout: Output{Kind: File, Path: "/nonexistent/x.log"}}, "open /nonexistent/x.log: no such file or directory", syscall.ENOENT},
		{"empty argv", Spec{}, "exec : empty argv", ErrNoArgv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.Spawn(tc.spec, func(Exit) { t.Error("onExit called for a failed spawn") })
			if p != nil || err == nil || err.Error() != tc.msg {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
			var se *SpawnError
			if !errors.As(err, &se) || !errors.Is(err, tc.cause) {
				t.Fatalf("err %#v: not a SpawnError wrapping %v", err, tc.cause)
			}
		})
	}
	// A failed exec is reaped by the fork itself: nothing unknown, no zombie.
	_, ch := spawn(t, r, Spec{Argv: []string{"/bin/true"}}) // forces a drain
	waitExit(t, ch)
	if ol.count() != 0 || len(zombiesOf(os.Getpid())) != 0 {
		t.Fatalf("orphans %v zombies %v", ol.seen, zombiesOf(os.Getpid()))
	}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func TestRunAsNobody(t *testing.T) {
	requireRoot(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newTestReaper(t)
	for _, name := range []string{"nobody", u.Uid} {
		e, lines := runLines(t, r, Spec{Argv: []string{"sh", "-c", "id -u; id -g; id -G"}, User: name})
		slices.Sort(gids)
		var got []string
		if len(lines) == 3 {
			got = strings.Fields(lines[2])
			slices.Sort(got)
		}
		if e.Code() != 0 || len(lines) != 3 || lines[0] != u.Uid || lines[1] != u.Gid || !slices.Equal(got, gids) {
			t.Fatalf("user %s: %s %q; want uid %s gid %s groups %v", name, e, lines, u.Uid, u.Gid, gids)
		}
	}
	// Group overrides the primary group; unknown numeric ids are taken as is.
	e, lines := runLines(t, r, Spec{Argv: []string{"sh", "-c", "id -u; id -g"}, User: "nobody", Group: "4242"})
	if e.Code() != 0 || !slices.Equal(lines, []string{u.Uid, "4242"}) {
		t.Fatalf("user nobody group 4242: %s %q", e, lines)
	}
	e, lines = runLines(t, r, Spec{Argv: []string{"sh", "-c", "id -u; id -g; id -G"}, User: "54321"})
	if e.Code() != 0 || !slices.Equal(lines, []string{"54321", strconv.Itoa(os.Getgid()), strconv.Itoa(os.Getgid())}) {
		t.Fatalf("user 54321: %s %q", e, lines)
	}
}

func TestOutputLines(t *testing.T) {
	r, _ := newTestReaper(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut lineLog
	p, ch := spawn(t, r, Spec{
		Argv:   []string{exe},
		Env:    []string{modeEnv + "=output", "GORACE=atexit_sleep_ms=0"},
		Stdout: out.output(),
		Stderr: errOut.output(),
	})
	if e := waitExit(t, ch); e.Code() != 0 {
		t.Fatalf("helper: %s", e)
	}
	waitClosed(t, p.OutputDone(), "output")
	want := []string{"first", "", "third", strings.Repeat("a", MaxLine),
		strings.Repeat("b", MaxLine), strings.Repeat("b", 100<<10-MaxLine), "tail"}
	wantPartial := []bool{false, false, false, false, true, false, false}
	if !slices.Equal(out.lines, want) || !slices.Equal(out.parts, wantPartial) {
		t.Fatalf("stdout: %d lines (lengths %v) partial %v", len(out.lines), lengths(out.lines), out.parts)
	}
	if !slices.Equal(errOut.lines, []string{"err1", "err2"}) {
		t.Fatalf("stderr: %q", errOut.lines)
	}
}

func lengths(ls []string) []int {
	var n []int
	for _, l := range ls {
		n = append(n, len(l))
	}
	return n
}

func TestCloseOutputReleasesReaders(t *testing.T) {
	r, ol := newTestReaper(t)
	var ll lineLog
	p, ch := spawn(t, r, Spec{Argv: []string{"sh", "-c", "sleep 30 & echo $!"}, Stdout: ll.output()})
	waitExit(t, ch)
	sleeper, _ := strconv.Atoi(ll.waitLines(t, 1)[0])
	// The background sleep still holds the pipe: output is not done.
	select {
	case <-p.OutputDone():
		t.Fatal("output done while a descendant holds the pipe")
	default:
	}
	p.CloseOutput()
	waitClosed(t, p.OutputDone(), "output after CloseOutput")
	if err := p.SignalGroup(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ol.waitFor(t, "sleeper reaped", func() bool { _, ok := ol.get(sleeper); return ok })
}

func TestFileOutputAppends(t *testing.T) {
	r, _ := newTestReaper(t)
	path := filepath.Join(t.TempDir(), "out.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, word := range []string{"one", "two"} {
		_, ch := spawn(t, r, Spec{
			Argv:   []string{"sh", "-c", "echo " + word + "; echo err-" + word + " >&2"},
			Stdout: Output{Kind: File, Path: path},
			Stderr: Output{Kind: File, Path: path},
		})
		waitExit(t, ch)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "old\none\nerr-one\ntwo\nerr-two\n" {
		t.Fatalf("file = %q", got)
	}
	fresh := filepath.Join(t.TempDir(), "new.log")
	_, ch := spawn(t, r, Spec{Argv: []string{"/bin/true"}, Stdout: Output{Kind: File, Path: fresh}, Stderr: Output{Kind: Null}})
	waitExit(t, ch)
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm()&^0o644 != 0 {
		t.Fatalf("created file: %v %v", fi, err)
	}
}

func TestExtraFilesAndStdin(t *testing.T) {
	r, _ := newTestReaper(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	_, ch := spawn(t, r, Spec{
		Argv:       []string{"sh", "-c", `echo via-fd3 >&3; cat; echo "stdin-eof" >&3`},
		ExtraFiles: []*os.File{pw},
	})
	pw.Close()
	if e := waitExit(t, ch); e.Code() != 0 {
		t.Fatalf("exit %s", e)
	}
	buf := make([]byte, 100)
	n, _ := pr.Read(buf)
	if got := string(buf[:n]); got != "via-fd3\nstdin-eof\n" {
		t.Fatalf("fd 3 got %q", got)
	}
}

func TestChildSignalStateIsClean(t *testing.T) {
	r, _ := newTestReaper(t)
	e, lines := runLines(t, r, Spec{Argv: []string{"/bin/cat", "/proc/self/status"}})
	blk, ign, err := sigMasks(lines)
	if err != nil || e.Code() != 0 {
		t.Fatalf("%s %v", e, err)
	}
	if blk != "0000000000000000" || ign != "0000000000000000" {
		t.Fatalf("child SigBlk %s SigIgn %s, want none", blk, ign)
	}
	// SIGPIPE is at its default: a writer to a pipe without reader dies.
	var ll lineLog
	p, ch := spawn(t, r, Spec{Argv: []string{"yes"}, Stdout: ll.output()})
	ll.waitLines(t, 1)
	p.CloseOutput()
	if e := waitExit(t, ch); e.Signal() != syscall.SIGPIPE {
		t.Fatalf("yes after its reader closed: %s, want signal SIGPIPE", e)
	}
	waitClosed(t, p.OutputDone(), "output")
}

func TestIgnoredAndBlockedSignalsNotInherited(t *testing.T) {
	if _, err := exec.LookPath("nohup"); err != nil {
		t.Skip("no nohup")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// No Reaper runs in this process now, so exec.Command may wait. The
	// child inherits the mask of the thread that forks it.
	cmd := exec.Command("nohup", exe)
	cmd.Env = append(os.Environ(), modeEnv+"=sigstate", "GORACE=atexit_sleep_ms=0")
	runtime.LockOSThread()
	var usr1, old unix.Sigset_t
	usr1.Val[0] = 1 << (unix.SIGUSR1 - 1)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &usr1, &old); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "child SigBlk 0000000000000000 SigIgn 0000000000000000" {
		t.Fatalf("got %q", got)
	}
}

func TestPID1ReapsOrphans(t *testing.T) {
	requireRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// No Reaper runs in this process now, so exec.Command may wait.
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", exe)
	cmd.Env = append(os.Environ(), modeEnv+"=pid1", "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "unshare failed") {
		t.Skipf("unshare not permitted: %s", out)
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "exit 3, orphans 2, zombies 0" {
		t.Fatalf("got %q", got)
	}
}

func TestOneReaperPerProcess(t *testing.T) {
	r, _ := newTestReaper(t)
	if _, err := NewReaper(ReaperOptions{}); !errors.Is(err, ErrReaperRunning) {
		t.Fatalf("second NewReaper: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Spawn(Spec{Argv: []string{"/bin/true"}}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Spawn after Close: %v", err)
	}
	r2, err := NewReaper(ReaperOptions{})
	if err != nil {
		t.Fatalf("NewReaper after Close: %v", err)
	}
	r2.Close()
}

func TestSubreaperFlag(t *testing.T) {
	get := func() int {
		var v int32
		if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		return int(v)
	}
	r, err := NewReaper(ReaperOptions{Subreaper: true})
	if err != nil {
		t.Fatal(err)
	}
	if get() != 1 {
		t.Error("not a subreaper while the reaper runs")
	}
	r.Close()
	if get() != 0 {
		t.Error("still a subreaper after Close")
	}
}

func TestParseStat(t *testing.T) {
	st, err := parseStat("42 (a) b (c)) S 7 42 42 0 -1")
	if err != nil || st != (procStat{state: 'S', ppid: 7, pgrp: 42}) {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := parseStat("42 garbage"); err == nil {
		t.Fatal("no error for malformed stat")
	}
}
