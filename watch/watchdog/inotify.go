package watchdog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// errNoWatch is returned by inotify.remove for a path it does not watch.
var errNoWatch = errors.New("not watched")

// dirMask is what a directory watch reports: the events fsnotify reports
// by default, so Beat.Op keeps fsnotify's meaning.
const dirMask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_DELETE | unix.IN_DELETE_SELF |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_MOVE_SELF

// inotify is the FileWatcher's inotify instance: directory watches added
// and removed by path, and a reader that hands every event, translated to
// an fsnotify.Event, to a callback on its own goroutine.
//
// It replaces fsnotify.Watcher for one reason, the cost of a beat. The
// reader reads the descriptor with a raw system call from inside the
// runtime's poller (syscall.RawConn), so waiting for events and reading
// them enter no blocking system call. A Go program's first blocking system
// call after it was idle wakes the runtime's sysmon thread from its deep
// sleep, and sysmon then naps in 20 µs steps until the program is idle
// again: through fsnotify's reader that was about two extra thread wakeups
// per beat. Events also reach the FileWatcher without a channel hop
// between two goroutines.
type inotify struct {
	file   *os.File
	rc     syscall.RawConn
	closed atomic.Bool // close was called: a failing read is the end

	mu     sync.Mutex
	byWd   map[int32]string // watch descriptor -> directory
	byPath map[string]int32
}

func newInotify() (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	// A non-blocking descriptor given to os.NewFile joins the runtime's
	// poller, so a reader waiting on it parks its goroutine, not a thread.
	f := os.NewFile(uintptr(fd), "inotify")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("inotify: %w", err)
	}
	return &inotify{file: f, rc: rc, byWd: map[int32]string{}, byPath: map[string]int32{}}, nil
}

// add watches the directory at path, or updates its watch.
func (in *inotify) add(path string) error {
	var wd int
	var err error
	cerr := in.rc.Control(func(fd uintptr) {
		wd, err = unix.InotifyAddWatch(int(fd), path, dirMask)
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: path, Err: err}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if p, ok := in.byWd[int32(wd)]; ok && p != path {
		// Another name of a directory already watched (a bind mount or a
		// symbolic link): events keep the first name.
		return nil
	}
	if old, ok := in.byPath[path]; ok && old != int32(wd) {
		delete(in.byWd, old) // the name is another directory now
	}
	in.byWd[int32(wd)] = path
	in.byPath[path] = int32(wd)
	return nil
}

// remove ends the watch of the directory at path.
func (in *inotify) remove(path string) error {
	in.mu.Lock()
	wd, ok := in.byPath[path]
	if ok {
		delete(in.byPath, path)
		delete(in.byWd, wd)
	}
	in.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", path, errNoWatch)
	}
	return in.rmWatch(wd)
}

func (in *inotify) rmWatch(wd int32) error {
	var err error
	cerr := in.rc.Control(func(fd uintptr) {
		_, err = unix.InotifyRmWatch(int(fd), uint32(wd))
	})
	if cerr != nil {
		return cerr
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: the kernel dropped it already
		return fmt.Errorf("inotify_rm_watch: %w", err)
	}
	return nil
}

// close closes the descriptor; run then returns.
func (in *inotify) close() error {
	in.closed.Store(true)
	return in.file.Close()
}

// readRaw reads the descriptor with a raw system call, waiting in the
// runtime's poller while there is nothing to read. A read of a non-blocking
// inotify descriptor never blocks, so it does not need the runtime's
// blocking-call bookkeeping (entersyscall), which is what wakes sysmon.
func (in *inotify) readRaw(buf []byte) (int, error) {
	var n uintptr
	var errno syscall.Errno
	err := in.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// run reads events until the descriptor is closed or a read fails. It calls
// onEvents with the events of each read (in order; the slice is reused) and
// onOverflow when the kernel's queue overflowed. A failed read is returned;
// a closed descriptor returns nil.
func (in *inotify) run(onEvents func([]fsnotify.Event), onOverflow func()) error {
	// Room for 4096 events without names, or about 1000 with short ones.
	buf := make([]byte, 64<<10)
	var evs []fsnotify.Event
	for {
		n, err := in.readRaw(buf)
		if err != nil {
			if in.closed.Load() {
				return nil
			}
			return fmt.Errorf("read inotify events: %w", err)
		}
		evs = evs[:0]
		overflow := false
		in.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameAt := off + unix.SizeofInotifyEvent
			off = nameAt + int(raw.Len)
			if raw.Mask&unix.IN_Q_OVERFLOW != 0 {
				overflow = true
				continue
			}
			if ev, ok := in.translateLocked(raw, buf[nameAt:min(off, n)]); ok {
				evs = append(evs, ev)
			}
		}
		in.mu.Unlock()
		if len(evs) > 0 {
			onEvents(evs)
			clear(evs)
		}
		if overflow {
			onOverflow()
		}
	}
}

