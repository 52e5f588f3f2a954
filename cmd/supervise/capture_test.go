package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// This file is a measuring harness of program output, run only on demand:
//
//	SUPERVISE_CAPTURE_BENCH=1 go test ./cmd/supervise -run Capture -v -timeout 30m
//
// TestCaptureThroughput: one program writes 2,000,000 lines of 100 bytes
// (200 MB) through a 64 KiB buffer, as tests/bench's log figure does,
// captured by supervise's console (stdout = "log", stderr to a file), by
// supervise into a rotated file (log_max_size = "50MB"), and by
// supervisord into a rotated file (stdout_logfile_maxbytes=50MB), in the
// same run, SUPERVISE_CAPTURE_RUNS times (3). MB/s = 200 MB / (the
// writer's first write -> the output stopped growing for 300 ms); CPU per
// MB = the supervisor's own CPU time over that span (/proc/PID/stat, every
// thread, 10 ms ticks; not its children's, so not the writer's) / 200.
// supervise also runs a sleeping program, so that it stays.
//
// TestCaptureFollowLatency: a program writes a line with its
// CLOCK_MONOTONIC time every millisecond for 3 s; `supervise logs -f`
// prints them; latency = the time the harness reads the line from the
// follower's stdout - the time in it.
//
// TestCaptureMemory: the supervisor's PSS with 1000 programs that each
// wrote 10,000 lines (kept: the last 1000 of each), and with 1000 silent
// programs, against SUPERVISE_BASE_BIN (a binary of the previous version)
// when set.

// Helper modes of the test binary, run as the measured programs.
const (
	helperEnv = "CAPTURE_HELPER"
	stampsEnv = "CAPTURE_STAMPS"
	countEnv  = "CAPTURE_COUNT"
)

func init() {
	switch os.Getenv(helperEnv) {
	case "lines":
		n, _ := strconv.Atoi(os.Getenv(countEnv))
		stampTo(os.Getenv(stampsEnv), "start")
		time.Sleep(700 * time.Millisecond)
		stampTo(os.Getenv(stampsEnv), "wstart")
		w := bufio.NewWriterSize(os.Stdout, 64<<10)
		line := []byte(strings.Repeat("x", 89) + "0000000000\n")
		for i := 0; i < n; i++ {
			v := i
			for j := 98; j >= 89; j-- {
				line[j] = byte('0' + v%10)
				v /= 10
			}
			w.Write(line)
		}
		w.Flush()
		stampTo(os.Getenv(stampsEnv), "exit")
		os.Exit(0)
	case "ticker":
		n, _ := strconv.Atoi(os.Getenv(countEnv))
		time.Sleep(time.Second)
		for i := 0; i < n; i++ {
			fmt.Fprintf(os.Stdout, "%d %d\n", mono(), i)
			time.Sleep(time.Millisecond)
		}
		select {}
	}
}

func mono() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func stampTo(file, kind string) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s %d\n", kind, mono())
	f.Close()
}

