package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

// progExes are the executables of supervised programs, excluded from a
// supervisor's own processes.
func (h *harness) progExes() []string {
	var out []string
	for _, b := range []string{h.probe, h.goProbe, h.cprobe} {
		if b == "" {
			continue
		}
		if p, err := filepath.EvalSymlinks(b); err == nil {
			b = p
		}
		out = append(out, b)
	}
	sl, _ := filepath.EvalSymlinks("/bin/sleep")
	return append(out, sl, "/usr/bin/sleep", "/bin/sleep")
}

// startN starts progs under p and waits until want start stamps are in.
func (h *harness) startN(p peer, tag string, progs []progSpec, want int, timeout time.Duration) (*instance, *stampReader, error) {
	return h.startNProbe(p, tag, progs, want, timeout, h.probe)
}

// startNProbe is startN with another probe binary (the C probe).
func (h *harness) startNProbe(p peer, tag string, progs []progSpec, want int, timeout time.Duration, probe string) (*instance, *stampReader, error) {
	e, err := h.newEnv(tag + "-" + p.name())
	if err != nil {
		return nil, nil, err
	}
	e.probe = probe
	in, err := p.start(e, progs)
	if err != nil {
		return nil, nil, err
	}
	sr := &stampReader{path: e.stamps}
	// A start-up that makes no progress for a while has failed (a limit
	// hit, a peer refusing more services): no point in waiting it out.
	stall := 60 * time.Second
	if h.o.Smoke {
		stall = 20 * time.Second
	}
	seen, progress, stalled := 0, time.Now(), false
	err = sr.waitFor(timeout, func(r *stampReader) bool {
		select {
		case <-in.exited:
			return true
		default:
		}
		if c := r.count("start"); c != seen {
			seen, progress = c, time.Now()
		} else if time.Since(progress) > stall {
			stalled = true
			return true
		}
		return r.count("start") >= want
	})
	switch {
	case err == nil && stalled:
		err = fmt.Errorf("%s stalled at %d of %d starts for %v: %s", p.name(), seen, want, stall, tail(filepath.Join(e.dir, p.name()+".out")))
	case err == nil && sr.count("start") < want:
		err = fmt.Errorf("%s exited early (%s): %s", p.name(), in.exitStatus(), tail(filepath.Join(e.dir, p.name()+".out")))
	}
	if err != nil {
		h.teardown(in, sr)
		return nil, nil, err
	}
	return in, sr, nil
}

// tail returns the end of a file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

