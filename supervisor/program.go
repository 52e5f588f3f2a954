package supervisor

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/breaker"
	"github.com/supervise/supervise/supervisor/events"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// program is one supervised program: its lifecycle machine, which decides,
// and what the event loop keeps to carry the machine's actions out — the
// current run's process and attachments, the timers, the waiters of stop
// requests. It is owned by the event loop: nothing else reads or writes it.
type program struct {
	name string
	m    *lifecycle.Machine
	log  progLogger

	run        *run // the current run's process and attachments, nil if none
	timers     [lifecycle.NumTimers]clock.Timer
	timerSeq   [lifecycle.NumTimers]uint64
	waiters    []waiter
	statusText string
	lastBeat   time.Time
	beatMeta   map[string]any
	refusal    string // the last Refuse of the step in progress
	waitLogged string // the dependency wait logged last, to log each once
	// probeTotals count the readiness [0] and liveness [1] probes of the
	// runs that ended.
	probeTotals [2]probeTotals
}

// waiter is a request waiting until the run that was current when it
// asked has ended and the program has settled (not stopping).
type waiter struct {
	run  uint64
	done chan struct{}
}

func (s *Supervisor) newProgram(cfg *conf.Program) *program {
	return &program{name: cfg.Name, m: lifecycle.New(cfg), log: progLogger{l: s.log, name: cfg.Name}}
}

func (p *program) cfg() *conf.Program { return p.m.Config() }

// step feeds ev to p's machine and carries out the actions, in order.
// It runs only in the loop goroutine.
func (s *Supervisor) step(p *program, ev lifecycle.Event) {
	before, ready := p.m.State(), p.m.Ready()
	for _, a := range p.m.Step(ev, s.clk.Now()) {
		s.execute(p, a)
	}
	if s.progs[p.name] != p {
		return // removed
	}
	s.releaseWaiters(p, false)
	if p.m.Ready() && !ready && p.run != nil && p.run.probes != nil {
		p.run.probes.ready() // the liveness probe starts once the run is ready
	}
	if p.m.State() != before || p.m.Ready() != ready {
		s.dependencyChanged(p)
		s.rolled(p)
		if p.m.State() == lifecycle.Exited {
			s.checkAllExited()
		}
	}
}

func (s *Supervisor) execute(p *program, a lifecycle.Action) {
	switch a := a.(type) {
	case lifecycle.Spawn:
		s.spawn(p, a)
	case lifecycle.SignalGroup:
		if p.run != nil {
			if err := p.run.proc.SignalGroup(a.Signal); err != nil && !errors.Is(err, procs.ErrFinished) {
				p.log.Warn("signal", zap.String("signal", conf.SignalName(a.Signal)), zap.Error(err))
			}
		}
	case lifecycle.SetTimer:
		s.setTimer(p, a.Kind, a.After)
	case lifecycle.CancelTimer:
		s.cancelTimer(p, a.Kind)
	case lifecycle.WantStart:
		s.start(p, a.Why, false)
	case lifecycle.Refuse:
		p.refusal = a.Reason
	case lifecycle.Remove:
		s.deleteProgram(p)
	case lifecycle.Critical:
		if !s.shutting {
			s.publish(events.CriticalExit, p.name, func(ev *events.Event) {
				ev.Reason, ev.ExitCode = a.Reason, intp(a.Code)
			})
		}
		s.beginTeardown(a.Reason, a.Code)
	case lifecycle.Emit:
		s.record(p, a.Record)
	}
}

// start asks p's machine for a run, with its dependencies evaluated now.
// operator marks a request of an operator, which an open breaker refuses
// with an answer; it returns that refusal.
func (s *Supervisor) start(p *program, why string, operator bool) string {
	p.refusal = ""
	s.step(p, lifecycle.Start{Why: why, Unmet: s.unmet(p), Operator: operator})
	r := p.refusal
	p.refusal = ""
	return r
}

