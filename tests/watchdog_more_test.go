package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// keepsAlive checks for d that a program beating steadily stays in one
// run: same pid, running, ready, one start, no failure, a recent beat.
func keepsAlive(t *testing.T, s *sup, name string, d time.Duration) {
	t.Helper()
	p := s.waitProg(t, name, "ready and running", func(p control.ProgramStatus) bool {
		return p.Ready && p.State == "running" && p.PID > 0
	})
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		q := s.prog(t, name)
		if q.PID != p.PID || q.State != "running" || !q.Ready || q.Stats.Starts != 1 || q.Stats.Failures != 0 {
			b, _ := os.ReadFile(filepath.Join(s.dir, "beats.log"))
			t.Fatalf("a program beating every 200ms with timeout 3s did not stay in its run: before %s, now %s\nthe program's own beat times:\n%s",
				describe(p), describe(q), b)
		}
		if q.Heartbeat.AgeSeconds == nil || *q.Heartbeat.AgeSeconds > 1 {
			t.Fatalf("heartbeat = %+v, want a beat within the timeout", q.Heartbeat)
		}
	}
}

// Every way of writing a heartbeat file counts as a beat (SPEC §4).
func TestWatchdogBeatKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file, script string }{
		{"append", "hb", `while :; do echo x >> hb; date +%s.%N >> beats.log; sleep 0.2; done`},
		{"atomic rename", "hb", `while :; do echo x > hb.tmp && mv hb.tmp hb; date +%s.%N >> beats.log; sleep 0.2; done`},
		{"vim-style save", "hb", `echo x > hb; while :; do mv hb hb~; echo x > hb; rm hb~; date +%s.%N >> beats.log; sleep 0.2; done`},
		// Every fourth beat removes the whole directory first; the
		// program re-creates it, the supervisor must watch it anew.
		{"directory re-created", "hbdir/hb", `i=0; while :; do i=$((i+1)); if [ $((i % 4)) = 0 ]; then rm -rf hbdir; fi; mkdir -p hbdir; touch hbdir/hb; date +%s.%N >> beats.log; sleep 0.2; done`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSup(t, config{programs: `
[programs.beater]
command = ` + sh(tc.script) + `
backoff_initial = "10ms"
[programs.beater.watchdog]
heartbeat_file = ` + q(tc.file) + `
timeout = "3s"
`})
			keepsAlive(t, s, "beater", 3*time.Second)
		})
	}

	t.Run("heartbeat JSON metadata", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.meta]
command = ` + sh(`while :; do printf '{"timestamp":"%s","pid":%d,"hostname":"h","metadata":{"queue":3,"version":"v9"}}' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" $$ > hb.tmp && mv hb.tmp hb.json; sleep 0.2; done`) + `
[programs.meta.watchdog]
heartbeat_file = "hb.json"
timeout = "3s"
`})
		s.running(t, "meta")
		var meta map[string]any
		waitFor(t, "heartbeat.metadata in status --json", waitDefault, func() (bool, string) {
			r := s.ctl(t, "status", "meta", "--json")
			if r.code != 0 {
				return false, r.String()
			}
			var doc struct {
				Programs []struct {
					Heartbeat struct {
						Metadata map[string]any `json:"metadata"`
					} `json:"heartbeat"`
				} `json:"programs"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Programs) != 1 {
				return false, r.stdout
			}
			meta = doc.Programs[0].Heartbeat.Metadata
			return meta != nil, r.stdout
		})
		if meta["queue"] != 3.0 || meta["version"] != "v9" {
			t.Errorf("heartbeat.metadata = %v, want queue 3 and version v9", meta)
		}
	})

	t.Run("action stop", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.quiet]
command = ` + sh(`touch hb; exec sleep 1000`) + `
restart = "always"
backoff_initial = "10ms"
[programs.quiet.watchdog]
heartbeat_file = "hb"
timeout = "1s"
action = "stop"
`})
		// Its one run is ready (it beat once) for about a second: wait for
		// the end instead, which a loaded machine cannot make us miss.
		p := s.waitProg(t, "quiet", "stopped by its watchdog", func(p control.ProgramStatus) bool { return p.State == "stopped" })
		if p.Heartbeat.LastBeatAt == nil || p.LastExit == nil || p.LastExit.Signal != "SIGTERM" || p.LastExit.Failed {
			t.Fatalf("stopped by its watchdog: %s, want a beat, then SIGTERM and no failure", describe(p))
		}
		// It stays stopped, even with restart = "always".
		time.Sleep(time.Second)
		if p := s.prog(t, "quiet"); p.State != "stopped" || p.Stats.Starts != 1 || p.PID != 0 {
			t.Errorf("after the watchdog's stop: %s, want stopped with one start", describe(p))
		}
	})

	t.Run("status table HEARTBEAT column", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, config{programs: `
