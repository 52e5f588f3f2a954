package supervisor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/events"
	"github.com/supervise/supervise/supervisor/lifecycle"
	"github.com/supervise/supervise/supervisor/shutdown"
)

// beginTeardown starts the teardown once (SPEC §5). code is the exit code
// unless the budget is exceeded.
func (s *Supervisor) beginTeardown(reason string, code int) {
	if s.shutting {
		return
	}
	s.shutting = true
	s.exitCode = code
	s.exitReason = reason
	s.log.Info("teardown", zap.String("reason", reason), zap.Int("exit_code", code))
	s.publish(events.Teardown, "", func(ev *events.Event) {
		ev.Phase, ev.Reason, ev.ExitCode = "begin", reason, intp(code)
	})
	s.sdNotify("STOPPING=1\nSTATUS=stopping: " + reason)
	// No more restarts: pending backoffs and trials are cancelled.
	for _, name := range s.order {
		if p := s.progs[name]; p != nil {
			s.step(p, lifecycle.Shutdown{})
		}
	}
	steps, err := s.teardownSteps()
	if err != nil {
		s.log.Error("teardown order", zap.Error(err))
	}
	if len(s.hooks.byName) > 0 {
		steps = append(steps, s.hooksStep(steps))
	}
	s.teardownCh = make(chan struct{})
	force := s.teardownCh
	budget := s.cfg.Supervisor.ShutdownTimeout
	sd := shutdown.New(
		shutdown.WithTimeout(budget),
		shutdown.WithForceExitCode(s.cfg.Supervisor.ForceExitCode),
		shutdown.WithClock(s.clk),
		shutdown.WithProgress(time.Second, func(waiting []string) {
			s.log.Info("teardown: still waiting", zap.Strings("steps", waiting))
		}),
	)
	// A step's After names must be registered before it: register in
	// rounds, each taking the steps whose predecessors are all in.
	registered := map[string]bool{}
	for len(steps) > 0 {
		var next []shutdown.Step
		for _, st := range steps {
			ready := true
			for _, a := range st.After {
				ready = ready && registered[a]
			}
			if !ready {
				next = append(next, st)
				continue
			}
			if err := sd.RegisterStep(st); err != nil {
				s.log.Error("teardown step", zap.String("step", st.Name), zap.Error(err))
			}
			registered[st.Name] = true
		}
		if len(next) == len(steps) { // a cycle: conf forbids it; drop the order
			for _, st := range next {
				st.After = nil
				if err := sd.RegisterStep(st); err != nil {
					s.log.Error("teardown step", zap.String("step", st.Name), zap.Error(err))
				}
			}
			break
		}
		steps = next
	}
	deadline := s.clk.Now().Add(budget)
	s.teardown = sd
	sd.Trigger(reason)
	go func() {
		res := sd.Wait(context.Background())
		if res.TimedOut || res.Forced {
			s.box.push(killAll{})
		}
		if s.opts.Sweep && s.sweep(deadline, force, res.TimedOut || res.Forced) && !res.Forced {
			// The budget ran out while processes were still left.
			res.TimedOut = true
			res.Unfinished = append(res.Unfinished, "remaining processes")
		}
		select {
		case <-force:
			res.Forced = true
		default:
		}
		s.box.push(teardownDone{result: res})
	}()
}

// forceTeardown skips to the end: SIGKILL to everything left.
func (s *Supervisor) forceTeardown(why string) {
	if s.teardownCh == nil {
		return
	}
	select {
	case <-s.teardownCh:
		return
	default:
	}
	s.log.Warn("teardown forced", zap.String("by", why))
	s.noteAliveAtKill()
	close(s.teardownCh)
	s.teardown.Force()
}