// translateLocked turns a raw event into an fsnotify.Event as fsnotify's
// own inotify backend would for a non-recursive watch; in.mu is held. A
// false result means the event is not reported.
func (in *inotify) translateLocked(raw *unix.InotifyEvent, name []byte) (fsnotify.Event, bool) {
	dir, ok := in.byWd[raw.Wd]
	if !ok {
		return fsnotify.Event{}, false // a watch removed since
	}
	mask := raw.Mask
	if mask&(unix.IN_IGNORED|unix.IN_UNMOUNT) != 0 {
		delete(in.byWd, raw.Wd)
		if in.byPath[dir] == raw.Wd {
			delete(in.byPath, dir)
		}
		return fsnotify.Event{}, false
	}
	path := dir
	if i := indexNUL(name); i > 0 {
		path = dir + "/" + string(name[:i])
	}
	switch {
	case mask&unix.IN_DELETE_SELF != 0:
		delete(in.byWd, raw.Wd)
		if in.byPath[dir] == raw.Wd {
			delete(in.byPath, dir)
		}
		if _, ok := in.byPath[filepath.Dir(dir)]; ok {
			return fsnotify.Event{}, false // the parent's watch reports it
		}
	case mask&unix.IN_MOVE_SELF != 0:
		// The directory moved: its watch would follow it under the new
		// name, which this watcher does not know. End it.
		delete(in.byWd, raw.Wd)
		if in.byPath[dir] == raw.Wd {
			delete(in.byPath, dir)
		}
		_ = in.rmWatch(raw.Wd) // it may be gone already; nothing to do either way
	}
	var op fsnotify.Op
	if mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
		op |= fsnotify.Create
	}
	if mask&(unix.IN_DELETE|unix.IN_DELETE_SELF) != 0 {
		op |= fsnotify.Remove
	}
	if mask&unix.IN_MODIFY != 0 {
		op |= fsnotify.Write
	}
	if mask&(unix.IN_MOVED_FROM|unix.IN_MOVE_SELF) != 0 {
		op |= fsnotify.Rename
	}
	if mask&unix.IN_ATTRIB != 0 {
		op |= fsnotify.Chmod
	}
	if op == 0 {
		return fsnotify.Event{}, false
	}
	return fsnotify.Event{Name: path, Op: op}, true
}

// indexNUL returns the length of the NUL-padded name.
func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

// localFS reports whether dir is on a local disk or memory file system,
// where stat of a file that was just changed finds it in the kernel's caches
// and does not wait for a device or a server.
func localFS(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.TMPFS_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
		unix.F2FS_SUPER_MAGIC, unix.RAMFS_MAGIC, unix.OVERLAYFS_SUPER_MAGIC:
		return true
	}
	return false
}

// beatStat returns whether the file at path exists and its modification
// time, as statMtime does. With raw set (the file is on a local file system,
// see localFS, and it has just changed, so its inode and name are cached)
// it uses a raw statx(2), for the reason readRaw reads raw: the runtime's
// bookkeeping of a blocking system call would wake sysmon once per beat.
// Elsewhere (network or FUSE file systems, where stat may wait) it uses
// os.Stat, which lets the runtime run other goroutines meanwhile.
func beatStat(path string, raw bool) (bool, time.Time) {
	if !raw {
		return statMtime(path)
	}
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return false, time.Time{}
	}
	var st unix.Statx_t
	dirfd := unix.AT_FDCWD
	for {
		_, _, errno := syscall.RawSyscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(p)), 0,
			unix.STATX_MTIME, uintptr(unsafe.Pointer(&st)), 0)
		if errno == syscall.EINTR {
			continue
		}
		runtime.KeepAlive(p)
		if errno != 0 {
			return false, time.Time{}
		}
		return true, time.Unix(st.Mtime.Sec, int64(st.Mtime.Nsec))
	}
}
