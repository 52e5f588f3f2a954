package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/breaker"
	"github.com/supervise/supervise/systemd"
	"github.com/supervise/supervise/watch/heartbeat"
	"github.com/supervise/supervise/watch/watchdog"
)

// start begins a run of p if nothing holds it back: the teardown, a
// dependency that is not ready, or an open breaker.
func (s *Supervisor) start(p *program, why string) {
	if s.shutting || p.proc != nil {
		return
	}
	s.cancelTimer(p)
	if waiting := s.unready(p); len(waiting) > 0 {
		p.waitingFor = waiting
		s.setState(p, Starting, "waiting for "+joinNames(waiting))
		key := joinNames(waiting)
		if p.waitLogged != key {
			p.waitLogged = key
			s.plog(p).Info("waiting for dependencies", zap.Strings("depends_on", waiting))
		}
		return
	}
	p.waitingFor, p.waitLogged = nil, ""
	now := s.clk.Now()
	before := p.br.State(now)
	if err := p.br.Allow(now); err != nil {
		s.toOpen(p, "restart refused: breaker open")
		return
	}
	if before == breaker.HalfOpen {
		s.plog(p).Info("breaker half-open: trial start")
	}
	s.spawn(p, why)
}

// unready lists p's dependencies that are not ready.
func (s *Supervisor) unready(p *program) []string {
	var out []string
	for _, d := range p.cfg.DependsOn {
		dp := s.progs[d]
		if dp == nil || !dp.ready || dp.proc == nil {
			out = append(out, d)
		}
	}
	return out
}

// spawn starts the process of a new run.
func (s *Supervisor) spawn(p *program, why string) {
	cfg := p.cfg
	p.run++
	run, name := p.run, p.name
	p.ready, p.succeeded, p.intent, p.opSignal = false, false, intentNone, 0
	p.lastBeat, p.beatMeta, p.statusText = time.Time{}, nil, ""
	p.starts++
	log := s.plog(p)

	env := s.environment(cfg)
	var pidBox atomic.Int64
	if cfg.Notify {
		if err := s.openNotify(p, run, &pidBox); err != nil {
			s.spawnFailed(p, err)
			return
		}
		env = append(env, "NOTIFY_SOCKET="+p.notifySock.Path())
		if cfg.Watchdog != nil {
			env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(cfg.Watchdog.Timeout.Microseconds(), 10))
		}
	}

	var limiter *lineLimiter
	if cfg.LogRate > 0 {
		limiter = newLineLimiter(cfg.LogRate, cfg.EffectiveLogBurst(), s.clk)
	}
	p.limiter = limiter
	spec := procs.Spec{
		Argv:   cfg.Command,
		Dir:    cfg.Directory,
		Env:    env,
		User:   cfg.User,
		Group:  cfg.Group,
		Stdout: s.output(p, "stdout", cfg.Stdout, limiter),
		Stderr: s.output(p, "stderr", cfg.Stderr, limiter),
	}
	// The heartbeat watch (and its directory) exists before the program
	// does, so not even its very first beat can be missed.
	if cfg.Watchdog != nil {
		if err := s.armWatchdog(p, run); err != nil {
			log.Error("watchdog", zap.Error(err))
		}
	}
	if s.opts.SingleCommand && p.name == conf.MainProgram {
		// Like tini: the one command keeps the terminal, if there is one.
		spec.Stdin, spec.Foreground = os.Stdin, true
	}
	proc, err := s.opts.Reaper.Spawn(spec, func(e procs.Exit) {
		s.box.push(exited{name: name, run: run, exit: e})
	})
	if err != nil {
		s.detachRun(p)
		s.spawnFailed(p, err)
		return
	}
	pidBox.Store(int64(proc.Pid()))
	if s.trace != nil {
		s.trace("spawn", p.name, proc.Started())
	}
	p.proc = proc
	p.startedAt = s.clk.Now()
	p.errText = ""
	log.Info("started", zap.Int("pid", proc.Pid()), zap.String("why", why))

	// Without a readiness signal a program is ready once spawned.
	if cfg.Watchdog == nil && !cfg.Notify {
		p.ready = true
		s.setState(p, Running, "spawned")
		s.dependencyReady(p)
	} else {
		s.setState(p, Starting, "spawned, waiting for readiness")
	}
	s.setTimer(p, timerMinUptime, cfg.MinUptime)
}

