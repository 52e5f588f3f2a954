// Package bench measures supervise against supervisord, runit, s6, pm2,
// tini, dumb-init and monit on the machine it runs on.
//
// Run starts each supervisor in the foreground on private configuration
// directories under a temporary directory (never a system service; pm2's
// daemon with PM2_HOME there), makes it supervise the probe program
// (tests/bench/probe, or the C probe tests/bench/cprobe), and derives every
// figure from the probe's CLOCK_MONOTONIC stamps and from /proc: restart
// latency, a crash loop, idle cost and memory, start-up, shutdown, reaping
// as PID 1 (also paired against tini), watchdog detection and its tail,
// the cost of heartbeat beats, log capture, a restart storm, and scale to
// 10,000 programs. Results lists every figure it was asked for and could
// not produce in Missing, so a smoke run can fail on it.
package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// ErrTimeout is returned when an awaited event did not happen in time.
var ErrTimeout = errors.New("timed out")

// ErrNoSupervise is returned when the supervise binary cannot be had.
var ErrNoSupervise = errors.New("supervise binary unavailable")

// Options configures Run.
type Options struct {
	Smoke      bool      // tiny sizes, short durations, one run
	Runs       int       // repetitions of the repeated figures; 0 means 3 (1 in smoke mode)
	Supervise  string    // supervise binary; "" builds ./cmd/supervise of ModuleRoot
	ModuleRoot string    // module root; "" finds it from the working directory
	WorkDir    string    // scratch directory; "" makes a temporary one
	Keep       bool      // keep WorkDir afterwards
	Log        io.Writer // progress; nil discards
	Figures    []string  // figure names to run (restart, crash, startup, idle, shutdown, pid1, pid1pair, watchdog, wdtail, wdidle, log, storm, scale); empty: all
	// Light supervises tests/bench/cprobe (C, built with gcc) instead of the
	// Go probe, for the figures it supports (start-up, idle, shutdown): a
	// program's own start then costs microseconds, not a Go runtime's
	// milliseconds, so those figures show the supervisors' share.
	Light bool
	// Profile adds, when perf is installed, a perf profile of supervise to
	// the heartbeat-cost figure (wdidle), over a second window after the
	// measured one.
	Profile bool
	// Compare is a second supervise binary that, in the heartbeat-cost
	// figure, watches the same heartbeat files in the same window (peer
	// "supervise-cmp"), for a before/after comparison under one load.
	Compare string
	// ScaleNs replaces the sizes of the scale figure (100, 1000, 10000; 5
	// and 20 in smoke mode).
	ScaleNs []int
	// Peers, when not empty, limits the run to these peers (names as in
	// Results.Present: supervise, supervisord, runit, s6, s6-notify, pm2,
	// tini, dumb-init, monit, pm2-runtime); the others are reported absent
	// as "not selected". A before/after run of supervise alone uses it.
	Peers []string
}

// PeerNames are the names Options.Peers takes.
var PeerNames = []string{"supervise", "supervisord", "runit", "s6", "s6-notify", "pm2", "tini", "dumb-init", "monit", "pm2-runtime"}

// Figures are the names Options.Figures takes, in the order they run.
var Figures = []string{"restart", "startup", "idle", "shutdown", "pid1", "pid1pair", "watchdog", "wdtail", "wdidle",
	"log", "crash", "storm", "scale"}

// lightFigures are the figures the C probe can serve.
var lightFigures = []string{"startup", "idle", "shutdown"}

// params are the sizes of one mode.
type params struct {
	floorN                   int
	restartProgs, restarts   int
	crashDur                 time.Duration
	startNs, idleNs, shutNs  []int
	idleDur                  time.Duration
	orphans                  int
	wdProgs, wdIdleN         int
	wdBeat, wdIdleBeat       time.Duration
	wdTimeout, wdIdleTimeout time.Duration
	logLines                 int
	settle                   time.Duration
	pid1Reps, pairOrphans    int
	reapTimeout              time.Duration
	stormN                   int
	stormDur, stormGrace     time.Duration
	stormLo, stormHi         time.Duration
	scaleNs                  []int
}

var fullParams = params{
	floorN: 30, restartProgs: 5, restarts: 30, crashDur: 20 * time.Second,
	startNs: []int{100, 500, 1000}, idleNs: []int{100, 1000}, shutNs: []int{100, 500},
	idleDur: 60 * time.Second, orphans: 1000,
	wdProgs: 200, wdIdleN: 1000, wdBeat: 200 * time.Millisecond, wdIdleBeat: 10 * time.Second,
	wdTimeout: time.Second, wdIdleTimeout: 30 * time.Second, logLines: 2_000_000, settle: 3 * time.Second,
	pid1Reps: 12, pairOrphans: 500, reapTimeout: 20 * time.Second,
	stormN: 1000, stormDur: 60 * time.Second, stormGrace: 60 * time.Second, stormLo: 500 * time.Millisecond, stormHi: 1500 * time.Millisecond,
	scaleNs: []int{100, 1000, 10000},
}

