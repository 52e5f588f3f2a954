package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/events"
	"github.com/supervise/supervise/supervisor/lifecycle"
	"github.com/supervise/supervise/systemd"
	"github.com/supervise/supervise/watch/changes"
)

// reloadDebounce gathers the reports of one save (an editor's save may
// report a rename and a write) into one re-read. The reports are of
// complete writes, so it is not what keeps a half-written file out.
const reloadDebounce = 100 * time.Millisecond

// whyEdited is the reason of a reload caused by a watched file.
const whyEdited = "configuration file changed"

// configWatch follows every file a configuration is read from: the main
// file, the env files and the include patterns (and through them the
// included files, matches added and removed). It reports complete writes
// (a file written in place is reported when its writer closes it, never
// half written), atomic saves, re-created files and symlink swaps.
//
// Its registrations follow the files of the last read: setup makes the
// first, then only the read in flight (there is at most one) changes
// them; mu makes that plain.
type configWatch struct {
	w    *changes.Watcher
	main string // the main file, absolute: its removal is no reload

	mu   sync.Mutex
	regs map[string]func() // cancel functions, by "file\x00PATH" or "glob\x00PATTERN"
}

// watchConfig starts following the files of src. A file that cannot be
// watched is logged and left out; an error means no watcher at all.
func (s *Supervisor) watchConfig(src *conf.Sources) (*configWatch, error) {
	cw := &configWatch{main: src.Main, regs: map[string]func(){}}
	w, err := changes.New(func(c changes.Change) {
		if c.Op == changes.Removed && c.Path == cw.main {
			// A removed main file keeps the running configuration; an
			// editor's save that removes first reports its new file next.
			// An included or env file removed is a change like any other.
			return
		}
		s.box.push(configTouched{})
	}, changes.WithErrorHandler(func(err error) {
		s.log.Warn("configuration watch", zap.Error(err))
		s.box.push(configTouched{})
	}))
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", src.Main, err)
	}
	cw.w = w
	_, errs := cw.sync(src)
	for _, err := range errs {
		s.log.Warn(cannotWatch, zap.Error(err))
	}
	return cw, nil
}

const cannotWatch = "cannot watch a file of the configuration; edits of it need `supervise reload` or SIGHUP"

// sync makes the watched files and patterns those of src. It reports
// whether it began watching anything new, and the watches it could not
// set.
func (cw *configWatch) sync(src *conf.Sources) (added bool, errs []error) {
	files, patterns := src.Watch()
	var want []string
	for _, f := range files {
		want = append(want, "file\x00"+f)
	}
	for _, p := range patterns {
		want = append(want, "glob\x00"+p)
	}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	for k, cancel := range cw.regs {
		if !slices.Contains(want, k) {
			cancel()
			delete(cw.regs, k)
		}
	}
	for _, k := range want {
		if cw.regs[k] != nil {
			continue
		}
		kind, path, _ := strings.Cut(k, "\x00")
		var cancel func()
		var err error
		if kind == "file" {
			cancel, err = cw.w.AddFile(path)
		} else {
			cancel, err = cw.w.AddGlob(path)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cw.regs[k] = cancel
		added = true
	}
	return added, errs
}

func (cw *configWatch) close() { cw.w.Close() }

// configTouched: a complete change of a file of the configuration.
type configTouched struct{}

// configRead: a read of the configuration, done off the loop, for the
// reloads of batch.
type configRead struct {
	batch []reloadAsked
	cfg   *conf.Config  // nil when err is set
	src   *conf.Sources // as far as the read went; nil if it never began
	err   error
	// watchAdded: the read began watching files it had read, so an edit
	// made between the read and the watch could have been missed.
	watchAdded bool
}

// configAsked: the running configuration, for a dry run; nil while
// shutting down.
type configAsked struct{ reply chan *conf.Config }

func (configTouched) isEvent() {}
func (configRead) isEvent()    {}
func (configAsked) isEvent()   {}

func (s *Supervisor) onConfigTouched() {
	s.debSeq++
	seq := s.debSeq
	if s.debounce != nil {
		s.debounce.Stop()
	}
	s.debounce = s.clk.AfterFunc(reloadDebounce, func() { s.box.push(reloadDebounced{seq: seq}) })
}

// reload asks for the configuration to be re-read and applied as a diff.
// The files are read off the loop (readConfig); what arrives while a read
// is in flight is served by the next one, so every asker gets a read
// begun after it asked. An invalid configuration changes nothing.
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
	if s.cfg.File == "" {
		answer(control.Response{Error: "no configuration file to reload (started with -- CMD only)"})
		return
	}
	s.reloadQueue = append(s.reloadQueue, reloadAsked{why: why, reply: reply})
	s.startRead()
}

