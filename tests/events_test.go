package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/supervisor/events"
)

// syncBuffer is a bytes.Buffer safe for a writer process and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cli is a long-running client command (events, status --watch).
type cli struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

// startCLI runs `supervise ARGS -s SOCK` with its output in buffers, or
// on out when it is set.
func (s *sup) startCLI(t *testing.T, out *os.File, args ...string) *cli {
	t.Helper()
	c := &cli{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(bin, append(args, "-s", s.sock)...)
	c.cmd.Env = childEnv(clientRace)
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	if out != nil {
		c.cmd.Stdout = out
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := c.cmd.Wait()
		c.code = exitCode(c.cmd.ProcessState, err)
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// interrupt sends SIGINT, as Ctrl-C does, and returns the exit code.
func (c *cli) interrupt(t *testing.T) int {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
		return c.code
	case <-time.After(10 * time.Second):
		t.Fatalf("%v did not end on SIGINT; stderr %q", c.cmd.Args, c.stderr.String())
		return -1
	}
}

// `supervise events` prints a line per event until Ctrl-C; with --json,
// JSON whose numbers have no gaps.
func TestEventsCommand(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.a]
command = ["/bin/sleep", "1000"]
stop_timeout = "2s"
[programs.b]
command = ["/bin/sleep", "1000"]
`})
	s.running(t, "a")
	s.running(t, "b")
	text := s.startCLI(t, nil, "events", "a")
	js := s.startCLI(t, nil, "events", "--json")
	// The streams are subscribed some time after they start: restart a
	// until both have seen it.
	waitFor(t, "both streams see a restart of a", waitDefault, func() (bool, string) {
		s.ctl(t, "restart", "a")
		return strings.Contains(text.stdout.String(), " a state: stopping -> stopped") &&
			strings.Contains(js.stdout.String(), `"program":"a"`), text.stdout.String()
	})
	s.ctl(t, "restart", "b")
	waitFor(t, "the json stream sees b running again", waitDefault, func() (bool, string) {
		for _, line := range strings.Split(js.stdout.String(), "\n") {
			if strings.Contains(line, `"program":"b"`) && strings.Contains(line, `"to":"running"`) {
				return true, ""
			}
		}
		return false, js.stdout.String()
	})
	if code := text.interrupt(t); code != 0 {
		t.Errorf("events a: exit %d on Ctrl-C, stderr %q", code, text.stderr.String())
	}
	if code := js.interrupt(t); code != 0 {
		t.Errorf("events --json: exit %d on Ctrl-C, stderr %q", code, js.stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(text.stdout.String()), "\n") {
		if !strings.Contains(line, " a ") || !strings.Contains(line, " #") {
			t.Errorf("events a printed %q", line)
		}
	}
	var prev uint64
	sawRunning := false
	sc := bufio.NewScanner(strings.NewReader(js.stdout.String()))
	for sc.Scan() {
		var ev events.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("events --json printed %q: %v", sc.Text(), err)
		}
		if prev != 0 && ev.Seq != prev+1 {
			t.Fatalf("seq %d after %d", ev.Seq, prev)
		}
		prev = ev.Seq
		if ev.Kind == events.State && ev.Program == "b" && ev.To == "running" && ev.PID > 0 {
			sawRunning = true
		}
	}
	if !sawRunning {
		t.Errorf("no state event of b to running in:\n%s", js.stdout.String())
	}
}

// status --watch without a terminal: the table, then a line per change,
// until Ctrl-C.
func TestStatusWatchLines(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.a]
command = ["/bin/sleep", "1000"]
[programs.b]
command = ["/bin/sleep", "1000"]
`})
	s.running(t, "a")
	s.running(t, "b")
	w := s.startCLI(t, nil, "status", "--watch")
	waitFor(t, "the first table", waitDefault, func() (bool, string) {
		out := w.stdout.String()
		return strings.HasPrefix(out, "NAME") && strings.Count(out, "\n") >= 3, out
	})
	s.ctl(t, "stop", "b")
	waitFor(t, "a line for b", waitDefault, func() (bool, string) {
		for _, line := range strings.Split(w.stdout.String(), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[1] == "b" && f[2] == "stopped" {
				return true, ""
			}
		}
		return false, w.stdout.String()
	})
	if strings.Contains(w.stdout.String(), " a ") {
		t.Errorf("a line for a, which did not change:\n%s", w.stdout.String())
	}
	if code := w.interrupt(t); code != 0 {
		t.Errorf("exit %d on Ctrl-C, stderr %q", code, w.stderr.String())
	}
}

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// status --watch on a terminal redraws the whole table after events.
func TestStatusWatchTerminal(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.a]
command = ["/bin/sleep", "1000"]
`})
	s.running(t, "a")
	master, tty := openPTY(t)
	w := s.startCLI(t, tty, "status", "--watch")
	out := &syncBuffer{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	waitFor(t, "the first drawing", waitDefault, func() (bool, string) {
		return strings.Contains(out.String(), "\x1b[H\x1b[2J") && strings.Contains(out.String(), "running"), out.String()
	})
	s.ctl(t, "stop", "a")
	waitFor(t, "a redraw with a stopped", waitDefault, func() (bool, string) {
		o := out.String()
		i := strings.LastIndex(o, "\x1b[H\x1b[2J")
		return strings.Count(o, "\x1b[H\x1b[2J") >= 2 && strings.Contains(o[i:], "stopped"), o
	})
	if code := w.interrupt(t); code != 0 {
		t.Errorf("exit %d on Ctrl-C, stderr %q", code, w.stderr.String())
	}
}

// A hook like the README's "page me when a breaker opens": it gets the
// breaker_open event of the program on stdin and in its environment.
func TestHookPagesOnBreakerOpen(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.flappy]
command = ["/bin/sh", "-c", "exit 1"]
backoff_initial = "50ms"
[programs.flappy.breaker]
max_failures = 3

[hooks.page]
command = ["/bin/sh", "-c", "cat > page.json; echo \"$SUPERVISE_EVENT_KIND $SUPERVISE_PROGRAM\" > page.txt"]
events = ["breaker_open", "watchdog", "critical_exit"]
programs = ["flappy"]
timeout = "10s"
`})
	page := waitFile(t, filepath.Join(s.dir, "page.txt"), func(s string) bool { return s != "" })
	if page != "breaker_open flappy\n" {
		t.Fatalf("page.txt %q", page)
	}
	var ev events.Event
	data, _ := os.ReadFile(filepath.Join(s.dir, "page.json"))
	if err := json.Unmarshal(data, &ev); err != nil || ev.Kind != events.BreakerOpen || ev.Failures != 3 || ev.Program != "flappy" {
		t.Fatalf("page.json %q: %v", data, err)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// The README's "page me when a breaker opens" hook is a valid table.
func TestReadmePagingHookIsValid(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(moduleRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "**Page me when a breaker opens.**")
	if !ok {
		t.Fatal("the README has no paging example")
	}
	_, block, _ := strings.Cut(after, "```toml\n")
	block, _, _ = strings.Cut(block, "```")
	if !strings.Contains(block, "[hooks.page]") {
		t.Fatalf("example %q", block)
	}
	file := filepath.Join(t.TempDir(), "supervise.toml")
	if err := os.WriteFile(file, []byte("[programs.web]\ncommand = [\"/bin/sleep\", \"1000\"]\n"+block), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, 20*time.Second, "validate", "-c", file)
	if r.code != 0 || !strings.Contains(r.stdout, "hooks.page: /bin/sh -c curl") || !strings.Contains(r.stdout, "events breaker_open, critical_exit") {
		t.Fatalf("validate: %s", r)
	}
}
