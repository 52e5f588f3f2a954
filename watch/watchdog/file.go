package watchdog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/watch/trustedpath"
)

// ErrClosed is returned by FileWatcher methods called after Close.
var ErrClosed = errors.New("watchdog: file watcher closed")

// Beat is one sign of life of a heartbeat file.
type Beat struct {
	// Path is the heartbeat file, as an absolute clean path.
	Path string
	// At is when the beat was seen, by the FileWatcher's clock.
	At time.Time
	// Op is the fsnotify operation that made the beat: Create (also for a
	// rename onto the file), Write or Chmod (touch). It is zero for a beat
	// found after a recovery, when the file's modification time changed.
	Op fsnotify.Op
	// Recovered is true for a beat found by re-reading the file's
	// modification time after a removed directory or an event overflow.
	Recovered bool
}

// beatOps are the operations on a file's name that count as beats.
const beatOps = fsnotify.Create | fsnotify.Write | fsnotify.Chmod

// FileWatcher delivers beats of heartbeat files from inotify events. It
// uses a single inotify instance for all files and one watch per directory,
// filtering events by name, so atomic saves, editors' saves and re-created
// files keep working. Events are reported as fsnotify's inotify backend
// reports them (Beat.Op), but read by the FileWatcher itself, at a cost of
// about one thread wakeup per beat (see inotify).
//
// A beat is a Create, Write or Chmod event of the file's name: a write, a
// touch (Chmod only), a new file, or a rename onto the name (a Create in the
// directory). Events coalesce in the kernel: many quick writes can make a
// single beat.
//
// When a watched directory is removed or renamed away, the FileWatcher logs
// it, creates the directory again (mode 0755, as Watch does) and watches it
// anew; if it
// cannot, it watches the parent directory and resumes when the directory
// reappears. After that, and after an inotify event-queue overflow, it
// re-reads the modification time of every watched file and counts a change
// since the last beat as a beat (Beat.Recovered). It never polls, so a
// watch the kernel drops without any event (an unmounted file system) goes
// unnoticed until the next overflow recovery.
//
// Callbacks run one at a time on the FileWatcher's event goroutine and
// should return quickly. They may call Watch and cancel functions; they must
// not call Close, which waits for that goroutine.
type FileWatcher struct {
	in    *inotify
	clk   clock.Clock
	logf  func(format string, args ...any)
	mkdir func(path string, perm fs.FileMode) error

	closed  atomic.Bool
	wg      sync.WaitGroup
	closeMu sync.Mutex

	mu    sync.Mutex
	dirs  map[string]*dirState
	stats FileStats
}

type dirState struct {
	path    string
	watched bool                  // an inotify watch on path is active
	rawStat bool                  // path is on a local file system (see beatStat)
	files   map[string]*fileState // by absolute path
	waiting map[string]bool       // removed child directories awaited here
}

type fileState struct {
	path   string
	subs   []*subscription
	exists bool
	mtime  time.Time
}

type subscription struct {
	fn        func(Beat)
	cancelled atomic.Bool
}

type delivery struct {
	sub  *subscription
	beat Beat
}

// FileOption configures a FileWatcher.
type FileOption func(*FileWatcher)

// WithFileClock makes the FileWatcher time-stamp beats with c, and is the
// default clock of its FileWatchdogs.
func WithFileClock(c clock.Clock) FileOption { return func(fw *FileWatcher) { fw.clk = c } }

// WithLogf sets a function that receives notes about recoveries (removed
// directories, overflows) and inotify errors. It must be safe for
// concurrent use and must not call the FileWatcher (it may be called while
// the FileWatcher holds its lock). By default nothing is logged.
func WithLogf(f func(format string, args ...any)) FileOption {
	return func(fw *FileWatcher) { fw.logf = f }
}

// FileStats are counters of a FileWatcher.
type FileStats struct {
	// Directories is the number of directories with an inotify watch.
	Directories int
	// Files is the number of distinct watched files.
	Files int
	// Subscriptions is the number of active Watch registrations.
	Subscriptions int
	// Beats counts beats delivered (once per file, not per subscription).
	Beats uint64
	// Recoveries counts removed-directory and overflow recoveries.
	Recoveries uint64
}

