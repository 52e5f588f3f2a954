package supervisor

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/events"
)

// Hooks (SPEC §15): each [hooks.NAME] has a runner, a goroutine that
// runs the hook's command for the events the loop offers it, one run at
// a time. The loop hands an event over without waiting: to an idle
// runner it is the next run's event; to a busy one it replaces the event
// waiting for the next run, which then counts the events it stands for
// (coalesced). A run is spawned through the reaper with the event's JSON
// on its standard input and in its environment, and is killed with its
// process group at the hook's timeout; its failures are logged and
// counted, and never reach a program.

// maxEventEnv is the largest event JSON also put in SUPERVISE_EVENT; a
// larger one (a reload of very many programs) is on stdin only, since an
// environment string may not exceed 128 KiB.
const maxEventEnv = 64 << 10

// hookSet is the loop's view of the hooks: the runners of the current
// configuration by name, and every runner started, for the end.
type hookSet struct {
	byName map[string]*hookRunner
	all    []*hookRunner
	closed bool
}

// wants reports whether a hook may want an event of kind k about program.
func (hs *hookSet) wants(k events.Kind, program string) bool {
	for _, r := range hs.byName {
		if r.cfg.Wants(k, program) {
			return true
		}
	}
	return false
}

// offer hands ev to every hook that wants it.
func (hs *hookSet) offer(ev *events.Event) {
	for _, r := range hs.byName {
		if r.cfg.Wants(ev.Kind, ev.Program) {
			r.offer(ev)
		}
	}
}

// applyHooks makes hooks the configured hooks: new ones get a runner,
// removed ones finish what they were given and end, changed ones take
// their new settings for their next run. It returns the names of each.
func (s *Supervisor) applyHooks(hooks map[string]*conf.Hook) (added, removed, changed []string) {
	hs := &s.hooks
	if hs.closed {
		return nil, nil, nil
	}
	// Forget the runners of removed hooks that have ended.
	hs.all = slices.DeleteFunc(hs.all, func(r *hookRunner) bool {
		select {
		case <-r.done:
			return true
		default:
			return false
		}
	})
	if hs.byName == nil {
		hs.byName = map[string]*hookRunner{}
	}
	for _, name := range slices.Sorted(maps.Keys(hs.byName)) {
		r := hs.byName[name]
		h := hooks[name]
		switch {
		case h == nil:
			removed = append(removed, name)
			r.close()
			delete(hs.byName, name)
		case !r.cfg.Equal(h):
			changed = append(changed, name)
			r.setConfig(h)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(hooks)) {
		if hs.byName[name] == nil {
			added = append(added, name)
			r := s.newHookRunner(hooks[name])
			hs.byName[name] = r
			hs.all = append(hs.all, r)
		}
	}
	return added, removed, changed
}

// flushHooks ends the hooks for the teardown: each runs what it was given
// and ends; events after that run no hook. The channel is closed once
// every runner has ended (by a goroutine that ends then).
func (s *Supervisor) flushHooks(done chan struct{}) {
	hs := &s.hooks
	hs.closed = true
	hs.byName = nil
	runners := slices.Clone(hs.all)
	for _, r := range runners {
		r.close()
	}
	go func() {
		defer close(done)
		for _, r := range runners {
			<-r.done
		}
	}()
}

// stopHooks kills the hooks' runs still going on and waits for every
// runner to end; for the end of Run.
func (s *Supervisor) stopHooks() {
	hs := &s.hooks
	hs.closed = true
	hs.byName = nil
	for _, r := range hs.all {
		r.cancel()
	}
	for _, r := range hs.all {
		<-r.done
	}
	hs.all = nil
}

// hooksTeardownTimeout bounds the teardown step that waits for the hooks:
// the longest hook timeout, once for the run under way and once for the
// one waiting, and a margin to kill and reap.
func (s *Supervisor) hooksTeardownTimeout() time.Duration {
	var longest time.Duration
	for _, r := range s.hooks.byName {
		longest = max(longest, r.cfg.Timeout)
	}
	return 2*longest + 2*time.Second
}

// hookCounters are the metrics of one hook.
type hookCounters struct {
	runs, failures, coalesced atomic.Uint64
}

// hookStats holds the counters of every hook of this supervisor run,
// kept across reloads; safe for concurrent use (metrics read it). The
// zero value is ready.
type hookStats struct {
	mu sync.Mutex
	m  map[string]*hookCounters
}

func (st *hookStats) of(name string) *hookCounters {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.m == nil {
		st.m = map[string]*hookCounters{}
	}
	c := st.m[name]
	if c == nil {
		c = &hookCounters{}
		st.m[name] = c
	}
	return c
}

// snapshot returns the hooks' names, sorted, and their counters.
func (st *hookStats) snapshot() ([]string, map[string]*hookCounters) {
	st.mu.Lock()
	defer st.mu.Unlock()
	names := slices.Sorted(maps.Keys(st.m))
	m := make(map[string]*hookCounters, len(st.m))
	for k, v := range st.m {
		m[k] = v
	}
	return names, m
}

// hookRunner runs one hook. cfg is the loop's copy of its settings (for
// matching); the rest is shared with the runner's goroutine under mu.
type hookRunner struct {
	s     *Supervisor
	name  string
	cfg   *conf.Hook
	log   *zap.Logger
	count *hookCounters
	wake  chan struct{} // capacity 1
	done  chan struct{} // closed when the goroutine has returned
	ctx   context.Context
	stop  context.CancelFunc

	mu        sync.Mutex
	settings  *conf.Hook
	next      *events.Event // the event of the next run
	coalesced uint64        // the events next stands for besides itself
	busy      bool          // a run goes on, or next waits for the goroutine
	closing   bool          // no more events: end once idle
}

func (s *Supervisor) newHookRunner(h *conf.Hook) *hookRunner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &hookRunner{
		s: s, name: h.Name, cfg: h, settings: h,
		log:   s.log.With(zap.String("hook", h.Name)),
		count: s.hookStats.of(h.Name),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		ctx:   ctx, stop: cancel,
	}
	go r.loop()
	return r
}