// stampAt returns the time of a stamp of kind, 0 while there is none.
func stampAt(file, kind string) int64 {
	b, _ := os.ReadFile(file)
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == kind {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func benchOn(t *testing.T) {
	if os.Getenv("SUPERVISE_CAPTURE_BENCH") == "" {
		t.Skip("a measuring harness: set SUPERVISE_CAPTURE_BENCH=1")
	}
}

// buildSupervise builds the binary (without the race detector).
func buildSupervise(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "supervise")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// runNS is the CPU time (user and system) of pid's every thread, the
// exited ones included, from /proc/PID/stat (in clock ticks of 10 ms).
func runNS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return (u + k) * 10e6
}

// pssKB is the proportional set size of pid.
func pssKB(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// totalSize sums the sizes of the files matching glob.
func totalSize(glob string) int64 {
	m, _ := filepath.Glob(glob)
	var n int64
	for _, f := range m {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// started is a running supervisor of a scenario.
type started struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it is waited for
}

func (s started) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := s.exitedWithin(20 * time.Second); !ok {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// exitedWithin waits up to d for the process to end by itself.
func (s started) exitedWithin(d time.Duration) (*os.ProcessState, bool) {
	select {
	case <-s.done:
		return s.cmd.ProcessState, true
	case <-time.After(d):
		return nil, false
	}
}

func startCmd(t *testing.T, dir string, stderr string, name string, args ...string) started {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if stderr != "" {
		f, err := os.Create(stderr)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := started{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	return s
}

type capture struct {
	name      string
	mbs, cpu  float64
	outputMiB float64
}

func TestCaptureThroughput(t *testing.T) {
	benchOn(t)
	bin := buildSupervise(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sd, _ := exec.LookPath("supervisord")
	const lines = 2_000_000
	const mb = lines * 100 / 1e6
	runs, _ := strconv.Atoi(os.Getenv("SUPERVISE_CAPTURE_RUNS"))
	if runs <= 0 {
		runs = 3
	}
	const keep = "[programs.k]\ncommand = [\"/bin/sleep\", \"100000\"]\nstdout = \"null\"\n"
	env := func(dir string) []string {
		return []string{helperEnv + "=lines", stampsEnv + "=" + filepath.Join(dir, "stamps"), countEnv + "=" + strconv.Itoa(lines)}
	}
	scenarios := []struct {
		name  string
		start func(dir string) (started, string) // the supervisor, the glob of its output
	}{
		{"supervise console (stdout = log)", func(dir string) (started, string) {
			cfg := fmt.Sprintf("[supervisor]\nsocket = \"off\"\nwatch_config = false\n[programs.log]\ncommand = %q\nrestart = \"never\"\nenvironment = {%s}\n%s",
				self, tomlEnv(env(dir)), keep)
			os.WriteFile(filepath.Join(dir, "s.toml"), []byte(cfg), 0o644)
			return startCmd(t, dir, filepath.Join(dir, "console.out"), bin, "run", "-c", filepath.Join(dir, "s.toml")), filepath.Join(dir, "console.out")
		}},
		{"supervise file, log_max_size 50MB", func(dir string) (started, string) {
			cfg := fmt.Sprintf("[supervisor]\nsocket = \"off\"\nwatch_config = false\n[programs.log]\ncommand = %q\nrestart = \"never\"\nenvironment = {%s}\nstdout = %q\nlog_max_size = \"50MB\"\nlog_max_files = 5\n%s",
				self, tomlEnv(env(dir)), filepath.Join(dir, "out.log"), keep)
			os.WriteFile(filepath.Join(dir, "s.toml"), []byte(cfg), 0o644)
			return startCmd(t, dir, filepath.Join(dir, "supervise.err"), bin, "run", "-c", filepath.Join(dir, "s.toml")), filepath.Join(dir, "out.log*")
		}},
	}
	if sd != "" {
		scenarios = append(scenarios, struct {
			name  string
			start func(dir string) (started, string)
		}{"supervisord file, stdout_logfile_maxbytes 50MB", func(dir string) (started, string) {
			var e []string
			for _, kv := range env(dir) {
				k, v, _ := strings.Cut(kv, "=")
				e = append(e, fmt.Sprintf("%s=%q", k, v))
			}
			cfg := fmt.Sprintf("[supervisord]\nnodaemon=true\nlogfile=%s\npidfile=%s\nminfds=1024\n\n[program:log]\ncommand=%s\nenvironment=%s\nautorestart=false\nstartsecs=0\nstdout_logfile=%s\nstdout_logfile_maxbytes=50MB\nstdout_logfile_backups=5\nstderr_logfile=NONE\n",
				filepath.Join(dir, "sd.main.log"), filepath.Join(dir, "sd.pid"), self, strings.Join(e, ","), filepath.Join(dir, "sd.log"))
			os.WriteFile(filepath.Join(dir, "sd.conf"), []byte(cfg), 0o644)
			return startCmd(t, dir, filepath.Join(dir, "sd.err"), sd, "-c", filepath.Join(dir, "sd.conf")), filepath.Join(dir, "sd.log*")
		}})
	} else {
		t.Log("supervisord not installed: its figure is left out")
	}
	results := map[string][]capture{}
	for run := 0; run < runs; run++ {
		for _, sc := range scenarios {
			dir := t.TempDir()
			s, glob := sc.start(dir)
			stamps := filepath.Join(dir, "stamps")
			waitUntil(t, 20*time.Second, func() bool { return stampAt(stamps, "start") != 0 })
			time.Sleep(300 * time.Millisecond) // before the writer's first write (it waits 700 ms)
			base := runNS(s.cmd.Process.Pid)
			waitUntil(t, 2*time.Minute, func() bool { return stampAt(stamps, "exit") != 0 })
			size, changed := int64(-1), mono()
			for mono()-changed < int64(300*time.Millisecond) {
				if n := totalSize(glob); n != size {
					size, changed = n, mono()
				}
				time.Sleep(5 * time.Millisecond)
			}
			cpu := runNS(s.cmd.Process.Pid) - base
			s.stop()
			secs := float64(changed-stampAt(stamps, "wstart")) / 1e9
			c := capture{name: sc.name, mbs: mb / secs, cpu: float64(cpu) / 1e6 / mb, outputMiB: float64(size) / (1 << 20)}
			results[sc.name] = append(results[sc.name], c)
			t.Logf("run %d %-48s %7.0f MB/s %6.3f ms CPU/MB, output %.0f MiB", run+1, sc.name, c.mbs, c.cpu, c.outputMiB)
		}
	}
	t.Log("medians (min-max):")
	for _, sc := range scenarios {
		rs := results[sc.name]
		mbs := make([]float64, len(rs))
		cpu := make([]float64, len(rs))
		for i, r := range rs {
			mbs[i], cpu[i] = r.mbs, r.cpu
		}
		t.Logf("%-48s %7.0f MB/s (%0.f-%0.f)  %6.3f ms CPU/MB (%.3f-%.3f)", sc.name,
			median(mbs), slices.Min(mbs), slices.Max(mbs), median(cpu), slices.Min(cpu), slices.Max(cpu))
	}
}

func tomlEnv(env []string) string {
	var parts []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		parts = append(parts, fmt.Sprintf("%s = %q", k, v))
	}
	return strings.Join(parts, ", ")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCaptureFollowLatency(t *testing.T) {
	benchOn(t)
	bin := buildSupervise(t)
	self, _ := os.Executable()
	dir := t.TempDir()
	sockDir, _ := os.MkdirTemp("", "cap")
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "s.sock")
	const n = 3000
	cfg := fmt.Sprintf("[supervisor]\nsocket = %q\nwatch_config = false\n[programs.tick]\ncommand = %q\nenvironment = {%s = \"ticker\", %s = \"%d\"}\n[programs.other]\ncommand = \"exec sleep 1000\"\n",
		sock, self, helperEnv, countEnv, n)
	os.WriteFile(filepath.Join(dir, "s.toml"), []byte(cfg), 0o644)
	s := startCmd(t, dir, filepath.Join(dir, "console.out"), bin, "run", "-c", filepath.Join(dir, "s.toml"))
	defer s.stop()
	waitUntil(t, 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	f := exec.Command(bin, "logs", "-f", "-n", "0", "--json", "-s", sock, "tick")
	out, err := f.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { f.Process.Kill(); f.Wait() }()
	sc := bufio.NewScanner(out)
	var lat []float64
	for len(lat) < n && sc.Scan() {
		at := mono()
		var l struct{ Line string }
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		ns, err := strconv.ParseInt(strings.Fields(l.Line)[0], 10, 64)
		if err != nil {
			continue
		}
		lat = append(lat, float64(at-ns)/1e6)
	}
	slices.Sort(lat)
	if len(lat) < n {
		t.Fatalf("followed %d of %d lines", len(lat), n)
	}
	t.Logf("logs -f latency over %d lines at 1 kHz: p50 %.3f ms, p99 %.3f ms, max %.3f ms",
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

func TestCaptureMemory(t *testing.T) {
	benchOn(t)
	bins := []string{buildSupervise(t)}
	if b := os.Getenv("SUPERVISE_BASE_BIN"); b != "" {
		bins = append(bins, b)
	}
	line := strings.Repeat("x", 99)
	for _, bin := range bins {
		for _, mode := range []struct {
			name, command string
		}{
			{"1000 programs, each wrote 10,000 lines", fmt.Sprintf("yes %s | head -n 10000; exec sleep 100000", line)},
			{"1000 silent programs", "exec sleep 100000"},
		} {
			dir := t.TempDir()
			var b strings.Builder
			fmt.Fprintf(&b, "[supervisor]\nsocket = \"off\"\nwatch_config = false\n")
			for i := 0; i < 1000; i++ {
				fmt.Fprintf(&b, "[programs.p%04d]\ncommand = %q\n", i, mode.command)
			}
			os.WriteFile(filepath.Join(dir, "s.toml"), []byte(b.String()), 0o644)
			s := startCmd(t, dir, os.DevNull, bin, "run", "-c", filepath.Join(dir, "s.toml"))
			// Settled: every program is a sleep, and the CPU is quiet.
			waitUntil(t, 5*time.Minute, func() bool {
				var pids []string
				files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", s.cmd.Process.Pid))
				for _, f := range files {
					kids, _ := os.ReadFile(f)
					pids = append(pids, strings.Fields(string(kids))...)
				}
				if len(pids) < 1000 {
					return false
				}
				for _, p := range pids {
					if c, _ := os.ReadFile("/proc/" + p + "/comm"); strings.TrimSpace(string(c)) != "sleep" {
						return false
					}
				}
				return true
			})
			for prev := int64(-1); ; {
				time.Sleep(time.Second)
				if cur := runNS(s.cmd.Process.Pid); cur-prev < 20e6 {
					break
				} else {
					prev = cur
				}
			}
			time.Sleep(2 * time.Second)
			t.Logf("%s: %s: PSS %.1f MiB", bin, mode.name, float64(pssKB(s.cmd.Process.Pid))/1024)
			s.stop()
		}
	}
}
