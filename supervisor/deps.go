package supervisor

import (
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// unmet lists p's dependencies whose conditions do not hold (SPEC §12).
func (s *Supervisor) unmet(p *program) []string {
	var out []string
	for _, d := range p.cfg().DependsOn {
		if !s.met(d) {
			out = append(out, d.Name)
		}
	}
	return out
}

// met reports whether the condition of dependency d holds: started once
// it has a process (or has completed), ready while it is ready and
// running, completed once its last run ended with a success exit code and
// no restart is due.
func (s *Supervisor) met(d conf.Dependency) bool {
	dp := s.progs[d.Name]
	if dp == nil {
		return false
	}
	switch d.Condition {
	case conf.DependsStarted:
		return dp.m.PID() != 0 || completed(dp)
	case conf.DependsCompleted:
		return completed(dp)
	}
	return dp.m.Ready() && dp.m.Alive()
}

// completed reports whether dp is a one-shot task that finished: exited,
// its last run a success.
func completed(dp *program) bool {
	l := dp.m.Last()
	return dp.m.State() == lifecycle.Exited && l != nil && l.Exit != nil && !l.Failed
}

// stuck says why the condition of dependency d will not hold unless an
// operator (a start, a reset, a reload) or a half-open trial acts, or ""
// when it may still come by itself.
func (s *Supervisor) stuck(d conf.Dependency) string {
	dp := s.progs[d.Name]
	if dp == nil || s.met(d) {
		return ""
	}
	want := "waiting until it is " + string(d.Condition)
	last := ""
	if l := dp.m.Last(); l != nil {
		switch {
		case l.Error != "":
			last = ", spawn error"
		case l.Exit != nil:
			last = ", last " + l.Exit.String()
		}
	}
	switch st := dp.m.State(); st {
	case lifecycle.Open:
		return fmt.Sprintf("dependency %s failed for good (breaker open after %d failures%s): %s",
			d.Name, dp.m.Breaker().Failures(), last, want)
	case lifecycle.Exited:
		if l := dp.m.Last(); l != nil && l.Failed {
			return fmt.Sprintf("dependency %s failed for good (no restart is due%s): %s", d.Name, last, want)
		}
		return fmt.Sprintf("dependency %s has exited%s: %s", d.Name, last, want)
	case lifecycle.Stopped:
		return fmt.Sprintf("dependency %s is stopped: %s", d.Name, want)
	}
	return ""
}

// waitReason says why p, waiting, will not start by itself, or "".
func (s *Supervisor) waitReason(p *program) string {
	if p.m.State() != lifecycle.Waiting {
		return ""
	}
	var why []string
	for _, d := range p.cfg().DependsOn {
		if r := s.stuck(d); r != "" {
			why = append(why, r)
		}
	}
	return strings.Join(why, "; ")
}

// dependencyChanged re-evaluates the programs waiting for p, whose state
// or readiness changed: they start when their dependencies are met, and a
// dependency that will not meet its condition by itself is logged once.
func (s *Supervisor) dependencyChanged(p *program) {
	for _, q := range s.dependents(p.name) {
		if q.m.State() != lifecycle.Waiting {
			continue
		}
		d := q.dependency(p.name)
		if s.met(d) {
			s.start(q, "dependency "+p.name+" "+string(d.Condition), false)
			continue
		}
		if why := s.stuck(d); why != "" {
			key := "stuck " + p.name + " " + string(p.m.State())
			if q.waitLogged != key {
				q.waitLogged = key
				q.log.Warn("still waiting: a dependency will not meet its condition by itself",
					zap.String("dependency", p.name), zap.String("dependency_state", string(p.m.State())),
					zap.String("condition", string(d.Condition)), zap.String("why", why))
			}
		}
	}
}

// dependency returns p's depends_on entry for name.
func (p *program) dependency(name string) conf.Dependency {
	for _, d := range p.cfg().DependsOn {
		if d.Name == name {
			return d
		}
	}
	return conf.Dependency{Name: name, Condition: conf.DependsReady}
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
		for _, d := range q.cfg().DependsOn {
			if d.Name == name {
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
		if p := s.progs[n]; p != nil && len(p.cfg().DependsOn) > 0 {
			s.withDeps = append(s.withDeps, n)
		}
	}
}

// checkAllExited ends the supervisor when every program has exited: with
// 0 if every last run succeeded, else the first failing program's code.
func (s *Supervisor) checkAllExited() {
	if s.shutting || len(s.order) == 0 {
		return
	}
	code := 0
	for _, name := range s.order {
		p := s.progs[name]
		if p.m.State() != lifecycle.Exited {
			return
		}
		if l := p.m.Last(); l != nil && l.Failed && code == 0 {
			code = l.Code
		}
	}
	s.beginTeardown("every program has exited", code)
}

// deleteProgram forgets p, removed by a reload and stopped.
func (s *Supervisor) deleteProgram(p *program) {
	s.endRun(p, p.run)
	s.cancelTimers(p)
	s.releaseWaiters(p, true)
	delete(s.progs, p.name)
	for i, n := range s.order {
		if n == p.name {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
			break
		}
	}
	s.indexDependencies()
}
