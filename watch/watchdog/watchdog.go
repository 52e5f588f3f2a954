// Package watchdog calls a hook when an expected signal of life stops coming.
//
// A [Watchdog] is a ping-driven timer: once started it must be pinged at
// least once per timeout (the first time within the start grace), or its
// onTimeout hook is called. Pinging is cheap (a clock read and two atomic
// operations, no allocation, no lock), so it can sit on a hot path; the timer
// is not reset on every ping — when it fires it checks whether a ping came in
// the meantime and, if so, re-arms itself for the last ping plus the timeout.
// The beats of a FileWatchdog, which come from one goroutine a few times per
// timeout, do move the timer, so a steadily beating file never makes its
// timer fire.
//
// A [FileWatcher] turns inotify events on heartbeat files into beats: it
// uses one inotify instance for any number of files
// and one watch per directory, and it recovers from removed directories and
// event-queue overflows. A [FileWatchdog] is a Watchdog pinged by the beats
// of one heartbeat file. Nothing in this package polls: an idle watchdog does
// not wake up.
//
// # Expiry
//
// By default a watchdog is one-shot: after onTimeout is called it is expired
// and stays silent until its owner calls Start or Reset (it is fine to do so
// from inside onTimeout). With WithRepeat it re-arms itself for another
// timeout after each timeout, so the hook is called once per silent timeout
// period.
//
// # Hooks and stopping
//
// Hooks are called from timer goroutines (or, with a fake clock, from the
// goroutine that advances the clock), never while the watchdog holds a lock,
// so they may call any method of the watchdog. After Stop returns, no new
// onTimeout call begins; Stop does not wait for a call that had already
// begun, so that a hook which hands the timeout to another goroutine can
// never deadlock against that goroutine calling Stop.
//
// Time comes from an injectable clock.Clock, so tests drive watchdogs with a
// fake clock and never sleep.
package watchdog

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/supervise/supervise/clock"
)

// Watchdog calls a hook when Ping is not called for a timeout. It is safe for
// concurrent use. Create it with New.
type Watchdog struct {
	clk       clock.Clock
	real      bool      // clk is clock.Real(): Ping calls time.Since directly
	epoch     time.Time // Ping times are stored as durations since epoch
	timeout   time.Duration
	grace     time.Duration
	repeat    bool
	onTimeout func()

	lastPing atomic.Int64  // nanoseconds since epoch of the latest ping
	pings    atomic.Uint64 // pings ever; also tells the timer whether a ping came
	timeouts atomic.Uint64

	mu        sync.Mutex
	running   bool
	gen       uint64        // bumped by Start/Reset/Stop; stale timer calls see a different value
	timer     clock.Timer   // the timer of the current generation, nil when not running
	seenPings uint64        // pings counted when ref was last updated
	ref       time.Time     // the deadline is ref+period unless pings came since
	period    time.Duration // grace after Start/Reset, then timeout
	started   time.Time
}

// Option configures a Watchdog.
type Option func(*config)

type config struct {
	clk    clock.Clock
	grace  time.Duration
	repeat bool
	onBeat func(Beat)
}

// WithClock makes the watchdog read time and schedule its timer with c
// instead of the system clock.
func WithClock(c clock.Clock) Option { return func(o *config) { o.clk = c } }

// WithStartGrace sets the allowed time from Start (or Reset) to the first
// ping. A value that is not positive means the timeout, which is the default.
func WithStartGrace(d time.Duration) Option { return func(o *config) { o.grace = d } }

// WithRepeat makes the watchdog re-arm itself for another timeout after each
// timeout, instead of expiring until the next Start or Reset.
func WithRepeat() Option { return func(o *config) { o.repeat = true } }

// WithOnBeat sets a hook called with every beat of a FileWatchdog, after the
// beat has pinged the watchdog. It is ignored by New.
func WithOnBeat(f func(Beat)) Option { return func(o *config) { o.onBeat = f } }

// New returns a stopped watchdog that, once started, calls onTimeout when
// Ping is not called within the timeout (the first time: within the start
// grace). It panics if timeout is not positive or onTimeout is nil.
func New(timeout time.Duration, onTimeout func(), opts ...Option) *Watchdog {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return newWatchdog(timeout, onTimeout, c)
}

func newWatchdog(timeout time.Duration, onTimeout func(), c config) *Watchdog {
	if timeout <= 0 {
		panic("watchdog: timeout must be positive")
	}
	if onTimeout == nil {
		panic("watchdog: nil onTimeout")
	}
	if c.clk == nil {
		c.clk = clock.Real()
	}
	if c.grace <= 0 {
		c.grace = timeout
	}
	return &Watchdog{clk: c.clk, real: c.clk == clock.Real(), epoch: c.clk.Now(), timeout: timeout, grace: c.grace,
		repeat: c.repeat, onTimeout: onTimeout}
}

// Ping records a sign of life: the watchdog's deadline becomes now plus the
// timeout. Ping takes no lock and does not allocate. Pings while the
// watchdog is stopped are counted and remembered but arm nothing.
func (w *Watchdog) Ping() {
	var d time.Duration
	if w.real {
		d = time.Since(w.epoch) // monotonic clock only; no interface call
	} else {
		d = w.clk.Since(w.epoch)
	}
	w.lastPing.Store(int64(d))
	w.pings.Add(1)
}