// teardown stops in and kills whatever of it and its programs is left.
func (h *harness) teardown(in *instance, sr *stampReader) {
	if in == nil {
		return
	}
	pids := descendants(in.pid)
	if sr != nil {
		sr.poll()
		for _, l := range sr.lines {
			if l.kind == "start" {
				pids = append(pids, l.pid)
			}
		}
	}
	_ = in.stop()
	select {
	case <-in.exited:
	case <-time.After(20 * time.Second):
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := 0
		for _, p := range pids {
			if !gone(p) {
				left++
				if time.Now().After(deadline.Add(-4 * time.Second)) {
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.kill()
}

// floor measures the probe itself under a Go parent using os/exec:
// spawn -> first stamp, and exit stamp -> reaped.
func (h *harness) floor() {
	const fig = "floor"
	h.r.want(fig, "probe", "spawn_ms", "reap_ms", "sum_ms")
	e, err := h.newEnv("floor")
	if err != nil {
		h.fail(fig, "probe", err)
		return
	}
	var spawn, reap []float64
	for i := 0; i < h.p.floorN; i++ {
		cmd := exec.Command(h.probe, "-stamps", e.stamps, "-id", fmt.Sprint(i), "-live", "0s")
		t0 := mono()
		if err := cmd.Start(); err != nil {
			h.fail(fig, "probe", err)
			return
		}
		_ = cmd.Wait()
		t1 := mono()
		sr := &stampReader{path: e.stamps}
		sr.poll()
		var st, ex int64
		for _, l := range sr.lines {
			if l.id == fmt.Sprint(i) {
				if l.kind == "start" {
					st = l.ns
				} else if l.kind == "exit" {
					ex = l.ns
				}
			}
		}
		if st == 0 || ex == 0 {
			h.fail(fig, "probe", fmt.Errorf("no stamps for spawn %d", i))
			return
		}
		spawn = append(spawn, ms(st-t0))
		reap = append(reap, ms(t1-ex))
	}
	h.r.add(fig, "probe", "spawn_ms", median(spawn))
	h.r.add(fig, "probe", "reap_ms", median(reap))
	h.r.add(fig, "probe", "sum_ms", median(spawn)+median(reap))
	h.logf("floor: spawn %.3f ms, reap %.3f ms", median(spawn), median(reap))
}

// restart: programs live about 1.1-2.6 s (their exits kept apart by
// -phase) and exit 1; latency is the exit stamp to the next start stamp of
// the same program.
func (h *harness) restart(peers []peer) {
	const fig = "restart"
	k := h.p.restartProgs
	period := 1500 * time.Millisecond
	if h.o.Smoke {
		period = 600 * time.Millisecond
	}
	for _, p := range peers {
		h.r.want(fig, p.name(), "p50_ms", "p90_ms", "restarts")
		var progs []progSpec
		for i := 0; i < k; i++ {
			off := period * time.Duration(i) / time.Duration(k)
			progs = append(progs, progSpec{id: fmt.Sprintf("r%d", i), restart: true,
				args: []string{"-phase", fmt.Sprintf("%v,%v,1100ms", period, off), "-code", "1"}})
		}
		in, sr, err := h.startN(p, fig, progs, k, 60*time.Second)
		if err != nil {
			h.fail(fig, p.name(), err)
			continue
		}
		var lat []float64
		err = sr.waitFor(120*time.Second, func(r *stampReader) bool {
			lat = restartLatencies(r.lines)
			return len(lat) >= h.p.restarts
		})
		h.teardown(in, sr)
		if err != nil {
			h.fail(fig, p.name(), fmt.Errorf("%d restarts seen: %w", len(lat), err))
			continue
		}
		h.r.add(fig, p.name(), "p50_ms", median(lat))
		h.r.add(fig, p.name(), "p90_ms", quantile(lat, 0.9))
		h.r.add(fig, p.name(), "restarts", float64(len(lat)))
		h.logf("restart %s: p50 %.3f ms p90 %.3f ms over %d", p.name(), median(lat), quantile(lat, 0.9), len(lat))
	}
}

// restartLatencies pairs every exit of a program with its next start.
func restartLatencies(lines []stampLine) []float64 {
	byID := map[string][]stampLine{}
	for _, l := range lines {
		if l.kind == "start" || l.kind == "exit" {
			byID[l.id] = append(byID[l.id], l)
		}
	}
	var out []float64
	for _, ls := range byID {
		sort.Slice(ls, func(i, j int) bool { return ls[i].ns < ls[j].ns })
		for i := 0; i+1 < len(ls); i++ {
			if ls[i].kind == "exit" && ls[i+1].kind == "start" {
				out = append(out, ms(ls[i+1].ns-ls[i].ns))
			}
		}
	}
	return out
}

// crash: a program that exits 1 at once, for crashDur from its first start.
func (h *harness) crash(peers []peer) {
	const fig = "crash"
	for _, p := range peers {
		h.r.want(fig, p.name(), "starts")
		h.r.want(fig, p.name(), "state")
		progs := []progSpec{{id: "crash", restart: true, crash: true, args: []string{"-code", "1"}}}
		in, sr, err := h.startN(p, fig, progs, 1, 30*time.Second)
		if err != nil {
			h.fail(fig, p.name(), err)
			continue
		}
		// The window opens at the first start, not at the launch: pm2's
		// command line takes about a second before its daemon starts anything.
		t0 := in.launched
		for _, l := range sr.lines {
			if l.kind == "start" {
				t0 = l.ns
				break
			}
		}
		time.Sleep(time.Duration(t0 + int64(h.p.crashDur) - mono()))
		sr.poll()
		starts := 0
		for _, l := range sr.lines {
			if l.kind == "start" && l.ns <= t0+int64(h.p.crashDur) {
				starts++
			}
		}
		state := in.state("crash")
		h.teardown(in, sr)
		h.r.add(fig, p.name(), "starts", float64(starts))
		h.r.addText(fig, p.name(), "state", state)
		h.logf("crash %s: %d starts in %v, state %q", p.name(), starts, h.p.crashDur, state)
	}
}

// sleepers returns n programs that stamp their start and exec sleep.
func sleepers(n int, prefix string) []progSpec {
	out := make([]progSpec, n)
	for i := range out {
		out[i] = progSpec{id: fmt.Sprintf("%s%d", prefix, i), restart: true, args: []string{"-exec-sleep"}}
	}
	return out
}

// startupIdle measures start-up for every N and, when idle is set, keeps
// the instances of the idle sizes running and measures their idle cost
// side by side over idleDur.
func (h *harness) startupIdle(startPeers, idlePeers []peer, idle bool) {
	for _, n := range h.p.startNs {
		idleHere := idle && contains(h.p.idleNs, n)
		kept := map[string]*instance{}
		keptSR := map[string]*stampReader{}
		for _, p := range startPeers {
			m := fmt.Sprintf("n%d_s", n)
			if h.enabled("startup") {
				h.r.want("startup", p.name(), m)
			}
			in, sr, err := h.startN(p, fmt.Sprintf("startup%d", n), sleepers(n, "s"), n, 300*time.Second)
			if err != nil {
				h.fail("startup", p.name(), err)
				continue
			}
			last := int64(0)
			for _, l := range sr.lines {
				if l.kind == "start" && l.ns > last {
					last = l.ns
				}
			}
			h.r.add("startup", p.name(), m, float64(last-in.launched)/1e9)
			h.logf("startup %s N=%d: %.3f s", p.name(), n, float64(last-in.launched)/1e9)
			keep := false
			for _, ip := range idlePeers {
				if ip.name() == p.name() && idleHere {
					keep = true
				}
			}
			if keep {
				kept[p.name()], keptSR[p.name()] = in, sr
			} else {
				h.teardown(in, sr)
			}
		}
		if idleHere {
			h.idle(n, idlePeers, kept)
			for name, in := range kept {
				h.teardown(in, keptSR[name])
			}
		}
	}
	for _, n := range h.p.idleNs {
		if idle && !contains(h.p.startNs, n) {
			h.fail("idle", "all", fmt.Errorf("idle size %d is not a start-up size", n))
		}
	}
}

func contains(v []int, x int) bool {
	for _, y := range v {
		if y == x {
			return true
		}
	}
	return false
}

// idle measures the supervisors' own processes over idleDur, all at once.
func (h *harness) idle(n int, peers []peer, kept map[string]*instance) {
	fig := fmt.Sprintf("idle%d", n)
	metrics := []string{"cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs"}
	for _, p := range peers {
		h.r.want(fig, p.name(), metrics...)
	}
	time.Sleep(h.p.settle) // let start-up work settle
	pids := map[string][]int{}
	before := map[string]usage{}
	for name, in := range kept {
		pids[name] = supervisorPIDs(in.pid, h.progExes()...)
		before[name] = measure(pids[name])
	}
	h.logf("idle N=%d: measuring %d supervisors for %v", n, len(kept), h.p.idleDur)
	time.Sleep(h.p.idleDur)
	for name := range kept {
		d := measure(pids[name]).sub(before[name])
		h.recordUsage(fig, name, d)
		h.logf("idle %s N=%d: cpu %.0f ms, vcs %d, pss %.1f MiB, %d procs", name, n, d.cpuMS(), d.vcs, float64(d.pssKB)/1024, d.nprocs)
	}
}

func (h *harness) recordUsage(fig, name string, d usage) {
	h.r.add(fig, name, "cpu_ms", d.cpuMS())
	h.r.add(fig, name, "run_ms", float64(d.runNS)/1e6)
	h.r.add(fig, name, "vcs", float64(d.vcs))
	h.r.add(fig, name, "ivcs", float64(d.ivcs))
	h.r.add(fig, name, "pss_mib", float64(d.pssKB)/1024)
	h.r.add(fig, name, "procs", float64(d.nprocs))
}

// shutdown: N programs that exit on SIGTERM; stop request -> the
// supervisor and every program gone.
func (h *harness) shutdown(peers []peer) {
	const fig = "shutdown"
	for _, n := range h.p.shutNs {
		m := fmt.Sprintf("n%d_ms", n)
		for _, p := range peers {
			h.r.want(fig, p.name(), m)
			progs := make([]progSpec, n)
			for i := range progs {
				progs[i] = progSpec{id: fmt.Sprintf("t%d", i), restart: true, args: []string{"-forever"}}
			}
			in, sr, err := h.startN(p, fmt.Sprintf("shutdown%d", n), progs, n, 300*time.Second)
			if err != nil {
				h.fail(fig, p.name(), err)
				continue
			}
			time.Sleep(500 * time.Millisecond)
			root := in.pid
			all := descendants(root)
			var watch []int
			for _, pid := range all {
				if pid != root {
					watch = append(watch, pid)
				}
			}
			w, err := newPidWatcher(watch)
			if err != nil {
				h.fail(fig, p.name(), err)
				h.teardown(in, sr)
				continue
			}
			t0 := mono()
			_ = in.stop()
			w.wait(60 * time.Second)
			left := w.left()
			w.close()
			select {
			case <-in.exited:
			case <-time.After(60 * time.Second):
			}
			end := in.exitAt
			for _, t := range w.death {
				if t > end {
					end = t
				}
			}
			h.teardown(in, sr)
			if left > 0 || end == 0 {
				h.fail(fig, p.name(), fmt.Errorf("with N=%d, %d processes still alive after 60 s", n, left))
				continue
			}
			h.r.add(fig, p.name(), m, ms(end-t0))
			h.logf("shutdown %s N=%d: %.1f ms (%d processes)", p.name(), n, ms(end-t0), len(watch)+1)
		}
	}
}

// pid1Result is what the orphan probe reported under one init.
type pid1Result struct {
	CreateNS       int64  `json:"create_ns"`
	ZombiesAfter1s int    `json:"zombies_after_1s"`
	ReapLagNS      int64  `json:"reap_lag_ns"`
	MaxZombies     int    `json:"max_zombies_seen"`
	TimedOut       bool   `json:"timed_out"`
	InitComm       string `json:"init_comm"`
}

// pid1Inits are the inits of the PID 1 figures, in order.
var pid1Inits = []string{"supervise", "tini", "dumb-init", "pm2-runtime"}

// runPID1 runs the orphan probe (orphans double-forked orphans) under init
// as PID 1 of a new PID namespace and returns what it measured.
func (h *harness) runPID1(init, tag string, orphans int) (pid1Result, error) {
	var r pid1Result
	e, err := h.newEnv(tag + "-" + init)
	if err != nil {
		return r, err
	}
	res := filepath.Join(e.dir, "result.json")
	probe := []string{h.probe, "-orphans", fmt.Sprint(orphans), "-stamps", e.stamps, "-id", "top", "-result", res,
		"-reap-timeout", h.p.reapTimeout.String()}
	var argv, environ []string
	switch init {
	case "supervise":
		argv = initArgv(init, h.sv, nil)
		argv = append(append(argv[:len(argv)-1], "run", "-s", filepath.Join(e.dir, "sv.sock"), "--"), probe...)
	case "pm2-runtime":
		if argv, environ, err = pm2RuntimeArgv(e.dir, probe); err != nil {
			return r, err
		}
	default:
		argv = initArgv(init, h.sv, probe)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = environ
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(e.dir, "out"))
	if err == nil {
		cmd.Stdout, cmd.Stderr = out, out
		defer out.Close()
	}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return r, err
	}
	go func() { done <- cmd.Wait() }()
	// The init ends when its command ends, except pm2-runtime, which
	// waits for more: it is ended once the result is written.
	deadline := time.After(120 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			if init == "pm2-runtime" {
				if _, serr := os.Stat(res); serr == nil {
					time.Sleep(200 * time.Millisecond)
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					err = <-done
					break wait
				}
			}
		case <-deadline:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = fmt.Errorf("%w: %v", ErrTimeout, <-done)
			break wait
		}
	}
	b, rerr := os.ReadFile(res)
	if rerr == nil {
		rerr = json.Unmarshal(b, &r)
	}
	if rerr != nil {
		return r, fmt.Errorf("no result (%v, %v): %s", err, rerr, tail(filepath.Join(e.dir, "out")))
	}
	return r, nil
}

// pid1: supervise -- / tini / dumb-init / pm2-runtime as PID 1 of a new
// PID namespace, over a probe that makes double-forked orphans.
func (h *harness) pid1() {
	const fig = "pid1"
	for _, init := range pid1Inits {
		if !h.present[init] {
			continue
		}
		h.r.want(fig, init, "zombies_after_1s", "max_zombies", "create_s", "reaped")
		r, err := h.runPID1(init, "pid1", h.p.orphans)
		if err != nil {
			h.fail(fig, init, err)
			continue
		}
		h.r.add(fig, init, "zombies_after_1s", float64(r.ZombiesAfter1s))
		h.r.add(fig, init, "max_zombies", float64(r.MaxZombies))
		h.r.add(fig, init, "create_s", float64(r.CreateNS)/1e9)
		if r.TimedOut {
			h.r.addText(fig, init, "reaped", fmt.Sprintf("no (zombies left after %v)", h.p.reapTimeout))
			if init != "pm2-runtime" {
				h.fail(fig, init, fmt.Errorf("orphans not all reaped within %v (init %s)", h.p.reapTimeout, r.InitComm))
			}
			h.logf("pid1 %s (PID 1 = %s): orphans not reaped; %d zombies after 1 s", init, r.InitComm, r.ZombiesAfter1s)
			continue
		}
		h.r.addText(fig, init, "reaped", "yes")
		h.r.want(fig, init, "reap_lag_ms")
		h.r.add(fig, init, "reap_lag_ms", ms(r.ReapLagNS))
		h.logf("pid1 %s (PID 1 = %s): zombies after 1 s %d, reap lag %.2f ms, max zombies %d",
			init, r.InitComm, r.ZombiesAfter1s, ms(r.ReapLagNS), r.MaxZombies)
	}
}

// pid1Pair alternates supervise and tini as PID 1 over pid1Reps pairs and
// records the paired differences of their reap lags: one pair runs back to
// back on the same machine state, so the difference cancels most of the
// load that moves both.
func (h *harness) pid1Pair() {
	const fig = "pid1pair"
	if !h.present["supervise"] || !h.present["tini"] {
		h.logf("pid1pair: needs supervise and tini")
		return
	}
	for _, p := range []string{"supervise", "tini", "supervise − tini"} {
		h.r.want(fig, p, "reap_lag_ms", "pairs")
	}
	h.r.want(fig, "supervise − tini", "supervise_le_tini")
	var diffs []float64
	le := 0
	for i := 0; i < h.p.pid1Reps; i++ {
		order := []string{"supervise", "tini"}
		if i%2 == 1 {
			order = []string{"tini", "supervise"} // alternate who goes first
		}
		lag := map[string]float64{}
		for _, init := range order {
			r, err := h.runPID1(init, fmt.Sprintf("pid1pair%d", i), h.p.pairOrphans)
			if err == nil && r.TimedOut {
				err = fmt.Errorf("orphans not all reaped within %v", h.p.reapTimeout)
			}
			if err != nil {
				h.fail(fig, init, fmt.Errorf("pair %d: %w", i, err))
				continue
			}
			lag[init] = ms(r.ReapLagNS)
		}
		sv, ok1 := lag["supervise"]
		ti, ok2 := lag["tini"]
		if !ok1 || !ok2 {
			continue
		}
		h.r.add(fig, "supervise", "reap_lag_ms", sv)
		h.r.add(fig, "tini", "reap_lag_ms", ti)
		h.r.add(fig, "supervise − tini", "reap_lag_ms", sv-ti)
		diffs = append(diffs, sv-ti)
		if sv <= ti {
			le++
		}
	}
	for _, p := range []string{"supervise", "tini", "supervise − tini"} {
		h.r.add(fig, p, "pairs", float64(len(diffs)))
	}
	h.r.add(fig, "supervise − tini", "supervise_le_tini", float64(le))
	if len(diffs) > 0 {
		h.logf("pid1pair: %d pairs, median paired difference %.2f ms (p25 %.2f, p75 %.2f), supervise <= tini in %d",
			len(diffs), median(diffs), quantile(diffs, 0.25), quantile(diffs, 0.75), le)
		h.r.addNote(fig, fmt.Sprintf("Paired differences (supervise − tini, ms): median %s, p25 %s, p75 %s, min %s, max %s over %d pairs; supervise's lag ≤ tini's in %d of them.",
			fmtNum(median(diffs)), fmtNum(quantile(diffs, 0.25)), fmtNum(quantile(diffs, 0.75)), fmtNum(quantile(diffs, 0)), fmtNum(quantile(diffs, 1)), len(diffs), le))
	}
}

// watchdog: programs beat, then go silent at staggered deadlines;
// latency = death (pidfd) - (last beat + timeout).
func (h *harness) watchdog() {
	if h.present["supervise"] {
		h.watchdogSupervise("watchdog", supervisePeer{})
	}
	if h.present["monit"] {
		h.watchdogMonit()
	}
}

// wdTailVariants are the runs of the detection-tail figure: supervise as
// it ships (one P), with GOMAXPROCS=2, and pinned to CPU 1 with its
// programs pinned to CPU 0 (taskset), on one P and on two.
func wdTailVariants() []supervisePeer {
	v := []supervisePeer{
		{label: "supervise-gmp1", env: []string{"GOMAXPROCS=1"}},
		{label: "supervise-gmp2", env: []string{"GOMAXPROCS=2"}},
	}
	if runtime.NumCPU() >= 2 {
		v = append(v,
			supervisePeer{label: "supervise-pinned-gmp1", env: []string{"GOMAXPROCS=1"}, cpus: "1", progCPUs: "0"},
			supervisePeer{label: "supervise-pinned-gmp2", env: []string{"GOMAXPROCS=2"}, cpus: "1", progCPUs: "0"})
	}
	return v
}

// wdTail runs the detection figure under each variant of wdTailVariants.
func (h *harness) wdTail() {
	if !h.present["supervise"] {
		return
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		h.logf("warning: wdtail: no taskset; the pinned variants fail")
	}
	for _, sp := range wdTailVariants() {
		h.watchdogSupervise("wdtail", sp)
	}
}

func (h *harness) silentAt(base int64, i int) int64 {
	lead := 3 * time.Second
	step := 10 * time.Millisecond
	if h.o.Smoke {
		lead, step = 1500*time.Millisecond, 5*time.Millisecond
	}
	return base + int64(lead) + int64(step)*int64(i)
}

func (h *harness) recordDetections(fig, peer string, sr *stampReader, w *pidWatcher, pids []int) {
	sr.poll()
	last := map[int]int64{}
	for _, l := range sr.lines {
		if l.kind == "lastbeat" {
			last[l.pid] = l.ns
		}
	}
	var lat []float64
	for _, pid := range pids {
		d, ok := w.death[pid]
		lb, ok2 := last[pid]
		if ok && ok2 {
			lat = append(lat, ms(d-(lb+int64(h.p.wdTimeout))))
		}
	}
	if len(lat) < len(pids) {
		h.fail(fig, peer, fmt.Errorf("%d of %d programs detected", len(lat), len(pids)))
	}
	if len(lat) == 0 {
		return
	}
	h.r.add(fig, peer, "p50_ms", median(lat))
	h.r.add(fig, peer, "p99_ms", quantile(lat, 0.99))
	h.r.add(fig, peer, "max_ms", quantile(lat, 1))
	h.r.add(fig, peer, "detected", float64(len(lat)))
	h.logf("%s %s: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d", fig, peer, median(lat), quantile(lat, 0.99), quantile(lat, 1), len(lat))
}

// watchdogSupervise runs the detection figure under one variant of
// supervise (figure wdtail: GOMAXPROCS, CPU pinning) and records it under
// the variant's name; it also records the run-queue wait of the
// supervisor's threads over the detections (schedstat), the time it was
// runnable and waiting for a CPU.
func (h *harness) watchdogSupervise(fig string, sp supervisePeer) {
	name := sp.name()
	h.r.want(fig, name, "p50_ms", "p99_ms", "max_ms", "detected")
	if fig == "wdtail" {
		h.r.want(fig, name, "rq_wait_ms", "rq_wait_us_per_wakeup")
	}
	e, err := h.newEnv(fig + "-" + name)
	if err != nil {
		h.fail(fig, name, err)
		return
	}
	base := mono()
	var progs []progSpec
	for i := 0; i < h.p.wdProgs; i++ {
		hb := filepath.Join(e.dir, "hb", fmt.Sprintf("w%d", i))
		progs = append(progs, progSpec{id: fmt.Sprintf("w%d", i), restart: true,
			args:     []string{"-heartbeat", hb, "-beat-every", h.p.wdBeat.String(), "-silent-at", fmt.Sprint(h.silentAt(base, i))},
			watchdog: &watchdogSpec{file: hb, timeout: h.p.wdTimeout}})
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "hb"), 0o755); err != nil {
		h.fail(fig, name, err)
		return
	}
	in, err := sp.start(e, progs)
	if err != nil {
		h.fail(fig, name, err)
		return
	}
	sr := &stampReader{path: e.stamps}
	if err := sr.waitFor(60*time.Second, func(r *stampReader) bool { return r.count("start") >= h.p.wdProgs }); err != nil {
		h.fail(fig, name, err)
		h.teardown(in, sr)
		return
	}
	var pids []int
	for _, l := range sr.lines {
		if l.kind == "start" {
			pids = append(pids, l.pid)
		}
	}
	if mono() > h.silentAt(base, 0)-int64(200*time.Millisecond) {
		h.fail(fig, name, fmt.Errorf("start-up of %d programs took past the first deadline", h.p.wdProgs))
	}
	w, err := newPidWatcher(pids)
	if err != nil {
		h.fail(fig, name, err)
		h.teardown(in, sr)
		return
	}
	t0 := threadCounts(in.pid)
	w.wait(time.Duration(h.silentAt(base, h.p.wdProgs)-mono()) + h.p.wdTimeout + 10*time.Second)
	t1 := threadCounts(in.pid)
	w.close()
	h.recordDetections(fig, name, sr, w, pids)
	if fig == "wdtail" {
		var d threadCount
		for tid, c := range t1 {
			x := c.sub(t0[tid])
			d.delayNS += x.delayNS
			d.slices += x.slices
		}
		h.r.add(fig, name, "rq_wait_ms", float64(d.delayNS)/1e6)
		h.r.add(fig, name, "rq_wait_us_per_wakeup", float64(d.delayNS)/1e3/float64(max(1, d.slices)))
	}
	h.teardown(in, sr)
}

// monitConfig writes a monit control file checking files' timestamps.
func monitConfig(e env, checks []string, timeout time.Duration, action string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "set daemon 1\nset logfile %s\nset idfile %s\nset statefile %s\nset pidfile %s\n\n",
		filepath.Join(e.dir, "monit.log"), filepath.Join(e.dir, "monit.id"),
		filepath.Join(e.dir, "monit.state"), filepath.Join(e.dir, "monit.pid"))
	secs := int(timeout / time.Second)
	for _, c := range checks {
		name := filepath.Base(c)
		fmt.Fprintf(&b, "check file %s with path %s\n  if timestamp > %d seconds then %s\n\n",
			name, c, secs, strings.ReplaceAll(action, "NAME", name))
	}
	cfg := filepath.Join(e.dir, "monitrc")
	return cfg, writeFile(cfg, b.String(), 0o600)
}

