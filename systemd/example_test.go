package systemd_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/supervise/supervise/systemd"
)

// A service tells its manager it is ready and pings the watchdog. Here the
// manager's side is a Listener, so the example shows both ends.
func ExampleNotify() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	got := make(chan systemd.Message, 1)
	l, err := systemd.Listen(filepath.Join(dir, "notify.sock"), -1, -1,
		func(pid int) bool { return systemd.IsDescendant(pid, os.Getpid()) },
		func(m systemd.Message) { got <- m })
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	os.Setenv("NOTIFY_SOCKET", l.Path())
	defer os.Unsetenv("NOTIFY_SOCKET")

	// The service's side.
	if err := systemd.Notify("READY=1\nSTATUS=serving"); errors.Is(err, systemd.ErrNoSocket) {
		fmt.Println("not under a service manager")
	} else if err != nil {
		fmt.Println(err)
	}

	select {
	case m := <-got:
		fmt.Println(m.Ready, m.Status, m.PID == os.Getpid())
	case <-time.After(5 * time.Second):
		fmt.Println("nothing received")
	}
	// Output: true serving true
}

// A service under a watchdog pings at half the interval it was given.
func ExampleWatchdogInterval() {
	os.Setenv("WATCHDOG_USEC", "30000000") // as a service manager would
	defer os.Unsetenv("WATCHDOG_USEC")

	if interval, ok := systemd.WatchdogInterval(); ok {
		fmt.Println("ping every", interval/2)
		// A real service runs a ticker here and calls systemd.WatchdogPing.
	}
	// Output: ping every 15s
}