// record logs what p's machine reports, and publishes it as an event.
func (s *Supervisor) record(p *program, r lifecycle.Record) {
	s.publishRecord(p, r)
	log := p.log
	switch r := r.(type) {
	case lifecycle.Transition:
		fields := []zap.Field{zap.String("from", string(r.From)), zap.String("to", string(r.To)), zap.String("why", r.Reason)}
		switch {
		case r.Exit != nil && r.To == lifecycle.Backoff && strings.HasPrefix(r.Reason, "exited"):
			log.Info("exited", zap.String("exit", r.Exit.String()), zap.Int("pid", r.PID))
		case r.Exit != nil && (r.To == lifecycle.Stopped || r.To == lifecycle.Exited) && !p.lastFailed():
			log.Info(r.Reason, zap.String("exit", r.Exit.String()), zap.Int("pid", r.PID))
		case r.To == lifecycle.Open:
			b := p.m.Breaker()
			log.Warn("breaker open: not restarting", zap.String("reason", r.Reason),
				zap.Int("failures", b.Failures()), zap.Duration("half_open_in", conf.RoundDuration(b.Remaining(s.clk.Now()))))
		default:
			log.Debug("state", fields...)
		}
	case lifecycle.Failed:
		fields := []zap.Field{zap.String("reason", r.Reason), zap.Int("consecutive_failures", r.Consecutive)}
		if last := p.m.Last(); last != nil && last.Exit != nil {
			fields = append(fields, zap.String("exit", last.Exit.String()))
		}
		log.Warn("failed", fields...)
	case lifecycle.Succeeded:
		log.Debug("run counted as a success", zap.String("reason", r.Reason))
	case lifecycle.Restarting:
		log.Info("restarting after backoff", zap.Duration("delay", r.Delay), zap.Int("consecutive_failures", r.Consecutive))
	case lifecycle.BreakerChange:
		switch r.To {
		case breaker.Closed:
			log.Info("breaker closed", zap.String("from", r.From.String()))
		case breaker.HalfOpen:
			log.Info("breaker half-open: trial start")
		}
	case lifecycle.ReadyChange:
		if r.Ready {
			log.Info("ready", zap.String("source", r.Source))
		} else {
			log.Warn("not ready", zap.String("source", r.Source), zap.String("detail", r.Detail))
		}
	case lifecycle.WaitingFor:
		key := strings.Join(r.Names, ", ")
		if len(r.Names) > 0 && p.waitLogged != key {
			p.waitLogged = key
			log.Info("waiting for dependencies", zap.Strings("depends_on", r.Names))
		}
		if len(r.Names) == 0 {
			p.waitLogged = ""
		}
	case lifecycle.Health:
		s.logHealth(p, r)
	case lifecycle.Killing:
		log.Warn("stop_timeout passed: killing the process group", zap.Duration("stop_timeout", r.After))
	}
}

func (p *program) lastFailed() bool {
	l := p.m.Last()
	return l != nil && l.Failed
}

func (s *Supervisor) logHealth(p *program, h lifecycle.Health) {
	log := p.log.With(zap.String("check", h.Source))
	if w := p.cfg().Watchdog; w != nil && h.Source == "watchdog" {
		log = log.With(zap.String("heartbeat_file", w.HeartbeatFile), zap.Duration("timeout", w.Timeout))
	}
	if h.Detail != "" {
		log = log.With(zap.String("detail", h.Detail))
	}
	what := h.Source + ": failed"
	if h.Source == "watchdog" {
		what = "watchdog: heartbeat overdue"
	}
	switch {
	case h.Ignored:
		log.Warn(what + " while stopping; the stop goes on")
	case h.Action == conf.WatchdogLog:
		log.Warn(what + " (action = log)")
		if p.run != nil && p.run.wd != nil && h.Source == "watchdog" {
			p.run.wd.Reset()
		}
	case h.Action == conf.WatchdogStop:
		log.Warn(what + ", stopping")
	default:
		log.Warn(what + ", killing the process group")
	}
}

// setTimer (re)arms p's timer of kind k.
func (s *Supervisor) setTimer(p *program, k lifecycle.TimerKind, d time.Duration) {
	s.cancelTimer(p, k)
	seq, name := p.timerSeq[k], p.name
	p.timers[k] = s.clk.AfterFunc(d, func() { s.box.push(timerFired{name: name, kind: k, seq: seq}) })
}

// cancelTimer disarms p's timer of kind k; a firing already queued is
// dropped by its sequence number.
func (s *Supervisor) cancelTimer(p *program, k lifecycle.TimerKind) {
	if p.timers[k] != nil {
		p.timers[k].Stop()
		p.timers[k] = nil
	}
	p.timerSeq[k]++
}

func (s *Supervisor) cancelTimers(p *program) {
	for k := range p.timers {
		s.cancelTimer(p, lifecycle.TimerKind(k))
	}
}

// wait registers done to be closed once p's current run has ended and p
// has settled; at once if it has no process.
func (s *Supervisor) wait(p *program, done chan struct{}) {
	p.waiters = append(p.waiters, waiter{run: p.m.Run(), done: done})
	s.releaseWaiters(p, false)
}

// releaseWaiters closes the waiters whose run is over (all, with force).
func (s *Supervisor) releaseWaiters(p *program, force bool) {
	if len(p.waiters) == 0 {
		return
	}
	settled := !p.m.Alive() || p.m.State() != lifecycle.Stopping
	keep := p.waiters[:0]
	for _, w := range p.waiters {
		if force || (settled && (!p.m.Alive() || p.m.Run() != w.run)) {
			close(w.done)
			continue
		}
		keep = append(keep, w)
	}
	p.waiters = keep
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

// exitStatusOf converts the reaper's status.
func exitStatusOf(e procs.Exit) lifecycle.ExitStatus {
	return lifecycle.ExitStatus{Code: e.Code(), Signal: e.Signal()}
}

var _ = syscall.SIGKILL
