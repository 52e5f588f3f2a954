package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// manyProbe is the probe of the figures whose programs start by the
// thousand: the C probe, whose start costs microseconds, when it was built.
func (h *harness) manyProbe() string {
	if h.cprobe != "" {
		return h.cprobe
	}
	return h.goProbe
}

// stormLife is the lifetime of program i of n in the restart storm: spread
// evenly over [lo, hi) (0.5–1.5 s in a full run), so exits do not come in
// waves.
func stormLife(i, n int, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(i)*(hi-lo)/time.Duration(n)
}

// storm: stormN programs that each live 0.5–1.5 s (stormLo–stormHi) and
// exit 1, restarted at once (no backoff, no breaker) for stormDur. From the
// probes' stamps: restarts per second in the window, restart latency (exit
// stamp -> next start stamp of the same program) of the exits in the
// window, and lost programs: those that do not start again within
// stormGrace after the window (every program lives at most stormHi, so a
// supervised one starts again within stormHi plus its restart latency);
// last_back_ms is when the last program started again. From /proc: the
// supervisor's CPU (schedstat run time of all its processes) per restart.
func (h *harness) storm(peers []peer) {
	const fig = "storm"
	n := h.p.stormN
	probe := h.manyProbe()
	var ideal float64
	for i := 0; i < n; i++ {
		ideal += 1 / stormLife(i, n, h.p.stormLo, h.p.stormHi).Seconds()
	}
	for _, p := range peers {
		h.r.want(fig, p.name(), "restarts_per_s", "p50_ms", "p99_ms", "cpu_us_per_restart", "lost", "last_back_ms")
		// The programs wait at a FIFO after their first start stamp, so the
		// storm begins for all at once when the harness opens it, however
		// long the peer takes to start them all (pm2: minutes for 1000).
		gate := filepath.Join(h.work, "gate-"+p.name())
		if err := unix.Mkfifo(gate, 0o644); err != nil {
			h.fail(fig, p.name(), fmt.Errorf("gate: %w", err))
			continue
		}
		progs := make([]progSpec, n)
		for i := range progs {
			progs[i] = progSpec{id: fmt.Sprintf("x%d", i), restart: true,
				args: []string{"-gate", gate, "-live", stormLife(i, n, h.p.stormLo, h.p.stormHi).String(), "-code", "1"}}
		}
		in, sr, err := h.startNProbe(p, fig, progs, n, 900*time.Second, probe)
		if err != nil {
			h.fail(fig, p.name(), err)
			continue
		}
		time.Sleep(h.p.settle)
		pids := supervisorPIDs(in.pid, h.progExes()...)
		open, err := os.OpenFile(gate, os.O_RDWR, 0) // a writer that does not wait for a reader
		if err != nil {
			h.fail(fig, p.name(), fmt.Errorf("gate: %w", err))
			h.teardown(in, sr)
			continue
		}
		t0, u0 := mono(), measure(pids)
		time.Sleep(h.p.stormDur)
		t1, u1 := mono(), measure(pids)
		h.logf("storm %s: window over; waiting up to %v for every program to start again", p.name(), h.p.stormGrace)
		back := waitAllStarted(sr, progs, t1, h.p.stormGrace)
		t2 := mono()
		lost := lostPrograms(sr.lines, progs, t1, t2)
		var states []string
		for i, id := range lost {
			if i == 5 {
				states = append(states, fmt.Sprintf("and %d more", len(lost)-5))
				break
			}
			states = append(states, id+": "+in.state(id))
		}
		h.teardown(in, sr)
		open.Close()
		os.Remove(gate)
		restarts, lat := stormRestarts(sr.lines, t0, t1)
		d := u1.sub(u0)
		secs := float64(t1-t0) / 1e9
		h.r.add(fig, p.name(), "restarts_per_s", float64(restarts)/secs)
		h.r.add(fig, p.name(), "p50_ms", median(lat))
		h.r.add(fig, p.name(), "p99_ms", quantile(lat, 0.99))
		h.r.add(fig, p.name(), "cpu_us_per_restart", float64(d.runNS)/1e3/float64(max(1, restarts)))
		h.r.add(fig, p.name(), "lost", float64(len(lost)))
		h.r.add(fig, p.name(), "last_back_ms", ms(back-t1))
		if len(lost) > 0 {
			h.r.addNote(fig, fmt.Sprintf("%s: %d programs lost; their state by %s's own status: %s.", p.name(), len(lost), p.name(), strings.Join(states, "; ")))
		}
		h.logf("storm %s: %.0f restarts/s (ideal %.0f), p50 %.2f ms, p99 %.2f ms, %.1f µs CPU per restart, %d lost",
			p.name(), float64(restarts)/secs, ideal, median(lat), quantile(lat, 0.99), float64(d.runNS)/1e3/float64(max(1, restarts)), len(lost))
	}
	h.r.addNote(fig, fmt.Sprintf("With no restart latency at all the %d programs would make %s restarts per second.", n, fmtNum(ideal)))
}

// stormRestarts counts the start stamps in (t0, t1] and the latencies of
// the exits in that window to the next start of the same program.
func stormRestarts(lines []stampLine, t0, t1 int64) (int, []float64) {
	byID := map[string][]stampLine{}
	restarts := 0
	for _, l := range lines {
		if l.kind == "start" && l.ns > t0 && l.ns <= t1 {
			restarts++
		}
		if l.kind == "start" || l.kind == "exit" {
			byID[l.id] = append(byID[l.id], l)
		}
	}
	var lat []float64
	for _, ls := range byID {
		sort.Slice(ls, func(i, j int) bool { return ls[i].ns < ls[j].ns })
		for i := 0; i+1 < len(ls); i++ {
			if ls[i].kind == "exit" && ls[i].ns > t0 && ls[i].ns <= t1 && ls[i+1].kind == "start" {
				lat = append(lat, ms(ls[i+1].ns-ls[i].ns))
			}
		}
	}
	return restarts, lat
}

// waitAllStarted polls the stamps until every program has started after
// from or limit passes, and returns when the last of them started (or the
// time it gave up).
func waitAllStarted(sr *stampReader, progs []progSpec, from int64, limit time.Duration) int64 {
	deadline := time.Now().Add(limit)
	seen := map[string]int64{}
	for done := 0; ; {
		sr.poll()
		for _, l := range sr.lines[done:] {
			if l.kind == "start" && l.ns > from {
				if t, ok := seen[l.id]; !ok || l.ns < t {
					seen[l.id] = l.ns
				}
			}
		}
		done = len(sr.lines)
		if len(seen) == len(progs) {
			last := from
			for _, t := range seen {
				last = max(last, t)
			}
			return last
		}
		if time.Now().After(deadline) {
			return mono()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lostPrograms returns the programs with no start stamp in (from, to].
func lostPrograms(lines []stampLine, progs []progSpec, from, to int64) []string {
	started := map[string]bool{}
	for _, l := range lines {
		if l.kind == "start" && l.ns > from && l.ns <= to {
			started[l.id] = true
		}
	}
	var lost []string
	for _, p := range progs {
		if !started[p.id] {
			lost = append(lost, p.id)
		}
	}
	return lost
}
