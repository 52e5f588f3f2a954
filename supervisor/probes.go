package supervisor

import (
	"fmt"
	"math"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/lifecycle"
	"github.com/supervise/supervise/supervisor/probe"
)

// The probes of SPEC §11. A run of a program with a [readiness] or
// [liveness] table has a probeAttachment: a probe.Runner per probe (a
// probe.LineMatcher for log_line), whose attempts run off the loop and
// whose state changes come in as probed events. The readiness probe starts
// at the spawn (after its initial_delay); the liveness probe once the run
// is ready. A program with neither table has no attachment, no timer and
// no goroutine for probes, and its output lines go through no matcher.

// Names of the probes, in status and metrics.
const (
	probeReadiness = "readiness"
	probeLiveness  = "liveness"
)

// probed: a probe of a program's run changed state.
type probed struct {
	name     string
	run      uint64
	probe    string // probeReadiness or probeLiveness
	from, to probe.State
	st       probe.Status
	line     string // the line that made a log_line probe pass
}

func (probed) isEvent() {}

// probeAttachment is the probes of one run.
type probeAttachment struct {
	s         *Supervisor
	readiness *probe.Runner
	lines     *probe.LineMatcher // a log_line readiness probe
	liveness  *probe.Runner
	// Owned by the loop.
	cfg         *conf.Program
	spawnedAt   time.Time
	liveStarted bool
}

// probeTotals are what the ended runs of a program's probe counted, so
// that status and metrics count across runs; last is the final status of
// the latest ended run.
type probeTotals struct {
	attempts, failures uint64
	duration           time.Duration
	last               probe.Status
	ran                bool
}

// attachProbes prepares the probes of p's run r.
func attachProbes(s *Supervisor, p *program, r *run, _ *[]string) (attachment, error) {
	cfg := p.cfg()
	if cfg.Readiness == nil && cfg.Liveness == nil {
		return nil, nil
	}
	a := &probeAttachment{s: s, cfg: cfg}
	name, n := p.name, r.n
	report := func(which string) func(from, to probe.State, st probe.Status) {
		return func(from, to probe.State, st probe.Status) {
			s.box.push(probed{name: name, run: n, probe: which, from: from, to: to, st: st})
		}
	}
	if pr := cfg.Readiness; pr != nil {
		if pr.Kind() == conf.ProbeLogLine {
			stage := s.out.stage
			a.lines = probe.NewLineMatcher(pr.LogLine, pr.SuccessThreshold, s.clk, func(line string) {
				// Called on the goroutine that reads the Lines outputs,
				// the stage's owner: the kept lines hold the line
				// before the loop hears of it, as the console does.
				stage.publish()
				st := probe.Status{State: probe.Passing}
				s.box.push(probed{name: name, run: n, probe: probeReadiness, from: probe.Unknown, to: probe.Passing, st: st, line: line})
			})
			r.lines = a.lines
		} else {
			c, err := s.checker(cfg, pr)
			if err != nil {
				return nil, fmt.Errorf("readiness probe: %w", err)
			}
			a.readiness = probe.NewRunner(c, probeSettings(pr), s.clk, report(probeReadiness))
		}
	}
	if pr := cfg.Liveness; pr != nil {
		c, err := s.checker(cfg, pr)
		if err != nil {
			return nil, fmt.Errorf("liveness probe: %w", err)
		}
		a.liveness = probe.NewRunner(c, probeSettings(pr), s.clk, report(probeLiveness))
	}
	r.probes = a
	return a, nil
}

func probeSettings(pr *conf.Probe) probe.Settings {
	return probe.Settings{Interval: pr.Interval, Timeout: pr.Timeout,
		SuccessThreshold: pr.SuccessThreshold, FailureThreshold: pr.FailureThreshold}
}

