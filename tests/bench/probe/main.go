// Command probe is the program that the benchmarks of supervise and its
// peers supervise.
//
// It appends CLOCK_MONOTONIC nanosecond stamps to a file, one line per
// event ("start PID NS ID", "exit PID NS ID", "lastbeat PID NS ID",
// "term PID NS ID"), so that a harness in another process can compare them:
// CLOCK_MONOTONIC is one clock for every process of the machine. Then it
// behaves as its flags say: live a while and exit with a code, sleep until
// SIGTERM, write lines to stdout, beat a heartbeat file until a deadline and
// go silent, or create double-forked orphans and count the zombies left.
//
// Flags may also come from the file named by $PROBE_ARGS_FILE, or from
// ./probe.args when the probe runs with no arguments or as "run": runit and
// s6 start a service directory's ./run (s6 with the service name as
// argument), and a symbolic link from run to the probe spares them a shell.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// now returns CLOCK_MONOTONIC in nanoseconds.
func now() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

var (
	startNS  = now()
	stampOut *os.File
	id       string
)

func stamp(kind string, ns int64) {
	if stampOut == nil {
		return
	}
	// One write(2) per line on an O_APPEND file: lines of concurrent probes
	// do not interleave.
	_, _ = stampOut.WriteString(fmt.Sprintf("%s %d %d %s\n", kind, os.Getpid(), ns, id))
}

func exit(code int) {
	stamp("exit", now())
	os.Exit(code)
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "probe: "+format+"\n", a...)
	os.Exit(111)
}

// args returns the command-line arguments, or those of the args file.
func args() []string {
	file := os.Getenv("PROBE_ARGS_FILE")
	if file == "" && (len(os.Args) == 1 || filepath.Base(os.Args[0]) == "run") {
		if _, err := os.Stat("probe.args"); err == nil {
			file = "probe.args"
		}
	}
	if file == "" {
		return os.Args[1:]
	}
	b, err := os.ReadFile(file)
	if err != nil {
		fail("read args: %v", err)
	}
	return strings.Fields(string(b))
}

