package supervisor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
)

// The probe benchmarks of a whole supervisor: a fleet of programs probed
// every second, against the same fleet without probes in the same run.
// One op is one second of the fleet; the CPU of this process (user +
// system, getrusage) per probe attempt is reported net of the fleet's
// idle CPU without probes. The HTTP server the probes reach runs in a
// child process, so its CPU is not counted. Run with, for instance,
//
//	go test ./supervisor -run '^$' -bench ProbeFleet -benchtime 10x
//
// SUPERVISE_PROBE_BENCH_N sets the size of the network fleet (1000) and
// SUPERVISE_EXEC_BENCH_N that of the exec fleet (200).

// helperServerEnv makes the test binary serve HTTP on a loopback port
// (printed on stdout) instead of running tests.
const helperServerEnv = "SUPERVISOR_TEST_HTTP_SERVER"

func helperServer() int {
	if os.Getenv(instanceServerAddrEnv) != "" {
		return instanceServer()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	return 0
}

// startHelperServer runs helperServer in a child process.
func startHelperServer(b *testing.B) string {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	addr := make(chan string, 1)
	proc, err := reaper.Spawn(procs.Spec{
		Argv: []string{self}, Env: []string{helperServerEnv + "=1"},
		Stdout: procs.Output{Kind: procs.Lines, OnLine: func(l []byte, _ bool) {
			select {
			case addr <- string(l):
			default:
			}
		}},
		Stderr: procs.Output{Kind: procs.Inherit},
	}, func(procs.Exit) {})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proc.SignalGroup(syscall.SIGKILL); <-proc.Done() })
	select {
	case a := <-addr:
		return a
	case <-time.After(30 * time.Second):
		b.Fatal("the helper server did not start")
		return ""
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type cpuUsage struct {
	cpu, child time.Duration
	ctxsw      int64
}

func cpuNow(b *testing.B) cpuUsage {
	var self, kids unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return cpuUsage{cpu: tv(self.Utime) + tv(self.Stime), child: tv(kids.Utime) + tv(kids.Stime), ctxsw: self.Nvcsw + self.Nivcsw}
}

// fleet runs a supervisor on toml until every program is running, and
// returns a function counting the probe attempts so far, and its stop.
func fleet(b *testing.B, toml string, n int) (attempts func() uint64, stop func()) {
	b.Helper()
	sup, err := New(Options{Config: benchConfig(b, toml), Reaper: reaper, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		if _, err := sup.Run(ctx); err != nil {
			b.Error(err)
		}
	}()
	<-sup.Ready()
	status := func() []control.ProgramStatus {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return sup.Handle(c, control.Request{Command: control.CmdStatus}).Programs
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		running := 0
		for _, p := range status() {
			if p.State == "running" {
				running++
			}
		}
		if running == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d programs running", running, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	failed := false
	attempts = func() uint64 {
		var total uint64
		for _, p := range status() {
			if p.Probes == nil {
				continue
			}
			for _, pr := range []*control.ProbeStatus{p.Probes.Readiness, p.Probes.Liveness} {
				if pr != nil {
					total += pr.Attempts
					if pr.Failures > 0 && !failed {
						failed = true // an overloaded machine; the figures still count
						b.Logf("%s: a probe failed: %s", p.Name, pr.LastError)
					}
				}
			}
		}
		return total
	}
	return attempts, func() { cancel(); <-ended }
}

// window measures one op (a second) per b.N of the running fleet.
func window(b *testing.B, attempts func() uint64) (cpuUsage, uint64, time.Duration) {
	time.Sleep(1500 * time.Millisecond) // past the first attempts and the start-up
	a0, u0, t0 := attempts(), cpuNow(b), time.Now()
	time.Sleep(time.Duration(b.N) * time.Second)
	u1, a1 := cpuNow(b), attempts()
	return cpuUsage{cpu: u1.cpu - u0.cpu, child: u1.child - u0.child, ctxsw: u1.ctxsw - u0.ctxsw}, a1 - a0, time.Since(t0)
}

func programs(n int, extra func(i int) string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[programs.p%d]\ncommand = [\"/bin/sleep\", \"100000\"]\nstdout = \"null\"\nstderr = \"null\"\n%s\n", i, extra(i))
	}
	return b.String()
}

// BenchmarkProbeFleet: n programs, each with a TCP readiness probe and an
// HTTP liveness probe every second, against n programs without probes.
func BenchmarkProbeFleet(b *testing.B) {
	n := envInt("SUPERVISE_PROBE_BENCH_N", 1000)
	addr := startHelperServer(b)
	b.StopTimer()

	_, stop := fleet(b, programs(n, func(int) string { return "" }), n)
	idle, _, idleWall := window(b, func() uint64 { return 0 })
	stop()

	attempts, stop := fleet(b, programs(n, func(int) string {
		return fmt.Sprintf("readiness = { tcp = %q, interval = \"1s\" }\nliveness = { http = \"http://%s/healthz\", interval = \"1s\" }", addr, addr)
	}), n)
	used, count, wall := window(b, attempts)
	stop()

	idlePerSec := float64(idle.cpu) / idleWall.Seconds()
	net := float64(used.cpu) - idlePerSec*wall.Seconds()
	b.ReportMetric(idlePerSec/1e6, "idle-cpu-ms/s")
	b.ReportMetric(float64(count)/wall.Seconds(), "attempts/s")
	b.ReportMetric(net/float64(count)/1e3, "cpu-us/attempt")
	b.ReportMetric((float64(used.ctxsw)-float64(idle.ctxsw)*wall.Seconds()/idleWall.Seconds())/float64(count), "ctxsw/attempt")
}

// BenchmarkExecProbeFleet: n programs with an exec liveness probe
// (/bin/true) every second; the floor is n bare os.StartProcess of
// /bin/true each second, reaped by the same reaper, in the same run.
func BenchmarkExecProbeFleet(b *testing.B) {
	n := envInt("SUPERVISE_EXEC_BENCH_N", 200)
	b.StopTimer()
	attempts, stop := fleet(b, programs(n, func(int) string {
		return "liveness = { exec = [\"/bin/true\"], interval = \"1s\" }"
	}), n)
	used, count, wall := window(b, attempts)
	stop()

	// The floor, in the same run: as many bare spawns, one after another.
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	attr := &os.ProcAttr{Env: []string{"PATH=/usr/bin:/bin"}, Files: []*os.File{devnull, devnull, devnull},
		Sys: &syscall.SysProcAttr{Setpgid: true}}
	floorN := int(count)
	u0 := cpuNow(b)
	for i := 0; i < floorN; i++ {
		p, err := os.StartProcess("/bin/true", []string{"/bin/true"}, attr)
		if err != nil {
			b.Fatal(err)
		}
		pid := p.Pid
		p.Release()
		for o := range orphans {
			if o == pid {
				break
			}
		}
	}
	u1 := cpuNow(b)
	b.ReportMetric(float64(count)/wall.Seconds(), "attempts/s")
	b.ReportMetric(float64(used.cpu)/float64(count)/1e3, "cpu-us/attempt")
	b.ReportMetric(float64(used.child)/float64(count)/1e3, "child-cpu-us/attempt")
	b.ReportMetric(float64(used.ctxsw)/float64(count), "ctxsw/attempt")
	b.ReportMetric(float64(u1.cpu-u0.cpu)/float64(floorN)/1e3, "floor-cpu-us/spawn")
	b.ReportMetric(float64(u1.child-u0.child)/float64(floorN)/1e3, "floor-child-cpu-us/spawn")
}
