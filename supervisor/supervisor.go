// Package supervisor runs the programs of a supervise configuration: it
// starts them in dependency order (ready, started or completed
// dependencies), restarts them through per-program circuit breakers and
// backoff, watches their heartbeats and notify sockets, probes their
// readiness and liveness, runs the instances of programs with replicas
// (each one a program of its own), answers control requests, applies
// configuration edits as a diff, and tears everything down in priority
// order.
//
// One goroutine, the event loop, owns every program's state. The reaper,
// timers, file watchers, notify sockets, probes, signal handlers and the
// control socket only push events into the loop's mailbox; queries are answered by
// the loop through reply channels. Time comes from an injected clock.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/events"
	"github.com/supervise/supervise/supervisor/lifecycle"
	"github.com/supervise/supervise/supervisor/shutdown"
	"github.com/supervise/supervise/systemd"
	"github.com/supervise/supervise/watch/heartbeat"
	"github.com/supervise/supervise/watch/watchdog"
)

// Options configure a Supervisor.
type Options struct {
	// Config is the validated configuration to run. Required.
	Config *conf.Config
	// Overrides are command-line settings re-applied to every reloaded file.
	Overrides conf.Overrides
	// Reaper is the process's single reaper. Required.
	Reaper *procs.Reaper
	// Logger receives the supervisor's and the programs' log entries.
	Logger *zap.Logger
	// Level, when set, is changed by reloads that change log_level.
	Level *zap.AtomicLevel
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Version is reported in the heartbeat metadata.
	Version string
	// SocketFlag is the -s flag (or $SUPERVISE_SOCKET), which overrides the
	// configured control socket.
	SocketFlag string
	// SingleCommand forwards the supervisor's signals to program "main"
	// instead of tearing down (tini-like `supervise -- CMD`).
	SingleCommand bool
	// Sweep makes the teardown terminate and reap every remaining child of
	// this process (escapees, orphans); set it when running as PID 1 or as
	// a child subreaper, not in tests that share a process.
	Sweep bool
	// HandleSignals installs the supervisor's signal handlers in Run.
	HandleSignals bool
	// RuntimeDir holds notify sockets; default $XDG_RUNTIME_DIR or /run or
	// the temporary directory.
	RuntimeDir string
	// LogBatch, when set, brackets each round of events the loop handles
	// (true before, false after), so a log sink can write the entries of a
	// burst — a teardown of hundreds of programs — with one system call.
	LogBatch func(begin bool)
	// Lines, when set, receives the output lines of programs with
	// stdout/stderr = "log" instead of Logger: program output is the hot
	// path, and a dedicated formatter writes it several times faster than
	// a structured log call per line.
	Lines LineWriter
}

// LineWriter writes the output lines of programs to the supervisor's log
// (SPEC §14). Its methods are called from the output reader's goroutine
// (WriteLine) and the event loop (SetNameWidth).
type LineWriter interface {
	// WriteLine writes one line of program's stream (a leading piece of
	// a line cut at procs.MaxLine when partial) and returns the time it
	// stamped it with, which the line is kept with for `supervise logs`.
	WriteLine(program, stream string, line []byte, partial bool) time.Time
	// SetNameWidth sets the width program names are padded to: the
	// length of the longest name of the configuration.
	SetNameWidth(n int)
}

