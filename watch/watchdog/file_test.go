package watchdog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/watch/heartbeat"
	"github.com/supervise/supervise/watch/trustedpath"
	"golang.org/x/sys/unix"
)

const eventWait = 5 * time.Second // deadline for a real fsnotify event

// logSink collects WithLogf notes and lets tests wait for one.
type logSink struct {
	mu    sync.Mutex
	lines []string
	ch    chan string
}

func newLogSink() *logSink { return &logSink{ch: make(chan string, 1000)} }

func (l *logSink) logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
	select {
	case l.ch <- s:
	default:
	}
}

func (l *logSink) waitFor(t *testing.T, substr string) string {
	t.Helper()
	deadline := time.After(eventWait)
	for {
		select {
		case s := <-l.ch:
			if strings.Contains(s, substr) {
				return s
			}
		case <-deadline:
			t.Fatalf("no log line containing %q; got %q", substr, l.all())
			return ""
		}
	}
}

func (l *logSink) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func newFW(t *testing.T, opts ...FileOption) (*FileWatcher, *logSink) {
	t.Helper()
	logs := newLogSink()
	fw, err := NewFileWatcher(append([]FileOption{WithLogf(logs.logf)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fw.Close(); err != nil {
			t.Error(err)
		}
	})
	return fw, logs
}

func watchChan(t *testing.T, fw *FileWatcher, path string) (chan Beat, func()) {
	t.Helper()
	ch := make(chan Beat, 100)
	cancel, err := fw.Watch(path, func(b Beat) { ch <- b })
	if err != nil {
		t.Fatal(err)
	}
	return ch, cancel
}

func waitBeat(t *testing.T, ch <-chan Beat) Beat {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(eventWait):
		t.Fatal("no beat within deadline")
		return Beat{}
	}
}

// drain empties ch of beats already delivered.
func drain(ch chan Beat) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// settle writes a marker file in dir and waits until the watcher has
// delivered its beat, so that every event before it has been handled.
func settle(t *testing.T, fw *FileWatcher, dir string) {
	t.Helper()
	marker := filepath.Join(dir, ".settle")
	ch, cancel := watchChan(t, fw, marker)
	defer cancel()
	if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitBeat(t, ch)
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBeatKinds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hb")
	writeFile(t, path, "0")
	fw, _ := newFW(t)
	ch, _ := watchChan(t, fw, path)
	other := filepath.Join(dir, "other")

	t.Run("touch", func(t *testing.T) {
		now := time.Now()
		if err := os.Chtimes(path, now, now); err != nil {
			t.Fatal(err)
		}
		if b := waitBeat(t, ch); b.Op != fsnotify.Chmod || b.Path != path || b.Recovered {
			t.Fatalf("touch gave %+v, want a Chmod beat of %s", b, path)
		}
	})
	t.Run("append", func(t *testing.T) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("more")
		f.Close()
		if b := waitBeat(t, ch); !b.Op.Has(fsnotify.Write) {
			t.Fatalf("append gave %+v", b)
		}
	})
	t.Run("atomic temp+rename", func(t *testing.T) {
		settle(t, fw, dir)
		drain(ch)
		if err := heartbeat.Write(path, heartbeat.State{PID: 1}); err != nil {
			t.Fatal(err)
		}
		if b := waitBeat(t, ch); !b.Op.Has(fsnotify.Create) {
			t.Fatalf("rename onto the file gave %+v, want Create", b)
		}
	})
	t.Run("vim-style save", func(t *testing.T) {
		settle(t, fw, dir)
		drain(ch)
		if err := os.Rename(path, path+"~"); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, "new")
		os.Remove(path + "~")
		// The rename away is not a beat: the first beat is the new file.
		if b := waitBeat(t, ch); !b.Op.Has(fsnotify.Create) {
			t.Fatalf("first beat after a vim-style save is %+v, want Create", b)
		}
	})
	t.Run("rm and recreate", func(t *testing.T) {
		settle(t, fw, dir)
		drain(ch)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, "again")
		if b := waitBeat(t, ch); !b.Op.Has(fsnotify.Create) {
			t.Fatalf("first beat after rm+create is %+v, want Create", b)
		}
	})
	t.Run("other names are not beats", func(t *testing.T) {
		settle(t, fw, dir)
		drain(ch)
		writeFile(t, other, "x")
		writeFile(t, path+".tmp", "x")
		now := time.Now()
		os.Chtimes(path, now, now)
		if b := waitBeat(t, ch); b.Path != path || b.Op != fsnotify.Chmod {
			t.Fatalf("got %+v, want only the touch of %s", b, path)
		}
	})
}

