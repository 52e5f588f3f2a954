package systemd

import (
	"errors"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestNotifyNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for name, f := range map[string]func() error{
		"Ready":        Ready,
		"Stopping":     Stopping,
		"WatchdogPing": WatchdogPing,
		"Status":       func() error { return Status("x") },
		"Reloading":    func() error { return Reloading(time.Second) },
		"Notify":       func() error { return Notify("READY=1") },
		"NotifyTo":     func() error { return NotifyTo("", "READY=1") },
	} {
		if err := f(); !errors.Is(err, ErrNoSocket) {
			t.Errorf("%s: got %v, want ErrNoSocket", name, err)
		}
	}
}

func TestNotifyRejects(t *testing.T) {
	if err := NotifyTo("relative/sock", "READY=1"); !errors.Is(err, ErrBadSocket) {
		t.Errorf("relative path: got %v, want ErrBadSocket", err)
	}
	if err := NotifyTo("/nonexistent/dir/sock", "READY=1"); err == nil {
		t.Error("missing socket: no error")
	}
	if err := NotifyTo("/tmp/x", "READY"); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad state: got %v, want ErrMalformed", err)
	}
	if err := NotifyTo("/tmp/x", ""); !errors.Is(err, ErrEmptyMessage) {
		t.Errorf("empty state: got %v, want ErrEmptyMessage", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, true},
		{"30000000", self, 30 * time.Second, true},
		{"30000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"30000000", "garbage", 0, false},
		{"0", "", 0, false},
		{"-5", "", 0, false},
		{"1.5", "", 0, false},
		{"abc", "", 0, false},
		{"99999999999999999999", "", 0, false},
		{"1", "", time.Microsecond, true},
	}
	for _, tt := range tests {
		t.Setenv("WATCHDOG_USEC", tt.usec)
		t.Setenv("WATCHDOG_PID", tt.pid) // restored after the test
		if tt.pid == "" {
			os.Unsetenv("WATCHDOG_PID")
		}
		got, ok := WatchdogInterval()
		if got != tt.want || ok != tt.ok {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: got %v, %v; want %v, %v", tt.usec, tt.pid, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMonotonicNow(t *testing.T) {
	a := MonotonicNow()
	b := MonotonicNow()
	if a <= 0 || b < a {
		t.Fatalf("MonotonicNow not monotonic and positive: %v then %v", a, b)
	}
}