func (h *harness) watchdogMonit() {
	const fig = "watchdog"
	h.r.want(fig, "monit", "p50_ms", "p99_ms", "max_ms", "detected")
	e, err := h.newEnv("watchdog-monit")
	if err != nil {
		h.fail(fig, "monit", err)
		return
	}
	killer := filepath.Join(e.dir, "kill.sh")
	if err := writeFile(killer, "#!/bin/sh\nexec kill -TERM \"$(cat "+filepath.Join(e.dir, "pid")+"/$1)\"\n", 0o755); err != nil {
		h.fail(fig, "monit", err)
		return
	}
	base := mono()
	var files []string
	var cmds []*exec.Cmd
	waits := make(chan struct{}, h.p.wdProgs)
	for i := 0; i < h.p.wdProgs; i++ {
		id := fmt.Sprintf("w%d", i)
		hb := filepath.Join(e.dir, "hb", id)
		files = append(files, hb)
		if err := os.MkdirAll(filepath.Join(e.dir, "pid"), 0o755); err != nil {
			h.fail(fig, "monit", err)
			return
		}
		c := exec.Command(h.probe, "-stamps", e.stamps, "-id", id, "-heartbeat", hb, "-beat-every", h.p.wdBeat.String(),
			"-silent-at", fmt.Sprint(h.silentAt(base, i)), "-pidfile", filepath.Join(e.dir, "pid", id))
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			h.fail(fig, "monit", err)
			break
		}
		cmds = append(cmds, c)
		go func() { _ = c.Wait(); waits <- struct{}{} }()
	}
	cleanup := func() {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGKILL)
		}
		for range cmds {
			<-waits
		}
	}
	sr := &stampReader{path: e.stamps}
	if err := sr.waitFor(60*time.Second, func(r *stampReader) bool { return r.count("start") >= h.p.wdProgs }); err != nil {
		h.fail(fig, "monit", err)
		cleanup()
		return
	}
	time.Sleep(100 * time.Millisecond) // first beats written
	cfg, err := monitConfig(e, files, h.p.wdTimeout, "exec \""+killer+" NAME\"")
	if err != nil {
		h.fail(fig, "monit", err)
		cleanup()
		return
	}
	in, err := launch("monit", e, []string{"monit", "-I", "-c", cfg}, syscall.SIGTERM)
	if err != nil {
		h.fail(fig, "monit", err)
		cleanup()
		return
	}
	var pids []int
	for _, c := range cmds {
		pids = append(pids, c.Process.Pid)
	}
	w, err := newPidWatcher(pids)
	if err == nil {
		w.wait(time.Duration(h.silentAt(base, h.p.wdProgs)-mono()) + h.p.wdTimeout + 15*time.Second)
		w.close()
		h.recordDetections(fig, "monit", sr, w, pids)
	} else {
		h.fail(fig, "monit", err)
	}
	h.teardown(in, nil)
	cleanup()
}

// watchdogIdle: wdIdleN programs beating every wdIdleBeat under supervise
// watchdogs; monit checks the same files at its 1 s cycle, the C inotify
// floor (tests/bench/cprobe/inofloor.c: epoll, read, stat per event) reads
// their events and, with Options.Compare, a second supervise binary
// watches the same files (its own programs only sleep); all are measured
// over idleDur at once, so they see the same beats at the same moments.
func (h *harness) watchdogIdle() {
	const fig = "wdidle"
	if !h.present["supervise"] {
		return
	}
	metrics := []string{"cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs", "us_per_beat", "vcs_per_beat"}
	h.r.want(fig, "supervise", metrics...)
	e, err := h.newEnv("wdidle")
	if err != nil {
		h.fail(fig, "supervise", err)
		return
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "hb"), 0o755); err != nil {
		h.fail(fig, "supervise", err)
		return
	}
	var progs, sleepers []progSpec
	var files []string
	for i := 0; i < h.p.wdIdleN; i++ {
		hb := filepath.Join(e.dir, "hb", fmt.Sprintf("i%d", i))
		files = append(files, hb)
		wd := &watchdogSpec{file: hb, timeout: h.p.wdIdleTimeout}
		progs = append(progs, progSpec{id: fmt.Sprintf("i%d", i), restart: true,
			args: []string{"-heartbeat", hb, "-beat-every", h.p.wdIdleBeat.String()}, watchdog: wd})
		sleepers = append(sleepers, progSpec{id: fmt.Sprintf("c%d", i), restart: true, args: []string{"-exec-sleep"}, watchdog: wd})
	}
	in, err := supervisePeer{}.start(e, progs)
	if err != nil {
		h.fail(fig, "supervise", err)
		return
	}
	sr := &stampReader{path: e.stamps}
	if err := sr.waitFor(300*time.Second, func(r *stampReader) bool { return r.count("start") >= h.p.wdIdleN }); err != nil {
		h.fail(fig, "supervise", err)
		h.teardown(in, sr)
		return
	}
	type watcher struct {
		name string
		in   *instance
		sr   *stampReader
		pids []int
		u0   usage
		t0   map[int]threadCount
		ws   *waitSampler
	}
	ws := []*watcher{{name: "supervise", in: in, sr: sr}}
	if h.o.Compare != "" {
		name := "supervise-cmp"
		h.r.want(fig, name, metrics...)
		cin, csr, err := h.startN(supervisePeer{label: name, bin: h.o.Compare}, "wdidle-cmp", sleepers, h.p.wdIdleN, 300*time.Second)
		if err != nil {
			h.fail(fig, name, err)
		} else {
			ws = append(ws, &watcher{name: name, in: cin, sr: csr})
		}
	}
	if h.inofloor != "" {
		name := "inotify-floor"
		h.r.want(fig, name, metrics...)
		fe, err := h.newEnv("wdidle-floor")
		var fin *instance
		if err == nil {
			fin, err = launch(name, fe, []string{h.inofloor, filepath.Join(e.dir, "hb")}, syscall.SIGKILL)
		}
		if err != nil {
			h.fail(fig, name, err)
		} else {
			ws = append(ws, &watcher{name: name, in: fin})
		}
	}
	var mon *instance
	if h.present["monit"] {
		h.r.want(fig, "monit", metrics...)
		me, err := h.newEnv("wdidle-monit")
		if err == nil {
			var cfg string
			cfg, err = monitConfig(me, files, h.p.wdIdleTimeout, "alert")
			if err == nil {
				mon, err = launch("monit", me, []string{"monit", "-I", "-c", cfg}, syscall.SIGTERM)
			}
		}
		if err != nil {
			h.fail(fig, "monit", err)
		}
	}
	// Past every program's first beat (it makes the program ready: a log
	// line, a wakeup of the event loop) and one steady beat.
	time.Sleep(max(h.p.settle, h.p.wdIdleBeat+500*time.Millisecond))
	beats := float64(h.p.wdIdleN) * float64(h.p.idleDur) / float64(h.p.wdIdleBeat)
	for _, w := range ws {
		pid := w.in.pid
		w.pids = supervisorPIDs(pid, h.progExes()...)
		w.u0, w.t0 = measure(w.pids), threadCounts(pid)
		w.ws = startWaitSampler(pid, 50*time.Millisecond)
	}
	var m0 usage
	if mon != nil {
		m0 = measure([]int{mon.pid})
	}
	h.logf("watchdog idle: measuring %d watched programs for %v", h.p.wdIdleN, h.p.idleDur)
	time.Sleep(h.p.idleDur)
	for _, w := range ws {
		pid := w.in.pid
		d := measure(w.pids).sub(w.u0)
		t1 := threadCounts(pid)
		waits := w.ws.finish()
		h.recordUsage(fig, w.name, d)
		h.recordBeatCost(fig, w.name, d, beats)
		if w.name == "inotify-floor" {
			continue
		}
		h.r.addNote(fig, fmt.Sprintf("%s's threads over the window (%s beats; per-thread /proc/PID/task/TID/schedstat and status; "+
			"the wait column is the most frequent of /proc/PID/task/TID/syscall and wchan, sampled every 50 ms):\n\n%s",
			w.name, fmtNum(beats), threadTable(pid, w.t0, t1, waits, beats, "beat")))
		h.logf("watchdog idle %s: cpu %.0f ms, vcs %d, pss %.1f MiB; %.1f µs and %.2f switches per beat",
			w.name, d.cpuMS(), d.vcs, float64(d.pssKB)/1024, float64(d.runNS)/1e3/beats, float64(d.vcs)/beats)
	}
	if mon != nil {
		select {
		case <-mon.exited:
			h.fail(fig, "monit", fmt.Errorf("monit exited: %s", tail(filepath.Join(mon.dir, "monit.out"))))
		default:
			md := measure([]int{mon.pid}).sub(m0)
			h.recordUsage(fig, "monit", md)
			h.recordBeatCost(fig, "monit", md, beats)
			h.logf("watchdog idle monit: cpu %.0f ms, vcs %d, pss %.1f MiB", md.cpuMS(), md.vcs, float64(md.pssKB)/1024)
		}
		h.teardown(mon, nil)
	}
	for _, w := range ws[1:] {
		h.teardown(w.in, w.sr)
	}
	if h.o.Profile {
		if !perfAvailable() {
			h.logf("warning: -profile: perf is not installed; no profile of the beat cost")
		} else {
			h.logf("watchdog idle: perf profile of supervise for another %v", h.p.idleDur)
			sum, err := perfProfile(in.pid, h.p.idleDur, e.dir, beats, "beat")
			if err != nil {
				h.fail(fig, "supervise", fmt.Errorf("profile: %w", err))
			} else {
				h.r.addNote(fig, "perf profile of supervise over a second window of the same length (perf running, the other watchers stopped):\n\n"+sum)
			}
		}
	}
	h.teardown(in, sr)
}

// recordBeatCost records CPU (schedstat run time) and voluntary switches
// per beat.
func (h *harness) recordBeatCost(fig, name string, d usage, beats float64) {
	h.r.add(fig, name, "us_per_beat", float64(d.runNS)/1e3/beats)
	h.r.add(fig, name, "vcs_per_beat", float64(d.vcs)/beats)
}

// logCapture: one program writes logLines lines of 100 bytes; throughput
// from its first write to the last byte in the supervisor's output file,
// and the supervisor's CPU time per MB.
func (h *harness) logCapture() {
	const fig = "log"
	for _, p := range h.peers(supervisePeer{}, supervisordPeer{}) {
		h.r.want(fig, p.name(), "mb_s", "cpu_ms_per_mb", "captured_mb")
		progs := []progSpec{{id: "log", logOut: true, args: []string{"-lines", fmt.Sprint(h.p.logLines), "-delay", "700ms"}}}
		in, sr, err := h.startN(p, fig, progs, 1, 60*time.Second)
		if err != nil {
			h.fail(fig, p.name(), err)
			continue
		}
		time.Sleep(300 * time.Millisecond)
		pids := supervisorPIDs(in.pid, h.progExes()...)
		base := measure(pids)
		err = sr.waitFor(600*time.Second, func(r *stampReader) bool { return r.count("exit") >= 1 })
		if err != nil {
			h.fail(fig, p.name(), err)
			h.teardown(in, sr)
			continue
		}
		var wstart int64
		for _, l := range sr.lines {
			if l.kind == "wstart" {
				wstart = l.ns
			}
		}
		// The output is drained when the file stops growing for 300 ms.
		size, changed := int64(-1), mono()
		for mono()-changed < int64(300*time.Millisecond) {
			st, err := os.Stat(in.logFile)
			if err == nil && st.Size() != size {
				size, changed = st.Size(), mono()
			}
			time.Sleep(5 * time.Millisecond)
		}
		var cpuMS float64
		select {
		case <-in.exited:
			if in.rusage != nil {
				total := float64(in.rusage.Utime.Nano()+in.rusage.Stime.Nano()) / 1e6
				cpuMS = total - base.cpuMS()
			}
		default:
			cpuMS = measure(pids).sub(base).cpuMS()
		}
		h.teardown(in, sr)
		mb := float64(h.p.logLines) * 100 / 1e6
		secs := float64(changed-wstart) / 1e9
		h.r.add(fig, p.name(), "mb_s", mb/secs)
		h.r.add(fig, p.name(), "cpu_ms_per_mb", cpuMS/mb)
		h.r.add(fig, p.name(), "captured_mb", float64(size)/1e6)
		h.logf("log %s: %.1f MB/s, %.2f ms CPU per MB, file %.1f MB", p.name(), mb/secs, cpuMS/mb, float64(size)/1e6)
	}
}
