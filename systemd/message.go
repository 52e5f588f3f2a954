package systemd

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxMessageSize is the largest notification accepted, in bytes. It is the
// limit systemd itself applies (PIPE_BUF).
const MaxMessageSize = 4096

var (
	// ErrEmptyMessage is returned for a message with no assignments.
	ErrEmptyMessage = errors.New("systemd: empty notify message")
	// ErrMessageTooLarge is returned for a message over MaxMessageSize bytes.
	ErrMessageTooLarge = errors.New("systemd: notify message too large")
	// ErrMalformed is wrapped by every error describing a message that is
	// not newline-separated KEY=VALUE assignments in UTF-8.
	ErrMalformed = errors.New("systemd: malformed notify message")
)

// Message is one sd_notify datagram.
type Message struct {
	// PID and UID are the sender's credentials as the kernel reported them.
	// ParseMessage leaves them zero; Listener fills them in.
	PID int
	UID int
	// FDs is the number of file descriptors that came with the datagram.
	// The Listener has closed them all; storing them (FDSTORE=1) is not
	// supported.
	FDs int
	// Fields holds every assignment; for a repeated key the last one wins.
	Fields map[string]string
	// Ready is READY=1, Reloading is RELOADING=1, Stopping is STOPPING=1.
	Ready, Reloading, Stopping bool
	// Watchdog is WATCHDOG=1 (a ping); WatchdogTrigger is WATCHDOG=trigger
	// (the program asks to be treated as if its watchdog fired).
	Watchdog, WatchdogTrigger bool
	// Status is the value of STATUS=, or "" when absent.
	Status string
	// Raw is a copy of the datagram.
	Raw []byte
}

// ParseMessage parses a notification: newline-separated KEY=VALUE
// assignments, where KEY is letters, digits and underscores not starting with
// a digit and VALUE is any text without newlines. Empty lines are ignored, as
// systemd does. It rejects a message that is empty, larger than
// MaxMessageSize, not valid UTF-8, contains a NUL byte, or has a line that is
// not an assignment; the errors wrap ErrEmptyMessage, ErrMessageTooLarge or
// ErrMalformed and name the offending line.
func ParseMessage(data []byte) (Message, error) {
	if len(data) > MaxMessageSize {
		return Message{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(data), MaxMessageSize)
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return Message{}, fmt.Errorf("%w: NUL byte at offset %d", ErrMalformed, i)
	}
	if !utf8.Valid(data) {
		return Message{}, fmt.Errorf("%w: not valid UTF-8", ErrMalformed)
	}
	m := Message{Fields: make(map[string]string), Raw: bytes.Clone(data)}
	rest := data
	for line := 1; len(rest) > 0; line++ {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(l) == 0 {
			continue
		}
		key, value, ok := bytes.Cut(l, []byte{'='})
		if !ok {
			return Message{}, fmt.Errorf("%w: line %d: missing \"=\" in %s", ErrMalformed, line, quote(l))
		}
		if err := checkKey(key); err != nil {
			return Message{}, fmt.Errorf("%w: line %d: %v", ErrMalformed, line, err)
		}
		m.Fields[string(key)] = string(value)
	}
	if len(m.Fields) == 0 {
		return Message{}, ErrEmptyMessage
	}
	m.Ready = m.Fields["READY"] == "1"
	m.Reloading = m.Fields["RELOADING"] == "1"
	m.Stopping = m.Fields["STOPPING"] == "1"
	m.Watchdog = m.Fields["WATCHDOG"] == "1"
	m.WatchdogTrigger = m.Fields["WATCHDOG"] == "trigger"
	m.Status = m.Fields["STATUS"]
	return m, nil
}

// isBarrier reports whether m is only systemd-notify's BARRIER=1 handshake.
func (m Message) isBarrier() bool {
	return len(m.Fields) == 1 && m.Fields["BARRIER"] == "1"
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return errors.New("empty key")
	}
	for i, c := range key {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return fmt.Errorf("invalid key %s", quote(key))
		}
	}
	return nil
}

// quote quotes b for an error message, cut to a readable length.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
