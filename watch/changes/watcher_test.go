package changes

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventWait bounds the wait for a real inotify event.
const eventWait = 5 * time.Second

// seen is one reported change with the file's content when it was
// reported, read from the callback (so a report made too early would see a
// partial file).
type seen struct {
	Change
	content string
	missing bool
}

func (s seen) String() string {
	if s.Op == Removed {
		return fmt.Sprintf("%s %s", s.Op, s.Path)
	}
	if s.missing {
		return fmt.Sprintf("%s %s (missing)", s.Op, s.Path)
	}
	return fmt.Sprintf("%s %s %q", s.Op, s.Path, s.content)
}

type harness struct {
	t        *testing.T
	w        *Watcher
	ch       chan seen
	errs     chan error
	sentinel string
}

// newHarness starts a Watcher whose callback records every change, and
// watches a sentinel file in dir (see sync).
func newHarness(t *testing.T, dir string) *harness {
	t.Helper()
	h := &harness{t: t, ch: make(chan seen, 1000), errs: make(chan error, 100)}
	w, err := New(func(c Change) {
		b, err := os.ReadFile(c.Path)
		h.ch <- seen{c, string(b), err != nil}
	}, WithErrorHandler(func(err error) { h.errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		select {
		case err := <-h.errs:
			t.Errorf("error handler: %v", err)
		default:
		}
	})
	h.sentinel = filepath.Join(dir, "sentinel")
	h.addFile(h.sentinel)
	return h
}

// addFile watches path, then waits until the events of what the test did
// before are handled (and drops their reports), so that every report
// after it comes from what the test does next.
func (h *harness) addFile(path string) func() {
	h.t.Helper()
	cancel, err := h.w.AddFile(path)
	if err != nil {
		h.t.Fatal(err)
	}
	if path != h.sentinel {
		h.sync()
	}
	return cancel
}

// addGlob is addFile for a pattern.
func (h *harness) addGlob(pattern string) func() {
	h.t.Helper()
	cancel, err := h.w.AddGlob(pattern)
	if err != nil {
		h.t.Fatal(err)
	}
	h.sync()
	return cancel
}

// sync writes the sentinel and returns every change reported before the
// sentinel's: inotify keeps one queue in event order, so nothing that
// happened before the sentinel was written can come after it.
func (h *harness) sync() []seen {
	h.t.Helper()
	n := fmt.Sprint(time.Now().UnixNano())
	if err := os.WriteFile(h.sentinel, []byte(n), 0o644); err != nil {
		h.t.Fatal(err)
	}
	var got []seen
	deadline := time.After(eventWait)
	for {
		select {
		case s := <-h.ch:
			if s.Path == h.sentinel {
				if s.content == n {
					return got
				}
				continue
			}
			got = append(got, s)
		case <-deadline:
			h.t.Fatalf("the sentinel's change did not come; got %v", got)
		}
	}
}

// want checks the changes reported since the last sync.
func (h *harness) want(what string, want ...string) []seen {
	h.t.Helper()
	got := h.sync()
	var ss []string
	for _, s := range got {
		ss = append(ss, s.String())
	}
	if !slices.Equal(ss, want) {
		h.t.Fatalf("%s: got\n\t%s\nwant\n\t%s", what, strings.Join(ss, "\n\t"), strings.Join(want, "\n\t"))
	}
	return got
}

// wantNewFile checks the reports of a file created and written at once
// (os.WriteFile): its IN_CLOSE_WRITE makes a Written report; its IN_CREATE
// also makes a Replaced before it when the watcher looked after the
// writer was done. Every report must see the whole content.
func (h *harness) wantNewFile(what, path, content string) {
	h.t.Helper()
	got := h.sync()
	ok := len(got) == 1 || len(got) == 2 && got[0].Op == Replaced
	for _, s := range got {
		ok = ok && s.Path == path && s.content == content
	}
	if !ok || got[len(got)-1].Op != Written {
		h.t.Fatalf("%s: got %v, want [replaced] and written %s %q", what, got, path, content)
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func TestInPlaceWriteReportedAtClose(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	path := filepath.Join(dir, "app.toml")
	write(t, path, "old")
	h.addFile(path)

	// Truncate and write in pieces, checking between them that nothing
	// was reported: the truncation and the partial writes are not changes.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.want("after the truncation")
	f.WriteString("new ")
	h.want("after a partial write")
	f.WriteString("content")
	f.Close()
	h.want("at the close", "written "+path+` "new content"`)

	// An empty file written completely is a change too.
	write(t, path, "")
	h.want("empty write", "written "+path+` ""`)
}

func TestSlowShellRedirect(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	path := filepath.Join(dir, "supervise.toml")
	write(t, path, "old")
	next := filepath.Join(dir, "next")
	write(t, next, "[programs.web]\n")
	h.addFile(path)
	cmd := exec.Command("/bin/sh", "-c", `{ sleep 0.3; cat "$1"; sleep 0.3; cat "$1"; } > "$2"`, "sh", next, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	h.want("slow redirect", "written "+path+` "[programs.web]\n[programs.web]\n"`)
}

func TestAtomicRenameAndEditorSaves(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	path := filepath.Join(dir, "app.toml")
	write(t, path, "v1")
	h.addFile(path)

	// Temporary file, then rename: only the rename is a change.
	write(t, path+".tmp", "v2")
	rename(t, path+".tmp", path)
	h.want("atomic rename", "replaced "+path+` "v2"`)

	// vim's save: the old file is renamed to a backup, a new one is
	// written (slowly, here) and the backup removed.
	rename(t, path, path+"~")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	h.want("vim: backup made, new file created and open", "removed "+path)
	f.WriteString("v3")
	f.Close()
	os.Remove(path + "~")
	h.want("vim: new file closed", "written "+path+` "v3"`)

	// rm, then a new file written in two steps.
	os.Remove(path)
	f, err = os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("v4 ")
	h.want("rm + create, open", "removed "+path)
	f.WriteString("done")
	f.Close()
	h.want("rm + create, closed", "written "+path+` "v4 done"`)

	// cp onto a missing name: created, written, closed.
	os.Remove(path)
	src := filepath.Join(dir, "src")
	write(t, src, "v5")
	if out, err := exec.Command("cp", src, path).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	got := h.sync()
	if len(got) < 2 || got[0].Op != Removed || got[len(got)-1].String() != "written "+path+` "v5"` {
		t.Fatalf("rm + cp: %v", got)
	}
	for _, s := range got[1:] {
		if s.content != "v5" {
			t.Errorf("rm + cp: reported %v before cp was done", s)
		}
	}
}

func TestCreatedComplete(t *testing.T) {
	for _, lease := range []bool{true, false} {
		t.Run(fmt.Sprintf("lease=%v", lease), func(t *testing.T) {
			if !lease {
				old := setLease
				t.Cleanup(func() { setLease = old })
				setLease = func(int, int) error { return unix.EINVAL }
			}
			dir := t.TempDir()
			h := newHarness(t, dir)
			path := filepath.Join(dir, "app.toml")
			h.addFile(path)
			src := filepath.Join(dir, "src")
			write(t, src, "linked")

			// A hard link is complete when it appears.
			if err := os.Link(src, path); err != nil {
				t.Fatal(err)
			}
			h.want("hard link", "replaced "+path+` "linked"`)
			os.Remove(path)
			h.want("rm", "removed "+path)

			// So is a symbolic link (to a complete file).
			if err := os.Symlink(src, path); err != nil {
				t.Fatal(err)
			}
			h.want("symlink", "replaced "+path+` "linked"`)
			os.Remove(path)
			h.want("rm link", "removed "+path)

			// A file created complete by a writer that is done: reported
			// at the close (and, with a lease, maybe at the create too,
			// never with partial content).
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("written")
			h.want("created and still open")
			f.Close()
			h.want("closed", "written "+path+` "written"`)
		})
	}
}

func TestMissingDirectoriesAndRemovedDirectory(t *testing.T) {
	base := t.TempDir()
	h := newHarness(t, base)
	dir := filepath.Join(base, "etc", "app")
	path := filepath.Join(dir, "app.toml")
	h.addFile(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.want("directories made")
	write(t, path, "one")
	h.wantNewFile("created under new directories", path, "one")

	os.RemoveAll(filepath.Join(base, "etc"))
	h.want("directory removed", "removed "+path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.want("directory back, empty")
	write(t, path, "two")
	h.wantNewFile("file back", path, "two")

	// The directory renamed away, and another put in its place with the
	// file already in it.
	other := filepath.Join(base, "other")
	os.Mkdir(other, 0o755)
	write(t, filepath.Join(other, "app.toml"), "three")
	rename(t, dir, filepath.Join(base, "old"))
	h.want("directory renamed away", "removed "+path)
	rename(t, other, dir)
	h.want("another directory renamed in", "replaced "+path+` "three"`)
	// The old directory is no longer watched.
	write(t, filepath.Join(base, "old", "app.toml"), "stale")
	h.want("write in the old directory")
	write(t, path, "four")
	h.want("write in the new one", "written "+path+` "four"`)
}

// configMap lays out a directory as the kubelet does for a ConfigMap
// volume: files in a timestamped directory, "..data" linking to it, and
// each visible name a link through "..data".
type configMap struct {
	t    *testing.T
	dir  string
	gen  int
	prev string
}

func (c *configMap) update(files map[string]string) {
	c.t.Helper()
	c.gen++
	ts := fmt.Sprintf("..2024_01_01_00_00_%02d.%d", c.gen, c.gen)
	tsDir := filepath.Join(c.dir, ts)
	for name, text := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tsDir, name)), 0o755); err != nil {
			c.t.Fatal(err)
		}
		write(c.t, filepath.Join(tsDir, name), text)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		c.t.Fatal(err)
	}
	rename(c.t, tmp, filepath.Join(c.dir, "..data"))
	for name := range files {
		top := strings.Split(name, "/")[0]
		link := filepath.Join(c.dir, top)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	if c.prev != "" {
		os.RemoveAll(filepath.Join(c.dir, c.prev))
	}
	c.prev = ts
}

func TestConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	cm := &configMap{t: t, dir: filepath.Join(dir, "config")}
	os.Mkdir(cm.dir, 0o755)
	cm.update(map[string]string{"supervise.toml": "v1", "conf.d/a.toml": "a1"})
	path := filepath.Join(cm.dir, "supervise.toml")
	h.addFile(path)
	defer h.addGlob(filepath.Join(cm.dir, "conf.d", "*.toml"))()
	a := filepath.Join(cm.dir, "conf.d", "a.toml")
	b := filepath.Join(cm.dir, "conf.d", "b.toml")

	cm.update(map[string]string{"supervise.toml": "v2", "conf.d/a.toml": "a2", "conf.d/b.toml": "b2"})
	got := h.sync()
	var ss []string
	for _, s := range got {
		ss = append(ss, s.String())
	}
	slices.Sort(ss)
	want := []string{"replaced " + a + ` "a2"`, "replaced " + b + ` "b2"`, "replaced " + path + ` "v2"`}
	if !slices.Equal(ss, want) {
		t.Fatalf("swap: got %v, want %v", ss, want)
	}

	// An edit of the real file behind the links is seen too.
	real := filepath.Join(cm.dir, cm.prev, "supervise.toml")
	write(t, real, "v2 edited")
	h.want("edit behind the links", "written "+path+` "v2 edited"`)

	// A ConfigMap that drops a key.
	cm.update(map[string]string{"supervise.toml": "v3", "conf.d/a.toml": "a3"})
	got = h.sync()
	ss = nil
	for _, s := range got {
		ss = append(ss, s.String())
	}
	slices.Sort(ss)
	want = []string{"removed " + b, "replaced " + a + ` "a3"`, "replaced " + path + ` "v3"`}
	if !slices.Equal(ss, want) {
		t.Fatalf("second swap: got %v, want %v", ss, want)
	}
	// Only the live generation and the config directory are watched, plus
	// the sentinel's.
	h.w.mu.Lock()
	n := len(h.w.watches)
	h.w.mu.Unlock()
	if n > 4 {
		t.Errorf("%d watches after two swaps: old generations are still watched", n)
	}
}

func TestGlob(t *testing.T) {
	base := t.TempDir()
	h := newHarness(t, base)
	dir := filepath.Join(base, "conf.d")
	cancel := h.addGlob(filepath.Join(dir, "*.toml"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.want("directory made")
	a, b := filepath.Join(dir, "a.toml"), filepath.Join(dir, "b.toml")
	write(t, a, "a")
	write(t, filepath.Join(dir, "notes.txt"), "no")
	write(t, filepath.Join(dir, ".a.toml.swp"), "no")
	os.Mkdir(filepath.Join(dir, "d.toml"), 0o755)
	h.wantNewFile("files added", a, "a")

	write(t, filepath.Join(dir, ".b.tmp"), "b")
	rename(t, filepath.Join(dir, ".b.tmp"), b)
	h.want("renamed in", "replaced "+b+` "b"`)

	f, err := os.OpenFile(a, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("a, ")
	h.want("a being rewritten")
	f.WriteString("again")
	f.Close()
	h.want("a rewritten", "written "+a+` "a, again"`)

	os.Remove(a)
	rename(t, b, filepath.Join(dir, "b.old"))
	h.want("removed and renamed away", "removed "+a, "removed "+b)

	// The directory removed and recreated with a file in it.
	write(t, a, "a2")
	h.wantNewFile("a back", a, "a2")
	os.RemoveAll(dir)
	h.want("directory removed", "removed "+a)
	staged := filepath.Join(base, "staged")
	os.Mkdir(staged, 0o755)
	write(t, filepath.Join(staged, "c.toml"), "c")
	rename(t, staged, dir)
	c := filepath.Join(dir, "c.toml")
	h.want("directory renamed in", "replaced "+c+` "c"`)

	cancel()
	write(t, c, "after cancel")
	h.want("after cancel")
}

func TestOverflowReportsEverything(t *testing.T) {
	dir := t.TempDir()
	block := make(chan struct{})
	var once sync.Once
	ch := make(chan Change, 100)
	w, err := New(func(c Change) {
		once.Do(func() { <-block })
		ch <- c
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "a")
	write(t, b, "b")
	for _, p := range []string{a, b} {
		if _, err := w.AddFile(p); err != nil {
			t.Fatal(err)
		}
	}
	gdir := filepath.Join(dir, "g")
	os.Mkdir(gdir, 0o755)
	write(t, filepath.Join(gdir, "x.conf"), "x")
	if _, err := w.AddGlob(filepath.Join(gdir, "*.conf")); err != nil {
		t.Fatal(err)
	}

	// The first report blocks the reader; meanwhile more events than the
	// queue holds (16384 by default) pile up: twice as many, since the
	// reader may have taken a batch of them before it blocked. Alternating
	// two files keeps the kernel from merging them.
	write(t, a, "first")
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		fmt.Sscan(string(b), &limit)
	}
	if limit > 100000 {
		t.Skipf("max_queued_events is %d: too many events to provoke an overflow cheaply", limit)
	}
	fa, _ := os.OpenFile(a, os.O_WRONLY, 0)
	fb, _ := os.OpenFile(b, os.O_WRONLY, 0)
	for range limit {
		for _, p := range []string{a, b} {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	fa.Close()
	fb.Close()
	close(block)

	got := map[Change]bool{}
	deadline := time.After(eventWait)
	for len(got) < 4 || !got[Change{a, Rescan}] || !got[Change{b, Rescan}] || !got[Change{filepath.Join(gdir, "x.conf"), Rescan}] {
		select {
		case c := <-ch:
			got[c] = true
		case <-deadline:
			t.Fatalf("no rescan of every file after the overflow; got %v (%d in the channel)", got, len(ch))
		}
	}
}

func TestCloseAndCancel(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	path := filepath.Join(dir, "f")
	cancel := h.addFile(path)
	h.w.mu.Lock()
	n := len(h.w.watches)
	h.w.mu.Unlock()
	if n != 1 {
		t.Errorf("%d watches for two files in one directory, want 1", n)
	}
	cancel()
	cancel()
	write(t, path, "x")
	h.want("cancelled")

	if _, err := h.w.AddGlob(filepath.Join(dir, "[")); err == nil {
		t.Error("bad pattern accepted")
	}
	if _, err := h.w.AddGlob(filepath.Join(dir, "*", "x")); err == nil {
		t.Error("wildcard in the directory accepted")
	}
	if _, err := New(nil); err == nil {
		t.Error("nil callback accepted")
	}

	w, err := New(func(Change) { t.Error("callback after Close") })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddFile(path); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	write(t, path, "y")
	if _, err := w.AddFile(path); !errors.Is(err, ErrClosed) {
		t.Errorf("AddFile after Close: %v", err)
	}
}

func TestAddFileErrors(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can watch any directory")
	}
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	os.Mkdir(locked, 0o000)
	w, err := New(func(Change) {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.AddFile(filepath.Join(locked, "x")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("unwatchable directory: %v", err)
	}
}

func TestLinkLoopReportedAndRecovered(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	path := filepath.Join(dir, "app.toml")
	write(t, path, "v1")
	h.addFile(path)

	loop := filepath.Join(dir, "loop.tmp")
	if err := os.Symlink("app.toml", loop); err != nil {
		t.Fatal(err)
	}
	rename(t, loop, path) // app.toml -> app.toml
	h.want("link loop", "removed "+path)
	select {
	case err := <-h.errs:
		if !errors.Is(err, syscall.ELOOP) || !strings.Contains(err.Error(), path) {
			t.Errorf("error handler got %v, want ELOOP naming %s", err, path)
		}
	case <-time.After(eventWait):
		t.Fatal("the link loop was not reported to the error handler")
	}
	write(t, path+".tmp", "v2")
	rename(t, path+".tmp", path)
	h.want("loop replaced by a file", "replaced "+path+` "v2"`)
}