var smokeParams = params{
	floorN: 5, restartProgs: 3, restarts: 2, crashDur: time.Second,
	startNs: []int{10}, idleNs: []int{10}, shutNs: []int{10},
	idleDur: time.Second, orphans: 50,
	wdProgs: 10, wdIdleN: 20, wdBeat: 100 * time.Millisecond, wdIdleBeat: time.Second,
	wdTimeout: time.Second, wdIdleTimeout: 5 * time.Second, logLines: 20_000, settle: 500 * time.Millisecond,
	pid1Reps: 2, pairOrphans: 20, reapTimeout: 2 * time.Second,
	stormN: 10, stormDur: 1500 * time.Millisecond, stormGrace: 5 * time.Second, stormLo: 100 * time.Millisecond, stormHi: 400 * time.Millisecond,
	scaleNs: []int{5, 20},
}

// Results holds every sample of a run.
type Results struct {
	Smoke   bool                 `json:"smoke"`
	Runs    int                  `json:"runs"`
	Machine map[string]string    `json:"machine"`
	Present []string             `json:"peers_present"`
	Absent  map[string]string    `json:"peers_absent"`
	Samples map[string][]float64 `json:"samples"` // "figure|peer|metric"
	Texts   map[string][]string  `json:"texts"`
	Notes   map[string][]string  `json:"notes"` // figure -> Markdown paragraphs shown under its table
	Missing []string             `json:"missing"`
	Errors  []string             `json:"errors"`
	Elapsed time.Duration        `json:"elapsed_ns"`
	expect  map[string]bool
	order   map[string][]string // figure -> peers in order of first use
	morder  map[string][]string // figure -> metrics in order of first use
}

func key(fig, peer, metric string) string { return fig + "|" + peer + "|" + metric }

func (r *Results) want(fig, peer string, metrics ...string) {
	for _, m := range metrics {
		r.expect[key(fig, peer, m)] = true
		r.seen(fig, peer, m)
	}
	r.seen(fig, peer, "")
}

// seen records the first use of a figure's peer and metric, for the order
// of rows and columns.
func (r *Results) seen(fig, peer, metric string) {
	if !slices.Contains(r.order[fig], peer) {
		r.order[fig] = append(r.order[fig], peer)
	}
	if metric != "" && !slices.Contains(r.morder[fig], metric) {
		r.morder[fig] = append(r.morder[fig], metric)
	}
}

// column declares a metric of a table whose columns follow first use, so
// that it comes before those recorded later.
func (r *Results) column(fig, metric string) {
	if !slices.Contains(r.morder[fig], metric) {
		r.morder[fig] = append(r.morder[fig], metric)
	}
}

func (r *Results) add(fig, peer, metric string, v float64) {
	r.seen(fig, peer, metric)
	r.Samples[key(fig, peer, metric)] = append(r.Samples[key(fig, peer, metric)], v)
}

func (r *Results) addNote(fig, text string) {
	r.Notes[fig] = append(r.Notes[fig], text)
}

func (r *Results) addText(fig, peer, metric, v string) {
	r.seen(fig, peer, metric)
	r.Texts[key(fig, peer, metric)] = append(r.Texts[key(fig, peer, metric)], v)
}

// harness carries the state of one Run.
type harness struct {
	o        Options
	p        params
	r        *Results
	log      io.Writer
	work     string
	probe    string // the probe of most figures
	goProbe  string // the Go probe
	cprobe   string // the C probe, "" without gcc
	inofloor string // the C inotify reader of the wdidle figure, "" without gcc
	sv       string
	seq      int
	present  map[string]bool
}