func main() {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	stamps := fs.String("stamps", os.Getenv("PROBE_STAMPS"), "file to append stamps to")
	fs.StringVar(&id, "id", os.Getenv("PROBE_ID"), "name written in every stamp line")
	live := fs.Duration("live", -1, "live this long, then exit with -code")
	code := fs.Int("code", 0, "exit code after -live or -phase")
	phase := fs.String("phase", "", "PERIOD,OFFSET,MIN: live at least MIN, then exit when CLOCK_MONOTONIC mod PERIOD reaches OFFSET")
	forever := fs.Bool("forever", false, "sleep until SIGTERM or SIGINT, then exit 0")
	execSleep := fs.Bool("exec-sleep", false, "after the start stamp, exec /bin/sleep infinity (a light sleeper)")
	lines := fs.Int("lines", 0, "write this many 100-byte lines to stdout, then exit with -code")
	hb := fs.String("heartbeat", "", "heartbeat file to touch")
	beatEvery := fs.Duration("beat-every", time.Second, "interval between beats")
	silentAt := fs.Int64("silent-at", 0, "CLOCK_MONOTONIC ns after which beats stop (0: never)")
	pidFile := fs.String("pidfile", "", "write the pid to this file")
	orphans := fs.Int("orphans", 0, "create this many double-forked orphans, count zombies, write -result, exit")
	orphanChild := fs.Bool("orphan-child", false, "internal: start one orphan and exit at once")
	orphanLive := fs.Duration("orphan-live", 50*time.Millisecond, "lifetime of each orphan")
	result := fs.String("result", "", "JSON result file of -orphans")
	reapTimeout := fs.Duration("reap-timeout", 20*time.Second, "how long -orphans waits for every orphan to be reaped")
	delay := fs.Duration("delay", 0, "sleep this long before -lines")
	notifyFD := fs.Int("notify-fd", -1, "after the start stamp, write a newline to this fd and close it (s6 readiness)")
	gate := fs.String("gate", "", "after the start stamp, wait until this FIFO has a writer (many programs begin their lives at once)")
	_ = fs.Parse(args())

	if *stamps != "" {
		f, err := os.OpenFile(*stamps, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fail("open stamps: %v", err)
		}
		stampOut = f
	}
	if !*orphanChild {
		stamp("start", startNS)
	}
	if *notifyFD >= 0 {
		f := os.NewFile(uintptr(*notifyFD), "notify")
		_, _ = f.Write([]byte("\n"))
		f.Close()
	}
	if *gate != "" {
		// Opening a FIFO for reading blocks until it has a writer.
		g, err := os.OpenFile(*gate, os.O_RDONLY, 0)
		if err != nil {
			fail("gate: %v", err)
		}
		g.Close()
		startNS = now() // -phase and -live count from the gate
	}
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fail("pidfile: %v", err)
		}
	}

	switch {
	case *orphanChild:
		self, _ := os.Executable()
		c := exec.Command(self, "-stamps", *stamps, "-id", id, "-live", orphanLive.String())
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			fail("orphan: %v", err)
		}
		os.Exit(0)
	case *orphans > 0:
		runOrphans(*orphans, *stamps, *orphanLive, *reapTimeout, *result)
		exit(0)
	case *execSleep:
		stampOut.Close()
		err := syscall.Exec("/bin/sleep", []string{"sleep", "infinity"}, os.Environ())
		fail("exec sleep: %v", err)
	case *lines > 0:
		time.Sleep(*delay)
		stamp("wstart", now())
		writeLines(*lines)
		exit(*code)
	case *hb != "":
		beat(*hb, *beatEvery, *silentAt)
	case *phase != "":
		livePhase(*phase)
		exit(*code)
	case *live >= 0:
		time.Sleep(*live)
		exit(*code)
	case *forever:
		waitTerm()
	default:
		exit(*code)
	}
}

// waitTerm sleeps until SIGTERM or SIGINT, stamps "term" and exits 0.
func waitTerm() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	stamp("term", now())
	exit(0)
}

// livePhase sleeps until CLOCK_MONOTONIC mod PERIOD == OFFSET, at least MIN
// after the start, so several probes restarted in a loop keep their exits
// apart.
func livePhase(spec string) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fail("-phase wants PERIOD,OFFSET,MIN")
	}
	var d [3]time.Duration
	for i, p := range parts {
		v, err := time.ParseDuration(p)
		if err != nil {
			fail("-phase: %v", err)
		}
		d[i] = v
	}
	period, offset, minLive := int64(d[0]), int64(d[1]), int64(d[2])
	earliest := startNS + minLive
	t := earliest - earliest%period + offset
	for t < earliest {
		t += period
	}
	time.Sleep(time.Duration(t - now()))
}

// writeLines writes n lines of 100 bytes (99 characters and a newline)
// through a 64 KiB buffer.
func writeLines(n int) {
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	line := []byte(strings.Repeat("x", 89) + "0000000000\n")
	for i := 0; i < n; i++ {
		v := i
		for j := 98; j >= 89; j-- {
			line[j] = byte('0' + v%10)
			v /= 10
		}
		if _, err := w.Write(line); err != nil {
			fail("write: %v", err)
		}
	}
	if err := w.Flush(); err != nil {
		fail("flush: %v", err)
	}
}

// beat touches file every interval until silentAt, stamps the last beat,
// then sleeps until SIGTERM.
func beat(file string, every time.Duration, silentAt int64) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		fail("heartbeat dir: %v", err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	touch := func() int64 {
		t := time.Now()
		if err := os.Chtimes(file, t, t); err != nil {
			f, cerr := os.OpenFile(file, os.O_WRONLY|os.O_CREATE, 0o644)
			if cerr != nil {
				fail("heartbeat: %v", cerr)
			}
			f.Close()
		}
		return now()
	}
	last := touch()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-term:
			stamp("term", now())
			exit(0)
		case <-tick.C:
			if silentAt > 0 && now()+int64(every) > silentAt {
				stamp("lastbeat", last)
				tick.Stop()
				<-term
				stamp("term", now())
				exit(0)
			}
			last = touch()
		}
	}
}