func (s *Supervisor) finishTeardown(res shutdown.Result) {
	// An exit already reaped may not have reached the loop yet (the sweep
	// can see no child left before the reaper has handed the status on):
	// take it now, so the exit code and the unfinished list know of it.
	for _, name := range s.order {
		if p := s.progs[name]; p != nil && p.run != nil {
			if e, ok := p.run.proc.Exit(); ok {
				s.onExit(p, e)
			}
		}
	}
	// A forced run ends without waiting for its steps, so a program that
	// had stopped by then may still be listed: name only the programs that
	// were still running when the kill came.
	unfinished := res.Unfinished[:0]
	for _, step := range res.Unfinished {
		if name, ok := strings.CutPrefix(step, "program "); ok && s.aliveAtKill != nil && !s.aliveAtKill[name] {
			continue
		}
		unfinished = append(unfinished, step)
	}
	res.Unfinished = unfinished
	commandCode := -1
	if s.opts.SingleCommand {
		// Like tini: the command's own code, 128+N when a signal ended it,
		// even when the teardown had to kill it.
		if p := s.progs[conf.MainProgram]; p != nil && p.m.Last() != nil && !p.m.Alive() {
			commandCode = p.m.Last().Code
		}
	}
	if res.TimedOut || res.Forced {
		s.exitCode = s.cfg.Supervisor.ForceExitCode
		s.log.Error("teardown did not finish in time", zap.Strings("unfinished", res.Unfinished),
			zap.Duration("shutdown_timeout", s.cfg.Supervisor.ShutdownTimeout), zap.Bool("forced", res.Forced))
	}
	if commandCode >= 0 {
		s.exitCode = commandCode
	}
	for name, err := range res.Errors {
		s.log.Warn("teardown step failed", zap.String("step", name), zap.Error(err))
	}
	s.publish(events.Teardown, "", func(ev *events.Event) {
		ev.Phase, ev.ExitCode = "end", intp(s.exitCode)
		if len(res.Unfinished) > 0 {
			ev.Error = "unfinished: " + strings.Join(res.Unfinished, ", ")
		}
	})
	// Anything still running now was SIGKILLed; its exit may still be in
	// flight, which no longer matters.
	s.log.Info("supervisor exiting", zap.Int("exit_code", s.exitCode), zap.Duration("teardown", res.Duration.Round(time.Millisecond)))
	s.finished = true
}

// teardownSteps builds one step per program and per [teardown.X] command.
// At equal priority a program waits for the programs that depend on it.
func (s *Supervisor) teardownSteps() ([]shutdown.Step, error) {
	var steps []shutdown.Step
	for _, name := range s.order {
		p := s.progs[name]
		var after []string
		for _, q := range s.dependents(name) {
			if q.name != name && q.cfg().StopPriority == p.cfg().StopPriority {
				after = append(after, "program "+q.name)
			}
		}
		sort.Strings(after)
		name := name
		steps = append(steps, shutdown.Step{
			Name:     "program " + name,
			Priority: p.cfg().StopPriority,
			Timeout:  p.cfg().StopTimeout + 2*time.Second,
			After:    after,
			Fn: func(ctx context.Context) error {
				s.log.Debug("teardown: stopping", zap.String("program", name))
				done := make(chan struct{})
				s.box.push(stopFor{name: name, done: done, signal: s.singleSignal})
				select {
				case <-done:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
		})
	}
	var cmds []string
	for name := range s.cfg.Teardown {
		cmds = append(cmds, name)
	}
	sort.Strings(cmds)
	for _, name := range cmds {
		t := s.cfg.Teardown[name]
		steps = append(steps, shutdown.Step{
			Name:     "teardown " + name,
			Priority: t.Priority,
			// The command's own timeout is enforced by runCommand, which
			// kills and reaps it; the step's margin lets it finish that.
			Timeout: t.Timeout + 2*time.Second,
			Fn:      func(ctx context.Context) error { return s.runCommand(ctx, t) },
		})
	}
	for i := range steps {
		steps[i].Fn = s.reportStep(steps[i].Name, steps[i].Fn)
	}
	return steps, nil
}

// stepProgress: a teardown step started or ended (err is its failure).
type stepProgress struct {
	name string
	end  bool
	err  error
}

func (stepProgress) isEvent() {}

// reportStep wraps a step's function to report its start and end to the
// loop, which publishes them (TeardownStep events).
func (s *Supervisor) reportStep(name string, fn func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		s.box.push(stepProgress{name: name})
		err := fn(ctx)
		s.box.push(stepProgress{name: name, end: true, err: err})
		return err
	}
}

func (s *Supervisor) onStepProgress(sp stepProgress) {
	program, _ := strings.CutPrefix(sp.name, "program ")
	if program == sp.name {
		program = ""
	}
	s.publish(events.TeardownStep, program, func(ev *events.Event) {
		ev.Step, ev.Phase = sp.name, "start"
		if sp.end {
			ev.Phase = "end"
		}
		if sp.err != nil {
			ev.Error = sp.err.Error()
		}
	})
}

// hooksFlush: the teardown waits for the hooks; done is closed once they
// have run what they were given and ended.
type hooksFlush struct{ done chan struct{} }

func (hooksFlush) isEvent() {}

// hooksStep is the teardown step that lets the hooks run the events of
// the teardown (critical_exit, the program stops) before the remaining
// processes are terminated: it comes after every other step. Events
// after it run no hook.
func (s *Supervisor) hooksStep(steps []shutdown.Step) shutdown.Step {
	prio := 0
	for i, st := range steps {
		if i == 0 || st.Priority+1 > prio {
			prio = st.Priority + 1
		}
	}
	return shutdown.Step{
		Name:     "hooks",
		Priority: prio,
		Timeout:  s.hooksTeardownTimeout(),
		Fn: func(ctx context.Context) error {
			done := make(chan struct{})
			s.box.push(hooksFlush{done: done})
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("hooks still running: %w", ctx.Err())
			}
		},
	}
}