// checker makes the checker of an exec, http or tcp probe of cfg. An exec
// probe runs with the program's user, group, directory and environment
// (without the program's notify socket, which is not the probe's).
func (s *Supervisor) checker(cfg *conf.Program, pr *conf.Probe) (probe.Checker, error) {
	switch pr.Kind() {
	case conf.ProbeExec:
		return &probe.Exec{Spawner: s.opts.Reaper, Spec: procs.Spec{
			Argv: pr.Exec, Dir: cfg.Directory, Env: s.environment(cfg), User: cfg.User, Group: cfg.Group,
		}}, nil
	case conf.ProbeHTTP:
		return probe.NewHTTP(pr.HTTP, pr.HTTPVerifyTLS)
	case conf.ProbeTCP:
		return &probe.TCP{Addr: pr.TCP}, nil
	}
	return nil, fmt.Errorf("no checker for a %q probe", pr.Kind())
}

func (a *probeAttachment) spawned(*procs.Process) {
	a.spawnedAt = a.s.clk.Now()
	if a.readiness != nil {
		a.readiness.Start(a.cfg.Readiness.InitialDelay)
	}
}

// ready starts the liveness probe once the run is ready: initial_delay
// still counts from the spawn.
func (a *probeAttachment) ready() {
	if a.liveness == nil || a.liveStarted {
		return
	}
	a.liveStarted = true
	a.liveness.Start(a.spawnedAt.Add(a.cfg.Liveness.InitialDelay).Sub(a.s.clk.Now()))
}

// close stops the probes without waiting: an attempt in flight is
// cancelled and ends by itself (an exec probe's group is killed).
func (a *probeAttachment) close() {
	for _, r := range []*probe.Runner{a.readiness, a.liveness} {
		if r != nil {
			r.Stop()
		}
	}
	if a.lines != nil {
		a.lines.Stop()
	}
}

// busy reports whether an attempt is still in flight.
func (a *probeAttachment) busy() bool {
	return (a.readiness != nil && a.readiness.Busy()) || (a.liveness != nil && a.liveness.Busy())
}

// wait waits, after close, for the attempts in flight to end.
func (a *probeAttachment) wait() {
	for _, r := range []*probe.Runner{a.readiness, a.liveness} {
		if r != nil {
			r.Wait()
		}
	}
}

// status returns the probe's current status, ok false when it has none.
func (a *probeAttachment) status(which string) (probe.Status, bool) {
	switch {
	case which == probeReadiness && a.lines != nil:
		return a.lines.Status(), true
	case which == probeReadiness && a.readiness != nil:
		return a.readiness.Status(), true
	case which == probeLiveness && a.liveness != nil:
		return a.liveness.Status(), true
	}
	return probe.Status{}, false
}

// ending records a's run ending: its attempts in flight end by
// themselves, and the supervisor waits for them only when it exits.
func (s *Supervisor) ending(a *probeAttachment) {
	s.endingProbes = slices.DeleteFunc(s.endingProbes, func(x *probeAttachment) bool { return !x.busy() })
	if a.busy() {
		s.endingProbes = append(s.endingProbes, a)
	}
}

// keepProbeTotals adds what the probes of p's ending run counted to p's
// totals.
func (p *program) keepProbeTotals(a *probeAttachment) {
	for i, which := range []string{probeReadiness, probeLiveness} {
		st, ok := a.status(which)
		if !ok {
			continue
		}
		t := &p.probeTotals[i]
		t.attempts += st.Attempts
		t.failures += st.Failures
		t.duration += st.TotalDuration
		t.last, t.ran = st, true
	}
}

