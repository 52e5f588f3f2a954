package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/supervise/supervise/systemd"
)

// notifyLog collects what the supervisor tells "systemd".
type notifyLog struct {
	mu   sync.Mutex
	msgs []systemd.Message
}

func (n *notifyLog) add(m systemd.Message) {
	n.mu.Lock()
	n.msgs = append(n.msgs, m)
	n.mu.Unlock()
}

// seq returns the messages' raw texts in order.
func (n *notifyLog) seq() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.msgs {
		out = append(out, strings.ReplaceAll(string(m.Raw), "\n", " "))
	}
	return out
}

func (n *notifyLog) count(pred func(systemd.Message) bool) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if pred(m) {
			c++
		}
	}
	return c
}

// TestUnderSystemd runs the supervisor as a Type=notify unit would: with
// NOTIFY_SOCKET and WATCHDOG_USEC set. It must send READY=1 once its
// programs are spawned, WATCHDOG=1 at half the interval, RELOADING=1 with
// MONOTONIC_USEC then READY=1 around a reload, STOPPING=1 at teardown, and
// its programs must not inherit the supervisor's NOTIFY_SOCKET.
func TestUnderSystemd(t *testing.T) {
	t.Parallel()
	n := &notifyLog{}
	sockPath := filepath.Join(shortDir(t), "notify.sock")
	l, err := systemd.Listen(sockPath, -1, -1, func(int) bool { return true }, n.add)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := config{programs: `
[programs.env]
command = ` + sh(`echo "NOTIFY_SOCKET=${NOTIFY_SOCKET:-unset} WATCHDOG_USEC=${WATCHDOG_USEC:-unset}" > env.txt; exec sleep 1000`) + `
`}
	s := newSupEnv(t, c, []string{"NOTIFY_SOCKET=" + sockPath, "WATCHDOG_USEC=400000"})
	waitFor(t, "READY=1", 10*time.Second, func() (bool, string) {
		return n.count(func(m systemd.Message) bool { return m.Ready }) >= 1, fmt.Sprint(n.seq())
	})
	got := waitFile(t, filepath.Join(s.dir, "env.txt"), func(s string) bool { return s != "" })
	if strings.TrimSpace(got) != "NOTIFY_SOCKET=unset WATCHDOG_USEC=unset" {
		t.Fatalf("program inherited the supervisor's systemd variables: %q", got)
	}
	// WATCHDOG=1 every 200 ms: at least 4 within a second and a half.
	time.Sleep(1500 * time.Millisecond)
	if w := n.count(func(m systemd.Message) bool { return m.Watchdog }); w < 4 {
		t.Fatalf("%d WATCHDOG=1 in 1.5 s with WATCHDOG_USEC=400000: %v", w, n.seq())
	}
	if r := s.ctl(t, "reload"); r.code != 0 {
		t.Fatalf("reload: %s", r)
	}
	waitFor(t, "RELOADING=1 then READY=1", 10*time.Second, func() (bool, string) {
		seq := n.seq()
		for i, m := range seq {
			if strings.Contains(m, "RELOADING=1") && strings.Contains(m, "MONOTONIC_USEC=") {
				for _, later := range seq[i+1:] {
					if strings.Contains(later, "READY=1") {
						return true, ""
					}
				}
			}
		}
		return false, fmt.Sprint(seq)
	})
	if code := s.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if n.count(func(m systemd.Message) bool { return m.Stopping }) != 1 {
		t.Fatalf("no STOPPING=1: %v", n.seq())
	}
}