func (h *harness) logf(format string, a ...any) {
	fmt.Fprintf(h.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

func (h *harness) fail(fig, peer string, err error) {
	msg := fmt.Sprintf("%s/%s: %v", fig, peer, err)
	h.r.Errors = append(h.r.Errors, msg)
	h.logf("ERROR %s", msg)
}

// newEnv makes a fresh private directory.
func (h *harness) newEnv(tag string) (env, error) {
	h.seq++
	d := filepath.Join(h.work, fmt.Sprintf("%03d-%s", h.seq, tag))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return env{}, fmt.Errorf("env: %w", err)
	}
	return env{dir: d, probe: h.probe, stamps: filepath.Join(d, "stamps"), sv: h.sv}, nil
}

func (h *harness) enabled(fig string) bool {
	if len(h.o.Figures) == 0 {
		return true
	}
	for _, f := range h.o.Figures {
		if f == fig {
			return true
		}
	}
	return false
}

// Run runs the benchmark and returns its results. An error means the run
// could not happen at all; figures that failed are in Results.Missing.
func Run(o Options) (*Results, error) {
	start := time.Now()
	for _, f := range o.Figures {
		if !slices.Contains(Figures, f) {
			return nil, fmt.Errorf("unknown figure %q; the figures are %s", f, strings.Join(Figures, ", "))
		}
	}
	for _, p := range o.Peers {
		if !slices.Contains(PeerNames, p) {
			return nil, fmt.Errorf("unknown peer %q; the peers are %s", p, strings.Join(PeerNames, ", "))
		}
	}
	h := &harness{o: o, p: fullParams, log: o.Log}
	if h.log == nil {
		h.log = io.Discard
	}
	if o.Smoke {
		h.p = smokeParams
	}
	if len(o.ScaleNs) > 0 {
		h.p.scaleNs = o.ScaleNs
	}
	runs := o.Runs
	if runs <= 0 {
		runs = 3
		if o.Smoke {
			runs = 1
		}
	}
	h.r = &Results{Smoke: o.Smoke, Runs: runs, Machine: machine(), Absent: map[string]string{},
		Samples: map[string][]float64{}, Texts: map[string][]string{}, Notes: map[string][]string{}, expect: map[string]bool{},
		order: map[string][]string{}, morder: map[string][]string{}}
	var err error
	h.work = o.WorkDir
	if h.work == "" {
		if h.work, err = os.MkdirTemp("", "supervise-bench-"); err != nil {
			return nil, fmt.Errorf("workdir: %w", err)
		}
	}
	if !o.Keep {
		defer os.RemoveAll(h.work)
	}
	defer killAll()
	defer restoreLimits()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stopSigs := make(chan struct{})
	defer close(stopSigs)
	go func() {
		select {
		case s := <-sigs:
			killAll()
			restoreLimits()
			if !o.Keep {
				os.RemoveAll(h.work)
			}
			fmt.Fprintf(h.log, "bench: interrupted by %v\n", s)
			os.Exit(1)
		case <-stopSigs:
		}
	}()
	if err := raiseNofile(); err != nil {
		h.logf("warning: %v", err)
	}
	root := o.ModuleRoot
	if root == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			return nil, fmt.Errorf("find module root: %v", err)
		}
		root = filepath.Dir(strings.TrimSpace(string(out)))
	}
	bin := filepath.Join(h.work, "bin")
	h.probe = filepath.Join(bin, "probe")
	if out, err := goBuild(root, h.probe, "./tests/bench/probe"); err != nil {
		return nil, fmt.Errorf("build probe: %w: %s", err, out)
	}
	h.r.Machine["probe"] = "Go (tests/bench/probe)"
	h.goProbe = h.probe
	// The C probe serves -light and the figures whose programs start by
	// the thousand (storm, scale); without gcc those use the Go probe.
	cprobe := filepath.Join(bin, "cprobe")
	if out, err := exec.Command("gcc", "-O2", "-o", cprobe, filepath.Join(root, "tests", "bench", "cprobe", "probe.c")).CombinedOutput(); err != nil {
		if o.Light {
			return nil, fmt.Errorf("build C probe: %w: %s", err, out)
		}
		h.logf("warning: no C probe (%v); the storm and scale figures use the Go probe", err)
	} else {
		h.cprobe = cprobe
	}
	floor := filepath.Join(bin, "inofloor")
	if out, err := exec.Command("gcc", "-O2", "-o", floor, filepath.Join(root, "tests", "bench", "cprobe", "inofloor.c")).CombinedOutput(); err != nil {
		h.logf("warning: no inotify floor (%v: %s); the wdidle figure runs without it", err, out)
	} else {
		h.inofloor = floor
	}
	if o.Light {
		if len(o.Figures) == 0 {
			o.Figures = lightFigures
			h.o.Figures = lightFigures
		}
		for _, f := range o.Figures {
			if !slices.Contains(lightFigures, f) {
				return nil, fmt.Errorf("figure %q needs the Go probe; the C probe serves %v", f, lightFigures)
			}
		}
		h.probe = cprobe
		h.r.Machine["probe"] = "C (tests/bench/cprobe)"
	}
	h.sv = o.Supervise
	if h.sv == "" {
		h.sv = filepath.Join(bin, "supervise")
		if out, err := goBuild(root, h.sv, "./cmd/supervise"); err != nil {
			return nil, fmt.Errorf("%w: build: %v: %s", ErrNoSupervise, err, out)
		}
	}
	h.present = map[string]bool{}
	all := []peer{supervisePeer{}, supervisordPeer{}, runitPeer{}, s6Peer{}, s6Peer{notify: true}, pm2Peer{}}
	for _, p := range all {
		h.checkPresent(p.name(), p.binaries())
	}
	h.checkPresent("tini", []string{"tini", "unshare"})
	h.checkPresent("dumb-init", []string{"dumb-init", "unshare"})
	h.checkPresent("monit", []string{"monit"})
	h.checkPresent("pm2-runtime", []string{pm2Bin("pm2-runtime"), "node", "unshare"})
	if v := pm2InstalledVersion(); v != "" {
		if v != PM2Version {
			h.logf("warning: pm2 %s found; tests/bench/run.sh and .ci/run pin %s", v, PM2Version)
		}
		h.r.Machine["pm2"] = v
		h.r.Machine["node"] = strings.TrimSpace(outputOf("node", "--version"))
	}
	h.r.Machine["supervise"] = strings.TrimSpace(outputOf(h.sv, "version"))
	h.r.Machine["load before"] = loadAverage()
	h.logf("work dir %s; peers present %v; absent %v", h.work, h.r.Present, h.r.Absent)

	sups := h.peers(all...)
	core := h.peers(supervisePeer{}, supervisordPeer{}, runitPeer{}, s6Peer{}, pm2Peer{})
	for run := 0; run < runs; run++ {
		h.logf("== run %d/%d", run+1, runs)
		h.floor()
		if h.enabled("restart") {
			h.restart(sups)
		}
		if h.enabled("startup") || h.enabled("idle") {
			h.startupIdle(sups, core, run == 0 && h.enabled("idle"))
		}
		if h.enabled("shutdown") {
			h.shutdown(core)
		}
		if h.enabled("pid1") {
			h.pid1()
		}
		if run == 0 && h.enabled("pid1pair") {
			h.pid1Pair()
		}
		if h.enabled("watchdog") {
			h.watchdog()
		}
		if h.enabled("wdtail") {
			h.wdTail()
		}
		if run == 0 && h.enabled("wdidle") {
			h.watchdogIdle()
		}
		if h.enabled("log") {
			h.logCapture()
		}
		if run == 0 && h.enabled("crash") {
			h.crash(core)
		}
		if run == 0 && h.enabled("storm") {
			h.storm(h.peers(supervisePeer{}, runitPeer{}, s6Peer{}, s6Peer{notify: true}, pm2Peer{}))
		}
		if run == 0 && h.enabled("scale") {
			h.scale(h.peers(supervisePeer{}, runitPeer{}, s6Peer{}))
		}
	}
	h.derive()
	for k := range h.r.expect {
		if len(h.r.Samples[k]) == 0 && len(h.r.Texts[k]) == 0 {
			h.r.Missing = append(h.r.Missing, k)
		}
	}
	sort.Strings(h.r.Missing)
	h.r.Elapsed = time.Since(start)
	h.r.Machine["load after"] = loadAverage()
	h.logf("done in %v; missing %d figures", h.r.Elapsed.Round(time.Second), len(h.r.Missing))
	return h.r, nil
}

