package procs

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Seams for tests of the fallbacks.
var (
	closeRange = unix.CloseRange
	fdDirs     = []string{"/proc/self/fd", "/dev/fd"}
)

// maxScan bounds the last fallback of CloseOnExecFrom, which tries every
// descriptor number up to the open-files limit: a limit of "unlimited" or
// of several millions would otherwise take seconds.
const maxScan = 1 << 20

// CloseOnExecFrom marks every open file descriptor numbered fd or above
// close-on-exec, so that no program started afterwards inherits them
// (children then get only what is passed to them explicitly, as
// Spec.ExtraFiles and stdio are). Call it at start-up with fd = 3, before
// anything is spawned: it is how descriptors inherited from whoever started
// this process (a shell, a container runtime, a leaky service manager) stop
// leaking into every child. It does not close anything: this process keeps
// using its descriptors.
//
// It uses close_range(fd, ~0U, CLOSE_RANGE_CLOEXEC), one system call for any
// number of descriptors. Where the kernel lacks it (before Linux 5.11:
// ENOSYS, or EINVAL for the flag) or a seccomp filter denies it (EPERM) it
// lists /proc/self/fd (else /dev/fd) and
// sets FD_CLOEXEC on each descriptor; without either directory it tries
// every number from fd up to the soft RLIMIT_NOFILE (at most 1<<20). A
// descriptor that closes meanwhile is skipped.
func CloseOnExecFrom(fd int) error {
	if fd < 0 {
		return fmt.Errorf("procs: close-on-exec from %d: negative descriptor", fd)
	}
	err := closeRange(uint(fd), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("procs: close-on-exec from %d: close_range: %w", fd, err)
	}
	// EPERM comes from seccomp filters that deny unknown system calls.
	var listErr error
	for _, dir := range fdDirs {
		fds, err := listFDs(dir)
		if err != nil {
			listErr = errors.Join(listErr, err)
			continue
		}
		for _, n := range fds {
			if n >= fd {
				if err := setCloexec(n); err != nil {
					return fmt.Errorf("procs: close-on-exec from %d: %w", fd, err)
				}
			}
		}
		return nil
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("procs: close-on-exec from %d: no close_range, %v, getrlimit: %w", fd, listErr, err)
	}
	top := uint64(maxScan)
	if lim.Cur < top {
		top = lim.Cur
	}
	for n := uint64(fd); n < top; n++ {
		if err := setCloexec(int(n)); err != nil {
			return fmt.Errorf("procs: close-on-exec from %d: %w", fd, err)
		}
	}
	return nil
}

// listFDs returns the descriptor numbers listed in dir (/proc/self/fd).
// The descriptor used to read dir is in the list; it is close-on-exec
// already and closed on return, so marking it again is harmless.
func listFDs(dir string) ([]int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	fds := make([]int, 0, len(names))
	for _, name := range names {
		n, err := strconv.Atoi(name)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("list %s: unexpected entry %q", dir, name)
		}
		fds = append(fds, n)
	}
	return fds, nil
}

// setCloexec sets FD_CLOEXEC on fd; a descriptor that is not open (EBADF)
// is not an error.
func setCloexec(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if errors.Is(err, unix.EBADF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fcntl(%d, F_GETFD): %w", fd, err)
	}
	if flags&unix.FD_CLOEXEC != 0 {
		return nil
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
		return fmt.Errorf("fcntl(%d, F_SETFD): %w", fd, err)
	}
	return nil
}