// offer gives ev to the runner; it never blocks (the loop calls it).
func (r *hookRunner) offer(ev *events.Event) {
	r.mu.Lock()
	switch {
	case r.closing:
	case !r.busy:
		r.busy, r.next, r.coalesced = true, ev, 0
	case r.next != nil:
		r.next = ev
		r.coalesced++
		r.count.coalesced.Add(1)
	default:
		r.next, r.coalesced = ev, 0
	}
	r.mu.Unlock()
	r.poke()
}

func (r *hookRunner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *hookRunner) setConfig(h *conf.Hook) {
	r.cfg = h
	r.mu.Lock()
	r.settings = h
	r.mu.Unlock()
}

// close lets the runner finish what it was given, then end.
func (r *hookRunner) close() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.poke()
}

// cancel kills the run under way and ends the runner at once.
func (r *hookRunner) cancel() {
	r.close()
	r.stop()
}

func (r *hookRunner) loop() {
	defer close(r.done)
	defer r.stop()
	for {
		r.mu.Lock()
		ev, n, h, closing := r.next, r.coalesced, r.settings, r.closing
		r.next, r.coalesced = nil, 0
		if ev == nil {
			r.busy = false
		}
		r.mu.Unlock()
		if ev != nil && r.ctx.Err() == nil {
			r.run(h, ev, n)
			continue
		}
		if closing || r.ctx.Err() != nil {
			return
		}
		select {
		case <-r.wake:
		case <-r.ctx.Done():
		}
	}
}

// run runs the hook once for ev, which stands for n earlier events too.
func (r *hookRunner) run(h *conf.Hook, ev *events.Event, n uint64) {
	e := ev.Clone()
	e.Coalesced = n
	data := e.JSON()
	r.count.runs.Add(1)
	fail := func(msg string, fields ...zap.Field) {
		r.count.failures.Add(1)
		r.log.Warn(msg, append(fields, zap.String("event", e.Kind.String()), zap.Uint64("seq", e.Seq))...)
	}
	stdin, err := eventInput(data)
	if err != nil {
		fail("hook cannot start", zap.Error(fmt.Errorf("hooks.%s: event on stdin: %w", r.name, err)))
		return
	}
	env := r.s.environment(&conf.Program{})
	env = append(env,
		"SUPERVISE_HOOK="+r.name,
		"SUPERVISE_EVENT_KIND="+e.Kind.String(),
		"SUPERVISE_PROGRAM="+e.Program,
		"SUPERVISE_EVENTS_COALESCED="+strconv.FormatUint(n, 10),
	)
	if len(data) <= maxEventEnv {
		env = append(env, "SUPERVISE_EVENT="+string(data))
	}
	done := make(chan procs.Exit, 1)
	out := "hooks." + r.name
	proc, err := r.s.opts.Reaper.Spawn(procs.Spec{
		Argv:   h.Command,
		Env:    env,
		Stdin:  stdin,
		Stdout: r.s.consoleOutput(out, "stdout"),
		Stderr: r.s.consoleOutput(out, "stderr"),
	}, func(x procs.Exit) { done <- x })
	stdin.Close()
	if err != nil {
		fail("hook cannot start", zap.Error(fmt.Errorf("hooks.%s: %w", r.name, err)))
		return
	}
	r.log.Debug("hook started", zap.Int("pid", proc.Pid()), zap.String("event", e.Kind.String()),
		zap.Uint64("seq", e.Seq), zap.Uint64("coalesced", n))
	expired := make(chan struct{})
	timer := r.s.clk.AfterFunc(h.Timeout, func() { close(expired) })
	defer timer.Stop()
	select {
	case x := <-done:
		if x.Code() != 0 {
			fail("hook failed", zap.String("exit", x.String()))
			return
		}
		r.log.Debug("hook finished")
	case <-expired:
		proc.SignalGroup(syscall.SIGKILL)
		<-done
		fail("hook killed: it ran longer than its timeout", zap.Duration("timeout", h.Timeout))
	case <-r.ctx.Done():
		proc.SignalGroup(syscall.SIGKILL)
		<-done
		fail("hook killed: the supervisor is exiting")
	}
}

// eventInput returns a file to give a hook as its standard input, holding
// data: an anonymous memory file, which no reader can make a writer wait
// on; else, where there is none, a pipe when data fits in the smallest
// buffer a pipe has (one page).
func eventInput(data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("supervise-event", unix.MFD_CLOEXEC)
	if err == nil {
		f := os.NewFile(uintptr(fd), "supervise-event")
		if _, err := f.Write(data); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.Seek(0, 0); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	if len(data) > 4096 {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	pr, pw, perr := os.Pipe()
	if perr != nil {
		return nil, perr
	}
	defer pw.Close()
	if _, err := pw.Write(data); err != nil {
		pr.Close()
		return nil, err
	}
	return pr, nil
}
