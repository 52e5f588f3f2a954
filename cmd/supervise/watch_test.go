package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

func watchRows(states ...string) []control.ProgramStatus {
	var out []control.ProgramStatus
	for i := 0; i+1 < len(states); i += 2 {
		out = append(out, control.ProgramStatus{Name: states[i], State: states[i+1], Breaker: control.BreakerStatus{State: "closed"}})
	}
	return out
}

// Without a terminal, status --watch prints the table once, then a line
// per program whose row changed; moving clocks alone are no change.
func TestWatchLines(t *testing.T) {
	var b bytes.Buffer
	w := &statusWatch{out: &b, now: func() time.Time { return time.Date(2025, 1, 2, 10, 0, 1, 0, time.UTC) }}
	w.show(watchRows("db", "running", "web", "starting"))
	if got := b.String(); !strings.HasPrefix(got, "NAME") || strings.Count(got, "\n") != 3 {
		t.Fatalf("first update %q, want the table", got)
	}
	b.Reset()
	rows := watchRows("db", "running", "web", "running")
	rows[0].UptimeSeconds = 30
	w.show(rows)
	if got := b.String(); !strings.HasPrefix(got, "10:00:01 web") || !strings.Contains(got, "running") || strings.Count(got, "\n") != 1 {
		t.Fatalf("second update %q, want one line for web", got)
	}
	b.Reset()
	w.show(watchRows("web", "running"))
	if got := b.String(); got != "10:00:01 db removed\n" {
		t.Fatalf("third update %q", got)
	}
}

// The instances of a program with replicas are grouped in the table: a
// changed one still gets its own row, and a probe's change of state is a
// change of the row.
func TestWatchLinesOfInstances(t *testing.T) {
	var b bytes.Buffer
	w := &statusWatch{out: &b, now: func() time.Time { return time.Date(2025, 1, 2, 10, 0, 1, 0, time.UTC) }}
	rows := func(st1, probe string) []control.ProgramStatus {
		rs := watchRows("db", "running", "web:0", "running", "web:1", st1)
		rs[1].Program, rs[2].Program = "web", "web"
		rs[1].Replica, rs[2].Replica = 0, 1
		rs[0].Probes = &control.ProbesStatus{Readiness: &control.ProbeStatus{Kind: "tcp", State: probe}}
		return rs
	}
	w.show(rows("starting", "unknown"))
	if got := b.String(); !strings.Contains(got, "\n  web:1 ") {
		t.Fatalf("first update %q, want the grouped table", got)
	}
	b.Reset()
	w.show(rows("backoff", "unknown"))
	if got := b.String(); !strings.HasPrefix(got, "10:00:01 web:1 ") || !strings.Contains(got, "backoff") || strings.Count(got, "\n") != 1 {
		t.Fatalf("second update %q, want one line for web:1", got)
	}
	b.Reset()
	w.show(rows("backoff", "passing"))
	if got := b.String(); !strings.HasPrefix(got, "10:00:01 db ") || !strings.Contains(got, "ready ok") || strings.Count(got, "\n") != 1 {
		t.Fatalf("third update %q, want one line for db", got)
	}
}

// On a terminal, each update clears the screen and draws the table.
func TestWatchTerminal(t *testing.T) {
	var b bytes.Buffer
	w := &statusWatch{out: &b, tty: true, now: time.Now}
	w.show(watchRows("db", "running"))
	w.show(watchRows("db", "backoff"))
	got := b.String()
	if strings.Count(got, "\x1b[H\x1b[2J") != 2 || strings.Count(got, "NAME") != 2 || !strings.Contains(got, "backoff") {
		t.Fatalf("terminal output %q", got)
	}
}

func TestWatchJSON(t *testing.T) {
	var b bytes.Buffer
	w := &statusWatch{out: &b, json: true, now: time.Now}
	w.show(watchRows("db", "running"))
	w.show(nil)
	if got := b.String(); strings.Count(got, "\n") != 2 || !strings.Contains(got, `"name":"db"`) || !strings.HasSuffix(got, "{\"programs\":[]}\n") {
		t.Fatalf("json output %q", got)
	}
	if isTerminal(&b) {
		t.Fatal("a buffer is a terminal")
	}
}
