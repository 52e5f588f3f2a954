package control

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteTableProbes(t *testing.T) {
	ps := []ProgramStatus{
		{Name: "web", State: "running", Breaker: BreakerStatus{State: "closed"}, Probes: &ProbesStatus{
			Readiness: &ProbeStatus{Kind: "http", State: "passing"},
			Liveness:  &ProbeStatus{Kind: "exec", State: "passing", ConsecutiveFailures: 2}}},
		{Name: "db", State: "starting", Breaker: BreakerStatus{State: "closed"}, Probes: &ProbesStatus{
			Readiness: &ProbeStatus{Kind: "tcp", State: "failing", ConsecutiveFailures: 4}}},
		{Name: "new", State: "starting", Breaker: BreakerStatus{State: "closed"}, Probes: &ProbesStatus{
			Liveness: &ProbeStatus{Kind: "tcp", State: "unknown"}}},
		{Name: "plain", State: "running", Breaker: BreakerStatus{State: "closed"}},
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, ps); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	want := []string{"LAST EXIT   PROBES", "-           ready ok, live ok", "-           ready fail 4", "-           live ?", "-           -"}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d %q does not end with %q", i, lines[i], w)
		}
	}
}

// The instances of a program with replicas keep their probes' column
// under their group's line.
func TestWriteTableGroupedProbes(t *testing.T) {
	closed := BreakerStatus{State: "closed"}
	ps := []ProgramStatus{
		{Name: "db", Program: "db", State: "running", Breaker: closed},
		{Name: "web:0", Program: "web", State: "running", Breaker: closed, PID: 41, UptimeSeconds: 3,
			Probes: &ProbesStatus{Readiness: &ProbeStatus{Kind: "http", State: "passing"}}},
		{Name: "web:1", Program: "web", Replica: 1, State: "starting", Breaker: closed, PID: 42, UptimeSeconds: 3,
			Probes: &ProbesStatus{Readiness: &ProbeStatus{Kind: "http", State: "failing", ConsecutiveFailures: 3}}},
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, ps); err != nil {
		t.Fatal(err)
	}
	want := `NAME      STATE      PID   UPTIME   RESTARTS   BREAKER   HEARTBEAT   LAST EXIT   PROBES
db        running    -     -        0          closed    -           -           -
web       1 running, 1 starting
  web:0   running    41    3s       0          closed    -           -           ready ok
  web:1   starting   42    3s       0          closed    -           -           ready fail 3
`
	if got := buf.String(); got != want {
		t.Errorf("table\n%s\nwant\n%s", got, want)
	}
}