// spawnFailed records a run that never began; it is a failure.
func (s *Supervisor) spawnFailed(p *program, err error) {
	now := s.clk.Now()
	p.errText = err.Error()
	p.lastExit = &control.ExitStatus{Code: -1, At: now, Error: err.Error()}
	p.lastFailed, p.lastCode = true, spawnExitCode(err)
	s.plog(p).Error("cannot start", zap.Error(fmt.Errorf("programs.%s: %w", p.name, err)))
	s.afterFailure(p, "spawn error")
}

// spawnExitCode is the exit code a run that never began hands on, as a
// shell would: 127 when the command was not found, 126 when it could not
// be executed, else 1.
func spawnExitCode(err error) int {
	var se *procs.SpawnError
	if errors.As(err, &se) && se.Op == "exec" {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, procs.ErrNotFound):
			return 127
		case errors.Is(err, fs.ErrPermission):
			return 126
		}
	}
	return 1
}

// environment builds a run's environment: the supervisor's own (unless
// clear_environment) without the variables that address the supervisor's
// own systemd connection, then the program's additions.
func (s *Supervisor) environment(cfg *conf.Program) []string {
	var env []string
	if !cfg.ClearEnvironment {
		for _, kv := range os.Environ() {
			switch k, _, _ := cut(kv); k {
			case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
				continue
			}
			env = append(env, kv)
		}
	}
	for k, v := range cfg.Environment {
		env = setEnv(env, k, v)
	}
	return env
}

