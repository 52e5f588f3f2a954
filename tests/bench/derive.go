package bench

import (
	"fmt"
	"sort"
)

// scaleMetrics are the tables of the scale figure and the unit of each.
var scaleMetrics = []struct{ fig, name, unit string }{
	{"scale_startup", "startup", "s"},
	{"scale_cpu", "idle_cpu", "ms"},
	{"scale_vcs", "idle_vcs", ""},
	{"scale_pss", "pss", "MiB"},
	{"scale_shutdown", "shutdown", "ms"},
}

// derive adds the figures computed from the medians of others: the growth
// of the scale figure from one N to the next with its cost per program, and
// the split of PSS into a fixed and a per-program part.
func (h *harness) derive() {
	ns := append([]int(nil), h.p.scaleNs...)
	sort.Ints(ns)
	for _, m := range scaleMetrics {
		for i := 1; i < len(ns); i++ {
			h.r.column("scale_growth", fmt.Sprintf("%s_%d/%d", m.name, ns[i], ns[i-1]))
		}
	}
	for _, p := range h.r.order["scale_startup"] {
		for _, m := range scaleMetrics {
			for i := 1; i < len(ns); i++ {
				a, okA := h.r.Median(m.fig, p, fmt.Sprintf("n%d", ns[i-1]))
				b, okB := h.r.Median(m.fig, p, fmt.Sprintf("n%d", ns[i]))
				if okA && okB && a > 0 {
					h.r.add("scale_growth", p, fmt.Sprintf("%s_%d/%d", m.name, ns[i], ns[i-1]), b/a)
				}
			}
		}
		if len(ns) == 0 {
			continue
		}
		top := ns[len(ns)-1]
		col := fmt.Sprintf("n%d", top)
		if v, ok := h.r.Median("scale_startup", p, col); ok {
			h.r.add("scale_perprog", p, "startup_ms", v*1e3/float64(top))
		}
		if v, ok := h.r.Median("scale_shutdown", p, col); ok {
			h.r.add("scale_perprog", p, "shutdown_ms", v/float64(top))
		}
		if v, ok := h.r.Median("scale_cpu", p, col); ok {
			h.r.add("scale_perprog", p, "idle_cpu_us", v*1e3/float64(top))
		}
		if v, ok := h.r.Median("scale_vcs", p, col); ok {
			h.r.add("scale_perprog", p, "idle_vcs", v/float64(top))
		}
		if len(ns) >= 2 {
			lo := fmt.Sprintf("n%d", ns[len(ns)-2])
			a, okA := h.r.Median("scale_pss", p, lo)
			b, okB := h.r.Median("scale_pss", p, col)
			if okA && okB {
				h.r.add("scale_perprog", p, "pss_kib", (b-a)*1024/float64(top-ns[len(ns)-2]))
			}
		}
	}
	h.memoryFit()
}

// memoryFit splits each peer's PSS into a fixed part and a part per
// program, from two sizes measured in the same run: the idle figure's
// N = 100 and 1000 when both ran, else the two smallest sizes of the scale
// figure. With PSS(N) = fixed + N × per: per = (PSS(b) − PSS(a)) / (b − a).
func (h *harness) memoryFit() {
	type src struct {
		a, b    int
		get     func(peer string, n int) (float64, bool)
		from    string
		peersOf string
	}
	idle := func(peer string, n int) (float64, bool) { return h.r.Median(fmt.Sprintf("idle%d", n), peer, "pss_mib") }
	scale := func(peer string, n int) (float64, bool) { return h.r.Median("scale_pss", peer, fmt.Sprintf("n%d", n)) }
	var s *src
	if len(h.r.order["idle100"]) > 0 && len(h.r.order["idle1000"]) > 0 {
		s = &src{a: 100, b: 1000, get: idle, from: "figure 3 (idle), N = 100 and 1000", peersOf: "idle100"}
	} else if len(h.p.scaleNs) >= 2 && len(h.r.order["scale_pss"]) > 0 {
		ns := append([]int(nil), h.p.scaleNs...)
		sort.Ints(ns)
		s = &src{a: ns[0], b: ns[1], get: scale, from: fmt.Sprintf("the scale figure, N = %d and %d", ns[0], ns[1]), peersOf: "scale_pss"}
	}
	if s == nil {
		return
	}
	for _, p := range h.r.order[s.peersOf] {
		h.r.want("memory", p, "fixed_mib", "per_prog_kib")
		pa, okA := s.get(p, s.a)
		pb, okB := s.get(p, s.b)
		if !okA || !okB {
			continue
		}
		per := (pb - pa) / float64(s.b-s.a) // MiB per program
		h.r.add("memory", p, "fixed_mib", pa-per*float64(s.a))
		h.r.add("memory", p, "per_prog_kib", per*1024)
	}
	h.r.addNote("memory", fmt.Sprintf("From the PSS medians of %s: per program = (PSS(%d) − PSS(%d)) / %d, fixed = PSS(%d) − %d × per program.",
		s.from, s.b, s.a, s.b-s.a, s.a, s.a))
}
