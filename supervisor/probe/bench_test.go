package probe

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/procs"
)

// The benchmarks of one probe attempt. Each reports, besides the wall
// time, the CPU this process spent per attempt (cpu-ns/op: user + system
// time from getrusage) and its context switches per attempt (ctxsw/op);
// the exec benchmarks also report the CPU of the probe processes
// (child-cpu-ns/op). The HTTP and TCP servers run in a child process, so
// that their CPU is not counted. Run with
//
//	go test ./supervisor/probe -run '^$' -bench . -benchtime 2000x

type usage struct {
	user, sys, childCPU time.Duration
	ctxsw               int64
}

func rusage(b *testing.B) usage {
	var self, kids unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	if err := unix.Getrusage(unix.RUSAGE_CHILDREN, &kids); err != nil {
		b.Fatal(err)
	}
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return usage{
		user:     tv(self.Utime),
		sys:      tv(self.Stime),
		childCPU: tv(kids.Utime) + tv(kids.Stime),
		ctxsw:    self.Nvcsw + self.Nivcsw,
	}
}

// measure runs attempts b.N times and reports the usage per attempt.
func measure(b *testing.B, children bool, attempt func()) {
	b.Helper()
	attempt() // warm up: first connection, page faults
	b.ResetTimer()
	before := rusage(b)
	for range b.N {
		attempt()
	}
	after := rusage(b)
	b.StopTimer()
	n := float64(b.N)
	user, sys := after.user-before.user, after.sys-before.sys
	b.ReportMetric(float64((user+sys).Nanoseconds())/n, "cpu-ns/op")
	b.ReportMetric(float64(sys.Nanoseconds())/n, "sys-ns/op")
	b.ReportMetric(float64(after.ctxsw-before.ctxsw)/n, "ctxsw/op")
	if children {
		b.ReportMetric(float64((after.childCPU-before.childCPU).Nanoseconds())/n, "child-cpu-ns/op")
	}
}

// runAttempt makes one attempt as a Runner does (a cancellable context, a
// timeout timer) and fails the benchmark if it does not pass.
func runAttempt(b *testing.B, r *Runner) {
	ctx, cancel := context.WithCancelCause(context.Background())
	deadline := r.clk.AfterFunc(r.set.Timeout, func() { cancel(&TimeoutError{After: r.set.Timeout}) })
	err := r.check.Check(ctx)
	deadline.Stop()
	cancel(nil)
	if err != nil {
		b.Fatal(err)
	}
}

// serverAddr starts the helper HTTP server in a child process (through
// the reaper) and returns its address.
func serverAddr(b *testing.B) string {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	addr := make(chan string, 1)
	proc, err := reaper.Spawn(procs.Spec{
		Argv: []string{self},
		Env:  []string{modeEnv + "=server", "GOMAXPROCS=1"},
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

var benchSettings = Settings{Interval: time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 3}

// BenchmarkHTTPAttempt: one GET of a local server, on a new connection.
func BenchmarkHTTPAttempt(b *testing.B) {
	addr := serverAddr(b)
	h, err := NewHTTP("http://"+addr+"/healthz", false)
	if err != nil {
		b.Fatal(err)
	}
	r := NewRunner(h, benchSettings, nil, nil)
	measure(b, false, func() { runAttempt(b, r) })
}

// BenchmarkTCPAttempt: one connect and close to a local server.
func BenchmarkTCPAttempt(b *testing.B) {
	addr := serverAddr(b)
	r := NewRunner(&TCP{Addr: addr}, benchSettings, nil, nil)
	measure(b, false, func() { runAttempt(b, r) })
}

// BenchmarkTCPFloor: the floor for the network probes, the system calls
// alone: a blocking socket, connect, close (with linger 0), without Go's
// network poller.
func BenchmarkTCPFloor(b *testing.B) {
	sa := sockaddr(b, serverAddr(b))
	measure(b, false, func() { closeFD(b, connectFD(b, sa)) })
}

// BenchmarkHTTPFloor: the floor of an HTTP attempt in system calls: a
// blocking socket, connect, one write of the request, reads until the
// end of the response headers, close.
func BenchmarkHTTPFloor(b *testing.B) {
	addr := serverAddr(b)
	sa := sockaddr(b, addr)
	req := []byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")
	buf := make([]byte, 2048)
	measure(b, false, func() {
		fd := connectFD(b, sa)
		if _, err := unix.Write(fd, req); err != nil {
			b.Fatal(err)
		}
		var got []byte
		for !bytes.Contains(got, []byte("\r\n\r\n")) {
			n, err := unix.Read(fd, buf)
			if err != nil || n == 0 {
				b.Fatalf("read: %v (%d)", err, n)
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
			b.Fatalf("response %q", got)
		}
		closeFD(b, fd)
	})
}

func sockaddr(b *testing.B, addr string) *unix.SockaddrInet4 {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
}

func connectFD(b *testing.B, sa *unix.SockaddrInet4) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		b.Fatal(err)
	}
	return fd
}

func closeFD(b *testing.B, fd int) {
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		b.Fatal(err)
	}
	unix.Close(fd)
}

// BenchmarkExecAttempt: one exec probe of /bin/true through the reaper,
// its output read through pipes.
func BenchmarkExecAttempt(b *testing.B) {
	e := &Exec{Spawner: reaper, Spec: procs.Spec{Argv: []string{"/bin/true"}, Env: []string{testPath}}}
	r := NewRunner(e, benchSettings, nil, nil)
	measure(b, true, func() { runAttempt(b, r) })
}

// BenchmarkStartProcessFloor: the floor for BenchmarkExecAttempt, a bare
// os.StartProcess of /bin/true (stdio on /dev/null) until the reaper has
// reaped it.
func BenchmarkStartProcessFloor(b *testing.B) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	attr := &os.ProcAttr{Env: []string{testPath}, Files: []*os.File{devnull, devnull, devnull},
		Sys: &syscall.SysProcAttr{Setpgid: true}}
	measure(b, true, func() {
		p, err := os.StartProcess("/bin/true", []string{"/bin/true"}, attr)
		if err != nil {
			b.Fatal(err)
		}
		pid := p.Pid
		p.Release()
		for orphan := range orphans {
			if orphan == pid {
				break
			}
		}
	})
}