// OrphanResult is what -orphans writes to -result.
type OrphanResult struct {
	Orphans        int    `json:"orphans"`
	CreateNS       int64  `json:"create_ns"`        // time to create them all
	ZombiesAfter1s int    `json:"zombies_after_1s"` // zombies 1 s after the last orphan exited
	LastExitNS     int64  `json:"last_exit_ns"`     // stamp of the last orphan exit
	AllReapedNS    int64  `json:"all_reaped_ns"`    // first poll that saw no zombie, all exited
	ReapLagNS      int64  `json:"reap_lag_ns"`      // AllReapedNS - LastExitNS
	PollNS         int64  `json:"poll_interval_ns"` // scan period of /proc
	MaxZombies     int    `json:"max_zombies_seen"` // largest zombie count seen
	TimedOut       bool   `json:"timed_out"`        // not all reaped within -reap-timeout
	Exited         int    `json:"orphans_exited"`   // exit stamps seen
	InitComm       string `json:"init_comm"`        // comm of PID 1
}

// runOrphans creates n orphans, each through an intermediate process that
// starts it in a new session and exits at once, so its parent becomes PID 1
// (or the nearest subreaper). It then scans /proc until every orphan has
// exited and no zombie is left, or -reap-timeout passed, and writes an
// OrphanResult.
func runOrphans(n int, stamps string, orphanLive, reapTimeout time.Duration, resultFile string) {
	if stamps == "" || resultFile == "" {
		fail("-orphans needs -stamps and -result")
	}
	self, _ := os.Executable()
	t0 := now()
	for i := 0; i < n; i++ {
		c := exec.Command(self, "-orphan-child", "-stamps", stamps, "-id", "orphan", "-orphan-live", orphanLive.String())
		if err := c.Run(); err != nil {
			fail("intermediate %d: %v", i, err)
		}
	}
	res := OrphanResult{Orphans: n, CreateNS: now() - t0, PollNS: int64(time.Millisecond)}
	comm, _ := os.ReadFile("/proc/1/comm")
	res.InitComm = strings.TrimSpace(string(comm))
	deadline := now() + int64(reapTimeout)
	checkedAfter1s := false
	for {
		z := zombies()
		if z > res.MaxZombies {
			res.MaxZombies = z
		}
		exited, last := exitStamps(stamps)
		t := now()
		if exited >= n {
			if !checkedAfter1s && t >= last+int64(time.Second) {
				res.ZombiesAfter1s = z
				checkedAfter1s = true
			}
			if z == 0 && res.AllReapedNS == 0 {
				res.AllReapedNS = t
				res.LastExitNS = last
				res.ReapLagNS = t - last
			}
			if res.AllReapedNS != 0 && checkedAfter1s {
				res.Exited = exited
				break
			}
		}
		if t > deadline {
			res.TimedOut = true
			res.Exited = exited
			res.LastExitNS = last
			if !checkedAfter1s {
				res.ZombiesAfter1s = z
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(resultFile, b, 0o644); err != nil {
		fail("result: %v", err)
	}
}

// zombies counts processes in state Z in /proc.
func zombies() int {
	d, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	n := 0
	buf := make([]byte, 512)
	for _, e := range d {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		f, err := os.Open("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		k, _ := f.Read(buf)
		f.Close()
		s := string(buf[:k])
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
			n++
		}
	}
	return n
}

// exitStamps counts the "exit" lines of the orphans and returns the latest.
func exitStamps(file string) (int, int64) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0
	}
	n, last := 0, int64(0)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[0] == "exit" && f[3] == "orphan" {
			n++
			if v, _ := strconv.ParseInt(f[2], 10, 64); v > last {
				last = v
			}
		}
	}
	return n, last
}
