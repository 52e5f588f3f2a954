package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/lifecycle"
	"github.com/supervise/supervise/supervisor/probe"
	"github.com/supervise/supervise/systemd"
	"github.com/supervise/supervise/watch/watchdog"
)

// run is what exists for one run of a program: its process and the
// attachments that live exactly as long (notify socket, heartbeat
// watchdog). Events of attachments carry the run's number, so that an
// event of an earlier run is dropped.
type run struct {
	n       uint64
	proc    *procs.Process
	pid     atomic.Int64 // the process's pid once spawned, for the notify socket's sender check
	limiter *lineLimiter
	wd      *watchdog.FileWatchdog
	notify  *systemd.Listener
	probes  *probeAttachment   // nil without probes
	lines   *probe.LineMatcher // the log_line readiness probe, nil without one
	atts    []attachment
}

// attachment is a mechanism that lives as long as one run and reports
// into the event loop: a readiness source or a health check (notify
// socket, heartbeat watchdog, probes).
type attachment interface {
	// spawned is called once the run's process exists.
	spawned(proc *procs.Process)
	// close ends the attachment; nothing it reports afterwards counts.
	close()
}

// attacher prepares one kind of attachment for a run about to be spawned;
// it may add to the run's environment. A nil attachment means the program
// does not use that kind; an error keeps the run from starting.
type attacher func(s *Supervisor, p *program, r *run, env *[]string) (attachment, error)

// attachers are the kinds of attachments, in the order they are prepared.
var attachers = []attacher{attachNotify, attachWatchdog, attachProbes}

// spawn starts the process of a new run, as p's machine asked.
func (s *Supervisor) spawn(p *program, a lifecycle.Spawn) {
	cfg := p.cfg()
	r := &run{n: a.Run}
	p.statusText = ""
	env := s.environment(cfg)
	for _, att := range attachers {
		x, err := att(s, p, r, &env)
		if err != nil {
			s.endRun(p, r)
			s.spawnFailed(p, err)
			return
		}
		if x != nil {
			r.atts = append(r.atts, x)
		}
	}
	if cfg.LogRate > 0 {
		r.limiter = newLineLimiter(cfg.LogRate, cfg.EffectiveLogBurst(), s.clk)
	}
	spec := procs.Spec{
		Argv:   cfg.Command,
		Dir:    cfg.Directory,
		Env:    env,
		User:   cfg.User,
		Group:  cfg.Group,
		Stdout: s.output(p.name, "stdout", cfg.Stdout, r.limiter),
		Stderr: s.output(p.name, "stderr", cfg.Stderr, r.limiter),
		// A program's last lines come before the report of its end.
		DrainOutput: true,
	}
	if r.lines != nil {
		spec.Stdout, spec.Stderr = matchLines(spec.Stdout, r.lines), matchLines(spec.Stderr, r.lines)
	}
	if s.opts.SingleCommand && p.name == conf.MainProgram {
		// Like tini: the one command keeps the terminal, if there is one.
		spec.Stdin, spec.Foreground = os.Stdin, true
	}
	name, n := p.name, a.Run
	proc, err := s.opts.Reaper.Spawn(spec, func(e procs.Exit) {
		s.box.push(exited{name: name, run: n, exit: e})
	})
	if err != nil {
		s.endRun(p, r)
		s.spawnFailed(p, err)
		return
	}
	r.proc = proc
	r.pid.Store(int64(proc.Pid()))
	p.run = r
	if s.trace != nil {
		s.trace("spawn", p.name, proc.Started())
	}
	for _, x := range r.atts {
		x.spawned(proc)
	}
	p.log.Info("started", zap.Int("pid", proc.Pid()), zap.String("why", a.Why))
	s.step(p, lifecycle.Spawned{PID: proc.Pid()})
}

func (s *Supervisor) spawnFailed(p *program, err error) {
	p.log.Error("cannot start", zap.Error(fmt.Errorf("programs.%s: %w", p.name, err)))
	s.step(p, lifecycle.SpawnFailed{Err: err, Code: spawnExitCode(err)})
}

// endRun closes what belongs to run r; the last beat is kept for status.
func (s *Supervisor) endRun(p *program, r *run) {
	if r == nil {
		return
	}
	if r.wd != nil {
		if b, ok := r.wd.LastBeat(); ok && b.At.After(p.lastBeat) {
			p.lastBeat = b.At
		}
	}
	for _, x := range r.atts {
		x.close()
	}
	r.atts = nil
	if r.probes != nil {
		p.keepProbeTotals(r.probes)
		s.ending(r.probes)
	}
	if p.run == r {
		p.run = nil
	}
}