// startRead starts a read for the reloads waiting, unless one is in
// flight.
func (s *Supervisor) startRead() {
	if s.reading != nil || len(s.reloadQueue) == 0 {
		return
	}
	batch := s.reloadQueue
	s.reloadQueue = nil
	if s.shutting {
		for _, r := range batch {
			if r.reply != nil {
				r.reply <- answerOf(control.Response{Error: "the supervisor is shutting down"})
			}
		}
		return
	}
	done := make(chan struct{})
	s.reading = done
	path, cw := s.cfg.File, s.watch
	go func() {
		defer close(done)
		ev := configRead{batch: batch}
		ev.cfg, ev.src, ev.err = s.readConfig(path)
		if cw != nil && ev.src != nil {
			added, errs := cw.sync(ev.src)
			for _, err := range errs {
				s.log.Warn(cannotWatch, zap.Error(err))
			}
			ev.watchAdded = added
		}
		s.box.push(ev)
	}()
}

// readConfig reads the configuration as a reload applies it: the files,
// then the command given after -- (which stays program main) and the
// command-line overrides. It reads files, so it runs off the loop.
func (s *Supervisor) readConfig(path string) (*conf.Config, *conf.Sources, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		// A pipe (-c <(...)) was read once at the start; reading it again
		// would wait for a writer for ever.
		return nil, nil, fmt.Errorf("%s is not a regular file: it cannot be read again", path)
	}
	cfg, src, err := conf.LoadSources(path)
	if err == nil && s.opts.SingleCommand {
		err = errors.New("reload is not supported in single-command mode")
	}
	if err == nil {
		if main := s.opts.Config.Programs[conf.MainProgram]; main != nil && s.opts.Config.File != "" && cfg.Programs[conf.MainProgram] == nil {
			err = cfg.AddCommand(main.Command)
		}
	}
	if err == nil {
		err = cfg.Apply(s.opts.Overrides)
	}
	if err != nil {
		return nil, src, err
	}
	return cfg, src, nil
}

// onConfigRead applies a read configuration, in the loop.
func (s *Supervisor) onConfigRead(ev configRead) {
	s.reading = nil
	defer s.startRead()
	if ev.watchAdded {
		s.box.push(configTouched{})
	}
	var whys []string
	edits := true
	for _, r := range ev.batch {
		if !slices.Contains(whys, r.why) {
			whys = append(whys, r.why)
		}
		edits = edits && r.reply == nil && r.why == whyEdited
	}
	why := strings.Join(whys, ", ")
	answer := func(r control.Response) {
		for _, a := range ev.batch {
			if a.reply != nil {
				a.reply <- answerOf(r)
			}
		}
	}
	if s.shutting {
		answer(control.Response{Error: "the supervisor is shutting down"})
		return
	}
	if ev.err != nil {
		s.log.Error("reload: invalid configuration, keeping the running one", zap.String("why", why), zap.Error(ev.err))
		s.publish(events.Reload, "", func(e *events.Event) { e.Reason, e.Error = why, ev.err.Error() })
		answer(control.Response{Error: "configuration unchanged: " + ev.err.Error()})
		return
	}
	digest := ev.src.Digest()
	if edits && s.cfgDigest != nil && *s.cfgDigest == digest {
		return // the files hold what was applied last
	}
	s.sdNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", systemd.MonotonicNow().Microseconds()))
	// The event's diff is the one reload --dry-run shows, from the running
	// configuration; it is made only when someone may want the event.
	var diff events.Diff
	if s.wanted(events.Reload, "") {
		diff = s.diffJSON(conf.Compare(s.cfg, ev.cfg))
	}
	msg := s.apply(ev.cfg)
	s.cfgDigest = &digest
	s.log.Info("configuration reloaded", zap.String("why", why), zap.String("changes", msg))
	s.publish(events.Reload, "", func(e *events.Event) { e.Reason, e.Diff = why, diff })
	s.sdNotify("READY=1\nSTATUS=" + s.summary())
	progs, _ := s.status(nil)
	answer(control.Response{OK: true, Message: msg, Programs: progs})
}