// NewFileWatcher starts a FileWatcher. Close it to release its inotify
// instance and goroutines.
func NewFileWatcher(opts ...FileOption) (*FileWatcher, error) {
	fw := &FileWatcher{
		clk:   clock.Real(),
		logf:  func(string, ...any) {},
		mkdir: trustedpath.MkdirAll,
		dirs:  make(map[string]*dirState),
	}
	for _, o := range opts {
		o(fw)
	}
	in, err := newInotify()
	if err != nil {
		return nil, fmt.Errorf("watchdog: new file watcher: %w", err)
	}
	fw.in = in
	fw.wg.Add(1)
	go fw.loop()
	return fw, nil
}

// Watch calls onBeat for every beat of the file at path until the returned
// cancel function is called. It creates the file's directory (and parents,
// mode 0755) if missing, without following a symbolic link owned by a user
// other than root or the effective user (trustedpath.MkdirAll: such a link
// is an error matching trustedpath.ErrUntrustedLink), and adds a watch on
// it unless one exists. Several
// registrations for one path are allowed; each gets every beat. After
// cancel returns no new onBeat call begins; cancel is idempotent and never
// blocks on a running callback.
func (fw *FileWatcher) Watch(path string, onBeat func(Beat)) (cancel func(), err error) {
	if onBeat == nil {
		return nil, errors.New("watchdog: watch: nil onBeat")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watchdog: watch %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.closed.Load() {
		return nil, ErrClosed
	}
	ds := fw.dirs[dir]
	if ds == nil {
		ds = &dirState{path: dir, files: map[string]*fileState{}, waiting: map[string]bool{}}
	}
	if !ds.watched {
		if err := fw.addDirLocked(ds); err != nil {
			return nil, fmt.Errorf("watchdog: watch %s: %w", path, err)
		}
		fw.dirs[dir] = ds
		fw.unawaitLocked(ds)
	}
	f := ds.files[abs]
	if f == nil {
		f = &fileState{path: abs}
		f.exists, f.mtime = statMtime(abs)
		ds.files[abs] = f
	}
	s := &subscription{fn: onBeat}
	f.subs = append(f.subs, s)
	var once sync.Once
	return func() { once.Do(func() { fw.unsubscribe(ds, f, s) }) }, nil
}

// Stats returns the FileWatcher's counters.
func (fw *FileWatcher) Stats() FileStats {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	s := fw.stats
	s.Directories, s.Files, s.Subscriptions = 0, 0, 0
	for _, ds := range fw.dirs {
		if ds.watched {
			s.Directories++
		}
		s.Files += len(ds.files)
		for _, f := range ds.files {
			s.Subscriptions += len(f.subs)
		}
	}
	return s
}

// Close stops the FileWatcher: it closes its inotify instance and waits for
// its goroutines, so no callback is running or called after Close returns.
// It must not be called from a callback. Close is idempotent.
func (fw *FileWatcher) Close() error {
	fw.closeMu.Lock()
	defer fw.closeMu.Unlock()
	if fw.closed.Swap(true) {
		return nil
	}
	err := fw.in.close()
	fw.wg.Wait()
	if err != nil {
		return fmt.Errorf("watchdog: close file watcher: %w", err)
	}
	return nil
}

func (fw *FileWatcher) unsubscribe(ds *dirState, f *fileState, s *subscription) {
	s.cancelled.Store(true)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for i, x := range f.subs {
		if x == s {
			f.subs = append(f.subs[:i], f.subs[i+1:]...)
			break
		}
	}
	if len(f.subs) == 0 && ds.files[f.path] == f {
		delete(ds.files, f.path)
	}
	fw.releaseLocked(ds)
}

// releaseLocked drops the watch of a directory nobody needs any more.
func (fw *FileWatcher) releaseLocked(ds *dirState) {
	if len(ds.files) > 0 || len(ds.waiting) > 0 || fw.dirs[ds.path] != ds {
		return
	}
	delete(fw.dirs, ds.path)
	if ds.watched && !fw.closed.Load() {
		ds.watched = false
		if err := fw.in.remove(ds.path); err != nil && !errors.Is(err, errNoWatch) &&
			!errors.Is(err, os.ErrClosed) {
			fw.logf("watchdog: stop watching %s: %v", ds.path, err)
		}
	}
}

// addDirLocked creates ds.path if missing and watches it.
func (fw *FileWatcher) addDirLocked(ds *dirState) error {
	if err := fw.mkdir(ds.path, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if err := fw.in.add(ds.path); err != nil {
		return fmt.Errorf("watch directory %s: %w", ds.path, err)
	}
	ds.watched = true
	ds.rawStat = localFS(ds.path)
	return nil
}

func statMtime(path string) (bool, time.Time) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, time.Time{}
	}
	return true, fi.ModTime()
}

