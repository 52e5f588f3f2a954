package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuClockPeriodNS is the CPU time each cpu-clock sample of a profile
// stands for.
const cpuClockPeriodNS = 250_000

// perfSample is one sample of perf script's default output.
type perfSample struct {
	tid    int
	event  string // "cpu-clock", "sched:sched_switch", "syscalls:sys_exit_read"
	trace  string // the tracepoint's fields
	frames []perfFrame
}

type perfFrame struct {
	sym    string
	kernel bool
}

// parsePerfScript parses the default output of perf script: a header line
// per sample ("comm tid [cpu] time: [period] event: fields"), then one
// indented line per frame ("addr sym+off (dso)"), then a blank line.
func parsePerfScript(out []byte) []perfSample {
	var ss []perfSample
	var cur *perfSample
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.TrimSpace(l) == "" {
			cur = nil
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if cur == nil {
				continue
			}
			fs := strings.Fields(l)
			if len(fs) < 2 {
				continue
			}
			sym := fs[1]
			if i := strings.LastIndex(sym, "+0x"); i > 0 {
				sym = sym[:i]
			}
			dso := fs[len(fs)-1]
			cur.frames = append(cur.frames, perfFrame{sym: sym, kernel: strings.Contains(dso, "kernel") || strings.HasPrefix(fs[0], "ffffffff")})
			continue
		}
		// Header: find the event, the field that ends with ':' after the time.
		fs := strings.Fields(l)
		s := perfSample{}
		for i, f := range fs {
			if s.tid == 0 {
				if v, err := strconv.Atoi(f); err == nil && i > 0 {
					s.tid = v
					continue
				}
			}
			if i > 0 && strings.HasSuffix(f, ":") && (strings.Contains(f, "clock") || strings.Contains(f, "sched") || strings.Contains(f, "sys_")) {
				s.event = strings.TrimSuffix(f, ":")
				if j := strings.IndexByte(s.event, '/'); j > 0 {
					s.event = s.event[:j]
				}
				s.trace = strings.Join(fs[i+1:], " ")
				break
			}
		}
		ss = append(ss, s)
		cur = &ss[len(ss)-1]
	}
	return ss
}

// userChain returns the first n frames outside the kernel, innermost first.
func userChain(fr []perfFrame, n int) []string {
	var out []string
	for _, f := range fr {
		if f.kernel {
			continue
		}
		out = append(out, f.sym)
		if len(out) == n {
			break
		}
	}
	return out
}

