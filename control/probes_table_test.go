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
