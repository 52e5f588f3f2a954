package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/events"
	"github.com/supervise/supervise/supervisor/lifecycle"
	"github.com/supervise/supervise/systemd"
	"github.com/supervise/supervise/watch/changes"
)

// reloadDebounce gathers the reports of one save (an editor's save may
// report a rename and a write) into one re-read. The reports are of
// complete writes, so it is not what keeps a half-written file out.
const reloadDebounce = 100 * time.Millisecond

// watchConfig follows edits of the configuration file: complete writes
// (a file written in place is reported when its writer closes it, never
// half written), atomic saves, re-created files and symlink swaps.
func (s *Supervisor) watchConfig(path string) (stop func(), err error) {
	w, err := changes.New(func(c changes.Change) {
		if c.Op == changes.Removed {
			// A removed file keeps the running configuration; an editor's
			// save that removes first reports its new file next.
			return
		}
		s.box.push(configTouched{})
	}, changes.WithErrorHandler(func(err error) {
		s.log.Warn("configuration watch", zap.Error(err))
		s.box.push(configTouched{})
	}))
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	if _, err := w.AddFile(path); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	return func() { w.Close() }, nil
}

// configTouched: a complete change of the configuration file.
type configTouched struct{}

func (configTouched) isEvent() {}

func (s *Supervisor) onConfigTouched() {
	s.debSeq++
	seq := s.debSeq
	if s.debounce != nil {
		s.debounce.Stop()
	}
	s.debounce = s.clk.AfterFunc(reloadDebounce, func() { s.box.push(reloadDebounced{seq: seq}) })
}

// reload re-reads the configuration and applies it as a diff. An invalid
// file changes nothing.
func (s *Supervisor) reload(why string, reply chan answer) {
	answer := func(r control.Response) {
		if reply != nil {
			reply <- answerOf(r)
		}
	}
	if s.shutting {
		answer(control.Response{Error: "the supervisor is shutting down"})
		return
	}
	refused := func(err error) {
		s.publish(events.Reload, "", func(ev *events.Event) { ev.Reason, ev.Error = why, err.Error() })
	}
	path := s.cfg.File
	if path == "" {
		answer(control.Response{Error: "no configuration file to reload (started with -- CMD only)"})
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		s.log.Error("reload: configuration unchanged", zap.String("why", why), zap.Error(err))
		refused(err)
		answer(control.Response{Error: "reload: " + err.Error()})
		return
	}
	if reply == nil && why == "configuration file changed" && bytes.Equal(data, s.cfgBytes) {
		return
	}
	cfg, err := conf.Parse(path, data)
	if err == nil && s.opts.SingleCommand {
		err = fmt.Errorf("reload is not supported in single-command mode")
	}
	if err == nil {
		if main := s.opts.Config.Programs["main"]; main != nil && s.opts.Config.File != "" && cfg.Programs["main"] == nil {
			// The command given after -- stays program main.
			err = cfg.AddCommand(main.Command)
		}
	}
	if err == nil {
		err = cfg.Apply(s.opts.Overrides)
	}
	if err != nil {
		s.log.Error("reload: invalid configuration, keeping the running one", zap.String("why", why), zap.Error(err))
		refused(err)
		answer(control.Response{Error: "configuration unchanged: " + err.Error()})
		return
	}
	s.sdNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", systemd.MonotonicNow().Microseconds()))
	msg, diff := s.apply(cfg)
	s.cfgBytes = data
	s.log.Info("configuration reloaded", zap.String("why", why), zap.String("changes", msg))
	s.publish(events.Reload, "", func(ev *events.Event) { ev.Reason, ev.Diff = why, diff })
	s.sdNotify("READY=1\nSTATUS=" + s.summary())
	progs, _ := s.status(nil)
	answer(control.Response{OK: true, Message: msg, Programs: progs})
}