func TestMissingDirectoryIsCreated(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "a", "b", "hb")
	fw, _ := newFW(t)
	ch, _ := watchChan(t, fw, path)
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("directory not created 0755: %v %v", fi, err)
	}
	writeFile(t, path, "x")
	if b := waitBeat(t, ch); !b.Op.Has(fsnotify.Create) {
		t.Fatalf("got %+v", b)
	}
}

func TestWatchErrors(t *testing.T) {
	base := t.TempDir()
	blocker := filepath.Join(base, "file")
	writeFile(t, blocker, "")
	fw, _ := newFW(t)
	if _, err := fw.Watch(filepath.Join(blocker, "hb"), func(Beat) {}); err == nil {
		t.Fatal("Watch under a regular file succeeded")
	}
	if _, err := fw.Watch(filepath.Join(base, "hb"), nil); err == nil {
		t.Fatal("Watch with nil callback succeeded")
	}
	if s := fw.Stats(); s.Directories != 0 || s.Files != 0 {
		t.Fatalf("failed watches left state: %+v", s)
	}
}

func TestOneWatchPerDirectory(t *testing.T) {
	base := t.TempDir()
	fw, _ := newFW(t)
	var cancels [][]func()
	var hits atomic.Int64
	for d := 0; d < 3; d++ {
		var cs []func()
		for f := 0; f < 20; f++ {
			c, err := fw.Watch(filepath.Join(base, fmt.Sprint("d", d), fmt.Sprint("hb", f)), func(Beat) { hits.Add(1) })
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		cancels = append(cancels, cs)
	}
	if s := fw.Stats(); s.Directories != 3 || s.Files != 60 || s.Subscriptions != 60 {
		t.Fatalf("stats %+v, want 3 directories, 60 files", s)
	}
	if n := len(fw.in.watchList()); n != 3 {
		t.Fatalf("inotify holds %d watches, want 3", n)
	}
	for _, c := range cancels[0] {
		c()
		c() // idempotent
	}
	if s := fw.Stats(); s.Directories != 2 || s.Files != 40 {
		t.Fatalf("after cancelling a directory's files: %+v", s)
	}
	if n := len(fw.in.watchList()); n != 2 {
		t.Fatalf("inotify holds %d watches, want 2", n)
	}
}

func TestSeveralWatchersOfOnePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hb")
	fw, _ := newFW(t)
	a, cancelA := watchChan(t, fw, path)
	b, _ := watchChan(t, fw, path)
	if s := fw.Stats(); s.Files != 1 || s.Subscriptions != 2 {
		t.Fatalf("stats %+v", s)
	}
	writeFile(t, path, "1")
	waitBeat(t, a)
	waitBeat(t, b)
	cancelA()
	settle(t, fw, dir)
	drain(a)
	drain(b)
	writeFile(t, path, "2")
	waitBeat(t, b)
	settle(t, fw, dir)
	select {
	case x := <-a:
		t.Fatalf("cancelled watcher got %+v", x)
	default:
	}
}

func TestDirectoryRemovedAndRecreated(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "run")
	path := filepath.Join(dir, "hb")
	fw, logs := newFW(t)
	ch, _ := watchChan(t, fw, path)
	writeFile(t, path, "1")
	waitBeat(t, ch)

	// rm -rf: the watcher notices, re-creates the directory and watches it.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "is gone")
	logs.waitFor(t, "watching "+dir+" again")
	drain(ch)
	writeFile(t, path, "2") // no MkdirAll: the directory is back
	// The re-check after recovery may report the new file first
	// (Recovered); the watch itself must then deliver its Create.
	for {
		b := waitBeat(t, ch)
		if b.Recovered {
			continue
		}
		if !b.Op.Has(fsnotify.Create) {
			t.Fatalf("beat after recovery %+v", b)
		}
		break
	}

	// rm -rf and an immediate re-create by the program also keeps beats.
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	writeFile(t, path, "3")
	logs.waitFor(t, "watching "+dir+" again")
	drain(ch)
	writeFile(t, path, "4")
	waitBeat(t, ch)

	// Renaming the directory away is handled like a removal.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "watching "+dir+" again")
	drain(ch)
	writeFile(t, path, "5")
	waitBeat(t, ch)
	if s := fw.Stats(); s.Directories != 1 || s.Recoveries < 3 {
		t.Fatalf("stats %+v", s)
	}
}

