package systemd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseMessage(t *testing.T) {
	m, err := ParseMessage([]byte("READY=1\nSTATUS=up: 3 workers\n\nWATCHDOG=1\nX_A=b=c\nSTATUS=later\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Ready || !m.Watchdog || m.WatchdogTrigger || m.Reloading || m.Stopping {
		t.Errorf("flags wrong: %+v", m)
	}
	if m.Status != "later" || m.Fields["X_A"] != "b=c" || len(m.Fields) != 4 {
		t.Errorf("fields wrong: %+v", m.Fields)
	}
	if m.PID != 0 || m.UID != 0 {
		t.Errorf("credentials set by ParseMessage: %d %d", m.PID, m.UID)
	}

	for state, check := range map[string]func(Message) bool{
		"READY=0":                           func(m Message) bool { return !m.Ready },
		"RELOADING=1\nMONOTONIC_USEC=12345": func(m Message) bool { return m.Reloading && m.Fields["MONOTONIC_USEC"] == "12345" },
		"STOPPING=1":                        func(m Message) bool { return m.Stopping },
		"WATCHDOG=trigger":                  func(m Message) bool { return m.WatchdogTrigger && !m.Watchdog },
		"STATUS=":                           func(m Message) bool { v, ok := m.Fields["STATUS"]; return ok && v == "" },
		"STATUS=héllo ✓":                    func(m Message) bool { return m.Status == "héllo ✓" },
		"_x9=1":                             func(m Message) bool { return m.Fields["_x9"] == "1" },
	} {
		m, err := ParseMessage([]byte(state))
		if err != nil {
			t.Errorf("%q: %v", state, err)
		} else if !check(m) {
			t.Errorf("%q: got %+v", state, m)
		}
	}
}

func TestParseMessageErrors(t *testing.T) {
	tests := []struct {
		in      string
		target  error
		message string
	}{
		{"", ErrEmptyMessage, "systemd: empty notify message"},
		{"\n\n", ErrEmptyMessage, "systemd: empty notify message"},
		{"READY=1\nhello", ErrMalformed, `systemd: malformed notify message: line 2: missing "=" in "hello"`},
		{"=1", ErrMalformed, `systemd: malformed notify message: line 1: empty key`},
		{"9A=1", ErrMalformed, `systemd: malformed notify message: line 1: invalid key "9A"`},
		{"READY =1", ErrMalformed, `systemd: malformed notify message: line 1: invalid key "READY "`},
		{"READY=1\x00", ErrMalformed, `systemd: malformed notify message: NUL byte at offset 7`},
		{"STATUS=\xff", ErrMalformed, `systemd: malformed notify message: not valid UTF-8`},
		{strings.Repeat("x", 100), ErrMalformed, `systemd: malformed notify message: line 1: missing "=" in "` + strings.Repeat("x", 64) + `"...`},
		{"X=" + strings.Repeat("y", MaxMessageSize), ErrMessageTooLarge, "systemd: notify message too large: 4098 bytes, limit 4096"},
	}
	for _, tt := range tests {
		_, err := ParseMessage([]byte(tt.in))
		if !errors.Is(err, tt.target) {
			t.Errorf("%.20q: got %v, want %v", tt.in, err, tt.target)
			continue
		}
		if err.Error() != tt.message {
			t.Errorf("%.20q: error text\n got %s\nwant %s", tt.in, err, tt.message)
		}
	}
	if _, err := ParseMessage([]byte("X=" + strings.Repeat("y", MaxMessageSize-2))); err != nil {
		t.Errorf("message of exactly MaxMessageSize bytes: %v", err)
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"READY=1", "READY=1\nSTATUS=hi\n", "RELOADING=1\nMONOTONIC_USEC=1", "WATCHDOG=trigger",
		"", "\n", "=", "a", "BARRIER=1", "X=\x00", "STATUS=\xc3", "STATUS=a=b\n\nSTOPPING=1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data)
		if err != nil {
			if !errors.Is(err, ErrEmptyMessage) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMessageTooLarge) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if len(data) > MaxMessageSize || len(m.Fields) == 0 || !bytes.Equal(m.Raw, data) {
			t.Fatalf("accepted %q as %+v", data, m)
		}
		for k, v := range m.Fields {
			if k == "" || strings.ContainsAny(k, "=\n\x00") || strings.ContainsAny(v, "\n\x00") {
				t.Fatalf("bad field %q=%q from %q", k, v, data)
			}
		}
		if m.Ready != (m.Fields["READY"] == "1") || m.Status != m.Fields["STATUS"] ||
			m.Watchdog && m.WatchdogTrigger {
			t.Fatalf("flags disagree with fields: %+v", m)
		}
		// Re-encoding the fields gives a message that parses to the same fields.
		var b strings.Builder
		for k, v := range m.Fields {
			b.WriteString(k + "=" + v + "\n")
		}
		m2, err := ParseMessage([]byte(b.String()))
		if err != nil && !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("re-encoded %q: %v", b.String(), err)
		}
		if err == nil && len(m2.Fields) != len(m.Fields) {
			t.Fatalf("re-encoded fields differ: %v vs %v", m2.Fields, m.Fields)
		}
	})
}
