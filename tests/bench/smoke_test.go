package bench

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("os/signal.signal_recv"))
}

// TestSmoke runs every figure of the benchmark with tiny sizes against
// every peer installed, and fails when any figure could not be produced.
// It runs only with SUPERVISE_BENCH_SMOKE=1 (it needs root, unshare and the
// peers: see tests/bench/run.sh). Unless SUPERVISE_BENCH_PEERS_OPTIONAL=1,
// a missing peer is a failure too.
func TestSmoke(t *testing.T) {
	if os.Getenv("SUPERVISE_BENCH_SMOKE") != "1" {
		t.Skip("set SUPERVISE_BENCH_SMOKE=1 to run the benchmark smoke test")
	}
	var log strings.Builder
	r, err := Run(Options{Smoke: true, Log: &log})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Log("\n" + r.Markdown())
	if len(r.Absent) > 0 && os.Getenv("SUPERVISE_BENCH_PEERS_OPTIONAL") != "1" {
		t.Errorf("peers absent: %v", r.Absent)
	}
	if len(r.Missing) > 0 {
		t.Errorf("figures not produced: %s", strings.Join(r.Missing, ", "))
	}
	for _, e := range r.Errors {
		t.Errorf("error: %s", e)
	}
	t.Logf("smoke run took %v", r.Elapsed)
}

// TestRestartLatencies checks the pairing of exit and start stamps.
func TestRestartLatencies(t *testing.T) {
	lines := []stampLine{
		{"start", 1, 0, "a"}, {"exit", 1, 1_000_000, "a"}, {"start", 2, 4_000_000, "a"},
		{"start", 3, 500_000, "b"}, {"exit", 3, 2_000_000, "b"}, {"start", 4, 2_500_000, "b"},
		{"exit", 4, 9_000_000, "b"}, // no restart yet
	}
	got := restartLatencies(lines)
	if len(got) != 2 {
		t.Fatalf("latencies %v, want 2", got)
	}
	sum := got[0] + got[1]
	if sum != 3.5 {
		t.Errorf("latencies %v, want 3 ms and 0.5 ms", got)
	}
}

// TestQuantile checks the nearest-rank quantiles used in every table.
func TestQuantile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, c := range []struct{ q, want float64 }{{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0, 1}} {
		if got := quantile(v, c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestSmokeLight runs the figures the C probe serves (-light) with tiny
// sizes, under the same conditions as TestSmoke.
func TestSmokeLight(t *testing.T) {
	if os.Getenv("SUPERVISE_BENCH_SMOKE") != "1" {
		t.Skip("set SUPERVISE_BENCH_SMOKE=1 to run the benchmark smoke test")
	}
	var log strings.Builder
	r, err := Run(Options{Smoke: true, Light: true, Log: &log})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := r.Machine["probe"]; !strings.HasPrefix(got, "C ") {
		t.Errorf("probe = %q, want the C probe", got)
	}
	if len(r.Missing) > 0 {
		t.Errorf("figures not produced: %s", strings.Join(r.Missing, ", "))
	}
	for _, e := range r.Errors {
		t.Errorf("error: %s", e)
	}
}
