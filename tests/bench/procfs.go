package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mono returns CLOCK_MONOTONIC in nanoseconds, the clock of the probe's
// stamps.
func mono() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// stampLine is one line of a probe's stamp file.
type stampLine struct {
	kind string
	pid  int
	ns   int64
	id   string
}

// stampReader reads a stamp file incrementally.
type stampReader struct {
	path   string
	off    int64
	part   []byte
	lines  []stampLine
	counts map[string]int // lines by kind
}

// poll reads what was appended since the last call.
func (r *stampReader) poll() {
	f, err := os.Open(r.path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(r.off, 0); err != nil {
		return
	}
	b := make([]byte, 1<<16)
	for {
		n, err := f.Read(b)
		if n > 0 {
			r.off += int64(n)
			r.part = append(r.part, b[:n]...)
		}
		if err != nil || n == 0 {
			break
		}
	}
	for {
		i := bytes.IndexByte(r.part, '\n')
		if i < 0 {
			break
		}
		fs := strings.Fields(string(r.part[:i]))
		r.part = r.part[i+1:]
		if len(fs) < 3 {
			continue
		}
		pid, _ := strconv.Atoi(fs[1])
		ns, _ := strconv.ParseInt(fs[2], 10, 64)
		l := stampLine{kind: fs[0], pid: pid, ns: ns}
		if len(fs) > 3 {
			l.id = fs[3]
		}
		r.lines = append(r.lines, l)
		if r.counts == nil {
			r.counts = map[string]int{}
		}
		r.counts[l.kind]++
	}
}

// count returns how many lines of the kind were read.
func (r *stampReader) count(kind string) int { return r.counts[kind] }

// waitFor polls until cond holds or the timeout passes.
func (r *stampReader) waitFor(timeout time.Duration, cond func(r *stampReader) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		r.poll()
		if cond(r) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w after %v", filepath.Base(r.path), ErrTimeout, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// procInfo is what the harness knows of one process.
type procInfo struct {
	pid, ppid int
	state     byte
}

// procTable reads every process's parent and state.
func procTable() map[int]procInfo {
	d, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	t := make(map[int]procInfo, len(d))
	for _, e := range d {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pi, ok := readStat(pid); ok {
			t[pid] = pi
		}
	}
	return t
}

// readStat reads the state and parent of pid.
func readStat(pid int) (procInfo, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return procInfo{}, false
	}
	fs := strings.Fields(s[i+2:])
	if len(fs) < 2 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(fs[1])
	return procInfo{pid: pid, ppid: ppid, state: fs[0][0]}, true
}

// gone reports whether pid has exited (absent or a zombie).
func gone(pid int) bool {
	pi, ok := readStat(pid)
	return !ok || pi.state == 'Z' || pi.state == 'X'
}

// descendants returns root and every live process below it.
func descendants(root int) []int {
	t := procTable()
	kids := map[int][]int{}
	for _, p := range t {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	out := []int{}
	stack := []int{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if pi, ok := t[p]; ok && pi.state != 'Z' {
			out = append(out, p)
		}
		stack = append(stack, kids[p]...)
	}
	return out
}

// exeOf returns the resolved executable of pid ("" when unknown).
func exeOf(pid int) string {
	s, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return ""
	}
	return s
}

// supervisorPIDs returns root and its descendants that are not supervised
// programs (the probe, or sleep exec'd by it): for runit and s6 that is
// runsvdir plus every runsv, s6-svscan plus every s6-supervise.
func supervisorPIDs(root int, programExes ...string) []int {
	var out []int
	for _, p := range descendants(root) {
		exe := exeOf(p)
		prog := false
		for _, e := range programExes {
			if exe == e {
				prog = true
			}
		}
		if !prog {
			out = append(out, p)
		}
	}
	return out
}

// usage is the summed resource use of a set of processes.
type usage struct {
	ticks   int64 // utime+stime in clock ticks (/proc/PID/stat)
	runNS   int64 // on-CPU time in ns (/proc/PID/task/*/schedstat)
	vcs     int64 // voluntary context switches, all threads
	ivcs    int64 // involuntary context switches, all threads
	pssKB   int64 // PSS (/proc/PID/smaps_rollup)
	nprocs  int
	threads int
}

// clkTck is USER_HZ on Linux.
const clkTck = 100

// cpuMS returns utime+stime in milliseconds.
func (u usage) cpuMS() float64 { return float64(u.ticks) * 1000 / clkTck }

// sub returns the counters of u minus those of v (PSS and counts from u).
func (u usage) sub(v usage) usage {
	return usage{ticks: u.ticks - v.ticks, runNS: u.runNS - v.runNS, vcs: u.vcs - v.vcs,
		ivcs: u.ivcs - v.ivcs, pssKB: u.pssKB, nprocs: u.nprocs, threads: u.threads}
}

// measure sums the resource use of pids.
func measure(pids []int) usage {
	var u usage
	for _, pid := range pids {
		base := "/proc/" + strconv.Itoa(pid)
		b, err := os.ReadFile(base + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			fs := strings.Fields(s[i+2:])
			if len(fs) > 13 {
				ut, _ := strconv.ParseInt(fs[11], 10, 64)
				st, _ := strconv.ParseInt(fs[12], 10, 64)
				u.ticks += ut + st
			}
		}
		u.nprocs++
		tasks, _ := os.ReadDir(base + "/task")
		for _, t := range tasks {
			u.threads++
			tb := base + "/task/" + t.Name()
			if sb, err := os.ReadFile(tb + "/schedstat"); err == nil {
				if fs := strings.Fields(string(sb)); len(fs) > 0 {
					v, _ := strconv.ParseInt(fs[0], 10, 64)
					u.runNS += v
				}
			}
			u.vcs += statusField(tb+"/status", "voluntary_ctxt_switches:")
			u.ivcs += statusField(tb+"/status", "nonvoluntary_ctxt_switches:")
		}
		u.pssKB += statusField(base+"/smaps_rollup", "Pss:")
	}
	return u
}

// statusField returns the first number after key in a /proc text file.
func statusField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, key) {
			fs := strings.Fields(l[len(key):])
			if len(fs) > 0 {
				v, _ := strconv.ParseInt(fs[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// pidWatcher records when processes exit, through pidfds and epoll; it
// works for processes that are not the harness's children.
type pidWatcher struct {
	ep     int
	fds    map[int]int // fd -> pid
	polled []int       // pids past the descriptor limit, polled every ms
	death  map[int]int64
}

// left returns how many processes were not seen to exit.
func (w *pidWatcher) left() int { return len(w.fds) + len(w.polled) }

func newPidWatcher(pids []int) (*pidWatcher, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	w := &pidWatcher{ep: ep, fds: map[int]int{}, death: map[int]int64{}}
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			w.polled = append(w.polled, pid) // out of descriptors: polled
			continue
		}
		if err != nil {
			w.death[pid] = mono() // already gone
			continue
		}
		w.fds[fd] = pid
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			w.close()
			return nil, fmt.Errorf("epoll add: %w", err)
		}
	}
	return w, nil
}

// wait records deaths until all are dead or the timeout passes.
func (w *pidWatcher) wait(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	w.waitFDs(deadline)
	for len(w.polled) > 0 && time.Now().Before(deadline) {
		t := mono()
		alive := w.polled[:0]
		for _, pid := range w.polled {
			if gone(pid) {
				w.death[pid] = t
			} else {
				alive = append(alive, pid)
			}
		}
		w.polled = alive
		if len(alive) > 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

func (w *pidWatcher) waitFDs(deadline time.Time) {
	evs := make([]unix.EpollEvent, 64)
	for len(w.fds) > 0 {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return
		}
		n, err := unix.EpollWait(w.ep, evs, ms)
		t := mono()
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			if pid, ok := w.fds[fd]; ok {
				w.death[pid] = t
				delete(w.fds, fd)
				_ = unix.EpollCtl(w.ep, unix.EPOLL_CTL_DEL, fd, nil)
				unix.Close(fd)
			}
		}
	}
}

func (w *pidWatcher) close() {
	for fd := range w.fds {
		unix.Close(fd)
	}
	w.fds = nil
	unix.Close(w.ep)
}
