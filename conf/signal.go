package conf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrBadSignal is wrapped by ParseSignal's errors.
var ErrBadSignal = errors.New("unknown signal")

// maxSignal is the highest signal number Linux knows (SIGRTMAX).
const maxSignal = 64

// ParseSignal parses a signal given by name or number: "TERM", "SIGTERM",
// "term" and "15" all give SIGTERM. Numbers 1 to 64 are accepted, so
// real-time signals can be named by number.
func ParseSignal(s string) (syscall.Signal, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("%w: empty", ErrBadSignal)
	}
	if n, err := strconv.Atoi(t); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("%w: %d is not between 1 and %d", ErrBadSignal, n, maxSignal)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(t)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrBadSignal, s)
}

// SignalName returns the conventional name of sig, such as "SIGTERM". A
// signal without a name (a real-time signal) is given as its decimal number,
// which ParseSignal accepts back.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return strconv.Itoa(int(sig))
}
