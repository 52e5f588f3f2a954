package tests

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// SPEC §9: a program that puts a FIFO where its heartbeat file was cannot
// freeze the supervisor: status, stop and restart still answer at once.
func TestHeartbeatFIFODoesNotFreezeTheLoop(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.trap]
command = ` + sh(`echo '{"timestamp":"2026-01-01T00:00:00Z","pid":1,"hostname":"h","metadata":{"k":1}}' > hb; sleep 0.3; rm hb; mkfifo hb; touch swapped; exec sleep 1000`) + `
[programs.trap.watchdog]
heartbeat_file = "hb"
timeout = "30s"
[programs.other]
command = ["/bin/sleep", "1000"]
`})
	s.running(t, "trap")
	waitFile(t, filepath.Join(s.dir, "swapped"), nil)
	for i := 0; i < 3; i++ {
		start := time.Now()
		p := s.prog(t, "trap")
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("status took %v with a FIFO as heartbeat file", took)
		}
		if p.Heartbeat.Metadata != nil {
			t.Errorf("metadata %v read from a FIFO", p.Heartbeat.Metadata)
		}
	}
	if r := s.ctl(t, "restart", "other"); r.code != 0 {
		t.Fatalf("restart with a FIFO in place: %s", r)
	}
}

// SPEC §9: refused input is logged with its cause: garbage on the control
// socket, and a datagram on a notify socket from a process that is not
// the program's.
func TestRefusedInputIsLogged(t *testing.T) {
	t.Parallel()
	s := newSup(t, config{programs: `
[programs.n]
command = ["/bin/sleep", "1000"]
notify = true
`})
	p := s.waitProg(t, "n", "spawned", func(p control.ProgramStatus) bool { return p.PID != 0 })
	c, err := net.Dial("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("this is not json\n"))
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(buf)
	c.Close()

	env, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	var sock string
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			sock = v
		}
	}
	if sock == "" {
		t.Fatal("no NOTIFY_SOCKET in the program's environment")
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Sendto(fd, []byte("READY=1"), 0, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both refusals to be logged", waitDefault, func() (bool, string) {
		text := s.logText()
		return strings.Contains(text, `"source":"control socket"`) && strings.Contains(text, `"source":"notify socket of n"`), ""
	})
	if st := s.prog(t, "n"); st.Ready {
		t.Fatal("a stranger's READY=1 made the program ready")
	}
}

// SPEC §9: the control socket is not created through a symbolic link
// planted by another user.
func TestControlSocketRefusesAPlantedLink(t *testing.T) {
	t.Parallel()
	if !isRoot() {
		t.Skip("needs root to plant a link owned by another user")
	}
	dir := shortDir(t)
	elsewhere := filepath.Join(dir, "attacker")
	os.Mkdir(elsewhere, 0o777)
	link := filepath.Join(dir, "run")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "supervise.toml")
	os.WriteFile(cfg, []byte("[programs.a]\ncommand = [\"/bin/true\"]\nrestart = \"never\"\n"), 0o644)
	r := runBinEnv(t, childEnv(), 20*time.Second, "run", "-c", cfg, "-s", filepath.Join(link, "sub", "ctl.sock"))
	if _, err := os.Stat(filepath.Join(elsewhere, "sub")); err == nil {
		t.Fatalf("a directory was created through the planted link: %s", r)
	}
	if !strings.Contains(r.stdout+r.stderr, "link") {
		t.Fatalf("no error naming the untrusted link: %s", r)
	}
}
