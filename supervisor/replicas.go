package supervisor

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// Replicas (SPEC §13). Each instance of a program with replicas is a
// program of its own here, named NAME:i, with its own machine, process,
// breaker, timers and attachments; what joins the instances is their
// conf.Program's Base. This file holds what sees them as one: the names
// control commands take, a program's instances (members, which deps.go
// uses for a dependency on a whole program), `supervise scale`, and
// restarting a program's instances one at a time.

// indexGroups records the instances of each program with replicas, by
// index (s.groups). It runs wherever s.order changes.
func (s *Supervisor) indexGroups() {
	clear(s.groups)
	if s.groups == nil {
		s.groups = map[string][]string{}
	}
	for _, n := range s.order {
		if p := s.progs[n]; p != nil && p.cfg().Replicated {
			b := p.cfg().Base
			s.groups[b] = append(s.groups[b], n)
		}
	}
	for _, names := range s.groups {
		slices.SortFunc(names, func(a, b string) int { return cmp.Compare(s.progs[a].cfg().Replica, s.progs[b].cfg().Replica) })
	}
}

// members returns the instances of program base that are not on their
// way out (being removed by a reload or a scale).
func (s *Supervisor) members(base string) []*program {
	var out []*program
	for _, n := range s.groups[base] {
		if p := s.progs[n]; p != nil && p.m.Intent() != lifecycle.IntentRemove {
			out = append(out, p)
		}
	}
	return out
}

// resolve expands the names of a control request: a program with
// replicas stands for each of its instances, in index order; an instance
// NAME:i or a program without replicas for itself. Duplicates are
// dropped. A name that is neither gives the refusal text. A program with
// replicas = 0 stands for no instance.
func (s *Supervisor) resolve(names []string) ([]string, string) {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, n := range names {
		switch def := s.cfg.Definitions[n]; {
		case s.progs[n] != nil:
			add(n)
		case len(s.groups[n]) > 0 || (def != nil && def.Replicated):
			for _, m := range s.groups[n] {
				add(m)
			}
		default:
			return nil, s.unknownName(n)
		}
	}
	return out, ""
}

// unknownName is the refusal of a name that is no program or instance.
func (s *Supervisor) unknownName(n string) string {
	if base, _, ok := conf.SplitInstance(n); ok {
		if def := s.cfg.Definitions[base]; def != nil && def.Replicated {
			return fmt.Sprintf("no instance %q: %s has %d (%s)", n, base, len(s.groups[base]), joinNames(s.groups[base]))
		}
		if s.progs[base] != nil {
			return fmt.Sprintf("no instance %q: %s has no replicas, name it %q", n, base, base)
		}
	}
	return fmt.Sprintf("no program named %q (programs: %s)", n, joinNames(s.cfg.DefinitionOrder))
}

// cmdScale answers `supervise scale NAME N`: instances NAME:0 ...
// NAME:N-1 run afterwards. New indices are created from the running
// configuration's table and start (unless autostart = false); instances
// at N and above stop, as a reload removes a program, and are forgotten.
// Instances below N are left alone. The running configuration becomes
// the scaled one (conf.Config.Scaled), whose diff to the file a reload
// applies. It answers once the stopped ones have ended, with the new
// count and the instances' status.
func (s *Supervisor) cmdScale(r request) {
	name := r.req.Names[0]
	if s.shutting {
		r.answer(control.Response{Error: "the supervisor is shutting down"})
		return
	}
	def := s.cfg.Definitions[name]
	if def == nil {
		if base, _, ok := conf.SplitInstance(name); ok && s.cfg.Definitions[base] != nil {
			r.answer(control.Response{Error: fmt.Sprintf("scale takes a program, not one instance: supervise scale %s N", base)})
			return
		}
		r.answer(control.Response{Error: s.unknownName(name)})
		return
	}
	n, err := strconv.Atoi(r.req.Param(control.ParamCount))
	if err != nil {
		r.answer(control.Response{Error: "scale: " + err.Error()})
		return
	}
	scaled, err := s.cfg.Scaled(name, n)
	if err != nil {
		r.answer(control.Response{Error: err.Error()})
		return
	}
	insts := make([]*conf.Program, 0, n)
	for _, in := range scaled.Definitions[name].InstanceNames(n) {
		insts = append(insts, scaled.Programs[in])
	}
	was := len(s.members(name))
	var waits []chan struct{}
	for _, p := range s.members(name) {
		if p.cfg().Replica >= n {
			w := make(chan struct{})
			s.wait(p, w)
			waits = append(waits, w)
			s.step(p, lifecycle.Stop{Intent: lifecycle.IntentRemove})
		}
	}
	if r := s.rolling[name]; r != nil && r.current != nil && r.current.m.Intent() == lifecycle.IntentRemove {
		s.rollNext(name) // the instance the roll waited for is going
	}
	var added []*program
	for _, inst := range insts {
		switch p := s.progs[inst.Name]; {
		case p == nil:
			p = s.newProgram(inst)
			s.progs[inst.Name] = p
			s.order = insertAfterGroup(s.order, s.groups[name], inst.Name)
			s.groups[name] = append(s.groups[name], inst.Name)
			added = append(added, p)
		case p.m.Intent() == lifecycle.IntentRemove:
			// Still stopping after an earlier scale down or reload: it
			// is wanted again, so it starts again once stopped.
			s.step(p, lifecycle.Reconfigure{Config: inst})
		}
	}
	// The running configuration runs the new count: a reload's diff
	// (reload --dry-run) starts from it.
	s.cfg = scaled
	s.indexDependencies()
	for _, p := range added {
		if p.cfg().Autostart {
			s.start(p, "scaled up", false)
		}
	}
	// Programs waiting for this one may now be unblocked, or the reverse.
	for _, qn := range s.order {
		if q := s.progs[qn]; q != nil && q.m.State() == lifecycle.Waiting {
			s.start(q, "dependencies changed", false)
		}
	}
	msg := fmt.Sprintf("%s: %s", name, conf.Plural(n, "instance"))
	if n != was {
		msg += fmt.Sprintf(" (was %d)", was)
		s.log.Info("scaled", zap.String("program", name), zap.Int("from", was), zap.Int("to", n))
	}
	s.answerAfter(r, control.Response{OK: true, Message: msg}, waits)
}

