package changes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Op says what happened to a watched path.
type Op uint8

// The operations reported. See the package documentation for the inotify
// events behind each.
const (
	// Written: a writer closed the file after writing it in place.
	Written Op = iota + 1
	// Replaced: a whole file, new to the path, is there now: renamed onto
	// it, linked, created complete, or reached through a symbolic link or
	// directory that changed.
	Replaced
	// Removed: the path no longer leads to a file.
	Removed
	// Rescan: events were lost (queue overflow); the file exists and may
	// have changed.
	Rescan
)

// String returns the name of o.
func (o Op) String() string {
	switch o {
	case Written:
		return "written"
	case Replaced:
		return "replaced"
	case Removed:
		return "removed"
	case Rescan:
		return "rescan"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Change is one reported change.
type Change struct {
	// Path is the watched path, absolute and clean, as given to AddFile, or
	// for a glob's match its directory (as given) joined with the name.
	Path string
	// Op is what happened.
	Op Op
}

// ErrClosed is returned by the methods of a closed Watcher.
var ErrClosed = errors.New("changes: watcher closed")

// Option configures a Watcher.
type Option func(*Watcher)

// WithErrorHandler sets a function called with problems met while following
// changes after AddFile or AddGlob returned (a directory that cannot be
// watched again, a link loop, a failed read of the inotify queue). It may be
// called while the Watcher holds its lock, from its goroutine or from
// AddGlob: it must be safe for concurrent use, must not call the Watcher
// and must not block. By default such errors are dropped.
func WithErrorHandler(f func(error)) Option { return func(w *Watcher) { w.onError = f } }

// mask is what every directory watch asks for.
const mask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// nameOps are the events about an entry of a watched directory.
const nameOps = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM

// selfOps are the events about a watched directory itself.
const selfOps = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_UNMOUNT | unix.IN_IGNORED

// Watcher reports complete changes of a set of files. Its methods are safe
// for concurrent use. The callback runs on the Watcher's one goroutine, one
// call at a time, in event order, and should return quickly (events queue
// in the kernel meanwhile, up to an overflow); it may call AddFile, AddGlob
// and cancel functions, but not Close.
type Watcher struct {
	onChange func(Change)
	onError  func(error)
	fd       int
	file     *os.File // fd, read through the runtime poller so Close unblocks Read
	done     chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex // guards everything below
	closed  bool
	watches map[int32]string // watch descriptor -> directory
	files   []*target        // AddFile targets
	globs   []*glob
}

// New starts a Watcher that calls onChange with every change. Close it to
// release its inotify instance and goroutine.
func New(onChange func(Change), opts ...Option) (*Watcher, error) {
	if onChange == nil {
		return nil, errors.New("changes: new watcher: nil callback")
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("changes: new watcher: inotify_init1: %w", err)
	}
	w := &Watcher{
		onChange: onChange,
		onError:  func(error) {},
		fd:       fd,
		file:     os.NewFile(uintptr(fd), "inotify"),
		done:     make(chan struct{}),
		watches:  map[int32]string{},
	}
	for _, o := range opts {
		o(w)
	}
	go w.run()
	return w, nil
}

// AddFile watches the file at path (which need not exist yet, nor its
// directory) until cancel is called. Relative paths are made absolute. It
// fails if a directory on the path cannot be watched (permissions, the
// inotify watch limit). cancel is idempotent; after it returns no new
// report of this registration begins.
func (w *Watcher) AddFile(path string) (cancel func(), err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("changes: watch %s: %w", path, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrClosed
	}
	t := &target{path: abs}
	if err := w.rebuild(t); err != nil {
		w.gc()
		return nil, fmt.Errorf("changes: watch %s: %w", abs, err)
	}
	w.files = append(w.files, t)
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			t.cancelled = true
			w.files = remove(w.files, t)
			if !w.closed {
				w.gc()
			}
		})
	}, nil
}

