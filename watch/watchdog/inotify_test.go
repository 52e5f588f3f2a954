package watchdog

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchList returns the watched directories.
func (in *inotify) watchList() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for p := range in.byPath {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// eventLog collects events of one watcher as "Op Name" lines.
type eventLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *eventLog) add(ev fsnotify.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := ev.Op.String() + " " + ev.Name
	// The kernel merges an event identical to the last one still queued;
	// two queues read at different moments merge differently.
	if n := len(l.lines); n > 0 && l.lines[n-1] == s {
		return
	}
	l.lines = append(l.lines, s)
}

func (l *eventLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// TestInotifyMatchesFsnotify runs the watcher's inotify reader and an
// fsnotify.Watcher on the same directories through writes, touches,
// creations, renames onto and away from names, removals, and the removal
// and renaming of watched directories themselves, and expects the same
// events, so Beat.Op and the FileWatcher's recoveries keep fsnotify's
// meaning.
func TestInotifyMatchesFsnotify(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	in, err := newInotify()
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	var ours, theirs eventLog
	done := make(chan error, 1)
	go func() {
		done <- in.run(func(evs []fsnotify.Event) {
			for _, ev := range evs {
				ours.add(ev)
			}
		}, func() { t.Error("overflow") })
	}()
	fsDone := make(chan struct{})
	go func() {
		defer close(fsDone)
		for ev := range fs.Events {
			theirs.add(ev)
		}
	}()
	go func() {
		for range fs.Errors {
		}
	}()
	for _, d := range []string{base, a, b} {
		if err := in.add(d); err != nil {
			t.Fatal(err)
		}
		if err := fs.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	f := filepath.Join(a, "hb")
	now := time.Now()
	steps := []func() error{
		func() error { return os.WriteFile(f, []byte("1"), 0o644) },                // Create, Write
		func() error { return os.Chtimes(f, now, now) },                            // Chmod
		func() error { return os.WriteFile(f+".tmp", []byte("2"), 0o644) },         // another name
		func() error { return os.Rename(f+".tmp", f) },                             // Rename, Create
		func() error { return os.Chmod(f, 0o600) },                                 // Chmod
		func() error { return os.Rename(f, filepath.Join(b, "moved")) },            // across directories
		func() error { return os.Remove(filepath.Join(b, "moved")) },               // Remove
		func() error { return os.Mkdir(filepath.Join(a, "sub"), 0o755) },           // Create of a directory
		func() error { return os.Rename(a, filepath.Join(base, "a2")) },            // a watched directory renamed
		func() error { return os.WriteFile(filepath.Join(b, "x"), nil, 0o644) },    // b still watched
		func() error { return os.Remove(filepath.Join(b, "x")) },                   //
		func() error { return os.Remove(b) },                                       // a watched directory removed
		func() error { return os.WriteFile(filepath.Join(base, "y"), nil, 0o644) }, // the last event
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	last := "CREATE " + filepath.Join(base, "y")
	deadline := time.Now().Add(eventWait)
	for {
		o, th := ours.get(), theirs.get()
		if len(o) > 0 && o[len(o)-1] == last && len(th) > 0 && th[len(th)-1] == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events did not arrive:\nours   %q\nfsnotify %q", o, th)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if o, th := ours.get(), theirs.get(); !slices.Equal(o, th) {
		t.Fatalf("events differ:\nours:\n  %s\nfsnotify:\n  %s", strings.Join(o, "\n  "), strings.Join(th, "\n  "))
	}
	if wl := in.watchList(); !slices.Equal(wl, []string{base}) {
		t.Errorf("watches after a directory was renamed and one removed: %v, want only %s", wl, base)
	}
	if err := in.remove(base); err != nil {
		t.Error(err)
	}
	if err := in.remove(base); err == nil {
		t.Error("second remove of a watch succeeded")
	}
	if err := in.close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run after close: %v", err)
	}
	fs.Close()
	<-fsDone
}

// toucherEnv makes the test binary a program that touches a file: the
// beats of TestBeatSwitches come from another process, so the measured
// process makes no system call of its own for them.
const toucherEnv = "WATCHDOG_TEST_TOUCH"

func init() {
	spec := os.Getenv(toucherEnv)
	if spec == "" {
		return
	}
	// PATH,COUNT,GAP
	parts := strings.Split(spec, ",")
	n, _ := strconv.Atoi(parts[1])
	gap, _ := time.ParseDuration(parts[2])
	for i := 0; i < n; i++ {
		now := time.Now()
		if err := os.Chtimes(parts[0], now, now); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		time.Sleep(gap)
	}
	os.Exit(0)
}

// threadSwitches sums the voluntary context switches of this process's
// threads.
func threadSwitches(t *testing.T) int64 {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skip("no /proc/self/task")
	}
	var sum int64
	for _, e := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// TestBeatSwitches counts the threads' voluntary context switches of this
// process, on one P as the supervisor runs, while another process touches
// a watched heartbeat file 200 times, 5 ms apart. A beat wakes the thread
// waiting in the poller once; through fsnotify's reader (a blocking read
// and an os.Stat per beat) the runtime's sysmon woke too, with naps of
// 20 µs while the beat was handled: 3–4 switches per beat.
func TestBeatSwitches(t *testing.T) {
	if !localFS(os.TempDir()) {
		t.Skipf("%s is not a local file system; beats use os.Stat there", os.TempDir())
	}
	const beats = 200
	dir := t.TempDir()
	path := filepath.Join(dir, "hb")
	writeFile(t, path, "")
	fw, _ := newFW(t)
	got := make(chan struct{}, beats+10)
	wd, err := fw.NewWatchdog(path, time.Hour, func() {}, WithOnBeat(func(Beat) { got <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	wd.Start()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,5ms", toucherEnv, path, beats))
	cmd.Stderr = os.Stderr
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Count from the first beat, once the child runs, to the last. The
	// kernel merges a touch into the previous one still unread, so some
	// touches make no beat of their own.
	<-got
	before := threadSwitches(t)
	seen := 1
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case <-got:
			seen++
		case err := <-exited:
			if err != nil {
				t.Fatalf("toucher: %v", err)
			}
			done = true
		case <-timeout:
			t.Fatalf("toucher still running after 30 s; %d beats seen", seen)
		}
	}
	for quiet := false; !quiet; {
		select {
		case <-got:
			seen++
		case <-time.After(100 * time.Millisecond):
			quiet = true
		}
	}
	after := threadSwitches(t)
	if seen < beats/2 {
		t.Fatalf("%d beats for %d touches", seen, beats)
	}
	per := float64(after-before) / float64(seen-1)
	t.Logf("%.2f voluntary switches per beat (%d over %d beats of %d touches)", per, after-before, seen-1, beats)
	if per > 1.8 {
		t.Errorf("%.2f voluntary switches per beat, want at most about 1 (the poller's wakeup)", per)
	}
}