// runCommand runs a [teardown.X] command through the reaper, killing its
// process group when ctx ends.
func (s *Supervisor) runCommand(ctx context.Context, t *conf.TeardownStep) error {
	done := make(chan procs.Exit, 1)
	log := s.log.With(zap.String("teardown", t.Name))
	log.Debug("teardown command starting", zap.Strings("command", t.Command))
	name := "teardown." + t.Name
	proc, err := s.opts.Reaper.Spawn(procs.Spec{
		Argv:   t.Command,
		Env:    s.environment(&conf.Program{}),
		Stdout: s.consoleOutput(name, "stdout"),
		Stderr: s.consoleOutput(name, "stderr"),
	}, func(e procs.Exit) { done <- e })
	if err != nil {
		return fmt.Errorf("teardown.%s: %w", t.Name, err)
	}
	log.Info("teardown command started", zap.Int("pid", proc.Pid()))
	expired := make(chan struct{})
	timer := s.clk.AfterFunc(t.Timeout, func() { close(expired) })
	defer timer.Stop()
	kill := func(why string) error {
		proc.SignalGroup(syscall.SIGKILL)
		<-done
		return fmt.Errorf("teardown.%s: killed %s", t.Name, why)
	}
	select {
	case e := <-done:
		if e.Code() != 0 {
			return fmt.Errorf("teardown.%s: %s", t.Name, e)
		}
		log.Info("teardown command finished")
		return nil
	case <-expired:
		return kill(fmt.Sprintf("after its timeout of %s", t.Timeout))
	case <-ctx.Done():
		return kill(fmt.Sprintf("when the teardown ended (%v)", ctx.Err()))
	}
}

// sweep terminates and reaps every remaining child of this process (PID 1
// or subreaper): SIGTERM at once, SIGKILL when the budget is spent or the
// teardown is forced. It returns once no child is left, not even a zombie
// the reaper has yet to collect, or two seconds after SIGKILL in the worst
// case; killed reports whether it had to resort to SIGKILL.
func (s *Supervisor) sweep(deadline time.Time, force <-chan struct{}, killNow bool) (killed bool) {
	termSent := false
	var killAt time.Time
	for procs.HasChildren() {
		select {
		case <-force:
			killNow = true
		default:
		}
		kids, err := procs.Children()
		if err != nil {
			s.log.Warn("listing children", zap.Error(err))
			return killed
		}
		switch {
		case len(kids) == 0:
			// Only zombies left: the reaper is collecting them.
		case !killed && (killNow || !s.clk.Now().Before(deadline)):
			s.log.Warn("killing remaining processes", zap.Ints("pids", kids))
			for _, pid := range kids {
				killTree(pid, syscall.SIGKILL)
			}
			killed, killAt = true, s.clk.Now()
		case !termSent:
			s.log.Info("terminating remaining processes", zap.Ints("pids", kids))
			for _, pid := range kids {
				killTree(pid, syscall.SIGTERM)
			}
			termSent = true
		case killed && s.clk.Since(killAt) > 2*time.Second:
			s.log.Error("processes survive SIGKILL", zap.Ints("pids", kids))
			return killed
		case killed:
			// Descendants of killed processes are reparented to us one by
			// one: kill each newcomer too.
			for _, pid := range kids {
				killTree(pid, syscall.SIGKILL)
			}
		}
		// Teardown-only wait: woken by each reaped orphan, or re-checked
		// after a short pause for processes that are not our children yet.
		wait := 20 * time.Millisecond
		if !killed {
			if left := deadline.Sub(s.clk.Now()); left < wait && left > 0 {
				wait = left
			}
		}
		pause := make(chan struct{})
		t := s.clk.AfterFunc(wait, func() { close(pause) })
		select {
		case <-s.orphans:
		case <-force:
			force = nil
			killNow = true
		case <-pause:
		}
		t.Stop()
	}
	return killed
}

// killTree signals a process and, if it leads one, its process group.
func killTree(pid int, sig syscall.Signal) {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		syscall.Kill(-pid, sig)
	}
	syscall.Kill(pid, sig)
}

// noteAliveAtKill records, once, which programs still run when the
// teardown resorts to SIGKILL: they are its unfinished steps.
func (s *Supervisor) noteAliveAtKill() {
	if s.aliveAtKill != nil {
		return
	}
	s.aliveAtKill = map[string]bool{}
	for name, p := range s.progs {
		if p.m.Alive() {
			s.aliveAtKill[name] = true
		}
	}
}