// onProbe handles a change of state of a probe of p's current run. The
// change is a Probe event (from, to); what it makes the machine do
// publishes its own (ready, not_ready, or a probe firing with its action).
func (s *Supervisor) onProbe(p *program, ev probed) {
	log := p.log.With(zap.String("probe", ev.probe))
	cfg := p.cfg()
	why := ev.st.LastError
	if ev.to == probe.Passing {
		why = ev.line
	}
	s.publishProbe(p, ev.probe, string(ev.from), string(ev.to), why)
	switch ev.probe {
	case probeReadiness:
		switch ev.to {
		case probe.Passing:
			if ev.line != "" {
				log.Info("readiness probe passing", zap.String("line", ev.line))
			} else {
				log.Info("readiness probe passing", zap.Int("attempts", int(ev.st.Attempts)))
			}
			detail := "readiness probe passing"
			if cfg.Readiness != nil {
				detail = fmt.Sprintf("%s %s passing", cfg.Readiness.Kind(), cfg.Readiness.Target())
			}
			s.step(p, lifecycle.Readiness{Source: lifecycle.SourceProbe, OK: true, Detail: detail})
		case probe.Failing:
			log.Warn("readiness probe failing", zap.Int("consecutive_failures", ev.st.ConsecutiveFailures),
				zap.String("last_error", ev.st.LastError), zap.Bool("was_passing", ev.from == probe.Passing))
			s.step(p, lifecycle.Readiness{Source: lifecycle.SourceProbe, OK: false, Detail: ev.st.LastError})
		}
	case probeLiveness:
		switch ev.to {
		case probe.Passing:
			if ev.from == probe.Failing {
				log.Info("liveness probe passing again")
			}
		case probe.Failing:
			action := conf.WatchdogRestart
			if cfg.Liveness != nil {
				action = cfg.Liveness.Action
			}
			s.step(p, lifecycle.Unhealthy{Source: probeLiveness, Action: action,
				Detail: fmt.Sprintf("%d consecutive failures, last: %s", ev.st.ConsecutiveFailures, ev.st.LastError)})
		}
	}
}

// probesStatus builds the probes of p's status row, nil when it has none.
func (p *program) probesStatus() *control.ProbesStatus {
	cfg := p.cfg()
	if cfg.Readiness == nil && cfg.Liveness == nil {
		return nil
	}
	out := &control.ProbesStatus{}
	for i, pr := range []struct {
		which string
		cfg   *conf.Probe
		dst   **control.ProbeStatus
	}{{probeReadiness, cfg.Readiness, &out.Readiness}, {probeLiveness, cfg.Liveness, &out.Liveness}} {
		if pr.cfg == nil {
			continue
		}
		t := p.probeTotals[i]
		ps := &control.ProbeStatus{Kind: string(pr.cfg.Kind()), State: string(probe.Unknown),
			Attempts: t.attempts, Failures: t.failures, DurationSecondsTotal: roundMicro(t.duration.Seconds())}
		last := t.last // of the last run: its errors stay, its state does not
		if p.run != nil && p.run.probes != nil {
			if st, ok := p.run.probes.status(pr.which); ok {
				ps.State = string(st.State)
				ps.ConsecutiveFailures = st.ConsecutiveFailures
				ps.Attempts += st.Attempts
				ps.Failures += st.Failures
				ps.DurationSecondsTotal = roundMicro((t.duration + st.TotalDuration).Seconds())
				if st.Attempts > 0 {
					last.LastDuration, last.LastAt = st.LastDuration, st.LastAt
				}
				if st.LastError != "" {
					last.LastError, last.LastFailureAt = st.LastError, st.LastFailureAt
				}
			}
		}
		ps.LastError = last.LastError
		ps.LastDurationSeconds = roundMicro(last.LastDuration.Seconds())
		if !last.LastAt.IsZero() {
			at := last.LastAt.UTC()
			ps.LastAt = &at
		}
		if !last.LastFailureAt.IsZero() {
			at := last.LastFailureAt.UTC()
			ps.LastFailureAt = &at
		}
		*pr.dst = ps
	}
	return out
}

// matchLines passes every line of an output stream of the run to its
// log_line probe, after it is logged (so the line that makes a program
// ready is in the log before its dependents start) and whether or not
// log_rate drops it.
func matchLines(o procs.Output, m *probe.LineMatcher) procs.Output {
	if o.Kind != procs.Lines {
		return o
	}
	next := o.OnLine
	o.OnLine = func(line []byte, partial bool) {
		next(line, partial)
		m.Line(line)
	}
	return o
}

// waitProbes waits, at the end of Run, for the probe attempts still in
// flight, at most limit: an exec probe killed with its run is reaped by
// then.
func waitProbes(as []*probeAttachment, limit time.Duration) {
	if len(as) == 0 {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, a := range as {
			a.wait()
		}
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

func roundMicro(x float64) float64 { return math.Round(x*1e6) / 1e6 }
