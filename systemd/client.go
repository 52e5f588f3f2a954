package systemd

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoSocket is returned by Notify and its helpers when $NOTIFY_SOCKET is
// unset or empty, that is when the caller does not run under a service
// manager that listens for notifications. Callers usually ignore it.
var ErrNoSocket = errors.New("systemd: NOTIFY_SOCKET is not set")

// ErrBadSocket is returned for a socket address that is neither an absolute
// path nor an abstract name starting with "@".
var ErrBadSocket = errors.New("systemd: notify socket must be an absolute path or start with @")

// SendTimeout bounds how long Notify blocks when the receiver's queue is full.
const SendTimeout = 2 * time.Second

// Notify sends state, newline-separated KEY=VALUE assignments such as
// "READY=1\nSTATUS=up", as one datagram to the socket named by
// $NOTIFY_SOCKET. It returns ErrNoSocket when the variable is unset.
// The state is checked with ParseMessage first, so a message that a receiver
// would reject is refused here with the same error.
func Notify(state string) error {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return ErrNoSocket
	}
	return NotifyTo(socket, state)
}

// NotifyTo sends state as one datagram to socket, an absolute path or an
// abstract name written "@name". It blocks at most SendTimeout if the
// receiver's queue is full.
func NotifyTo(socket, state string) error {
	if socket == "" {
		return ErrNoSocket
	}
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		return fmt.Errorf("systemd: notify %q: %w", socket, ErrBadSocket)
	}
	if _, err := ParseMessage([]byte(state)); err != nil {
		return fmt.Errorf("systemd: notify %s: %w", socket, err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("systemd: notify %s: socket: %w", socket, err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(SendTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("systemd: notify %s: set send timeout: %w", socket, err)
	}
	// A leading "@" makes x/sys/unix use the abstract namespace.
	sa := &unix.SockaddrUnix{Name: socket}
	for {
		err = unix.Sendto(fd, []byte(state), unix.MSG_NOSIGNAL, sa)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("systemd: notify %s: send: %w", socket, err)
	}
	return nil
}

// Ready sends READY=1: start-up is finished.
func Ready() error { return Notify("READY=1") }

// Reloading sends RELOADING=1 with MONOTONIC_USEC set to monotonic, which
// should be MonotonicNow() taken just before the reload starts. Send Ready
// when the reload is done.
func Reloading(monotonic time.Duration) error {
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonic.Microseconds(), 10))
}

// Stopping sends STOPPING=1: shutdown has begun.
func Stopping() error { return Notify("STOPPING=1") }

// Status sends STATUS=s, a one-line human-readable status. Newlines in s
// are replaced by spaces, since they would start a new assignment.
func Status(s string) error {
	return Notify("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// WatchdogPing sends WATCHDOG=1, a keep-alive ping for the service
// manager's watchdog. Send it at half the WatchdogInterval.
func WatchdogPing() error { return Notify("WATCHDOG=1") }

// WatchdogInterval returns the watchdog interval the service manager expects
// pings within, from $WATCHDOG_USEC, and true when a watchdog applies to this
// process: WATCHDOG_USEC is a positive integer and WATCHDOG_PID is unset or
// equals os.Getpid(). Otherwise it returns 0 and false.
func WatchdogInterval() (time.Duration, bool) {
	s := os.Getenv("WATCHDOG_USEC")
	if s == "" {
		return 0, false
	}
	usec, err := strconv.ParseUint(s, 10, 64)
	if err != nil || usec == 0 || usec > math.MaxInt64/uint64(time.Microsecond) {
		return 0, false
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil || pid != os.Getpid() {
			return 0, false
		}
	}
	return time.Duration(usec) * time.Microsecond, true
}

// MonotonicNow returns the CLOCK_MONOTONIC time, the clock MONOTONIC_USEC is
// measured on. It returns 0 in the impossible case that the clock cannot be
// read.
func MonotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