[programs.ticker]
command = ` + sh(`while :; do touch hb; sleep 0.2; done`) + `
[programs.ticker.watchdog]
heartbeat_file = "hb"
timeout = "2s"
[programs.plain]
command = ["/bin/sleep", "1000"]
`})
		s.running(t, "ticker")
		s.running(t, "plain")
		r := s.ctl(t, "status")
		if r.code != 0 {
			t.Fatalf("status: %s", r)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		col := strings.Index(lines[0], "HEARTBEAT")
		if col < 0 {
			t.Fatalf("no HEARTBEAT column in\n%s", r.stdout)
		}
		ago := regexp.MustCompile(`^[0-9]+s ago`)
		cells := map[string]string{}
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) > 0 && len(l) > col {
				cells[f[0]] = l[col:]
			}
		}
		if c := cells["ticker"]; !ago.MatchString(c) {
			t.Errorf("HEARTBEAT of a beating program = %q, want \"Ns ago\":\n%s", c, r.stdout)
		}
		if c := cells["plain"]; !strings.HasPrefix(c, "- ") {
			t.Errorf("HEARTBEAT of a program without watchdog = %q, want \"-\":\n%s", c, r.stdout)
		}
	})
}

// procUsage is what the kernel counted for a process: CPU time (user +
// system, all threads, dead ones included) and context switches summed over
// its live threads.
type procUsage struct {
	cpu                    time.Duration
	voluntary, involuntary int64
	threads                int
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ).
const clockTick = 10 * time.Millisecond

func readUsage(t *testing.T, pid int) procUsage {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after "pid (comm) ": state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[14-3], 10, 64)
	st, _ := strconv.ParseInt(f[15-3], 10, 64)
	u := procUsage{cpu: time.Duration(ut+st) * clockTick}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue
		}
		u.threads++
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "voluntary_ctxt_switches":
				u.voluntary += n
			case "nonvoluntary_ctxt_switches":
				u.involuntary += n
			}
		}
	}
	return u
}

// The idle cost of watchdogs: with 1000 programs beating every 10s, the
// supervisor should wake up about as often as beats arrive, and with 1000
// programs without watchdogs hardly at all. It takes about three minutes,
// so it runs only with SUPERVISE_LONG_BENCH=1; it logs its figures and
// fails only when the supervisor wakes up far more often than beats come.
func TestIdleCostLong(t *testing.T) {
	if os.Getenv("SUPERVISE_LONG_BENCH") != "1" {
		t.Skip("set SUPERVISE_LONG_BENCH=1 to measure the idle cost (about 3 minutes)")
	}
	// A binary without the race detector, whose own costs would dominate.
	plain := filepath.Join(t.TempDir(), "supervise")
	build := exec.Command("go", "build", "-o", plain, "./cmd/supervise")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const (
		n       = 1000
		settle  = 15 * time.Second
		measure = 60 * time.Second
		period  = 10 * time.Second
	)
	for _, watched := range []bool{true, false} {
		name := "1000 programs beating every 10s"
		if !watched {
			name = "1000 sleeping programs without watchdog"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			hb := filepath.Join(dir, "hb")
			var b strings.Builder
			fmt.Fprintf(&b, "[supervisor]\nsocket = \"off\"\nlog_format = \"json\"\nshutdown_timeout = \"60s\"\n[defaults]\nstdout = \"null\"\nstderr = \"null\"\n")
			for i := 0; i < n; i++ {
				if watched {
					f := filepath.Join(hb, fmt.Sprintf("p%d", i))
					fmt.Fprintf(&b, "[programs.p%d]\ncommand = %s\n[programs.p%d.watchdog]\nheartbeat_file = %s\ntimeout = \"30s\"\n",
						i, sh(fmt.Sprintf("while :; do touch %s; sleep %d; done", f, int(period.Seconds()))), i, q(f))
				} else {
					fmt.Fprintf(&b, "[programs.p%d]\ncommand = [\"/bin/sleep\", \"100000\"]\n", i)
				}
			}
			cfg := filepath.Join(dir, "supervise.toml")
			if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			logf, err := os.Create(filepath.Join(dir, "supervise.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			cmd := exec.Command(plain, "run", "-c", cfg)
			cmd.Dir = dir
			cmd.Env = childEnv()
			cmd.Stdout, cmd.Stderr = logf, logf
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			defer func() {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(90 * time.Second):
					t.Errorf("supervisor did not end within 90s of SIGTERM")
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-done
				}
			}()
			time.Sleep(settle)
			if watched {
				ents, _ := os.ReadDir(hb)
				if len(ents) != n {
					t.Fatalf("%d heartbeat files after %s, want %d", len(ents), settle, n)
				}
			}
			u0 := readUsage(t, cmd.Process.Pid)
			time.Sleep(measure)
			u1 := readUsage(t, cmd.Process.Pid)
			select {
			case <-done:
				t.Fatalf("the supervisor exited during the measurement")
			default:
			}
			beats := int64(0)
			if watched {
				beats = int64(n) * int64(measure/period)
			}
			vol := u1.voluntary - u0.voluntary
			inv := u1.involuntary - u0.involuntary
			cpu := u1.cpu - u0.cpu
			t.Logf("%s, over %s: CPU %d ms, voluntary switches %d, involuntary %d, threads %d, beats expected %d",
				name, measure, cpu.Milliseconds(), vol, inv, u1.threads, beats)
			if beats > 0 {
				t.Logf("per beat: %.3f voluntary switches, %.1f µs CPU", float64(vol)/float64(beats), float64(cpu.Microseconds())/float64(beats))
			}
			if text, _ := os.ReadFile(filepath.Join(dir, "supervise.log")); strings.Contains(string(text), "overdue") {
				t.Errorf("a watchdog fired during the measurement")
			}
			// Wake-ups must scale with beats: a handful of thread switches
			// per beat (reader, watcher and event-loop goroutines), and next
			// to nothing without beats. Anything periodic shows up as
			// switches beyond that.
			if limit := 10*beats + 60; vol > limit {
				t.Errorf("%d voluntary switches in %s for %d beats, want at most %d", vol, measure, beats, limit)
			}
		})
	}
}
