package systemd

import (
	"bytes"
	"os"
	"strconv"
)

// maxAncestry bounds the walk up the process tree in IsDescendant.
const maxAncestry = 256

// IsDescendant reports whether process pid is ancestor itself or descends
// from it, following the parent links in /proc/PID/stat for at most 256
// generations. A process counts as its own descendant, so a notify socket's
// accept function can be IsDescendant(pid, programPID) directly. It returns
// false when pid or ancestor is not positive or a process on the way has
// already exited; the answer can be stale if pids are reused meanwhile.
func IsDescendant(pid, ancestor int) bool {
	if pid <= 0 || ancestor <= 0 {
		return false
	}
	for range maxAncestry {
		if pid == ancestor {
			return true
		}
		if pid == 1 {
			return false
		}
		ppid, ok := parentPID(pid)
		if !ok || ppid <= 0 {
			return false
		}
		pid = ppid
	}
	return false
}

// parentPID reads the parent pid of pid from /proc/PID/stat, whose second
// field, the command name in parentheses, may itself hold spaces and ")".
func parentPID(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	// After ") " come the state and the ppid.
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, false
	}
	return ppid, true
}