// ReloadDiff reads the configuration files as a reload would, off the
// event loop, and returns what applying them would change: the diff from
// the running configuration, applying nothing. An invalid configuration
// gives its error (a conf.ErrorList naming files and lines). It is what
// `supervise reload --dry-run` shows.
func (s *Supervisor) ReloadDiff(ctx context.Context) (*conf.ConfigDiff, error) {
	reply := make(chan *conf.Config, 1)
	s.box.push(configAsked{reply: reply})
	var running *conf.Config
	select {
	case running = <-reply:
	case <-s.loopDone:
		return nil, errors.New("the supervisor has stopped")
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer from the supervisor: %w", ctx.Err())
	}
	switch {
	case running == nil:
		return nil, errors.New("the supervisor is shutting down")
	case running.File == "":
		return nil, errors.New("no configuration file to reload (started with -- CMD only)")
	}
	cfg, _, err := s.readConfig(running.File)
	if err != nil {
		return nil, err
	}
	return conf.Compare(running, cfg), nil
}

// onConfigAsked hands out the running configuration. A configuration is
// never modified once running (a reload replaces it whole), so the asker
// may read it off the loop.
func (s *Supervisor) onConfigAsked(ev configAsked) {
	if s.shutting {
		ev.reply <- nil
		return
	}
	ev.reply <- s.cfg
}

// apply makes cfg the running configuration: new programs start, removed
// ones stop, changed ones restart with their new settings, unchanged ones
// are not touched; hooks are added, removed and changed. It returns a
// message for the log.
func (s *Supervisor) apply(cfg *conf.Config) string {
	old := s.cfg
	var added, removed, changed []string
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
		case p.m.Intent() != lifecycle.IntentRemove && onlyCount(p.cfg(), np):
			// An instance that stays when only replicas changed is not
			// touched: it takes the new count in place, unreported.
			reconfigure = append(reconfigure, p)
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
	rolls := map[string][]rollStep{}
	for _, p := range reconfigure {
		np := cfg.Programs[p.name]
		inPlace := p.m.Intent() != lifecycle.IntentRemove && !slices.ContainsFunc(p.cfg().Diff(np), conf.NeedsRestart)
		if !inPlace && s.rollable(p) {
			rolls[p.cfg().Base] = append(rolls[p.cfg().Base], rollStep{p, np})
			continue
		}
		s.step(p, lifecycle.Reconfigure{Config: np, InPlace: inPlace})
	}
	s.startRolls(rolls)
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
	hooksAdded, hooksRemoved, hooksChanged := s.applyHooks(cfg.Hooks)
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "added "+joinInstances(added))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed "+joinInstances(removed))
	}
	if len(changed) > 0 {
		parts = append(parts, "changed "+joinInstances(changed))
	}
	if len(parts) == 0 {
		parts = append(parts, "no program changed")
	}
	for _, h := range []struct {
		what  string
		names []string
	}{{"added hooks", hooksAdded}, {"removed hooks", hooksRemoved}, {"changed hooks", hooksChanged}} {
		if len(h.names) > 0 {
			parts = append(parts, h.what+" "+joinNames(h.names))
		}
	}
	return strings.Join(parts, "; ")
}

// onlyCount reports whether two settings of one instance differ in
// replicas alone.
func onlyCount(a, b *conf.Program) bool {
	d := a.Diff(b)
	return a.Name == b.Name && len(d) == 1 && d[0] == "replicas"
}

// dryRun answers `reload --dry-run`: the difference a reload would apply,
// as text and as JSON, applying nothing.
func (s *Supervisor) dryRun(ctx context.Context) control.Response {
	d, err := s.ReloadDiff(ctx)
	if err != nil {
		return control.Response{Error: "configuration unchanged: " + err.Error()}
	}
	js, err := json.Marshal(d)
	if err != nil {
		return control.Response{Error: fmt.Sprintf("encoding the difference: %v", err)}
	}
	return control.Response{OK: true, Message: strings.TrimRight(d.String(), "\n"), Diff: js}
}
