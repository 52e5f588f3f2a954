package bench

import (
	"fmt"
	"sort"
	"strings"
)

// figureDoc names a figure's table and its columns.
type figureDoc struct {
	fig, title string
	metrics    []string
	ratio      string // metric compared as supervise / peer
}

// figureDocs lists the tables in the order they are written. A nil
// metrics list takes the figure's metrics in the order they were first
// recorded (the sizes of the scale figure, the ratios derived from it).
var figureDocs = []figureDoc{
	{"floor", "Probe floor (Go parent, os/exec): spawn -> first stamp, exit stamp -> reaped (ms)", []string{"spawn_ms", "reap_ms", "sum_ms"}, ""},
	{"restart", "1. Restart latency: exit stamp -> next start stamp (ms)", []string{"p50_ms", "p90_ms", "restarts"}, "p50_ms"},
	{"crash", "2. Crash loop: starts in the window from the first start, final state", []string{"starts", "state"}, ""},
	{"idle100", "3. Idle cost, N = 100 sleeping programs, over the idle window", []string{"cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs"}, "pss_mib"},
	{"idle1000", "3. Idle cost, N = 1000 sleeping programs, over the idle window", []string{"cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs"}, "pss_mib"},
	{"idle10", "3. Idle cost, N = 10 (smoke)", []string{"cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs"}, "pss_mib"},
	{"idle20", "3. Idle cost, N = 20 (smoke)", []string{"cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs"}, "pss_mib"},
	{"memory", "3b. Memory: PSS = fixed part + N × per-program part", []string{"fixed_mib", "per_prog_kib"}, "per_prog_kib"},
	{"startup", "4. Start-up: launch -> every program wrote its start stamp (s)", []string{"n10_s", "n20_s", "n100_s", "n500_s", "n1000_s"}, "n500_s"},
	{"shutdown", "5. Shutdown: stop request -> supervisor and all programs gone (ms)", []string{"n10_ms", "n100_ms", "n500_ms"}, "n100_ms"},
	{"pid1", "6. Reaping as PID 1: double-forked orphans", []string{"zombies_after_1s", "reap_lag_ms", "max_zombies", "create_s", "reaped"}, "reap_lag_ms"},
	{"pid1pair", "6b. Reaping as PID 1, paired: supervise and tini alternated, reap lag (ms) over the pairs; last row: the paired differences", []string{"reap_lag_ms", "pairs", "supervise_le_tini"}, ""},
	{"watchdog", "7. Watchdog detection: (last beat + timeout) -> program dead (ms)", []string{"p50_ms", "p99_ms", "max_ms", "detected"}, "p99_ms"},
	{"wdtail", "7b. Watchdog detection tail: GOMAXPROCS 1 and 2, unpinned and pinned (supervisor on CPU 1, programs on CPU 0); rq_wait: the supervisor's time runnable but waiting for a CPU over the detections", []string{"p50_ms", "p99_ms", "max_ms", "rq_wait_ms", "rq_wait_us_per_wakeup", "detected"}, ""},
	{"wdidle", "7c. Idle cost of watched programs beating (per beat: schedstat run time and voluntary switches ÷ beats in the window)", []string{"cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs", "us_per_beat", "vcs_per_beat"}, "cpu_ms"},
	{"log", "8. Log capture of 100-byte lines", []string{"mb_s", "cpu_ms_per_mb", "captured_mb"}, "mb_s"},
	{"storm", "9. Restart storm: programs living 0.5–1.5 s that exit 1, no backoff, breaker off", []string{"restarts_per_s", "p50_ms", "p99_ms", "cpu_us_per_restart", "lost", "last_back_ms"}, "cpu_us_per_restart"},
	{"scale_startup", "10. Scale: start-up (s) by N", nil, ""},
	{"scale_cpu", "10. Scale: idle CPU over the idle window (ms, schedstat) by N", nil, ""},
	{"scale_vcs", "10. Scale: idle voluntary switches over the idle window by N", nil, ""},
	{"scale_pss", "10. Scale: PSS of the supervisor's processes (MiB) by N", nil, ""},
	{"scale_shutdown", "10. Scale: shutdown (ms) by N", nil, ""},
	{"scale_growth", "10. Scale: growth from one N to the next (ratio of medians)", nil, ""},
	{"scale_perprog", "10. Scale: cost per program at the largest N (PSS: slope between the two largest N)", []string{"startup_ms", "idle_cpu_us", "idle_vcs", "pss_kib", "shutdown_ms"}, "pss_kib"},
}

