package probe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/supervise/supervise/procs"
)

const testPath = "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

func shProbe(script string, env ...string) *Exec {
	return &Exec{Spawner: reaper, Spec: procs.Spec{Argv: []string{"/bin/sh", "-c", script}, Env: append([]string{testPath}, env...)}}
}

// check makes one attempt of c with a timeout, as a Runner does: the
// context has no deadline and is cancelled with a *TimeoutError.
func check(t *testing.T, c Checker, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	timer := time.AfterFunc(timeout, func() { cancel(&TimeoutError{After: timeout}) })
	defer timer.Stop()
	return c.Check(ctx)
}

func TestExecPasses(t *testing.T) {
	dir := t.TempDir()
	e := shProbe(`test "$PROBE_VAR" = yes && test "$(pwd)" = "$DIR_WANT"`, "PROBE_VAR=yes", "DIR_WANT="+dir)
	e.Spec.Dir = dir
	if err := check(t, e, 10*time.Second); err != nil {
		t.Fatalf("the probe ran in the program's directory and environment, and failed: %v", err)
	}
}

func TestExecFailsWithOutput(t *testing.T) {
	err := check(t, shProbe(`echo "db: connection refused"; echo "on stderr" >&2; exit 3`), 10*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Exit.Code() != 3 || ee.Killed != nil {
		t.Fatalf("error %v (%T)", err, err)
	}
	if !strings.HasPrefix(err.Error(), "exit 3: ") || !strings.Contains(err.Error(), "db: connection refused") ||
		!strings.Contains(err.Error(), "on stderr") {
		t.Fatalf("error text %q", err)
	}
}

func TestExecOutputIsCut(t *testing.T) {
	// 10,000 two-byte characters on one line, then more lines.
	err := check(t, shProbe(`i=0; while [ $i -lt 100 ]; do printf 'éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé'; i=$((i+1)); done; echo; seq 1 1000; exit 1`), 20*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v", err)
	}
	if len(ee.Output) > OutputLimit+len("…") || !strings.HasSuffix(ee.Output, "…") || !utf8.ValidString(ee.Output) {
		t.Fatalf("output of %d bytes, ends %q", len(ee.Output), ee.Output[max(len(ee.Output)-10, 0):])
	}
	if strings.ContainsRune(ee.Output, utf8.RuneError) {
		t.Fatal("a character was cut in two")
	}
}

func TestExecSpawnFailure(t *testing.T) {
	e := &Exec{Spawner: reaper, Spec: procs.Spec{Argv: []string{"/no/such/probe"}}}
	err := check(t, e, 10*time.Second)
	var se *procs.SpawnError
	if !errors.As(err, &se) || err.Error() != "spawn: exec /no/such/probe: no such file or directory" {
		t.Fatalf("error %v (%T)", err, err)
	}
	e = &Exec{Spawner: reaper, Spec: procs.Spec{Argv: []string{"/bin/true"}, Dir: "/no/such/dir"}}
	if err := check(t, e, 10*time.Second); err == nil || !strings.Contains(err.Error(), "chdir /no/such/dir") {
		t.Fatalf("error %v", err)
	}
}

// At the timeout the probe's whole process group is killed, a child it
// left in the background included, and the attempt ends once it is reaped.
func TestExecTimeoutKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	start := time.Now()
	err := check(t, shProbe(`sleep 1000 & echo $! > `+pidFile+`; echo waiting; wait`), 500*time.Millisecond)
	var ee *ExitError
	var te *TimeoutError
	if !errors.As(err, &ee) || !errors.As(err, &te) || ee.Exit.Signal() != syscall.SIGKILL {
		t.Fatalf("error %v (%T)", err, err)
	}
	if got := err.Error(); got != "timed out after 500ms: process group killed: waiting" {
		t.Fatalf("error text %q", got)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the attempt took %v", took)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
		if zombie(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background child %d survived the probe's timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

func TestCapped(t *testing.T) {
	c := &capped{limit: 10}
	c.line([]byte("abc"), false)
	c.line([]byte("defg"), false)
	if got := c.String(); got != "abc\ndefg" {
		t.Fatalf("%q", got)
	}
	c.line([]byte("hijk"), false)
	if got := c.String(); got != "abc\ndefg\nh…" {
		t.Fatalf("%q", got)
	}
	c.line([]byte("more"), false)
	if got := c.String(); got != "abc\ndefg\nh…" {
		t.Fatalf("after the cut: %q", got)
	}
}

// FuzzCapped: whatever a probe writes, the kept output is valid UTF-8 no
// longer than the limit (and the mark of a cut).
func FuzzCapped(f *testing.F) {
	f.Add([]byte("hello"), []byte("wörld\xff"), 7)
	f.Add([]byte("ééééé"), []byte{}, 5)
	f.Add([]byte{0xe2, 0x82}, []byte{0xac}, 2)
	f.Fuzz(func(t *testing.T, a, b []byte, limit int) {
		if limit < 0 || limit > 1<<16 {
			return
		}
		c := &capped{limit: limit}
		c.line(a, false)
		c.line(b, true)
		c.line(a, false)
		s := c.String()
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 %q", s)
		}
		body := strings.TrimSuffix(s, "…")
		// Invalid bytes become U+FFFD (3 bytes each).
		if len(body) > 3*limit {
			t.Fatalf("%d bytes kept of a limit of %d", len(body), limit)
		}
	})
}
