package supervisor

import (
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// unmet lists p's dependencies whose conditions do not hold (SPEC §12);
// a program with replicas meets one when every instance meets it
// (SPEC §13).
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
// no restart is due. d names a program, one of its instances (NAME:i),
// or a program with replicas, whose every instance must meet it (and
// which has one at least: a program scaled to 0 meets nothing).
func (s *Supervisor) met(d conf.Dependency) bool {
	dp := s.progs[d.Name]
	if dp == nil {
		ms := s.members(d.Name)
		for _, q := range ms {
			if !meets(q, d.Condition) {
				return false
			}
		}
		return len(ms) > 0
	}
	return meets(dp, d.Condition)
}

// meets reports whether the program (or instance) dp meets condition c.
func meets(dp *program, c conf.DependencyCondition) bool {
	switch c {
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
	if s.met(d) {
		return ""
	}
	want := "waiting until it is " + string(d.Condition)
	dp := s.progs[d.Name]
	if dp == nil {
		// A program with replicas: stuck when one of its instances is.
		def := s.cfg.Definitions[d.Name]
		if def == nil {
			return ""
		}
		ms := s.members(d.Name)
		if len(ms) == 0 {
			return fmt.Sprintf("dependency %s has no instances (scale it up, or set replicas): %s", d.Name, want)
		}
		for _, q := range ms {
			if why := s.stuck(conf.Dependency{Name: q.name, Condition: d.Condition}); why != "" {
				return why
			}
		}
		return ""
	}
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
		for _, d := range q.dependenciesOn(p) {
			if s.met(d) {
				s.start(q, "dependency "+d.Name+" "+string(d.Condition), false)
				break
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
}

// dependenciesOn returns q's depends_on entries that dp's state bears on:
// the one naming dp, and the one naming its program when dp is an
// instance of a program with replicas.
func (q *program) dependenciesOn(dp *program) []conf.Dependency {
	var out []conf.Dependency
	for _, d := range q.cfg().DependsOn {
		if dependsOn(d.Name, dp) {
			out = append(out, d)
		}
	}
	return out
}

// dependsOn reports whether a depends_on entry naming name waits for dp:
// it names dp, or dp's program with replicas.
func dependsOn(name string, dp *program) bool {
	c := dp.cfg()
	return name == dp.name || c.Replicated && name == c.Base
}

// dependents lists the programs whose depends_on names name (or, for an
// instance, its program with replicas), in configuration order. Few programs have
// dependencies, so this scans a short list instead of every program.
func (s *Supervisor) dependents(name string) []*program {
	var out []*program
	dp := s.progs[name]
	for _, qn := range s.withDeps {
		q := s.progs[qn]
		if q == nil {
			continue
		}
		for _, d := range q.cfg().DependsOn {
			if d.Name == name || dp != nil && dependsOn(d.Name, dp) {
				out = append(out, q)
				break
			}
		}
	}
	return out
}

// indexDependencies records which programs have depends_on, and the
// instances of each program with replicas.
func (s *Supervisor) indexDependencies() {
	s.indexGroups()
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