// insertAfterGroup inserts name into order after the last of group (at
// the end when group is empty).
func insertAfterGroup(order, group []string, name string) []string {
	at := len(order)
	if len(group) > 0 {
		last := group[len(group)-1]
		if i := slices.Index(order, last); i >= 0 {
			at = i + 1
		}
	}
	return slices.Insert(order, at, name)
}

// lessName orders program names for status: by program, then by index,
// so that web:2 comes before web:10.
func lessName(a, b string) int {
	ab, ai, _ := conf.SplitInstance(a)
	bb, bi, _ := conf.SplitInstance(b)
	if c := strings.Compare(ab, bb); c != 0 {
		return c
	}
	if c := cmp.Compare(ai, bi); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// joinInstances joins names like joinNames, writing a run of consecutive
// instances of one program as "web:0 to web:499".
func joinInstances(names []string) string {
	var parts []string
	for i := 0; i < len(names); {
		base, first, ok := conf.SplitInstance(names[i])
		j := i + 1
		if ok {
			for j < len(names) {
				b, k, ok := conf.SplitInstance(names[j])
				if !ok || b != base || k != first+(j-i) {
					break
				}
				j++
			}
		}
		switch j - i {
		case 1:
			parts = append(parts, names[i])
		case 2:
			parts = append(parts, names[i], names[i+1])
		default:
			parts = append(parts, names[i]+" to "+names[j-1])
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

// A reload that changes settings needing a restart restarts the running
// instances of a program with replicas one at a time: the next one is
// stopped only once the previous one runs again with the new settings and
// is ready, so a program with replicas keeps serving through a reload,
// and new settings that do not work take down one instance, not all.

// roll is the restart of one program's running instances, one at a time.
type roll struct {
	queue   []rollStep
	current *program // restarting now; nil before the first
}

// rollStep is one instance waiting for its turn, with its new settings.
type rollStep struct {
	p   *program
	cfg *conf.Program
}

// rollable reports whether p's restart with new settings waits for its
// turn: p is a running instance of a program with more than one running.
func (s *Supervisor) rollable(p *program) bool {
	c := p.cfg()
	if !c.Replicated || p.m.Pending() != nil || p.m.Intent() != lifecycle.IntentNone {
		return false
	}
	if st := p.m.State(); st != lifecycle.Running && st != lifecycle.Starting {
		return false
	}
	alive := 0
	for _, q := range s.members(c.Base) {
		if q.m.Alive() {
			alive++
		}
	}
	return alive > 1
}

// startRolls replaces the restarts under way by those of steps, which
// holds each program's instances to restart in index order.
func (s *Supervisor) startRolls(steps map[string][]rollStep) {
	s.rolling = map[string]*roll{}
	for base, queue := range steps {
		r := &roll{queue: queue}
		s.rolling[base] = r
		// An instance an earlier reload is restarting takes the first turn.
		for _, p := range s.members(base) {
			if p.m.Pending() != nil && p.m.Alive() {
				r.current = p
			}
		}
		s.log.Info("restarting the instances one at a time", zap.String("program", base),
			zap.Int("instances", len(queue)))
		if r.current == nil {
			s.rollNext(base)
		}
	}
}

// rollNext restarts the next instance of base's roll whose restart
// disrupts a process; instances with none take their settings at once.
func (s *Supervisor) rollNext(base string) {
	r := s.rolling[base]
	if r == nil {
		return
	}
	r.current = nil
	for len(r.queue) > 0 && !s.shutting {
		st := r.queue[0]
		r.queue = r.queue[1:]
		p := st.p
		if s.progs[p.name] != p || p.m.Intent() == lifecycle.IntentRemove {
			continue
		}
		alive := p.m.Alive()
		if alive {
			r.current = p
			p.log.Info("restarting with the new settings (one instance at a time)")
		}
		s.step(p, lifecycle.Reconfigure{Config: st.cfg})
		if alive {
			return
		}
	}
	delete(s.rolling, base)
}

// rolled is told of every change of state or readiness of p: when p is
// the instance its program's roll waits for and it runs, ready, with its
// new settings (or it rests stopped or exited), the next one restarts.
// When it fails until its breaker opens, the roll stops there: the other
// instances keep their settings until the next reload.
func (s *Supervisor) rolled(p *program) {
	if len(s.rolling) == 0 {
		return
	}
	base := p.cfg().Base
	r := s.rolling[base]
	if r == nil || r.current != p || p.m.Pending() != nil {
		return
	}
	switch st := p.m.State(); {
	case p.m.Ready() && p.m.Alive(), st == lifecycle.Stopped, st == lifecycle.Exited:
		s.rollNext(base)
	case st == lifecycle.Open:
		var left []string
		for _, q := range r.queue {
			left = append(left, q.p.name)
		}
		p.log.Warn("the new settings do not work (breaker open): the other instances keep theirs until the next reload",
			zap.Strings("not_restarted", left))
		delete(s.rolling, base)
	}
}