// Supervisor runs a configuration. Create it with New and call Run once.
type Supervisor struct {
	opts  Options
	log   *zap.Logger
	clk   clock.Clock
	box   *mailbox
	ready chan struct{} // closed when autostart programs have been spawned
	// loopDone is closed when Run returns: nobody answers requests after.
	loopDone chan struct{}

	// Everything below is owned by the event loop.
	cfg *conf.Config
	// cfgDigest is the digest of the files of the configuration applied
	// last (nil when unknown): an edit that leaves it unchanged is no
	// reload.
	cfgDigest *[32]byte
	// watch follows the files of the configuration (nil without
	// watch_config).
	watch *configWatch
	// reading is closed when the read of the configuration in flight
	// ends (nil when none is); reloadQueue waits for the next read.
	reading     chan struct{}
	reloadQueue []reloadAsked

	progs      map[string]*program
	order      []string
	withDeps   []string            // programs that have depends_on, in order
	groups     map[string][]string // the instances of each program with replicas, by index
	rolling    map[string]*roll    // restarts one instance at a time, by program
	shutting   bool
	finished   bool
	exitCode   int
	exitReason string
	fw         *watchdog.FileWatcher
	notifyDir  string
	server     *control.Server
	socketPath string
	stopLoop   []func()
	debounce   clock.Timer
	debSeq     uint64
	beatTimer  clock.Timer
	beatWriter *heartbeat.Writer
	sdTimer    clock.Timer
	teardownCh chan struct{} // closed to force the teardown to its end
	teardown   *shutdown.Manager
	// aliveAtKill names the programs still running when the teardown
	// resorted to SIGKILL.
	aliveAtKill map[string]bool
	// singleSignal is the signal that began the teardown in single-command
	// mode, which the command gets instead of its stop_signal.
	singleSignal syscall.Signal
	lastSignal   syscall.Signal // the last signal received, and when,
	lastSignalAt time.Time      // to coalesce duplicates
	orphans      chan struct{}
	started      time.Time
	refusals     refusals
	bus          events.Bus // the events stream's subscribers, sequence and counts
	hooks        hookSet
	hookStats    hookStats // the hooks' counters, read by metrics off the loop
	// endingProbes are the probes of ended runs with an attempt still in
	// flight, waited for when Run returns.
	endingProbes []*probeAttachment
	// trace, set only by benchmarks, sees spawns and reaped exits.
	trace func(what, name string, at time.Time)
	// out keeps the programs' output: lines, files, counts (output.go).
	out *outputs
}

// New checks the options and prepares a supervisor; nothing runs yet.
func New(opts Options) (*Supervisor, error) {
	if opts.Config == nil {
		return nil, errors.New("supervisor: no configuration")
	}
	if opts.Reaper == nil {
		return nil, errors.New("supervisor: no reaper")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	s := &Supervisor{
		opts:     opts,
		log:      opts.Logger,
		clk:      opts.Clock,
		box:      newMailbox(),
		ready:    make(chan struct{}),
		loopDone: make(chan struct{}),
		progs:    map[string]*program{},
		orphans:  make(chan struct{}, 1),
	}
	s.out = newOutputs(opts.Lines, opts.Clock, opts.Logger)
	return s, nil
}

// Ready is closed once Run has spawned the autostart programs (or decided
// they must wait for dependencies).
func (s *Supervisor) Ready() <-chan struct{} { return s.ready }

// SocketPath is the control socket in use, "" when disabled. Valid after Ready.
func (s *Supervisor) SocketPath() string { return s.socketPath }

// OrphanReaped is the reaper's hook for children that were not programs.
func (s *Supervisor) OrphanReaped(pid int, status unix.WaitStatus) {
	s.log.Debug("reaped orphan", zap.Int("pid", pid), zap.String("status", waitString(status)))
	select {
	case s.orphans <- struct{}{}:
	default:
	}
}

// Handle answers a control request through the event loop. It is the
// control server's handler.
func (s *Supervisor) Handle(ctx context.Context, req control.Request) control.Response {
	if req.Command == control.CmdReload && req.Param(control.ParamDryRun) == "true" {
		return s.dryRun(ctx)
	}
	reply := make(chan answer, 1)
	if req.Command == control.CmdReload {
		s.box.push(reloadAsked{why: "control request", reply: reply})
	} else {
		s.box.push(request{req: req, reply: reply})
	}
	select {
	case a := <-reply:
		fillMetadata(a.resp.Programs, a.meta)
		return a.resp
	case <-s.loopDone:
		return control.Response{Error: "the supervisor has stopped"}
	case <-ctx.Done():
		return control.Response{Error: "no answer from the supervisor: " + ctx.Err().Error()}
	}
}

// Shutdown asks the supervisor to tear down and exit with code.
func (s *Supervisor) Shutdown(reason string, code int) {
	s.box.push(shutdownAsked{reason: reason, code: code})
}

// Reload asks the supervisor to re-read its configuration file.
func (s *Supervisor) Reload() { s.box.push(reloadAsked{why: "reload requested"}) }

// Run starts the programs and runs the event loop until the teardown has
// finished. It returns the exit code of SPEC §1. Cancelling ctx starts the
// teardown like SIGTERM.
func (s *Supervisor) Run(ctx context.Context) (int, error) {
	s.started = s.clk.Now()
	defer close(s.loopDone)
	if err := s.setup(); err != nil {
		s.cleanup()
		close(s.ready)
		return 2, err
	}
	defer s.cleanup()

	if s.opts.HandleSignals {
		sigs := []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
			syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}
		if sig := s.cfg.Supervisor.StopSignal; sig != 0 {
			sigs = append(sigs, sig)
		}
		ch := make(chan os.Signal, 8)
		signal.Notify(ch, sigs...)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case sig := <-ch:
					s.box.push(signalled{sig: sig})
				case <-stop:
					return
				}
			}
		}()
		// The handlers stay installed after Run: the process is about to
		// exit, and a late duplicate of the signal that ended the run
		// (a terminal's Ctrl-C reaches the whole group) must not kill it
		// with a different exit code. Signals then go unread and dropped.
		s.stopLoop = append(s.stopLoop, func() { close(stop); <-done })
	}

	s.applyInitial()
	// The first beat counts the programs just started.
	s.scheduleSelfBeat(true)
	// Start-up garbage (configuration, environments, spawn buffers) is
	// never needed again: give its pages back now rather than keep them
	// resident for the supervisor's whole life.
	debug.FreeOSMemory()
	close(s.ready)
	s.sdNotify("READY=1\nSTATUS=" + s.summary())

	ctxDone := ctx.Done()
	for !s.finished {
		select {
		case <-s.box.signal:
			evs := s.box.drain()
			if s.opts.LogBatch != nil && len(evs) > 1 {
				s.opts.LogBatch(true)
				for _, ev := range evs {
					s.handle(ev)
				}
				s.bus.Flush()
				s.opts.LogBatch(false)
				break
			}
			for _, ev := range evs {
				s.handle(ev)
			}
			s.bus.Flush()
		case <-ctxDone:
			ctxDone = nil
			s.beginTeardown("context cancelled", 0)
		}
	}
	// The streams get the events published so far, then their end.
	s.bus.Close()
	return s.exitCode, nil
}

