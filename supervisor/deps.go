package supervisor

import (
	"go.uber.org/zap"

	"github.com/supervise/supervise/supervisor/lifecycle"
)

// unmet lists p's dependencies whose conditions do not hold: for now every
// dependency must be ready and running (SPEC §4).
func (s *Supervisor) unmet(p *program) []string {
	var out []string
	for _, d := range p.cfg().DependsOn {
		if !s.met(d) {
			out = append(out, d)
		}
	}
	return out
}

// met reports whether the dependency named name is ready.
func (s *Supervisor) met(name string) bool {
	dp := s.progs[name]
	return dp != nil && dp.m.Ready() && dp.m.Alive()
}

// dependencyChanged re-evaluates the programs waiting for p, whose state
// or readiness changed: they start when their dependencies are met, and a
// dependency that will not become ready by itself is logged once.
func (s *Supervisor) dependencyChanged(p *program) {
	st := p.m.State()
	for _, q := range s.dependents(p.name) {
		if q.m.State() != lifecycle.Waiting {
			continue
		}
		switch st {
		case lifecycle.Open, lifecycle.Exited, lifecycle.Stopped:
			key := "gone " + p.name + " " + string(st)
			if q.waitLogged != key {
				q.waitLogged = key
				q.log.Warn("dependency will not become ready by itself: still waiting",
					zap.String("dependency", p.name), zap.String("dependency_state", string(st)))
			}
		}
		if s.met(p.name) {
			s.start(q, "dependency "+p.name+" ready", false)
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
		for _, d := range q.cfg().DependsOn {
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
	s.out.logs.forget(p.name)
	for i, n := range s.order {
		if n == p.name {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
			break
		}
	}
	s.indexDependencies()
}
