package procs

import (
	"errors"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openInheritable opens n descriptors of /dev/null without close-on-exec
// and closes them at the end of the test.
func openInheritable(t *testing.T, n int) []int {
	t.Helper()
	fds := make([]int, 0, n)
	t.Cleanup(func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	})
	for range n {
		// syscall.Open, unlike os.Open, does not add O_CLOEXEC.
		fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	return fds
}

func isCloexec(t *testing.T, fd int) bool {
	t.Helper()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatalf("F_GETFD %d: %v", fd, err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// childFDs runs a shell and returns the descriptors it holds.
func childFDs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", "ls /proc/$$/fd").Output()
	if err != nil {
		t.Fatal(err)
	}
	fds := strings.Fields(string(out))
	sort.Slice(fds, func(i, j int) bool { a, _ := strconv.Atoi(fds[i]); b, _ := strconv.Atoi(fds[j]); return a < b })
	return fds
}

func TestCloseOnExecFrom(t *testing.T) {
	enosys := func(uint, uint, uint) error { return unix.ENOSYS }
	cases := []struct {
		name       string
		closeRange func(first, last, flags uint) error
		dirs       []string
	}{
		{"close_range", unix.CloseRange, fdDirs},
		{"proc fallback (ENOSYS)", enosys, fdDirs},
		{"proc fallback (EINVAL)", func(uint, uint, uint) error { return unix.EINVAL }, fdDirs},
		{"dev fd fallback", enosys, []string{"/nonexistent/fd", "/dev/fd"}},
		{"rlimit scan", enosys, []string{"/nonexistent/fd"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oldCR, oldDirs := closeRange, fdDirs
			t.Cleanup(func() { closeRange, fdDirs = oldCR, oldDirs })
			called := false
			closeRange = func(first, last, flags uint) error {
				called = true
				return tc.closeRange(first, last, flags)
			}
			fdDirs = tc.dirs

			below := openInheritable(t, 1)[0]
			fds := openInheritable(t, 300)
			from := fds[0]
			if from <= below {
				t.Fatalf("descriptor %d opened after %d", from, below)
			}
			if got := childFDs(t); len(got) < 300 {
				t.Fatalf("a child inherits only %d descriptors before the call: the test sees nothing", len(got))
			}
			if err := CloseOnExecFrom(from); err != nil {
				t.Fatal(err)
			}
			if !called {
				t.Fatal("close_range was not tried")
			}
			for _, fd := range fds {
				if !isCloexec(t, fd) {
					t.Fatalf("descriptor %d is still inherited", fd)
				}
			}
			if isCloexec(t, below) {
				t.Errorf("descriptor %d below %d was marked", below, from)
			}
			// The descriptors stay open for this process.
			if _, err := unix.FcntlInt(uintptr(fds[len(fds)-1]), unix.F_GETFD, 0); err != nil {
				t.Errorf("descriptor closed: %v", err)
			}
			// A child gets none of them.
			for _, s := range childFDs(t) {
				n, _ := strconv.Atoi(s)
				if n >= from {
					t.Errorf("child inherited descriptor %d", n)
				}
			}
		})
	}
}

func TestCloseOnExecFromErrors(t *testing.T) {
	old := closeRange
	t.Cleanup(func() { closeRange = old })
	closeRange = func(uint, uint, uint) error { return unix.EBADF }
	if err := CloseOnExecFrom(3); !errors.Is(err, unix.EBADF) || !strings.Contains(err.Error(), "close_range") {
		t.Errorf("got %v, want the close_range error", err)
	}
	if err := CloseOnExecFrom(-1); err == nil {
		t.Error("negative descriptor accepted")
	}
}