// traceField returns the value of name=value in a tracepoint's fields.
func traceField(trace, name string) string {
	for _, f := range strings.Fields(trace) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

// perfAvailable reports whether perf can record a process here.
func perfAvailable() bool {
	_, err := exec.LookPath("perf")
	return err == nil
}

// perfProfile records pid with perf for d: cpu-clock samples every 250 µs
// of CPU, every switch away from one of its threads, and every return of
// read(2), all with frame-pointer call chains. It returns a Markdown
// summary with costs divided by units (e.g. beats).
func perfProfile(pid int, d time.Duration, dir string, units float64, unit string) (string, error) {
	data := filepath.Join(dir, "perf.data")
	rec := exec.Command("perf", "record", "-q", "-o", data, "-p", strconv.Itoa(pid), "--call-graph", "fp",
		"-e", fmt.Sprintf("cpu-clock/period=%d/", cpuClockPeriodNS), "-e", "sched:sched_switch", "-e", "syscalls:sys_exit_read",
		"--", "sleep", fmt.Sprintf("%.3f", d.Seconds()))
	rec.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out, err := rec.CombinedOutput(); err != nil {
		return "", fmt.Errorf("perf record: %w: %s", err, bytes.TrimSpace(out))
	}
	out, err := exec.Command("perf", "script", "-i", data).Output()
	if err != nil {
		return "", fmt.Errorf("perf script: %w", err)
	}
	_ = os.Remove(data)
	return summarizeProfile(parsePerfScript(out), units, unit), nil
}

// summarizeProfile turns perf samples into three tables: where the CPU
// time goes (by the innermost function, and by the first function outside
// the runtime), why threads sleep (the call chain at each voluntary
// switch), and what the read(2) calls returned.
func summarizeProfile(ss []perfSample, units float64, unit string) string {
	var b strings.Builder
	per := func(n int, scale float64) string {
		if units <= 0 {
			return "-"
		}
		return fmtNum(float64(n) * scale / units)
	}
	type kv struct {
		k string
		n int
	}
	top := func(m map[string]int, n int) []kv {
		var v []kv
		for k, c := range m {
			v = append(v, kv{k, c})
		}
		sort.Slice(v, func(i, j int) bool { return v[i].n > v[j].n || (v[i].n == v[j].n && v[i].k < v[j].k) })
		if len(v) > n {
			v = v[:n]
		}
		return v
	}
	self, entry := map[string]int{}, map[string]int{}
	sleeps, preempt := map[string]int{}, 0
	reads, readBytes, eagain := 0, int64(0), 0
	cpu, voluntary := 0, 0
	for _, s := range ss {
		switch s.event {
		case "cpu-clock":
			cpu++
			if len(s.frames) > 0 {
				self[s.frames[0].sym]++
			}
			// The outermost non-runtime function, or the runtime's own when
			// the sample is inside the scheduler.
			ch := userChain(s.frames, 64)
			e := "(kernel only)"
			for _, f := range ch {
				e = f
				if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "internal/runtime") && !strings.HasPrefix(f, "syscall.") &&
					!strings.HasPrefix(f, "internal/poll") && !strings.HasPrefix(f, "os.") {
					break
				}
			}
			entry[e]++
		case "sched:sched_switch":
			if traceField(s.trace, "prev_state") == "R" || traceField(s.trace, "prev_state") == "R+" {
				preempt++
				continue
			}
			voluntary++
			sleeps[strings.Join(userChain(s.frames, 4), " ← ")]++
		case "syscalls:sys_exit_read":
			reads++
			if i := strings.LastIndex(s.trace, "0x"); i >= 0 {
				u, err := strconv.ParseUint(strings.TrimSpace(s.trace[i+2:]), 16, 64)
				if v := int64(u); err == nil {
					if v < 0 {
						eagain++
					} else {
						readBytes += v
					}
				}
			}
		}
	}
	fmt.Fprintf(&b, "perf: %d cpu-clock samples (%d µs of CPU each) = %s ms; %d voluntary and %d involuntary switches; %d read(2) returns; %s %ss.\n\n",
		cpu, cpuClockPeriodNS/1000, fmtNum(float64(cpu)*cpuClockPeriodNS/1e6), voluntary, preempt, reads, fmtNum(units), unit)
	fmt.Fprintf(&b, "| CPU by innermost function | samples | µs per %s |\n|---|---|---|\n", unit)
	for _, e := range top(self, 15) {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", e.k, e.n, per(e.n, cpuClockPeriodNS/1e3))
	}
	fmt.Fprintf(&b, "\n| CPU by outermost caller outside the runtime | samples | µs per %s |\n|---|---|---|\n", unit)
	for _, e := range top(entry, 12) {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", e.k, e.n, per(e.n, cpuClockPeriodNS/1e3))
	}
	fmt.Fprintf(&b, "\n| voluntary switch: call chain (innermost first) | switches | per %s |\n|---|---|---|\n", unit)
	for _, e := range top(sleeps, 12) {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", e.k, e.n, per(e.n, 1))
	}
	if reads > 0 {
		fmt.Fprintf(&b, "\nread(2): %d calls, %d returned EAGAIN or an error, %s bytes per successful read on average.\n",
			reads, eagain, fmtNum(float64(readBytes)/float64(max(1, reads-eagain))))
	}
	return b.String()
}