// loop runs the inotify reader; callbacks run here.
func (fw *FileWatcher) loop() {
	defer fw.wg.Done()
	var out []delivery
	deliver := func() {
		for i, d := range out {
			if fw.closed.Load() {
				break
			}
			if !d.sub.cancelled.Load() {
				d.sub.fn(d.beat)
			}
			out[i] = delivery{}
		}
	}
	err := fw.in.run(func(evs []fsnotify.Event) {
		out = fw.handleEvents(evs, out[:0])
		deliver()
	}, func() {
		out = fw.recoverOverflow(out[:0])
		deliver()
	})
	if err != nil {
		fw.logf("watchdog: %v; no more beats are seen", err)
	}
}

// handleEvents handles the events of one read.
func (fw *FileWatcher) handleEvents(evs []fsnotify.Event, out []delivery) []delivery {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for _, ev := range evs {
		out = fw.handleEventLocked(ev, out)
	}
	return out
}

func (fw *FileWatcher) handleEventLocked(ev fsnotify.Event, out []delivery) []delivery {
	name := ev.Name
	// The event is about a watched directory itself (from its own watch or
	// from its parent's).
	if ds := fw.dirs[name]; ds != nil && ds.watched && ev.Op.Has(fsnotify.Remove|fsnotify.Rename) {
		out = fw.dirGoneLocked(ds, ev.Op, out)
	}
	parent := fw.dirs[filepath.Dir(name)]
	if parent == nil {
		return out
	}
	if f := parent.files[name]; f != nil {
		switch {
		case ev.Op.Has(beatOps):
			f.exists, f.mtime = beatStat(name, parent.rawStat)
			fw.stats.Beats++
			out = deliverLocked(out, f, Beat{Path: name, At: beatTime(fw.clk.Now(), f.exists, f.mtime), Op: ev.Op & beatOps})
		case ev.Op.Has(fsnotify.Remove | fsnotify.Rename):
			f.exists, f.mtime = statMtime(name)
		}
	}
	if parent.waiting[name] && ev.Op.Has(fsnotify.Create) {
		delete(parent.waiting, name)
		fw.releaseLocked(parent)
		if ds := fw.dirs[name]; ds != nil && !ds.watched {
			out = fw.rewatchLocked(ds, out)
		}
	}
	return out
}

func deliverLocked(out []delivery, f *fileState, b Beat) []delivery {
	for _, s := range f.subs {
		out = append(out, delivery{sub: s, beat: b})
	}
	return out
}

// dirGoneLocked handles the removal (or rename) of a watched directory.
func (fw *FileWatcher) dirGoneLocked(ds *dirState, op fsnotify.Op, out []delivery) []delivery {
	fw.stats.Recoveries++
	fw.logf("watchdog: watched directory %s is gone (%s); watching it again", ds.path, op)
	ds.watched = false
	// The kernel has dropped the watch already; this clears what is left.
	_ = fw.in.remove(ds.path)
	return fw.rewatchLocked(ds, out)
}

// rewatchLocked watches ds again (creating it if needed) and re-reads its
// files; if that fails, it waits for the directory to reappear.
func (fw *FileWatcher) rewatchLocked(ds *dirState, out []delivery) []delivery {
	if err := fw.addDirLocked(ds); err != nil {
		fw.logf("watchdog: cannot watch %s again: %v; waiting for it to reappear", ds.path, err)
		return fw.awaitLocked(ds, out)
	}
	fw.unawaitLocked(ds)
	fw.logf("watchdog: watching %s again; re-reading its heartbeat files", ds.path)
	return fw.restatLocked(ds, out)
}