// loadAverage returns the 1, 5 and 15 minute load averages of
// /proc/loadavg, "" if it cannot be read: the Method of BENCHMARKS.md
// reports them before and after a run.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (h *harness) checkPresent(name string, bins []string) {
	if len(h.o.Peers) > 0 && !slices.Contains(h.o.Peers, name) {
		h.r.Absent[name] = "not selected"
		return
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			h.r.Absent[name] = "missing " + b
			return
		}
	}
	h.present[name] = true
	h.r.Present = append(h.r.Present, name)
}

func (h *harness) peers(ps ...peer) []peer {
	var out []peer
	for _, p := range ps {
		if h.present[p.name()] {
			out = append(out, p)
		}
	}
	return out
}

func goBuild(root, out, pkg string) (string, error) {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	return string(b), err
}

func outputOf(name string, args ...string) string {
	b, _ := exec.Command(name, args...).Output()
	return string(b)
}

func raiseNofile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit nofile: %w", err)
	}
	return nil
}

// machine describes the machine and the peers' versions.
func machine() map[string]string {
	m := map[string]string{"nproc": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version()}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b strings.Builder
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b.WriteByte(byte(c))
		}
		m["kernel"] = b.String()
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					m["cpu"] = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	for _, pkg := range []string{"supervisor", "runit", "s6", "tini", "dumb-init", "monit", "python3"} {
		v := strings.TrimSpace(outputOf("dpkg-query", "-W", "-f", "${Version}", pkg))
		if v != "" {
			m["pkg "+pkg] = v
		}
	}
	return m
}

// ---- statistics ----

func median(v []float64) float64 { return quantile(v, 0.5) }

// quantile returns the nearest-rank quantile q of v.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(q*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }
