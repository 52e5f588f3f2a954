package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// progExes are the executables of supervised programs, excluded from a
// supervisor's own processes.
func (h *harness) progExes() []string {
	p, err := filepath.EvalSymlinks(h.probe)
	if err != nil {
		p = h.probe
	}
	sl, _ := filepath.EvalSymlinks("/bin/sleep")
	return []string{p, sl, "/usr/bin/sleep", "/bin/sleep"}
}

// startN starts progs under p and waits until want start stamps are in.
func (h *harness) startN(p peer, tag string, progs []progSpec, want int, timeout time.Duration) (*instance, *stampReader, error) {
	e, err := h.newEnv(tag + "-" + p.name())
	if err != nil {
		return nil, nil, err
	}
	in, err := p.start(e, progs)
	if err != nil {
		return nil, nil, err
	}
	sr := &stampReader{path: e.stamps}
	err = sr.waitFor(timeout, func(r *stampReader) bool {
		select {
		case <-in.exited:
			return true
		default:
		}
		return r.count("start") >= want
	})
	if err == nil && sr.count("start") < want {
		err = fmt.Errorf("%s exited early (%s): %s", p.name(), in.cmd.ProcessState, tail(filepath.Join(e.dir, p.name()+".out")))
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
	pids := descendants(in.cmd.Process.Pid)
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

// crash: a program that exits 1 at once, for crashDur.
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
		t0 := in.launched
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
		pids[name] = supervisorPIDs(in.cmd.Process.Pid, h.progExes()...)
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
			root := in.cmd.Process.Pid
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
			left := len(w.fds)
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

// pid1: supervise -- / tini / dumb-init as PID 1 of a new PID namespace,
// over a probe that makes double-forked orphans.
func (h *harness) pid1() {
	const fig = "pid1"
	for _, init := range []string{"supervise", "tini", "dumb-init"} {
		if !h.present[init] {
			continue
		}
		h.r.want(fig, init, "zombies_after_1s", "reap_lag_ms", "max_zombies", "create_s")
		e, err := h.newEnv("pid1-" + init)
		if err != nil {
			h.fail(fig, init, err)
			continue
		}
		res := filepath.Join(e.dir, "result.json")
		argv := initArgv(init, h.sv, []string{h.probe, "-orphans", fmt.Sprint(h.p.orphans),
			"-stamps", e.stamps, "-id", "top", "-result", res})
		if init == "supervise" {
			argv = initArgv(init, h.sv, nil)
			argv = append(argv[:len(argv)-1], "run", "-s", filepath.Join(e.dir, "sv.sock"), "--", h.probe,
				"-orphans", fmt.Sprint(h.p.orphans), "-stamps", e.stamps, "-id", "top", "-result", res)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		out, err := os.Create(filepath.Join(e.dir, "out"))
		if err == nil {
			cmd.Stdout, cmd.Stderr = out, out
		}
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			h.fail(fig, init, err)
			continue
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(120 * time.Second):
			_ = cmd.Process.Kill()
			err = <-done
			err = fmt.Errorf("%w: %v", ErrTimeout, err)
		}
		if out != nil {
			out.Close()
		}
		var r struct {
			CreateNS       int64  `json:"create_ns"`
			ZombiesAfter1s int    `json:"zombies_after_1s"`
			ReapLagNS      int64  `json:"reap_lag_ns"`
			MaxZombies     int    `json:"max_zombies_seen"`
			TimedOut       bool   `json:"timed_out"`
			InitComm       string `json:"init_comm"`
		}
		b, rerr := os.ReadFile(res)
		if rerr == nil {
			rerr = json.Unmarshal(b, &r)
		}
		if rerr != nil {
			h.fail(fig, init, fmt.Errorf("no result (%v, %v): %s", err, rerr, tail(filepath.Join(e.dir, "out"))))
			continue
		}
		h.r.add(fig, init, "zombies_after_1s", float64(r.ZombiesAfter1s))
		h.r.add(fig, init, "max_zombies", float64(r.MaxZombies))
		h.r.add(fig, init, "create_s", float64(r.CreateNS)/1e9)
		if r.TimedOut {
			h.fail(fig, init, fmt.Errorf("orphans not all reaped within 20 s (init %s)", r.InitComm))
			continue
		}
		h.r.add(fig, init, "reap_lag_ms", ms(r.ReapLagNS))
		h.logf("pid1 %s (PID 1 = %s): zombies after 1 s %d, reap lag %.2f ms, max zombies %d, exit %v",
			init, r.InitComm, r.ZombiesAfter1s, ms(r.ReapLagNS), r.MaxZombies, err)
	}
}

// watchdog: programs beat, then go silent at staggered deadlines;
// latency = death (pidfd) - (last beat + timeout). Then, when idleToo, the
// idle cost of 1000 watched programs, with monit watching the same files.
func (h *harness) watchdog(idleToo bool) {
	const fig = "watchdog"
	if h.present["supervise"] {
		h.watchdogSupervise()
	}
	if h.present["monit"] {
		h.watchdogMonit()
	}
	if idleToo {
		h.watchdogIdle()
	}
	_ = fig
}

func (h *harness) silentAt(base int64, i int) int64 {
	lead := 3 * time.Second
	step := 10 * time.Millisecond
	if h.o.Smoke {
		lead, step = 1500*time.Millisecond, 5*time.Millisecond
	}
	return base + int64(lead) + int64(step)*int64(i)
}

func (h *harness) recordDetections(peer string, sr *stampReader, w *pidWatcher, pids []int) {
	const fig = "watchdog"
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
	h.logf("watchdog %s: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d", peer, median(lat), quantile(lat, 0.99), quantile(lat, 1), len(lat))
}

func (h *harness) watchdogSupervise() {
	const fig = "watchdog"
	h.r.want(fig, "supervise", "p50_ms", "p99_ms", "max_ms", "detected")
	e, err := h.newEnv("watchdog-supervise")
	if err != nil {
		h.fail(fig, "supervise", err)
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
		h.fail(fig, "supervise", err)
		return
	}
	in, err := supervisePeer{}.start(e, progs)
	if err != nil {
		h.fail(fig, "supervise", err)
		return
	}
	sr := &stampReader{path: e.stamps}
	if err := sr.waitFor(60*time.Second, func(r *stampReader) bool { return r.count("start") >= h.p.wdProgs }); err != nil {
		h.fail(fig, "supervise", err)
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
		h.fail(fig, "supervise", fmt.Errorf("start-up of %d programs took past the first deadline", h.p.wdProgs))
	}
	w, err := newPidWatcher(pids)
	if err != nil {
		h.fail(fig, "supervise", err)
		h.teardown(in, sr)
		return
	}
	w.wait(time.Duration(h.silentAt(base, h.p.wdProgs)-mono()) + h.p.wdTimeout + 10*time.Second)
	w.close()
	h.recordDetections("supervise", sr, w, pids)
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
		h.recordDetections("monit", sr, w, pids)
	} else {
		h.fail(fig, "monit", err)
	}
	h.teardown(in, nil)
	cleanup()
}

// watchdogIdle: wdIdleN programs beating every wdIdleBeat under supervise
// watchdogs; monit checks the same files at its 1 s cycle; both measured
// over idleDur at once.
func (h *harness) watchdogIdle() {
	const fig = "wdidle"
	if !h.present["supervise"] {
		return
	}
	h.r.want(fig, "supervise", "cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs")
	e, err := h.newEnv("wdidle")
	if err != nil {
		h.fail(fig, "supervise", err)
		return
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "hb"), 0o755); err != nil {
		h.fail(fig, "supervise", err)
		return
	}
	var progs []progSpec
	var files []string
	for i := 0; i < h.p.wdIdleN; i++ {
		hb := filepath.Join(e.dir, "hb", fmt.Sprintf("i%d", i))
		files = append(files, hb)
		progs = append(progs, progSpec{id: fmt.Sprintf("i%d", i), restart: true,
			args:     []string{"-heartbeat", hb, "-beat-every", h.p.wdIdleBeat.String()},
			watchdog: &watchdogSpec{file: hb, timeout: h.p.wdIdleTimeout}})
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
	var mon *instance
	if h.present["monit"] {
		h.r.want(fig, "monit", "cpu_ms", "run_ms", "vcs", "ivcs", "pss_mib", "procs")
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
	time.Sleep(h.p.settle)
	svPIDs := supervisorPIDs(in.cmd.Process.Pid, h.progExes()...)
	b0 := measure(svPIDs)
	var m0 usage
	if mon != nil {
		m0 = measure([]int{mon.cmd.Process.Pid})
	}
	h.logf("watchdog idle: measuring %d watched programs for %v", h.p.wdIdleN, h.p.idleDur)
	time.Sleep(h.p.idleDur)
	d := measure(svPIDs).sub(b0)
	h.recordUsage(fig, "supervise", d)
	h.logf("watchdog idle supervise: cpu %.0f ms, vcs %d, pss %.1f MiB", d.cpuMS(), d.vcs, float64(d.pssKB)/1024)
	if mon != nil {
		select {
		case <-mon.exited:
			h.fail(fig, "monit", fmt.Errorf("monit exited: %s", tail(filepath.Join(mon.cmd.Dir, "monit.out"))))
		default:
			md := measure([]int{mon.cmd.Process.Pid}).sub(m0)
			h.recordUsage(fig, "monit", md)
			h.logf("watchdog idle monit: cpu %.0f ms, vcs %d, pss %.1f MiB", md.cpuMS(), md.vcs, float64(md.pssKB)/1024)
		}
		h.teardown(mon, nil)
	}
	h.teardown(in, sr)
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
		pids := supervisorPIDs(in.cmd.Process.Pid, h.progExes()...)
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
