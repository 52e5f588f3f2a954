package bench

import (
	"fmt"
	"time"
)

// scaleSideBySide is the largest N whose peers run at once; above it each
// peer runs alone (3 × 10,000 sleepers and 20,000 runsv and s6-supervise
// processes at once would take about 10 GB).
const scaleSideBySide = 2000

// scale: for each N of scaleNs, N programs that stamp and exec sleep
// (the C probe when built) and whose output goes where the supervisor's
// goes (supervise stdout and stderr "inherit", which is what runit and s6
// do without a log service; it also keeps supervise at two descriptors
// per program fewer, below a hard limit of 20,000 open files at N =
// 10,000), under each peer: start-up (launch -> the last
// start stamp), the idle cost over idleDur (CPU, switches, PSS of the
// supervisor's own processes), and shutdown (stop request -> the
// supervisor and every program gone, by pidfd). Peers of one N share one
// idle window up to scaleSideBySide programs, one after the other above.
func (h *harness) scale(peers []peer) {
	probe := h.manyProbe()
	for _, n := range h.p.scaleNs {
		if problems := raiseLimits(3*n+100, 3*n+4096); len(problems) > 0 {
			h.logf("warning: scale N=%d: could not raise %v", n, problems)
		}
		groups := [][]peer{peers}
		if n > scaleSideBySide {
			groups = nil
			for _, p := range peers {
				groups = append(groups, []peer{p})
			}
		}
		for _, g := range groups {
			h.scaleGroup(n, g, probe)
		}
		restoreLimits()
	}
}

func (h *harness) scaleGroup(n int, peers []peer, probe string) {
	col := fmt.Sprintf("n%d", n)
	type run struct {
		p    peer
		in   *instance
		sr   *stampReader
		pids []int
		u0   usage
	}
	var runs []*run
	for _, p := range peers {
		for _, f := range []string{"scale_startup", "scale_cpu", "scale_vcs", "scale_pss", "scale_shutdown"} {
			h.r.want(f, p.name(), col)
		}
		progs := sleepers(n, "z")
		for i := range progs {
			progs[i].inherit = true
		}
		in, sr, err := h.startNProbe(p, fmt.Sprintf("scale%d", n), progs, n, 600*time.Second, probe)
		if err != nil {
			h.fail("scale_startup", p.name(), fmt.Errorf("N=%d: %w", n, err))
			continue
		}
		last := int64(0)
		for _, l := range sr.lines {
			if l.kind == "start" && l.ns > last {
				last = l.ns
			}
		}
		h.r.add("scale_startup", p.name(), col, float64(last-in.launched)/1e9)
		h.logf("scale %s N=%d: started in %.3f s", p.name(), n, float64(last-in.launched)/1e9)
		runs = append(runs, &run{p: p, in: in, sr: sr})
	}
	time.Sleep(h.p.settle)
	for _, r := range runs {
		r.pids = supervisorPIDs(r.in.pid, h.progExes()...)
		r.u0 = measure(r.pids)
	}
	h.logf("scale N=%d: idle window of %v for %d peers", n, h.p.idleDur, len(runs))
	time.Sleep(h.p.idleDur)
	for _, r := range runs {
		d := measure(r.pids).sub(r.u0)
		h.r.add("scale_cpu", r.p.name(), col, float64(d.runNS)/1e6)
		h.r.add("scale_vcs", r.p.name(), col, float64(d.vcs))
		h.r.add("scale_pss", r.p.name(), col, float64(d.pssKB)/1024)
		h.logf("scale %s N=%d: idle %.1f ms CPU, %d switches, PSS %.1f MiB over %d processes",
			r.p.name(), n, float64(d.runNS)/1e6, d.vcs, float64(d.pssKB)/1024, d.nprocs)
	}
	for _, r := range runs {
		msd, left, err := h.measureShutdown(r.in)
		h.teardown(r.in, r.sr)
		if err != nil {
			h.fail("scale_shutdown", r.p.name(), fmt.Errorf("N=%d: %w", n, err))
			continue
		}
		if left > 0 {
			h.fail("scale_shutdown", r.p.name(), fmt.Errorf("N=%d: %d processes still alive after 120 s", n, left))
			continue
		}
		h.r.add("scale_shutdown", r.p.name(), col, msd)
		h.logf("scale %s N=%d: shutdown %.1f ms", r.p.name(), n, msd)
	}
}

// measureShutdown sends in's stop request and returns the time until its
// root and every process below it had exited, by pidfd, and how many were
// still alive after 120 s.
func (h *harness) measureShutdown(in *instance) (float64, int, error) {
	all := descendants(in.pid)
	var watch []int
	for _, pid := range all {
		if pid != in.pid {
			watch = append(watch, pid)
		}
	}
	w, err := newPidWatcher(watch)
	if err != nil {
		return 0, 0, err
	}
	t0 := mono()
	if err := in.stop(); err != nil {
		w.close()
		return 0, 0, fmt.Errorf("stop: %w", err)
	}
	w.wait(120 * time.Second)
	left := w.left()
	w.close()
	select {
	case <-in.exited:
	case <-time.After(60 * time.Second):
		return 0, left, fmt.Errorf("%w: the supervisor did not exit", ErrTimeout)
	}
	end := in.exitAt
	for _, t := range w.death {
		if t > end {
			end = t
		}
	}
	return ms(end - t0), left, nil
}