// setup starts the watchers and the control socket.
func (s *Supervisor) setup() error {
	s.cfg = s.opts.Config
	src := s.cfg.Sources
	if src != nil {
		d := src.Digest()
		s.cfgDigest = &d
	} else if s.cfg.File != "" {
		main, err := filepath.Abs(s.cfg.File)
		if err != nil {
			main = s.cfg.File
		}
		src = &conf.Sources{Main: main}
	}
	fw, err := watchdog.NewFileWatcher(watchdog.WithFileClock(s.clk), watchdog.WithLogf(func(format string, args ...any) {
		s.log.Warn(fmt.Sprintf(format, args...))
	}))
	if err != nil {
		return fmt.Errorf("heartbeat watcher: %w", err)
	}
	s.fw = fw

	if path, ok, perr := control.SocketPath(s.opts.SocketFlag, s.cfg.Supervisor.Socket); perr != nil {
		s.log.Error("control socket unavailable; running without it (set [supervisor] socket or -s)", zap.Error(perr))
	} else if ok {
		srv, err := control.Listen(path)
		switch {
		case errors.Is(err, control.ErrInUse):
			// Another supervisor answers there: refuse rather than run a
			// second one that nobody could reach.
			return fmt.Errorf("control socket: %w", err)
		case err != nil:
			// A read-only /run must not keep the programs from running.
			s.log.Error("control socket unavailable; running without it (set [supervisor] socket or -s)",
				zap.String("path", path), zap.Error(err))
		default:
			s.server = srv
			s.socketPath = path
			srv.SetErrorHandler(func(err error) { s.refused("control socket", err) })
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				if err := srv.Serve(ctx, s.controlHandlers()); err != nil && ctx.Err() == nil {
					s.log.Error("control socket stopped", zap.Error(err))
				}
			}()
			s.stopLoop = append(s.stopLoop, func() { cancel(); srv.Close(); <-done })
			s.log.Debug("control socket listening", zap.String("path", path))
		}
	}

	if s.cfg.File != "" && s.cfg.Supervisor.WatchConfig {
		cw, err := s.watchConfig(src)
		if err != nil {
			s.log.Warn("cannot watch the configuration files; use `supervise reload` or SIGHUP", zap.Error(err))
		} else {
			s.watch = cw
			s.stopLoop = append(s.stopLoop, cw.close)
		}
	}
	if addr := s.cfg.Supervisor.Metrics; addr != "" {
		if err := s.serveMetrics(addr); err != nil {
			return err
		}
	}
	s.scheduleSDWatchdog()
	return nil
}

