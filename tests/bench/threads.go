package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// threadCount is one thread's counters from /proc/PID/task/TID.
type threadCount struct {
	runNS   int64 // schedstat field 1: time on a CPU
	delayNS int64 // schedstat field 2: time runnable, waiting for a CPU
	slices  int64 // schedstat field 3: timeslices run
	vcs     int64 // voluntary_ctxt_switches
	ivcs    int64 // nonvoluntary_ctxt_switches
}

func (c threadCount) sub(d threadCount) threadCount {
	return threadCount{runNS: c.runNS - d.runNS, delayNS: c.delayNS - d.delayNS, slices: c.slices - d.slices,
		vcs: c.vcs - d.vcs, ivcs: c.ivcs - d.ivcs}
}

// threadCounts reads the counters of every thread of pid.
func threadCounts(pid int) map[int]threadCount {
	base := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	out := make(map[int]threadCount, len(tasks))
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		var c threadCount
		if b, err := os.ReadFile(base + t.Name() + "/schedstat"); err == nil {
			fs := strings.Fields(string(b))
			if len(fs) >= 3 {
				c.runNS, _ = strconv.ParseInt(fs[0], 10, 64)
				c.delayNS, _ = strconv.ParseInt(fs[1], 10, 64)
				c.slices, _ = strconv.ParseInt(fs[2], 10, 64)
			}
		}
		c.vcs = statusField(base+t.Name()+"/status", "voluntary_ctxt_switches:")
		c.ivcs = statusField(base+t.Name()+"/status", "nonvoluntary_ctxt_switches:")
		out[tid] = c
	}
	return out
}

// waitSampler samples, for every thread of a process, the kernel function
// it sleeps in (/proc/PID/task/TID/wchan) and the system call it is in
// (/proc/PID/task/TID/syscall), so the threads of a Go process can be told
// apart: the netpoller waits in epoll, idle Ms and a deeply sleeping sysmon
// on a futex, a light-sleeping sysmon in nanosleep.
type waitSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	seen map[int]map[string]int // tid -> "syscall/wchan" -> samples
}

// syscallNames names the x86-64 system calls a Go runtime thread sleeps in.
var syscallNames = map[string]string{
	"0": "read", "7": "poll", "23": "select", "35": "nanosleep", "61": "wait4", "202": "futex",
	"232": "epoll_wait", "247": "waitid", "270": "pselect6", "271": "ppoll", "281": "epoll_pwait",
	"230": "clock_nanosleep", "441": "epoll_pwait2",
}

func startWaitSampler(pid int, every time.Duration) *waitSampler {
	s := &waitSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{}), seen: map[int]map[string]int{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *waitSampler) sample() {
	base := "/proc/" + strconv.Itoa(s.pid) + "/task/"
	tasks, err := os.ReadDir(base)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		what := "running"
		if b, err := os.ReadFile(base + t.Name() + "/syscall"); err == nil {
			f := strings.Fields(string(b))
			if len(f) > 0 && f[0] != "running" {
				what = f[0]
				if n, ok := syscallNames[f[0]]; ok {
					what = n
				}
			}
		}
		if b, err := os.ReadFile(base + t.Name() + "/wchan"); err == nil && len(b) > 0 && string(b) != "0" {
			what += "/" + strings.TrimSpace(string(b))
		}
		if s.seen[tid] == nil {
			s.seen[tid] = map[string]int{}
		}
		s.seen[tid][what]++
	}
}

// finish stops sampling and returns, for each thread, its most frequent
// wait with the share of samples it had.
func (s *waitSampler) finish() map[int]string {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]string{}
	for tid, m := range s.seen {
		best, n, total := "", 0, 0
		for w, c := range m {
			total += c
			if c > n || (c == n && w < best) {
				best, n = w, c
			}
		}
		out[tid] = fmt.Sprintf("%s (%d%%)", best, 100*n/total)
	}
	return out
}

// threadTable renders the per-thread difference of counters over a window
// as a Markdown table, with the cost per unit (e.g. per beat) of each row.
func threadTable(pid int, before, after map[int]threadCount, waits map[int]string, units float64, unit string) string {
	var tids []int
	for tid := range after {
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	var b strings.Builder
	fmt.Fprintf(&b, "| thread | sleeps in (share of samples) | run ms | vcs | ivcs | timeslices | runqueue wait ms | µs CPU per %s | vcs per %s |\n|---|---|---|---|---|---|---|---|---|\n", unit, unit)
	var tot threadCount
	for _, tid := range tids {
		d := after[tid].sub(before[tid])
		tot.runNS += d.runNS
		tot.delayNS += d.delayNS
		tot.slices += d.slices
		tot.vcs += d.vcs
		tot.ivcs += d.ivcs
		if d.slices == 0 && d.vcs == 0 && d.ivcs == 0 {
			continue
		}
		label := fmt.Sprintf("+%d", tid-pid)
		if tid == pid {
			label = "main (TID = PID)"
		}
		if _, ok := before[tid]; !ok {
			label += ", new"
		}
		b.WriteString(threadRow(label, waits[tid], d, units))
	}
	b.WriteString(threadRow(fmt.Sprintf("all %d threads", len(tids)), "", tot, units))
	return b.String()
}

func threadRow(label, wait string, d threadCount, units float64) string {
	per := func(v float64) string {
		if units <= 0 {
			return "-"
		}
		return fmtNum(v / units)
	}
	return fmt.Sprintf("| %s | %s | %s | %d | %d | %d | %s | %s | %s |\n", label, wait, fmtNum(float64(d.runNS)/1e6),
		d.vcs, d.ivcs, d.slices, fmtNum(float64(d.delayNS)/1e6), per(float64(d.runNS)/1e3), per(float64(d.vcs)))
}