// unawaitLocked stops waiting in the parent for ds to reappear.
func (fw *FileWatcher) unawaitLocked(ds *dirState) {
	if p := fw.dirs[filepath.Dir(ds.path)]; p != nil && p.waiting[ds.path] {
		delete(p.waiting, ds.path)
		fw.releaseLocked(p)
	}
}

// awaitLocked watches the parent of ds for the re-creation of ds.
func (fw *FileWatcher) awaitLocked(ds *dirState, out []delivery) []delivery {
	pp := filepath.Dir(ds.path)
	if pp == ds.path {
		return out
	}
	p := fw.dirs[pp]
	if p == nil {
		p = &dirState{path: pp, files: map[string]*fileState{}, waiting: map[string]bool{}}
		fw.dirs[pp] = p
	}
	p.waiting[ds.path] = true
	if !p.watched {
		if err := fw.in.add(pp); err != nil {
			fw.logf("watchdog: cannot watch %s for %s to reappear: %v; beats of %s are lost until it is watched again",
				pp, ds.path, err, ds.path)
			delete(p.waiting, ds.path)
			fw.releaseLocked(p)
			return out
		}
		p.watched = true
	}
	// It may have reappeared before the parent's watch was in place.
	if fi, err := os.Stat(ds.path); err == nil && fi.IsDir() {
		delete(p.waiting, ds.path)
		fw.releaseLocked(p)
		if err := fw.in.add(ds.path); err == nil {
			ds.watched = true
			ds.rawStat = localFS(ds.path)
			fw.logf("watchdog: watching %s again; re-reading its heartbeat files", ds.path)
			return fw.restatLocked(ds, out)
		}
		p.waiting[ds.path] = true
		fw.dirs[pp] = p
	}
	return out
}

// restatLocked counts a changed modification time of each file of ds as a
// beat.
func (fw *FileWatcher) restatLocked(ds *dirState, out []delivery) []delivery {
	var now time.Time
	for _, f := range ds.files {
		exists, mtime := statMtime(f.path)
		changed := exists && (!f.exists || !mtime.Equal(f.mtime))
		f.exists, f.mtime = exists, mtime
		if !changed {
			continue
		}
		if now.IsZero() {
			now = fw.clk.Now()
		}
		fw.stats.Beats++
		out = deliverLocked(out, f, Beat{Path: f.path, At: now, Recovered: true})
	}
	return out
}

// recoverOverflow re-adds every watch and re-reads every file after events
// were lost.
func (fw *FileWatcher) recoverOverflow(out []delivery) []delivery {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.stats.Recoveries++
	fw.logf("watchdog: inotify event queue overflowed; re-adding %d directory watches and re-reading every heartbeat file", len(fw.dirs))
	all := make([]*dirState, 0, len(fw.dirs))
	for _, ds := range fw.dirs {
		all = append(all, ds)
	}
	for _, ds := range all {
		for child := range ds.waiting {
			// A Create of an awaited directory may have been lost.
			if c := fw.dirs[child]; c != nil && !c.watched {
				if fi, err := os.Stat(child); err == nil && fi.IsDir() {
					out = fw.rewatchLocked(c, out)
				}
			}
		}
		if len(ds.files) == 0 || !ds.watched {
			continue
		}
		if err := fw.in.add(ds.path); err != nil {
			fw.logf("watchdog: re-add watch of %s: %v", ds.path, err)
			ds.watched = false
			out = fw.rewatchLocked(ds, out)
			continue
		}
		out = fw.restatLocked(ds, out)
	}
	return out
}

// maxEventDelay bounds how far a beat's time is moved back to the file's
// modification time.
const maxEventDelay = time.Second

// beatTime is when a beat happened: the file's modification time when it
// is recent (the event may have waited in the queue, and a deadline counted
// from the event would come late by that wait), else the time the event
// was seen (an old file renamed onto the name, or a clock that is not the
// file system's, like a test's fake clock).
func beatTime(now time.Time, exists bool, mtime time.Time) time.Time {
	if exists && !mtime.After(now) && now.Sub(mtime) < maxEventDelay {
		return mtime
	}
	return now
}