func (s *Supervisor) cleanup() {
	s.bus.Close()
	s.stopHooks()
	if s.reading != nil {
		<-s.reading // it reads regular files only, and may use the watcher
	}
	for i := len(s.stopLoop) - 1; i >= 0; i-- {
		s.stopLoop[i]()
	}
	s.stopLoop = nil
	for _, p := range s.progs {
		s.endRun(p, p.run)
		s.cancelTimers(p)
	}
	waitProbes(s.endingProbes, 5*time.Second)
	if s.fw != nil {
		s.fw.Close()
	}
	if s.beatTimer != nil {
		s.beatTimer.Stop()
	}
	if s.sdTimer != nil {
		s.sdTimer.Stop()
	}
	if s.debounce != nil {
		s.debounce.Stop()
	}
	if s.notifyDir != "" {
		os.RemoveAll(s.notifyDir)
	}
	s.out.close()
}

// applyInitial creates the programs of the configuration and starts the
// autostart ones.
func (s *Supervisor) applyInitial() {
	for _, name := range s.cfg.Order {
		s.progs[name] = s.newProgram(s.cfg.Programs[name])
		s.order = append(s.order, name)
	}
	s.indexDependencies()
	s.applyHooks(s.cfg.Hooks)
	for _, name := range s.order {
		if p := s.progs[name]; p != nil && p.cfg().Autostart {
			s.start(p, "autostart", false)
		}
	}
	s.log.Info("supervisor started", zap.Int("programs", len(s.order)), zap.String("config", s.cfg.File),
		zap.String("socket", s.socketPath))
}

// current returns the program named name if ev belongs to its current run.
func (s *Supervisor) current(name string, run uint64) *program {
	if p := s.progs[name]; p != nil && p.run != nil && p.run.n == run {
		return p
	}
	return nil
}

// handle dispatches one event. It runs only in the loop goroutine.
func (s *Supervisor) handle(ev event) {
	switch ev := ev.(type) {
	case exited:
		if p := s.current(ev.name, ev.run); p != nil {
			s.onExit(p, ev.exit)
		}
	case timerFired:
		if p := s.progs[ev.name]; p != nil && p.timerSeq[ev.kind] == ev.seq && p.timers[ev.kind] != nil {
			p.timers[ev.kind] = nil
			s.step(p, lifecycle.TimerFired{Kind: ev.kind})
		}
	case beat:
		if p := s.current(ev.name, ev.run); p != nil {
			s.onBeat(p, ev)
		}
	case unhealthy:
		if p := s.current(ev.name, ev.run); p != nil {
			s.onUnhealthy(p, ev.source)
		}
	case notified:
		if p := s.current(ev.name, ev.run); p != nil {
			s.onNotify(p, ev.msg)
		}
	case probed:
		if p := s.current(ev.name, ev.run); p != nil {
			s.onProbe(p, ev)
		}
	case request:
		s.onRequest(ev)
	case stopFor:
		p := s.progs[ev.name]
		if p == nil {
			close(ev.done)
			return
		}
		s.wait(p, ev.done)
		s.step(p, lifecycle.Stop{Intent: lifecycle.IntentTeardown, Signal: ev.signal})
	case killAll:
		s.noteAliveAtKill()
		for _, p := range s.progs {
			if p.run != nil {
				p.run.proc.SignalGroup(syscall.SIGKILL)
			}
		}
	case signalled:
		s.onSignal(ev.sig)
	case reloadAsked:
		s.reload(ev.why, ev.reply)
	case configTouched:
		s.onConfigTouched()
	case reloadDebounced:
		if ev.seq == s.debSeq {
			s.reload(whyEdited, nil)
		}
	case configRead:
		s.onConfigRead(ev)
	case configAsked:
		s.onConfigAsked(ev)
	case shutdownAsked:
		s.beginTeardown(ev.reason, ev.code)
	case teardownDone:
		s.finishTeardown(ev.result)
	case subscribe:
		s.onSubscribe(ev)
	case stepProgress:
		s.onStepProgress(ev)
	case hooksFlush:
		s.flushHooks(ev.done)
	case selfBeat:
		s.writeSelfBeat()
		s.scheduleSelfBeat(false)
	case sdWatchdog:
		s.sdNotify("WATCHDOG=1")
		s.scheduleSDWatchdog()
	}
}

// duplicateSignalWindow is how close together two deliveries of one
// signal count as one: `timeout -s INT` signals the process and then its
// group, and a terminal's Ctrl-C reaches every process of the group.
const duplicateSignalWindow = 100 * time.Millisecond

