package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseExecutablePages tells the kernel that the pages of the
// executable touched while starting (package initialisation, parsing the
// configuration, spawning) are not needed any more (madvise MADV_PAGEOUT
// on the executable's read-only mappings). At idle the supervisor then
// holds only the code its idle path uses, about 0.7 MiB instead of about
// 7 MiB of its 13 MiB binary; whatever runs later (a restart, a status
// request) faults its pages back in, from the page cache when they are
// still there. Kernels before 5.4 refuse the advice, which changes nothing.
func releaseExecutablePages() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[5] != exe || strings.Contains(fs[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(a), uintptr(b-a), unix.MADV_PAGEOUT)
	}
}
