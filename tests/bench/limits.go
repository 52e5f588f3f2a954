package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// restorers undo the system limits the harness raised; they run when a
// figure is done and, if the harness is interrupted, before it exits.
var (
	restoreMu sync.Mutex
	restorers []func()
)

// restoreLimits runs and forgets every pending restorer, newest first.
func restoreLimits() {
	restoreMu.Lock()
	rs := restorers
	restorers = nil
	restoreMu.Unlock()
	for i := len(rs) - 1; i >= 0; i-- {
		rs[i]()
	}
}

const pidMaxFile = "/proc/sys/kernel/pid_max"

// raiseLimits makes room for nprocs more processes and nfiles open files in
// the harness and the supervisors it starts: RLIMIT_NOFILE (soft and hard,
// inherited by the supervisors; it needs root to pass the hard limit) and
// kernel.pid_max. A supervisor of 10,000 programs holds two pipe ends per
// program, the shutdown figure one pidfd per process, and 10,000 runsv or
// s6-supervise processes with their programs pass the default pid_max of
// 32768 along with the rest of the machine. It returns what it could not
// raise; restoreLimits puts everything back.
func raiseLimits(nprocs, nfiles int) []string {
	var problems []string
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		want := uint64(nfiles) + 1024
		if lim.Cur < want || lim.Max < want {
			old := lim
			nl := syscall.Rlimit{Cur: max(lim.Cur, want), Max: max(lim.Max, want)}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err != nil {
				problems = append(problems, fmt.Sprintf("RLIMIT_NOFILE %d: %v", want, err))
			} else {
				pushRestorer(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
			}
		}
	}
	if b, err := os.ReadFile(pidMaxFile); err == nil {
		cur, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		want := 4 * (nprocs + 8192)
		if cur > 0 && cur < want {
			want = min(max(want, 131072), 4194304)
			if err := os.WriteFile(pidMaxFile, []byte(strconv.Itoa(want)), 0o644); err != nil {
				problems = append(problems, fmt.Sprintf("pid_max %d: %v", want, err))
			} else {
				pushRestorer(func() { _ = os.WriteFile(pidMaxFile, []byte(strconv.Itoa(cur)), 0o644) })
			}
		}
	}
	return problems
}

func pushRestorer(f func()) {
	restoreMu.Lock()
	restorers = append(restorers, f)
	restoreMu.Unlock()
}