// Median returns the median of the samples of a figure cell, and whether
// there were any.
func (r *Results) Median(fig, peer, metric string) (float64, bool) {
	v := r.Samples[key(fig, peer, metric)]
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

func fmtNum(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func (r *Results) cell(fig, peer, metric string) string {
	if t := r.Texts[key(fig, peer, metric)]; len(t) > 0 {
		return strings.Join(t, "; ")
	}
	v := r.Samples[key(fig, peer, metric)]
	switch len(v) {
	case 0:
		if r.expect[key(fig, peer, metric)] {
			return "MISSING"
		}
		return "-"
	case 1:
		return fmtNum(v[0])
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return fmt.Sprintf("%s (%s–%s)", fmtNum(median(s)), fmtNum(s[0]), fmtNum(s[len(s)-1]))
}

// Markdown renders every figure as a table, peers side by side, with the
// ratio of supervise to each peer on the figure's main metric.
func (r *Results) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Runs: %d%s. Cells with several runs: median (min–max over runs).\n\n", r.Runs,
		map[bool]string{true: " (smoke mode)", false: ""}[r.Smoke])
	if before, after := r.Machine["load before"], r.Machine["load after"]; before != "" || after != "" {
		fmt.Fprintf(&b, "Load average (1, 5, 15 min, /proc/loadavg): %s before the run, %s after it.\n\n", before, after)
	}
	for _, d := range figureDocs {
		peers := r.order[d.fig]
		if len(peers) == 0 {
			continue
		}
		var cols []string
		metrics := d.metrics
		if metrics == nil {
			metrics = r.morder[d.fig]
		}
		for _, m := range metrics {
			for _, p := range peers {
				k := key(d.fig, p, m)
				if r.expect[k] || len(r.Samples[k]) > 0 || len(r.Texts[k]) > 0 {
					cols = append(cols, m)
					break
				}
			}
		}
		fmt.Fprintf(&b, "### %s\n\n| peer | %s |\n|---|%s\n", d.title, strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
		for _, p := range peers {
			cells := make([]string, len(cols))
			for i, m := range cols {
				cells[i] = r.cell(d.fig, p, m)
			}
			fmt.Fprintf(&b, "| %s | %s |\n", p, strings.Join(cells, " | "))
		}
		if d.ratio != "" {
			sv, ok := r.Median(d.fig, "supervise", d.ratio)
			var rs []string
			for _, p := range peers {
				if p == "supervise" {
					continue
				}
				pv, ok2 := r.Median(d.fig, p, d.ratio)
				if ok && ok2 && pv != 0 {
					rs = append(rs, fmt.Sprintf("%s %.2f", p, sv/pv))
				}
			}
			if len(rs) > 0 {
				fmt.Fprintf(&b, "\nsupervise ÷ peer (%s, medians): %s\n", d.ratio, strings.Join(rs, ", "))
			}
		}
		b.WriteString("\n")
		for _, n := range r.Notes[d.fig] {
			b.WriteString(n)
			if !strings.HasSuffix(n, "\n") {
				b.WriteString("\n")
			}
			b.WriteString("\n")
		}
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "Missing figures: %s\n\n", strings.Join(r.Missing, ", "))
	}
	if len(r.Errors) > 0 {
		b.WriteString("Errors:\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}