// onExit handles the end of p's current run.
func (s *Supervisor) onExit(p *program, e procs.Exit) {
	if s.trace != nil {
		s.trace("exit", p.name, e.At)
	}
	r := p.run
	if lim, proc, log := r.limiter, r.proc, p.log; lim != nil {
		// The output may still be draining: report the last drops once
		// every line of the run was read (or when the supervisor ends).
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
	s.endRun(p, r)
	s.step(p, lifecycle.ProcessExited{Status: exitStatusOf(e)})
}

// environment builds a run's environment: the supervisor's own (unless
// clear_environment) without the variables that address the supervisor's
// own systemd connection, then the program's additions (its env files,
// then its environment table), then who the program is
// (SUPERVISE_PROGRAM, SUPERVISE_REPLICA, SUPERVISE_INSTANCE).
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
	for k, v := range cfg.Env() {
		env = setEnv(env, k, v)
	}
	if cfg.Base != "" {
		for _, kv := range cfg.Identity() {
			k, v, _ := cut(kv)
			env = setEnv(env, k, v)
		}
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

// watchdogAttachment is a run's heartbeat watchdog: the first beat is a
// readiness signal, a silence too long a failed health check.
type watchdogAttachment struct{ wd *watchdog.FileWatchdog }

func (w watchdogAttachment) spawned(*procs.Process) {}
func (w watchdogAttachment) close()                 { w.wd.Close() }

// attachWatchdog watches p's heartbeat file for this run. The watch (and
// its directory) exists before the program does, so not even its very
// first beat can be missed. Steady beats stay inside the watchdog (its
// timer is re-armed lazily) and do not wake the event loop: only the
// first beat of a run is sent, since it makes the program ready. Status
// reads the last beat from the watchdog.
func attachWatchdog(s *Supervisor, p *program, r *run, _ *[]string) (attachment, error) {
	w := p.cfg().Watchdog
	if w == nil {
		return nil, nil
	}
	name, n := p.name, r.n
	var first atomic.Bool
	wd, err := s.fw.NewWatchdog(w.HeartbeatFile, w.Timeout, func() {
		s.box.push(unhealthy{name: name, run: n, source: "watchdog"})
	}, watchdog.WithStartGrace(w.StartGrace), watchdog.WithOnBeat(func(b watchdog.Beat) {
		if first.CompareAndSwap(false, true) {
			s.box.push(beat{name: name, run: n, at: b.At})
		}
	}))
	if err != nil {
		// A heartbeat that cannot be watched must not keep the program
		// from running: it will be restarted by nothing but its exits.
		p.log.Error("watchdog", zap.Error(fmt.Errorf("watch %s: %w", w.HeartbeatFile, err)))
		return nil, nil
	}
	r.wd = wd
	wd.Start()
	return watchdogAttachment{wd}, nil
}

// notifyAttachment is a run's notify socket (SPEC §4).
type notifyAttachment struct{ l *systemd.Listener }

func (a notifyAttachment) spawned(*procs.Process) {}
func (a notifyAttachment) close()                 { a.l.Close() }

// attachNotify creates p's notify socket for this run and hands it to the
// program as NOTIFY_SOCKET (with WATCHDOG_USEC when it has a watchdog).
// Datagrams count only when sent by the run's process or a descendant.
func attachNotify(s *Supervisor, p *program, r *run, env *[]string) (attachment, error) {
	cfg := p.cfg()
	if !cfg.Notify {
		return nil, nil
	}
	dir, err := s.ensureNotifyDir()
	if err != nil {
		return nil, err
	}
	uid, gid := -1, -1
	if cred, err := procs.Credential(cfg.User, cfg.Group); err == nil && cred != nil {
		// The program runs as another user: it must be able to reach and
		// write its socket (the directory stays unlistable).
		uid, gid = int(cred.Uid), int(cred.Gid)
		os.Chmod(dir, 0o711)
	}
	name, n := p.name, r.n
	path := filepath.Join(dir, p.name+".sock")
	l, err := systemd.Listen(path, uid, gid, func(sender int) bool {
		main := int(r.pid.Load())
		return main > 0 && (sender == main || systemd.IsDescendant(sender, main))
	}, func(m systemd.Message) {
		s.box.push(notified{name: name, run: n, msg: m})
	}, systemd.WithErrorHandler(func(err error) {
		s.refused("notify socket of "+name, err)
	}))
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	r.notify = l
	*env = append(*env, "NOTIFY_SOCKET="+l.Path())
	if cfg.Watchdog != nil {
		*env = append(*env, "WATCHDOG_USEC="+strconv.FormatInt(cfg.Watchdog.Timeout.Microseconds(), 10))
	}
	return notifyAttachment{l}, nil
}

// onNotify handles a datagram of p's current run.
func (s *Supervisor) onNotify(p *program, m systemd.Message) {
	if m.Status != "" {
		p.statusText = m.Status
	}
	if m.Watchdog && p.run != nil && p.run.wd != nil {
		p.run.wd.Ping()
		p.lastBeat = s.clk.Now()
	}
	if m.Stopping {
		p.log.Info("program is stopping (STOPPING=1)")
	}
	if m.Ready {
		s.step(p, lifecycle.Readiness{Source: lifecycle.SourceNotify, OK: true, Detail: "READY=1"})
	}
	if m.WatchdogTrigger {
		action := conf.WatchdogRestart // WATCHDOG=trigger without a [watchdog] table
		if w := p.cfg().Watchdog; w != nil {
			action = w.Action
		}
		s.step(p, lifecycle.Unhealthy{Source: "watchdog", Action: action, Detail: "the program asked for it (WATCHDOG=trigger)"})
	}
}

// onBeat handles the first beat of p's current run.
func (s *Supervisor) onBeat(p *program, b beat) {
	if b.at.After(p.lastBeat) {
		p.lastBeat = b.at
	}
	s.step(p, lifecycle.Readiness{Source: lifecycle.SourceHeartbeat, OK: true, Detail: "first heartbeat"})
}

// onUnhealthy handles a failed health check of p's current run.
func (s *Supervisor) onUnhealthy(p *program, source string) {
	action := conf.WatchdogRestart
	if w := p.cfg().Watchdog; w != nil && source == "watchdog" {
		action = w.Action
	}
	s.step(p, lifecycle.Unhealthy{Source: source, Action: action})
}