// TestRemovedDirectoryAwaitedInParent makes re-creating the directory fail
// once, so the watcher waits in the parent for the program to re-create it.
func TestRemovedDirectoryAwaitedInParent(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "run")
	path := filepath.Join(dir, "hb")
	fw, logs := newFW(t)
	var failed atomic.Bool
	fw.mu.Lock()
	fw.mkdir = func(p string, perm fs.FileMode) error {
		if p == dir && failed.CompareAndSwap(false, true) {
			return errors.New("injected mkdir failure")
		}
		return os.MkdirAll(p, perm)
	}
	fw.mu.Unlock()
	failed.Store(true)
	ch, _ := watchChan(t, fw, path)
	failed.Store(false)
	writeFile(t, path, "1")
	waitBeat(t, ch)

	os.RemoveAll(dir)
	logs.waitFor(t, "waiting for it to reappear")
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("directory exists although mkdir failed: %v", err)
	}
	if s := fw.Stats(); s.Directories != 1 {
		t.Fatalf("want only the parent watched while waiting: %+v", s)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "watching "+dir+" again")
	drain(ch)
	writeFile(t, path, "2")
	waitBeat(t, ch)
	if s := fw.Stats(); s.Directories != 1 {
		t.Fatalf("parent still watched after recovery: %+v", s)
	}
	if wl := fw.in.watchList(); len(wl) != 1 || wl[0] != dir {
		t.Fatalf("inotify watches %v, want only %s", wl, dir)
	}
}