func cut(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if key, _, _ := cut(kv); key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// onExit handles the end of p's current run.
func (s *Supervisor) onExit(p *program, e procs.Exit) {
	if s.trace != nil {
		s.trace("exit", p.name, e.At)
	}
	now := s.clk.Now()
	uptime := now.Sub(p.startedAt)
	if lim, proc, log := p.limiter, p.proc, s.plog(p); lim != nil {
		// The output may still be draining: report the last drops once
		// every line of the run was read (or when the supervisor ends).
		p.limiter = nil
		go func() {
			select {
			case <-proc.OutputDone():
			case <-s.loopDone:
			}
			if d := lim.flush(); d > 0 {
				log.Warn("dropped lines above log_rate", zap.Uint64("dropped", d))
			}
		}()
	}
	s.detachRun(p)
	p.proc = nil
	p.ready = false
	s.cancelTimer(p)
	code := e.Code()
	p.lastExit = &control.ExitStatus{Code: code, At: now}
	if sig := e.Signal(); sig != 0 {
		p.lastExit.Signal = conf.SignalName(sig)
	}
	log := s.plog(p).With(zap.String("exit", e.String()), zap.Duration("uptime", uptime.Round(time.Millisecond)))
	in := p.intent
	p.intent = intentNone
	if p.pendingCfg != nil && in != intentRemove {
		// A reload changed it while it was running or stopping: whatever
		// ended this run, the next one uses the new settings.
		s.replaceConfig(p, p.pendingCfg)
	}
	if in != intentNone && in != intentWatchdog && !p.succeeded {
		// Ended by us before it could prove itself: neither a success nor
		// a failure, so a half-open trial slot is given back.
		p.br.Release(now)
	}
	switch in {
	case intentStop, intentTeardown, intentWDStop:
		p.lastFailed, p.lastCode = false, e.ShellCode()
		log.Info("stopped")
		s.setState(p, Stopped, "stopped")
		s.releaseWaiters(p)
		s.dependencyGone(p)
		return
	case intentRestart:
		log.Info("stopped for restart")
		s.releaseAfter(p, func() { s.start(p, "restart requested") })
		return
	case intentReplace:
		log.Info("stopped to apply new settings")
		s.releaseAfter(p, func() {
			if p.cfg.Autostart {
				s.start(p, "configuration changed")
			} else {
				s.setState(p, Stopped, "autostart = false")
			}
		})
		return
	case intentRemove:
		log.Info("stopped: removed from the configuration")
		s.setState(p, Stopped, "removed")
		s.releaseWaiters(p)
		s.deleteProgram(p)
		return
	}

	failed, why := classify(p.cfg, e, uptime, in == intentWatchdog)
	if failed && e.Signal() != 0 && e.Signal() == p.opSignal {
		// `supervise signal` sent it: the supervisor's own signal is not a failure.
		failed, why = false, ""
	}
	if s.shutting {
		// Ended on its own during the teardown: record, never restart.
		p.lastFailed, p.lastCode = failed, e.ShellCode()
		log.Info("ended during teardown")
		s.setState(p, Stopped, "ended during teardown")
		s.releaseWaiters(p)
		return
	}
	if failed {
		p.lastFailed, p.lastCode = true, exitCodeOf(e)
		log.Warn("failed", zap.String("reason", why))
		s.afterFailure(p, why)
		return
	}
	p.lastFailed, p.lastCode = false, e.ShellCode()
	if !p.succeeded {
		s.recordSuccess(p, "ended cleanly")
	}
	log.Info("exited")
	switch {
	case p.cfg.Critical && p.cfg.Restart == conf.RestartNever:
		s.setState(p, Exited, "exited")
		s.releaseWaiters(p)
		s.beginTeardown(fmt.Sprintf("critical program %s ended (%s)", p.name, e), e.ShellCode())
	case p.cfg.Restart == conf.RestartAlways:
		s.releaseAfter(p, func() { s.start(p, "restart = always") })
	default:
		s.setState(p, Exited, "exited")
		s.releaseWaiters(p)
		s.dependencyGone(p)
		s.checkAllExited()
	}
}

// exitCodeOf is the code a failed run hands on: its own, 128+N for a
// signal, 1 when it had none.
func exitCodeOf(e procs.Exit) int {
	if c := e.ShellCode(); c != 0 {
		return c
	}
	return 1
}

// afterFailure counts a failure and decides between backoff, an open
// breaker, exited, and ending the supervisor for a critical program.
func (s *Supervisor) afterFailure(p *program, why string) {
	now := s.clk.Now()
	p.failures++
	p.consecutive++
	p.succeeded = false
	p.br.Failure(now)
	if p.cfg.Restart == conf.RestartNever {
		s.setState(p, Exited, why)
		s.releaseWaiters(p)
		s.dependencyGone(p)
		if p.cfg.Critical {
			s.beginTeardown(fmt.Sprintf("critical program %s failed (%s)", p.name, why), p.lastCode)
			return
		}
		s.checkAllExited()
		return
	}
	if p.br.State(now) == breaker.Open {
		s.toOpen(p, why)
		return
	}
	delay := backoffDelay(p.cfg, p.consecutive)
	s.setState(p, Backoff, why)
	s.releaseWaiters(p)
	if delay <= 0 && p.lastExit != nil && p.lastExit.Error == "" {
		// No backoff after a run that ended: restart now, without a round
		// trip through a timer. (A spawn failure goes through the timer,
		// so a missing binary cannot recurse start -> spawn -> failure.)
		s.start(p, "restart (backoff 0)")
		return
	}
	s.plog(p).Info("restarting after backoff", zap.Duration("delay", delay), zap.Int("consecutive_failures", p.consecutive))
	s.setTimer(p, timerBackoff, delay)
}

// toOpen parks p with its breaker open until the half-open trial.
func (s *Supervisor) toOpen(p *program, why string) {
	now := s.clk.Now()
	rem := p.br.Remaining(now)
	s.setState(p, Open, why)
	s.releaseWaiters(p)
	s.dependencyGone(p)
	s.plog(p).Warn("breaker open: not restarting", zap.String("reason", why),
		zap.Int("failures", p.br.Failures()), zap.Duration("half_open_in", rem))
	if p.cfg.Critical {
		s.beginTeardown(fmt.Sprintf("critical program %s: breaker open (%s)", p.name, why), p.lastCode)
		return
	}
	s.setTimer(p, timerHalfOpen, rem)
}

func (s *Supervisor) recordSuccess(p *program, why string) {
	p.succeeded = true
	p.successes++
	p.consecutive = 0
	before := p.br.State(s.clk.Now())
	p.br.Success(s.clk.Now())
	if before != breaker.Closed {
		s.plog(p).Info("breaker closed", zap.String("reason", why))
	}
}

func (s *Supervisor) onTimer(p *program, kind timerKind) {
	switch kind {
	case timerBackoff:
		if p.state == Backoff {
			s.start(p, "backoff elapsed")
		}
	case timerHalfOpen:
		if p.state == Open {
			s.start(p, "breaker reset_timeout elapsed")
		}
	case timerMinUptime:
		if p.proc != nil && !p.succeeded {
			s.recordSuccess(p, "min_uptime reached")
		}
	case timerStopKill:
		if p.proc != nil {
			s.plog(p).Warn("stop_timeout passed: killing the process group", zap.Duration("stop_timeout", p.cfg.StopTimeout))
			p.proc.SignalGroup(syscall.SIGKILL)
		}
	}
}

// stop ends p's run (or cancels its pending restart) for the given reason;
// done, if not nil, is closed once p has no process.
func (s *Supervisor) stop(p *program, why intent, done chan struct{}) {
	if done != nil {
		p.stopWaiters = append(p.stopWaiters, done)
	}
	if p.proc == nil {
		s.cancelTimer(p)
		p.waitingFor = nil
		switch why {
		case intentRemove:
			s.deleteProgram(p)
		case intentRestart:
			s.releaseWaiters(p)
			s.start(p, "restart requested")
			return
		case intentReplace:
			s.replaceConfig(p, p.pendingCfg)
			if p.cfg.Autostart && p.state != Stopped {
				s.start(p, "configuration changed")
			}
		case intentTeardown:
			if p.state != Exited {
				s.setState(p, Stopped, "teardown")
			}
		default:
			s.setState(p, Stopped, "stopped")
		}
		s.releaseWaiters(p)
		return
	}
	if p.intent != intentNone && p.intent != intentWatchdog && p.state == Stopping {
		// Already stopping: a teardown or removal outranks a restart.
		if why == intentTeardown || why == intentRemove || why == intentStop {
			p.intent = why
		}
		return
	}
	p.intent = why
	sig := p.cfg.StopSignal
	s.plog(p).Info("stopping", zap.String("signal", conf.SignalName(sig)), zap.Int("pid", p.proc.Pid()))
	s.setState(p, Stopping, "stop requested")
	if err := p.proc.SignalGroup(sig); err != nil && !errors.Is(err, procs.ErrFinished) {
		s.plog(p).Warn("stop signal", zap.Error(err))
	}
	s.setTimer(p, timerStopKill, p.cfg.StopTimeout)
}

func (s *Supervisor) releaseWaiters(p *program) {
	for _, w := range p.stopWaiters {
		close(w)
	}
	p.stopWaiters = nil
}

// releaseAfter runs next, then releases the waiters, so a `restart` reply
// already sees the new run.
func (s *Supervisor) releaseAfter(p *program, next func()) {
	next()
	s.releaseWaiters(p)
}

func (s *Supervisor) setState(p *program, st State, why string) {
	if p.state == st {
		return
	}
	s.plog(p).Debug("state", zap.String("from", string(p.state)), zap.String("to", string(st)), zap.String("why", why))
	p.state = st
}

// dependencyReady starts programs that were waiting for p.
func (s *Supervisor) dependencyReady(p *program) {
	for _, q := range s.dependents(p.name) {
		if q.proc == nil && len(q.waitingFor) > 0 {
			s.start(q, "dependency "+p.name+" ready")
		}
	}
}

// dependents lists the programs whose depends_on names name, in
// configuration order. Few programs have dependencies, so this scans a
// short list instead of every program.
func (s *Supervisor) dependents(name string) []*program {
	var out []*program
	for _, qn := range s.withDeps {
		q := s.progs[qn]
		if q == nil {
			continue
		}
		for _, d := range q.cfg.DependsOn {
			if d == name {
				out = append(out, q)
				break
			}
		}
	}
	return out
}

// indexDependencies records which programs have depends_on.
func (s *Supervisor) indexDependencies() {
	s.withDeps = s.withDeps[:0]
	for _, n := range s.order {
		if p := s.progs[n]; p != nil && len(p.cfg.DependsOn) > 0 {
			s.withDeps = append(s.withDeps, n)
		}
	}
}

// dependencyGone logs, once, the dependents that p (now open, exited or
// stopped) keeps waiting.
func (s *Supervisor) dependencyGone(p *program) {
	for _, q := range s.dependents(p.name) {
		if q.proc != nil || len(q.waitingFor) == 0 {
			continue
		}
		key := "gone " + p.name + " " + string(p.state)
		if q.waitLogged != key {
			q.waitLogged = key
			s.plog(q).Warn("dependency will not become ready by itself: still waiting",
				zap.String("dependency", p.name), zap.String("dependency_state", string(p.state)))
		}
	}
}

// checkAllExited ends the supervisor when every program has exited.
func (s *Supervisor) checkAllExited() {
	if s.shutting || len(s.order) == 0 {
		return
	}
	code := 0
	for _, name := range s.order {
		p := s.progs[name]
		if p.state != Exited {
			return
		}
		if p.lastFailed && code == 0 {
			code = p.lastCode
		}
	}
	s.beginTeardown("every program has exited", code)
}

// detachRun closes what belongs to the current run: watchdog, notify socket.
func (s *Supervisor) detachRun(p *program) {
	if p.wd != nil {
		if b, ok := p.wd.LastBeat(); ok && b.At.After(p.lastBeat) {
			p.lastBeat = b.At
		}
		p.wd.Close()
		p.wd = nil
	}
	if p.notifySock != nil {
		p.notifySock.Close()
		p.notifySock = nil
	}
}

func (s *Supervisor) deleteProgram(p *program) {
	s.detachRun(p)
	s.cancelTimer(p)
	delete(s.progs, p.name)
	for i, n := range s.order {
		if n == p.name {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
			break
		}
	}
	s.indexDependencies()
}

func (s *Supervisor) replaceConfig(p *program, cfg *conf.Program) {
	if cfg == nil {
		return
	}
	p.cfg = cfg
	p.pendingCfg = nil
	// Changed settings (often the fix for what made it fail) deserve a
	// fresh breaker: an open one would refuse the restart the reload asks for.
	p.br = newProgram(cfg).br
	p.consecutive = 0
}

// armWatchdog watches p's heartbeat file for this run. Steady beats stay
// inside the watchdog (its timer is re-armed lazily) and do not wake the
// event loop: only the first beat of a run is sent, since it makes the
// program ready. Status reads the last beat from the watchdog.
func (s *Supervisor) armWatchdog(p *program, run uint64) error {
	w := p.cfg.Watchdog
	name := p.name
	var first atomic.Bool
	wd, err := s.fw.NewWatchdog(w.HeartbeatFile, w.Timeout, func() {
		s.box.push(watchdogFired{name: name, run: run})
	}, watchdog.WithStartGrace(w.StartGrace), watchdog.WithOnBeat(func(b watchdog.Beat) {
		if first.CompareAndSwap(false, true) {
			s.box.push(beat{name: name, run: run, at: b.At})
		}
	}))
	if err != nil {
		return fmt.Errorf("watch %s: %w", w.HeartbeatFile, err)
	}
	p.wd = wd
	wd.Start()
	return nil
}

// heartbeatOf returns p's last beat (file or WATCHDOG=1) and the metadata
// of its heartbeat file, read only when the file changed since the last
// look and only if it is not empty (a touched file has no metadata).
func (s *Supervisor) heartbeatOf(p *program) (time.Time, map[string]any) {
	last := p.lastBeat
	if p.wd != nil {
		if b, ok := p.wd.LastBeat(); ok && b.At.After(last) {
			last = b.At
		}
	}
	if p.cfg.Watchdog == nil || last.IsZero() || last.Equal(p.metaAt) {
		return last, p.beatMeta
	}
	p.metaAt = last
	path := p.cfg.Watchdog.HeartbeatFile
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && fi.Size() <= heartbeat.MaxSize {
		if st, err := heartbeat.Read(path); err == nil {
			p.beatMeta = st.Metadata
		}
	}
	return last, p.beatMeta
}

func (s *Supervisor) onBeat(p *program, b beat) {
	if b.at.After(p.lastBeat) {
		p.lastBeat = b.at
	}
	if !p.ready && !p.cfg.Notify {
		s.becomeReady(p, "first heartbeat")
	}
}

func (s *Supervisor) becomeReady(p *program, why string) {
	p.ready = true
	if p.intent != intentNone {
		// Being stopped: readiness is noted, but it neither revives the
		// state nor starts dependents.
		return
	}
	s.plog(p).Info("ready", zap.String("why", why))
	s.setState(p, Running, why)
	if !p.succeeded {
		s.recordSuccess(p, why)
	}
	s.dependencyReady(p)
}

func (s *Supervisor) onWatchdog(p *program) {
	action := conf.WatchdogRestart // WATCHDOG=trigger without a [watchdog] table
	log := s.plog(p)
	if w := p.cfg.Watchdog; w != nil {
		action = w.Action
		log = log.With(zap.String("heartbeat_file", w.HeartbeatFile), zap.Duration("timeout", w.Timeout))
	}
	if p.intent != intentNone {
		// Already being stopped (operator, reload, teardown): that stop
		// decides how the run ends, and it is not a watchdog failure.
		log.Warn("watchdog: heartbeat overdue while stopping; the stop goes on")
		return
	}
	switch action {
	case conf.WatchdogLog:
		log.Warn("watchdog: heartbeat overdue (action = log)")
		if p.wd != nil {
			p.wd.Reset()
		}
	case conf.WatchdogStop:
		log.Warn("watchdog: heartbeat overdue, stopping")
		s.stop(p, intentWDStop, nil)
	default:
		log.Warn("watchdog: heartbeat overdue, killing the process group")
		p.intent = intentWatchdog
		s.setState(p, Stopping, "watchdog")
		p.proc.SignalGroup(syscall.SIGKILL)
	}
}

// openNotify creates p's notify socket for this run.
func (s *Supervisor) openNotify(p *program, run uint64, pid *atomic.Int64) error {
	dir, err := s.ensureNotifyDir()
	if err != nil {
		return err
	}
	uid, gid := -1, -1
	if cred, err := procs.Credential(p.cfg.User, p.cfg.Group); err == nil && cred != nil {
		// The program runs as another user: it must be able to reach and
		// write its socket (the directory stays unlistable).
		uid, gid = int(cred.Uid), int(cred.Gid)
		os.Chmod(dir, 0o711)
	}
	name := p.name
	path := filepath.Join(dir, p.name+".sock")
	l, err := systemd.Listen(path, uid, gid, func(sender int) bool {
		main := int(pid.Load())
		return main > 0 && (sender == main || systemd.IsDescendant(sender, main))
	}, func(m systemd.Message) {
		s.box.push(notified{name: name, run: run, msg: m})
	})
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	p.notifySock = l
	return nil
}

func (s *Supervisor) onNotify(p *program, m systemd.Message) {
	if m.Status != "" {
		p.statusText = m.Status
	}
	if m.Watchdog && p.wd != nil {
		p.wd.Ping()
		p.lastBeat = s.clk.Now()
	}
	if m.WatchdogTrigger && p.proc != nil {
		s.plog(p).Warn("program asked for its watchdog to fire (WATCHDOG=trigger)")
		s.onWatchdog(p)
		return
	}
	if m.Stopping {
		s.plog(p).Info("program is stopping (STOPPING=1)")
	}
	if m.Ready && !p.ready {
		s.becomeReady(p, "READY=1")
	}
}