func (s *Supervisor) onSignal(sig os.Signal) {
	ssig, _ := sig.(syscall.Signal)
	now := s.clk.Now()
	if ssig == s.lastSignal && now.Sub(s.lastSignalAt) < duplicateSignalWindow {
		s.log.Debug("ignoring a duplicate signal", zap.String("signal", conf.SignalName(ssig)))
		return
	}
	s.lastSignal, s.lastSignalAt = ssig, now
	terminate := ssig == syscall.SIGTERM || ssig == syscall.SIGINT || ssig == s.cfg.Supervisor.StopSignal
	if s.opts.SingleCommand {
		// tini-like: the command gets the signal. SIGTERM and SIGINT also
		// begin the teardown, so a command that ignores them is killed
		// after its stop_timeout, like any program.
		main := s.progs[conf.MainProgram]
		switch {
		case terminate && s.shutting:
			s.forceTeardown("second " + conf.SignalName(ssig))
		case terminate:
			s.singleSignal = ssig
			s.beginTeardown("signal "+conf.SignalName(ssig), 128+int(ssig))
		case main != nil && main.run != nil:
			s.log.Debug("forwarding signal", zap.String("signal", conf.SignalName(ssig)))
			if err := main.run.proc.Signal(ssig); err != nil {
				s.log.Debug("forward signal", zap.Error(err))
			}
		}
		return
	}
	switch {
	case terminate && s.shutting:
		s.forceTeardown("second " + conf.SignalName(ssig))
	case terminate:
		s.beginTeardown("signal "+conf.SignalName(ssig), 0)
	case ssig == syscall.SIGHUP:
		s.reload("SIGHUP", nil)
	case ssig == syscall.SIGUSR1:
		s.out.files.reopenAsync("SIGUSR1")
	default:
		s.log.Info("ignoring signal", zap.String("signal", conf.SignalName(ssig)))
	}
}

// summary is the STATUS= line for systemd: counts per state.
func (s *Supervisor) summary() string {
	counts := s.stateCounts()
	var parts []string
	for _, st := range lifecycle.States {
		if n := counts[string(st)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	if len(parts) == 0 {
		return "no programs"
	}
	return strings.Join(parts, ", ")
}

func (s *Supervisor) stateCounts() map[string]int {
	counts := map[string]int{}
	for _, p := range s.progs {
		counts[string(p.m.State())]++
	}
	return counts
}

// sdNotify tells systemd, when the supervisor runs under it.
func (s *Supervisor) sdNotify(state string) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	if err := systemd.Notify(state); err != nil {
		s.log.Debug("sd_notify", zap.Error(err))
	}
}

func (s *Supervisor) scheduleSDWatchdog() {
	d, ok := systemd.WatchdogInterval()
	if !ok || os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	s.sdTimer = s.clk.AfterFunc(d/2, func() { s.box.push(sdWatchdog{}) })
}

// runtimeDir is where the supervisor's runtime files go (SPEC §18):
// $XDG_RUNTIME_DIR, else /run as root, else a private 0700 directory of
// the user's own under $TMPDIR or /tmp (control.RuntimeDir).
func (s *Supervisor) runtimeDir() (string, error) {
	if s.opts.RuntimeDir != "" {
		return s.opts.RuntimeDir, nil
	}
	return control.RuntimeDir()
}

// ensureNotifyDir creates the 0700 directory of the notify sockets.
func (s *Supervisor) ensureNotifyDir() (string, error) {
	if s.notifyDir != "" {
		return s.notifyDir, nil
	}
	rt, err := s.runtimeDir()
	if err != nil {
		return "", fmt.Errorf("notify socket directory: %w", err)
	}
	// MkdirTemp makes it 0700 and refuses to follow a planted name.
	d, err := os.MkdirTemp(rt, fmt.Sprintf("supervise-%d-notify-", os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("notify socket directory: %w", err)
	}
	s.notifyDir = d
	return d, nil
}

func waitString(st unix.WaitStatus) string {
	switch {
	case st.Exited():
		return fmt.Sprintf("exit %d", st.ExitStatus())
	case st.Signaled():
		return "signal " + conf.SignalName(st.Signal())
	}
	return fmt.Sprintf("status %#x", int(st))
}

// sortedNames returns names sorted (a program's instances by index), or
// every program in configuration order when names is empty.
func (s *Supervisor) sortedNames(names []string) []string {
	if len(names) == 0 {
		return append([]string(nil), s.order...)
	}
	out := append([]string(nil), names...)
	slices.SortFunc(out, lessName)
	return out
}