// TestOverflowRecovery fills the kernel's event queue while the event loop
// is held in a callback, changes the heartbeat file while events are being
// dropped, and expects the recovery to find that change.
func TestOverflowRecovery(t *testing.T) {
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err != nil || strings.TrimSpace(string(b)) != "16384" {
		t.Skipf("max_queued_events is %q, test sized for 16384", b)
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "hb")
	blocker := filepath.Join(dir, "block")
	writeFile(t, target, "x")
	writeFile(t, blocker, "x")
	n1, n2 := filepath.Join(dir, "n1"), filepath.Join(dir, "n2")
	writeFile(t, n1, "")
	writeFile(t, n2, "")
	fw, logs := newFW(t)
	ch, _ := watchChan(t, fw, target)
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	cancel, err := fw.Watch(blocker, func(Beat) {
		once.Do(func() {
			close(held)
			<-release
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	now := time.Now()
	os.Chtimes(blocker, now, now)
	<-held
	// Alternate names so the kernel cannot merge consecutive events.
	for i := 0; i < 25000; i++ {
		p := n1
		if i%2 == 1 {
			p = n2
		}
		if err := os.Chtimes(p, now, now); err != nil {
			t.Fatal(err)
		}
	}
	mt := now.Add(-time.Hour)
	if err := os.Chtimes(target, mt, mt); err != nil { // this event is dropped
		t.Fatal(err)
	}
	close(release)
	logs.waitFor(t, "overflowed")
	for {
		b := waitBeat(t, ch)
		if b.Recovered {
			if b.Op != 0 || b.Path != target {
				t.Fatalf("recovered beat %+v", b)
			}
			break
		}
	}
	if s := fw.Stats(); s.Recoveries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hb")
	fw, err := NewFileWatcher()
	if err != nil {
		t.Fatal(err)
	}
	var closed atomic.Bool
	ch := make(chan Beat, 100)
	if _, err := fw.Watch(path, func(b Beat) {
		if closed.Load() {
			t.Error("callback after Close returned")
		}
		ch <- b
	}); err != nil {
		t.Fatal(err)
	}
	wd, err := fw.NewWatchdog(filepath.Join(dir, "hb2"), time.Hour, func() {})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "1")
	waitBeat(t, ch)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	if err := fw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	writeFile(t, path, "2")
	if _, err := fw.Watch(path, func(Beat) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close: %v", err)
	}
	if _, err := fw.NewWatchdog(path, time.Second, func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewWatchdog after Close: %v", err)
	}
	wd.Close() // after the watcher's Close: harmless
	// goleak in TestMain checks that the fsnotify and loop goroutines ended.
}

// TestFileWatchdog drives the timer with a fake clock and the beats with a
// real file and real fsnotify events.
func TestFileWatchdog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hb")
	writeFile(t, path, "0")
	clk := clock.NewFake(t0)
	fw, _ := newFW(t, WithFileClock(clk))
	timeouts := make(chan time.Duration, 10)
	beats := make(chan Beat, 10)
	wd, err := fw.NewWatchdog(path, 10*time.Second, func() { timeouts <- clk.Since(t0) },
		WithStartGrace(30*time.Second), WithOnBeat(func(b Beat) { beats <- b }))
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	if _, ok := wd.LastBeat(); ok {
		t.Fatal("LastBeat before any beat")
	}
	if wd.Path() != path {
		t.Fatalf("Path %q", wd.Path())
	}
	wd.Start()
	clk.Advance(5 * time.Second)
	touch := time.Now()
	os.Chtimes(path, touch, touch) // one Chmod event: a beat at fake 5s
	b := waitBeat(t, beats)
	if lb, ok := wd.LastBeat(); !ok || lb != b || !b.At.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("LastBeat %+v %v, beat %+v", lb, ok, b)
	}
	if d, ok := wd.Deadline(); !ok || !d.Equal(t0.Add(15*time.Second)) {
		t.Fatalf("deadline %v, want beat+timeout", d.Sub(t0))
	}
	clk.Advance(9 * time.Second)
	select {
	case at := <-timeouts:
		t.Fatalf("timeout at %v despite a beat", at)
	default:
	}
	clk.Advance(time.Second)
	if at := <-timeouts; at != 15*time.Second {
		t.Fatalf("timeout at %v, want 15s", at)
	}
	if s := wd.Stats(); s.Pings < 1 || s.Timeouts != 1 || wd.Running() {
		t.Fatalf("stats %+v running %v", s, wd.Running())
	}
	// Stop keeps recording beats; the owner re-arms with Reset.
	wd.Stop()
	writeFile(t, path, "2")
	waitBeat(t, beats)
	wd.Reset()
	wd.Ping() // e.g. sd_notify WATCHDOG=1
	if d := wd.SinceLastPing(); d != 0 {
		t.Fatalf("SinceLastPing %v right after Ping", d)
	}
	clk.Advance(10 * time.Second)
	if at := <-timeouts; at != 25*time.Second {
		t.Fatalf("timeout at %v, want 25s", at)
	}
	wd.Close()
	wd.Close()
	if s := fw.Stats(); s.Directories != 0 || s.Files != 0 {
		t.Fatalf("Close left a watch: %+v", s)
	}
}

// TestHeartbeatDirectoryNotMadeThroughForeignLink plants another user's
// symbolic link where a heartbeat directory is to be created, before Watch
// and after the directory was removed: nothing is made through it.
func TestHeartbeatDirectoryNotMadeThroughForeignLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a symbolic link")
	}
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	plant := func(at string) {
		t.Helper()
		if err := os.Symlink(victim, at); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(at, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	fw, logs := newFW(t)

	plant(filepath.Join(base, "run"))
	_, err := fw.Watch(filepath.Join(base, "run", "app", "hb"), func(Beat) {})
	if !errors.Is(err, trustedpath.ErrUntrustedLink) || !strings.Contains(err.Error(), "uid 65534") {
		t.Fatalf("Watch through another user's link: %v", err)
	}

	// The directory exists and is watched; then it is moved away and the
	// link put in its place at once (an exchange), before the watcher
	// can re-create it.
	dir := filepath.Join(base, "hb")
	ch, _ := watchChan(t, fw, filepath.Join(dir, "hb"))
	writeFile(t, filepath.Join(dir, "hb"), "1")
	waitBeat(t, ch)
	link := filepath.Join(base, "link")
	plant(link)
	if err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "uid 65534")
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("created through the link: %v", entries)
	}
}

// TestBeatMovesTimer checks that a beat moves the pending timer to the new
// deadline, so a steadily beating file never makes the timer fire (a timer
// that fires only to find the beats it missed costs a wakeup per timeout).
func TestBeatMovesTimer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hb")
	writeFile(t, path, "0")
	clk := clock.NewFake(t0)
	fw, _ := newFW(t, WithFileClock(clk))
	beats := make(chan Beat, 10)
	wd, err := fw.NewWatchdog(path, 10*time.Second, func() { t.Error("timeout despite beats") },
		WithOnBeat(func(b Beat) { beats <- b }))
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	wd.Start()
	for i := 1; i <= 3; i++ {
		clk.Advance(6 * time.Second)
		touch := time.Now()
		os.Chtimes(path, touch, touch)
		b := waitBeat(t, beats)
		next, ok := clk.NextDeadline()
		if want := b.At.Add(10 * time.Second); !ok || !next.Equal(want) {
			t.Fatalf("beat %d at %v: next timer at %v (pending %v), want the beat + timeout %v",
				i, b.At.Sub(t0), next.Sub(t0), ok, want.Sub(t0))
		}
	}
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d timers pending, want the watchdog's one", n)
	}
}
