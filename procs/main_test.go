package procs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// modeEnv selects a helper mode when the test binary is re-executed.
const modeEnv = "PROCS_TEST_MODE"

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "output":
		helperOutput()
		os.Exit(0)
	case "pid1":
		os.Exit(pid1Main())
	case "sigstate":
		os.Exit(sigStateMain())
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Getenv(modeEnv))
		os.Exit(2)
	}
}

const waitLimit = 10 * time.Second

// testPath is the PATH given to children in tests.
const testPath = "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

// orphanLog records what OnOrphan reports.
type orphanLog struct {
	mu   sync.Mutex
	seen map[int]unix.WaitStatus
	ch   chan struct{} // signalled on every new orphan
}

func newOrphanLog() *orphanLog {
	return &orphanLog{seen: map[int]unix.WaitStatus{}, ch: make(chan struct{}, 1)}
}

func (o *orphanLog) record(pid int, ws unix.WaitStatus) {
	o.mu.Lock()
	o.seen[pid] = ws
	o.mu.Unlock()
	select {
	case o.ch <- struct{}{}:
	default:
	}
}

func (o *orphanLog) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}

func (o *orphanLog) get(pid int) (unix.WaitStatus, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ws, ok := o.seen[pid]
	return ws, ok
}

// waitFor waits until cond holds, re-checking on every orphan report.
func (o *orphanLog) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-o.ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// newTestReaper starts a subreaper Reaper closed at the end of the test.
func newTestReaper(t testing.TB) (*Reaper, *orphanLog) {
	t.Helper()
	ol := newOrphanLog()
	r, err := NewReaper(ReaperOptions{OnOrphan: ol.record, Subreaper: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r, ol
}

// lineLog collects lines delivered by a Lines output.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	parts []bool
	ch    chan struct{} // signalled on each line
}

func (l *lineLog) output() Output {
	return Output{Kind: Lines, OnLine: func(b []byte, partial bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, string(b))
		l.parts = append(l.parts, partial)
		select {
		case l.notify() <- struct{}{}:
		default:
		}
	}}
}

func (l *lineLog) notify() chan struct{} {
	if l.ch == nil {
		l.ch = make(chan struct{}, 1)
	}
	return l.ch
}

// waitLines waits until at least n lines arrived and returns them.
func (l *lineLog) waitLines(t testing.TB, n int) []string {
	t.Helper()
	l.mu.Lock()
	ch := l.notify()
	l.mu.Unlock()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		if got := l.get(); len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d lines, have %q", n, l.get())
		}
	}
}

func (l *lineLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// spawn starts spec and returns the process and a channel receiving its exit.
func spawn(t testing.TB, r *Reaper, spec Spec) (*Process, <-chan Exit) {
	t.Helper()
	if spec.Env == nil {
		spec.Env = []string{testPath}
	}
	ch := make(chan Exit, 1)
	p, err := r.Spawn(spec, func(e Exit) { ch <- e })
	if err != nil {
		t.Fatalf("spawn %q: %v", spec.Argv, err)
	}
	return p, ch
}

func waitExit(t testing.TB, ch <-chan Exit) Exit {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for exit")
		return Exit{}
	}
}

func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// runLines spawns spec with stdout as lines, waits for exit and output.
func runLines(t testing.TB, r *Reaper, spec Spec) (Exit, []string) {
	t.Helper()
	var ll lineLog
	spec.Stdout = ll.output()
	p, ch := spawn(t, r, spec)
	e := waitExit(t, ch)
	waitClosed(t, p.OutputDone(), "output")
	return e, ll.get()
}

// zombiesOf returns the pids in state Z whose parent is ppid (0: any).
func zombiesOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var z []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err == nil && st.state == 'Z' && (ppid == 0 || st.ppid == ppid) {
			z = append(z, pid)
		}
	}
	return z
}

// helperOutput writes the fixed output checked by TestOutputLines.
func helperOutput() {
	w := bufio.NewWriter(os.Stdout)
	w.WriteString("first\n\nthird\n")
	w.WriteString(strings.Repeat("a", MaxLine) + "\n")
	w.WriteString(strings.Repeat("b", 100<<10) + "\n")
	w.WriteString("tail")
	w.Flush()
	fmt.Fprint(os.Stderr, "err1\nerr2")
}

// sigMasks returns SigBlk and SigIgn from a /proc/PID/status text.
func sigMasks(status []string) (blk, ign string, err error) {
	for _, l := range status {
		if v, ok := strings.CutPrefix(l, "SigBlk:"); ok {
			blk = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
			ign = strings.TrimSpace(v)
		}
	}
	if blk == "" || ign == "" {
		return "", "", errors.New("no SigBlk/SigIgn in status")
	}
	return blk, ign, nil
}

// sigStateMain runs a Reaper in a process started with SIGHUP ignored
// (nohup) and SIGUSR1 blocked, and reports the signal state of a child.
func sigStateMain() int {
	own, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	blk, ign, err := sigMasks(strings.Split(string(own), "\n"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if m, _ := strconv.ParseUint(ign, 16, 64); m&(1<<(unix.SIGHUP-1)) == 0 {
		fmt.Println("precondition: SIGHUP not ignored at start, SigIgn", ign)
		return 1
	}
	if m, _ := strconv.ParseUint(blk, 16, 64); m&(1<<(unix.SIGUSR1-1)) == 0 {
		fmt.Println("precondition: SIGUSR1 not blocked at start, SigBlk", blk)
		return 1
	}
	r, err := NewReaper(ReaperOptions{})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer r.Close()
	var ll lineLog
	ch := make(chan Exit, 1)
	p, err := r.Spawn(Spec{Argv: []string{"/bin/cat", "/proc/self/status"}, Stdout: ll.output()}, func(e Exit) { ch <- e })
	if err != nil {
		fmt.Println(err)
		return 1
	}
	<-ch
	<-p.OutputDone()
	blk, ign, err = sigMasks(ll.get())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("child SigBlk %s SigIgn %s\n", blk, ign)
	return 0
}

// pid1Main runs a Reaper as PID 1 of a fresh pid namespace.
func pid1Main() int {
	fail := func(format string, args ...any) int {
		fmt.Printf("FAIL: "+format+"\n", args...)
		return 1
	}
	if !IsPID1() {
		return fail("not PID 1 (pid %d)", os.Getpid())
	}
	ol := newOrphanLog()
	r, err := NewReaper(ReaperOptions{OnOrphan: ol.record, Subreaper: true})
	if err != nil {
		return fail("%v", err)
	}
	ch := make(chan Exit, 1)
	_, err = r.Spawn(Spec{
		Argv: []string{"sh", "-c", "(sleep 0.2 &) ; (sleep 0.3 &) ; exit 3"},
		Env:  []string{testPath},
	}, func(e Exit) { ch <- e })
	if err != nil {
		r.Close()
		return fail("%v", err)
	}
	var e Exit
	select {
	case e = <-ch:
	case <-time.After(waitLimit):
		r.Close()
		return fail("no exit")
	}
	deadline := time.After(waitLimit)
	for ol.count() < 2 {
		select {
		case <-ol.ch:
		case <-deadline:
			r.Close()
			return fail("orphans reaped: %d, want 2", ol.count())
		}
	}
	if err := r.Close(); err != nil {
		return fail("%v", err)
	}
	if z := zombiesOf(0); len(z) > 0 {
		return fail("zombies left: %v", z)
	}
	kids, err := Children()
	if err != nil || len(kids) > 0 {
		return fail("children left: %v %v", kids, err)
	}
	fmt.Printf("%s, orphans %d, zombies 0\n", e, ol.count())
	return 0
}