// apply makes cfg the running configuration: new programs start, removed
// ones stop, changed ones restart with their new settings, unchanged ones
// are not touched; hooks are added, removed and changed. It returns a
// message for the log and what changed.
func (s *Supervisor) apply(cfg *conf.Config) (string, *events.Diff) {
	old := s.cfg
	var added, removed, changed []string
	diff := &events.Diff{}
	for _, name := range s.order {
		if cfg.Programs[name] == nil {
			removed = append(removed, name)
		}
	}
	newOrder := append([]string(nil), cfg.Order...)
	for _, name := range removed {
		p := s.progs[name]
		s.step(p, lifecycle.Stop{Intent: lifecycle.IntentRemove})
		if s.progs[name] != nil { // still stopping
			newOrder = append(newOrder, name)
		}
	}
	var reconfigure, added0 []*program
	for _, name := range cfg.Order {
		np := cfg.Programs[name]
		p := s.progs[name]
		switch {
		case p == nil:
			p = s.newProgram(np)
			s.progs[name] = p
			added = append(added, name)
			added0 = append(added0, p)
		case p.m.Intent() == lifecycle.IntentRemove || !p.cfg().Equal(np):
			changed = append(changed, name)
			reconfigure = append(reconfigure, p)
		case p.m.Pending() != nil:
			// Changed back before the earlier change applied.
			reconfigure = append(reconfigure, p)
		}
	}
	s.order = newOrder
	s.cfg = cfg
	s.indexDependencies()
	for _, p := range reconfigure {
		np := cfg.Programs[p.name]
		keys := p.cfg().Diff(np)
		inPlace := p.m.Intent() != lifecycle.IntentRemove && !slices.ContainsFunc(keys, conf.NeedsRestart)
		if slices.Contains(changed, p.name) {
			diff.Changed = append(diff.Changed, events.Changed{Name: p.name, Keys: keys, InPlace: inPlace && p.m.Alive()})
		}
		s.step(p, lifecycle.Reconfigure{Config: np, InPlace: inPlace})
	}
	for _, p := range added0 {
		if p.cfg().Autostart {
			s.start(p, "added by reload", false)
		}
	}
	// Programs waiting for a dependency may be unblocked or blocked anew.
	for _, name := range s.order {
		if p := s.progs[name]; p != nil && p.m.State() == lifecycle.Waiting {
			s.start(p, "dependencies changed", false)
		}
	}
	if s.opts.Level != nil && old.Supervisor.LogLevel != cfg.Supervisor.LogLevel {
		var lvl zapcore.Level
		if err := lvl.Set(cfg.Supervisor.LogLevel); err == nil {
			s.opts.Level.SetLevel(lvl)
		}
	}
	if old.Supervisor.Socket != cfg.Supervisor.Socket {
		s.log.Warn("socket changed in the configuration: restart the supervisor to use it",
			zap.String("old", old.Supervisor.Socket), zap.String("new", cfg.Supervisor.Socket))
	}
	if old.Supervisor.HeartbeatFile != cfg.Supervisor.HeartbeatFile || old.Supervisor.HeartbeatInterval != cfg.Supervisor.HeartbeatInterval {
		s.scheduleSelfBeat(true)
	}
	diff.Added, diff.Removed = added, removed
	diff.HooksAdded, diff.HooksRemoved, diff.HooksChanged = s.applyHooks(cfg.Hooks)
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "added "+joinNames(added))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed "+joinNames(removed))
	}
	if len(changed) > 0 {
		parts = append(parts, "changed "+joinNames(changed))
	}
	if len(parts) == 0 {
		parts = append(parts, "no program changed")
	}
	for _, h := range []struct {
		what  string
		names []string
	}{{"added hooks", diff.HooksAdded}, {"removed hooks", diff.HooksRemoved}, {"changed hooks", diff.HooksChanged}} {
		if len(h.names) > 0 {
			parts = append(parts, h.what+" "+joinNames(h.names))
		}
	}
	return strings.Join(parts, "; "), diff
}
