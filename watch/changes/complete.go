package changes

import (
	"errors"

	"golang.org/x/sys/unix"
)

// setLease is fcntl(F_SETLEASE); a seam for tests of the fallback.
var setLease = func(fd, typ int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, typ)
	return err
}

// complete reports whether the file at path (a path without symbolic
// links) holds a finished change: anything but a regular file is; a
// regular file is unless someone holds it open for writing, which a read
// lease tells (the kernel refuses one with EAGAIN while the file is open
// for writing anywhere). With strict (the file was just created), an empty
// file with one link counts as unfinished too: its creator may not have
// finished opening it, and its IN_CLOSE_WRITE will come. Without a lease
// (EPERM: not the owner and not root; EINVAL: not supported) strict
// accepts only a hard link, and otherwise every file is taken as complete.
func complete(path string, strict bool) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false // gone again: its own event tells
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return true
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return withoutLease(&st, strict)
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return true
	}
	switch err := setLease(fd, unix.F_RDLCK); {
	case err == nil:
		setLease(fd, unix.F_UNLCK)
		return !strict || st.Size > 0 || st.Nlink > 1
	case errors.Is(err, unix.EAGAIN):
		return false
	default:
		return withoutLease(&st, strict)
	}
}

func withoutLease(st *unix.Stat_t, strict bool) bool { return !strict || st.Nlink > 1 }