// AddGlob watches the entries of a directory whose names match a pattern,
// such as "/etc/app/conf.d/*.toml", until cancel is called. Only the last
// element may hold wildcards (filepath.Match syntax); the directory need
// not exist yet. See the package documentation for what matches.
func (w *Watcher) AddGlob(pattern string) (cancel func(), err error) {
	abs, err := filepath.Abs(pattern)
	if err != nil {
		return nil, fmt.Errorf("changes: watch %s: %w", pattern, err)
	}
	dir, base := filepath.Split(abs)
	dir = filepath.Clean(dir)
	if base == "" {
		return nil, fmt.Errorf("changes: watch %s: no pattern after the directory", pattern)
	}
	if _, err := filepath.Match(base, ""); err != nil {
		return nil, fmt.Errorf("changes: watch %s: %w", pattern, err)
	}
	if strings.ContainsAny(dir, `*?[\`) {
		return nil, fmt.Errorf("changes: watch %s: only the last element may hold wildcards", pattern)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrClosed
	}
	g := &glob{dir: dir, pattern: base, matches: map[string]*target{}}
	if err := w.rebuildGlob(g, nil, 0); err != nil {
		w.gc()
		return nil, fmt.Errorf("changes: watch %s: %w", pattern, err)
	}
	w.globs = append(w.globs, g)
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			g.cancelled = true
			w.globs = remove(w.globs, g)
			if !w.closed {
				w.gc()
			}
		})
	}, nil
}

// Close stops the Watcher: it closes the inotify instance and waits for the
// goroutine, so no callback runs once Close has returned. It must not be
// called from the callback. Close is idempotent.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		if err := w.file.Close(); err != nil {
			w.closeErr = fmt.Errorf("changes: close: %w", err)
		}
		<-w.done
	})
	return w.closeErr
}

func (w *Watcher) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	var out []report
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.onError(fmt.Errorf("changes: read inotify events: %w", err))
			return
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return
		}
		out = w.handleBatch(buf[:n], out[:0])
		w.mu.Unlock()
		for i, r := range out {
			w.mu.Lock()
			closed, cancelled := w.closed, r.cancelled()
			w.mu.Unlock()
			if closed {
				return
			}
			if !cancelled {
				w.onChange(r.change)
			}
			out[i] = report{}
		}
	}
}

// report is a change waiting to be delivered, with what it belongs to.
type report struct {
	change Change
	t      *target
}

// cancelled reports whether the registration the change belongs to was
// cancelled. The caller holds w.mu.
func (r report) cancelled() bool {
	if r.t.glob != nil {
		return r.t.glob.cancelled
	}
	return r.t.cancelled
}

// event is one inotify event.
type event struct {
	wd   int32
	mask uint32
	name string
}

func (w *Watcher) handleBatch(buf []byte, out []report) []report {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := event{
			wd:   int32(binary.NativeEndian.Uint32(buf[0:])),
			mask: binary.NativeEndian.Uint32(buf[4:]),
		}
		nameLen := int(binary.NativeEndian.Uint32(buf[12:]))
		end := unix.SizeofInotifyEvent + nameLen
		if end > len(buf) {
			w.onError(fmt.Errorf("changes: truncated inotify event"))
			break
		}
		ev.name = strings.TrimRight(string(buf[unix.SizeofInotifyEvent:end]), "\x00")
		buf = buf[end:]
		out = w.handle(ev, out)
	}
	return out
}

func (w *Watcher) handle(ev event, out []report) []report {
	switch {
	case ev.mask&unix.IN_Q_OVERFLOW != 0:
		return w.overflow(out)
	case ev.mask&selfOps != 0:
		if _, ok := w.watches[ev.wd]; !ok {
			return out // a watch this Watcher dropped
		}
		if ev.mask&unix.IN_IGNORED != 0 {
			delete(w.watches, ev.wd)
		} else if ev.mask&unix.IN_MOVE_SELF == 0 {
			return out // IN_DELETE_SELF, IN_UNMOUNT: IN_IGNORED follows
		}
		for _, t := range w.allTargets() {
			if t.uses(ev.wd) {
				out = w.restate(t, out, nil)
			}
		}
		for _, g := range w.globs {
			if g.uses(ev.wd) {
				out = w.rebuildGlobReport(g, out, 0)
			}
		}
		w.gc()
		return out
	case ev.mask&nameOps == 0:
		return out
	}
	for _, t := range w.allTargets() {
		if r, ok := t.role(ev.wd, ev.name); ok {
			out = w.targetEvent(t, r, ev, out)
		}
	}
	for _, g := range w.globs {
		if g.dirWd == ev.wd && g.match(ev.name) {
			out = w.globEntryEvent(g, ev.name, ev.mask, out)
		}
		if g.depends(ev.wd, ev.name) {
			out = w.rebuildGlobReport(g, out, 0)
		}
	}
	w.gc()
	return out
}

// targetEvent handles an event on one of t's names.
func (w *Watcher) targetEvent(t *target, r role, ev event, out []report) []report {
	if r != roleFinal {
		// A link or an awaited directory on the way changed.
		return w.restate(t, out, nil)
	}
	m := ev.mask
	switch {
	case m&unix.IN_CLOSE_WRITE != 0:
		if t.final.exists {
			return append(out, report{Change{t.path, Written}, t})
		}
		// The name was not a file a moment ago: look again.
		return w.restate(t, out, nil)
	case m&unix.IN_MOVED_TO != 0:
		existed := t.final.exists
		w.refresh(t)
		switch {
		case t.final.exists:
			out = append(out, report{Change{t.path, Replaced}, t})
		case existed:
			// A dangling link or a directory was renamed onto the name.
			out = append(out, report{Change{t.path, Removed}, t})
		}
		return out
	case m&unix.IN_CREATE != 0:
		return w.restate(t, out, &ev)
	case m&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
		existed := t.final.exists
		w.refresh(t)
		if existed {
			out = append(out, report{Change{t.path, Removed}, t})
		}
		// A file already back at the name is reported by its own event.
		return out
	}
	return out
}

// restate re-resolves t and reports the difference: Removed if it led to
// a file and no longer does, Replaced if it leads to a different complete
// file. created is the IN_CREATE of t's last name, if that is why: a file
// just created is held to a stricter test of completeness (and reported
// even when it looks like the one before), unless what was created is a
// link to it.
func (w *Watcher) restate(t *target, out []report, created *event) []report {
	old := t.final
	w.refresh(t)
	switch {
	case !t.final.exists && old.exists:
		return append(out, report{Change{t.path, Removed}, t})
	case t.final.exists && (created != nil || !old.exists || !old.same(t.final)):
		strict := false
		if created != nil {
			r, ok := t.role(created.wd, created.name)
			strict = ok && r == roleFinal
		}
		if complete(t.final.real, strict) {
			return append(out, report{Change{t.path, Replaced}, t})
		}
	}
	return out
}

// refresh re-resolves t, reporting a failure to the error handler.
func (w *Watcher) refresh(t *target) {
	if err := w.rebuild(t); err != nil {
		w.onError(fmt.Errorf("changes: follow %s: %w", t.path, err))
	}
}

// globEntryEvent handles an event on a matching name in g's directory that
// is not a match yet (matches are targets, handled by their own names).
func (w *Watcher) globEntryEvent(g *glob, name string, m uint32, out []report) []report {
	if t := g.matches[name]; t != nil {
		if m&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 && !t.final.exists {
			// Its name is gone (its Removed, if due, is on its way).
			if fi, err := os.Lstat(filepath.Join(g.real, name)); err != nil || fi.IsDir() {
				delete(g.matches, name)
			}
		}
		return out
	}
	if m&(unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE) == 0 || m&unix.IN_ISDIR != 0 {
		return out
	}
	t := &target{path: filepath.Join(g.dir, name), glob: g}
	g.matches[name] = t
	out = w.targetEvent(t, roleFinal, event{g.dirWd, m, name}, out)
	if !t.final.exists {
		delete(g.matches, name) // gone again already
	}
	return out
}

// rebuildGlobReport re-resolves g's directory and reports what changed
// among its matches; with op Rescan every existing match is reported.
func (w *Watcher) rebuildGlobReport(g *glob, out []report, op Op) []report {
	if err := w.rebuildGlob(g, &out, op); err != nil {
		w.onError(fmt.Errorf("changes: follow %s: %w", filepath.Join(g.dir, g.pattern), err))
	}
	return out
}

// overflow re-resolves everything after lost events.
func (w *Watcher) overflow(out []report) []report {
	for _, t := range w.files {
		existed := t.final.exists
		w.refresh(t)
		switch {
		case t.final.exists:
			out = append(out, report{Change{t.path, Rescan}, t})
		case existed:
			out = append(out, report{Change{t.path, Removed}, t})
		}
	}
	for _, g := range w.globs {
		out = w.rebuildGlobReport(g, out, Rescan)
	}
	w.gc()
	return out
}

// allTargets lists the AddFile targets and every glob's matches.
func (w *Watcher) allTargets() []*target {
	all := append([]*target(nil), w.files...)
	for _, g := range w.globs {
		for _, t := range g.matches {
			all = append(all, t)
		}
	}
	return all
}

// addWatch watches dir (a path without symbolic links) and returns the
// watch descriptor; watching a directory twice gives the same one.
func (w *Watcher) addWatch(dir string) (int32, error) {
	wd, err := unix.InotifyAddWatch(w.fd, dir, mask)
	if err != nil {
		return -1, fmt.Errorf("watch %s: %w", dir, err)
	}
	w.watches[int32(wd)] = dir
	return int32(wd), nil
}

// gc drops the watches that nothing uses any more.
func (w *Watcher) gc() {
	used := map[int32]bool{}
	for _, t := range w.allTargets() {
		for _, wd := range t.wds {
			used[wd] = true
		}
	}
	for _, g := range w.globs {
		for _, wd := range g.wds {
			used[wd] = true
		}
	}
	for wd := range w.watches {
		if !used[wd] {
			delete(w.watches, wd)
			unix.InotifyRmWatch(w.fd, uint32(wd))
		}
	}
}

func remove[T comparable](s []T, x T) []T {
	for i, y := range s {
		if y == x {
			return append(s[:i:i], s[i+1:]...)
		}
	}
	return s
}