// PingAt records a sign of life that happened at t (for example a file's
// modification time, earlier than the event that reported it): the
// deadline becomes t plus the timeout, unless a later ping is recorded.
func (w *Watchdog) PingAt(t time.Time) {
	d := int64(t.Sub(w.epoch))
	for {
		cur := w.lastPing.Load()
		if d <= cur || w.lastPing.CompareAndSwap(cur, d) {
			break
		}
	}
	w.pings.Add(1)
}

// beatAt records a beat at t, as PingAt does, and moves the pending timer to
// the deadline the beat makes. A steadily beating watchdog then never has
// its timer fire: moving a pending timer later wakes nothing, while a
// lazily re-armed timer fires about once per timeout only to find the beats
// it missed. Beats come from one goroutine at a few per second, where the
// lock this takes is cheap; Ping stays lock-free for hot paths.
func (w *Watchdog) beatAt(t time.Time) {
	w.PingAt(t)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running || w.timer == nil {
		return
	}
	p := w.pings.Load()
	if p == w.seenPings {
		return
	}
	w.seenPings = p
	w.ref, w.period = w.epoch.Add(time.Duration(w.lastPing.Load())), w.timeout
	w.timer.Reset(w.ref.Add(w.period).Sub(w.clk.Now()))
}

// Start arms a stopped or expired watchdog: the first ping is due within the
// start grace. Start on a running watchdog does nothing.
func (w *Watchdog) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return
	}
	w.armLocked()
}

// Reset re-arms the watchdog as a fresh Start would, whether it is running,
// stopped or expired: the next ping is due within the start grace from now.
func (w *Watchdog) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.disarmLocked()
	w.armLocked()
}

// Stop disarms the watchdog. It is idempotent. After Stop returns no new
// onTimeout call begins; a call already in progress is not waited for.
func (w *Watchdog) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.disarmLocked()
}

// Running reports whether the watchdog is armed (started and neither stopped
// nor expired).
func (w *Watchdog) Running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

// Deadline returns the time the watchdog will fire unless pinged, and false
// when it is not running.
func (w *Watchdog) Deadline() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return time.Time{}, false
	}
	if w.pings.Load() != w.seenPings {
		return w.epoch.Add(time.Duration(w.lastPing.Load()) + w.timeout), true
	}
	return w.ref.Add(w.period), true
}

// SinceLastPing returns the time since the latest Ping, or since New when
// there has been none.
func (w *Watchdog) SinceLastPing() time.Duration {
	return w.clk.Since(w.epoch) - time.Duration(w.lastPing.Load())
}

// Stats are counters of a watchdog.
type Stats struct {
	// Pings counts calls of Ping (for a FileWatchdog: beats) since New.
	Pings uint64
	// Timeouts counts calls of onTimeout since New.
	Timeouts uint64
	// Uptime is how long the watchdog has been armed since the last Start
	// or Reset; zero when it is stopped or expired.
	Uptime time.Duration
}

// Stats returns the watchdog's counters.
func (w *Watchdog) Stats() Stats {
	s := Stats{Pings: w.pings.Load(), Timeouts: w.timeouts.Load()}
	w.mu.Lock()
	if w.running {
		s.Uptime = w.clk.Since(w.started)
	}
	w.mu.Unlock()
	return s
}

// armLocked starts a new generation with the start grace; w.mu is held.
// The timer is set for the earlier of grace and timeout, since a ping right
// after the start makes the deadline ping+timeout.
func (w *Watchdog) armLocked() {
	now := w.clk.Now()
	w.running = true
	w.gen++
	w.started = now
	w.seenPings = w.pings.Load()
	w.ref, w.period = now, w.grace
	gen := w.gen
	w.timer = w.clk.AfterFunc(min(w.grace, w.timeout), func() { w.fire(gen) })
}

// disarmLocked stops the current generation; w.mu is held.
func (w *Watchdog) disarmLocked() {
	w.running = false
	w.gen++
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// fire runs when the timer of generation gen goes off. The timer never goes
// off after the deadline it was set for; fire finds the real deadline from
// the pings since and either sets the timer again or calls the hook.
func (w *Watchdog) fire(gen uint64) {
	w.mu.Lock()
	if !w.running || gen != w.gen {
		w.mu.Unlock()
		return
	}
	now := w.clk.Now()
	if p := w.pings.Load(); p != w.seenPings {
		w.seenPings = p
		w.ref, w.period = w.epoch.Add(time.Duration(w.lastPing.Load())), w.timeout
	}
	if wait := w.ref.Add(w.period).Sub(now); wait > 0 {
		w.timer.Reset(wait)
		w.mu.Unlock()
		return
	}
	w.timeouts.Add(1)
	if w.repeat {
		w.ref, w.period = now, w.timeout
		w.timer.Reset(w.timeout)
	} else {
		w.running = false
		w.timer = nil
		w.gen++
	}
	w.mu.Unlock()
	w.onTimeout()
}
