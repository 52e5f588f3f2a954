package supervisor

import (
	"fmt"
	"io"
	"strings"

	"github.com/supervise/supervise/supervisor/events"
)

// writeEventMetrics renders the events' and the hooks' counters in the
// Prometheus text format. The counters are atomics, read off the loop.
func (s *Supervisor) writeEventMetrics(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP supervise_events_total Events published, by kind.\n# TYPE supervise_events_total counter\n")
	for _, k := range events.Kinds {
		fmt.Fprintf(&b, "supervise_events_total{kind=%q} %d\n", k.String(), s.bus.Count(k))
	}
	names, counts := s.hookStats.snapshot()
	for _, f := range []struct {
		name, help string
		get        func(c *hookCounters) uint64
	}{
		{"supervise_hook_runs_total", "Runs of the hook.", func(c *hookCounters) uint64 { return c.runs.Load() }},
		{"supervise_hook_failures_total", "Runs of the hook that failed, timed out or could not start.", func(c *hookCounters) uint64 { return c.failures.Load() }},
		{"supervise_hook_coalesced_total", "Events that ran the hook only as part of a later run.", func(c *hookCounters) uint64 { return c.coalesced.Load() }},
	} {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", f.name, f.help, f.name)
		for _, n := range names {
			fmt.Fprintf(&b, "%s{hook=%q} %d\n", f.name, n, f.get(counts[n]))
		}
	}
	io.WriteString(w, b.String())
}
