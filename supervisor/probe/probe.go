// Package probe checks whether a program is ready or alive, as Kubernetes
// probes do (SPEC §11).
//
// A Checker makes one attempt: an exec probe runs a command (exit 0
// passes), an HTTP probe sends a GET (a 2xx or 3xx status passes), a TCP
// probe opens a connection. A Runner makes attempts every interval, after
// an initial delay, each bounded by a timeout, and counts consecutive
// passes and failures against the thresholds: a probe is Unknown until
// success_threshold passes make it Passing or failure_threshold failures
// make it Failing, and it changes state again only after as many
// consecutive results the other way. A LineMatcher is the log_line
// readiness probe: it passes once enough output lines match a pattern.
//
// The package promises:
//
//   - No goroutine waits between attempts: a Runner holds one timer of its
//     clock while idle, and an attempt runs on the goroutine the timer
//     fires on (the real clock's own; with clock.Fake, the goroutine that
//     advances it, so tests drive attempts without sleeping).
//   - Attempts of one Runner never overlap: the next is scheduled when one
//     ends, interval after its start or at once when it took longer.
//   - A state change is reported once, to the Runner's hook, outside its
//     lock and in the order the attempts ended; Status is a snapshot that
//     may be read from any goroutine at any time without blocking on an
//     attempt.
//   - After Stop, nothing is reported and no attempt starts; an attempt in
//     flight has its context cancelled, and its result does not count.
//
// Checkers see the per-attempt timeout as their context's deadline; its
// cause (context.Cause) is a *TimeoutError.
package probe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/supervise/supervise/clock"
)

// Checker makes one attempt of a probe. A nil error passes. When ctx ends
// (the attempt's timeout, or the probe stopped), Check returns promptly,
// having released what it started.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) error

// Check calls f.
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Settings time a Runner and set its thresholds, as the keys of a
// [readiness] or [liveness] table do.
type Settings struct {
	Interval         time.Duration // from the start of one attempt to the start of the next
	Timeout          time.Duration // per attempt
	SuccessThreshold int           // consecutive passes that make the probe Passing (at least 1)
	FailureThreshold int           // consecutive failures that make it Failing (at least 1)
}

// State is what a probe's results say so far.
type State string

// The states of a probe, as status shows them.
const (
	Unknown State = "unknown" // not enough results yet, or not running
	Passing State = "passing"
	Failing State = "failing"
)

// Status is a snapshot of a probe's results.
type Status struct {
	State                State
	ConsecutiveFailures  int
	ConsecutiveSuccesses int
	LastError            string        // the error of the latest failed attempt, "" if none failed
	LastFailureAt        time.Time     // when it ended
	LastDuration         time.Duration // of the latest attempt
	LastAt               time.Time     // when the latest attempt ended
	Attempts, Failures   uint64        // attempts made, and how many failed
	TotalDuration        time.Duration // of every attempt made
}

// TimeoutError is the cause of an attempt's context when its timeout
// passed.
type TimeoutError struct{ After time.Duration }

// Error says how long the attempt was allowed.
func (e *TimeoutError) Error() string { return fmt.Sprintf("timed out after %s", e.After) }

// errStopped is the cause of an attempt's context when its probe stopped.
var errStopped = fmt.Errorf("probe: stopped")

// Runner makes the attempts of one probe of one run of a program. It is
// safe for concurrent use.
type Runner struct {
	check    Checker
	set      Settings
	clk      clock.Clock
	onChange func(from, to State, st Status)

	mu       sync.Mutex
	st       Status
	started  bool
	stopped  bool
	timer    clock.Timer
	cancel   context.CancelCauseFunc // of the attempt in flight
	busy     bool                    // an attempt is in flight
	inFlight sync.WaitGroup
}

// NewRunner returns a runner of check with settings s, not started.
// onChange, if not nil, is called with each change of state, from the
// goroutine of the attempt that caused it; it must not block for long
// (hand the change to an event loop).
func NewRunner(check Checker, s Settings, clk clock.Clock, onChange func(from, to State, st Status)) *Runner {
	if clk == nil {
		clk = clock.Real()
	}
	s.SuccessThreshold = max(s.SuccessThreshold, 1)
	s.FailureThreshold = max(s.FailureThreshold, 1)
	return &Runner{check: check, set: s, clk: clk, onChange: onChange, st: Status{State: Unknown}}
}

// Start schedules the first attempt after delay. It does nothing after the
// first call or after Stop.
func (r *Runner) Start(delay time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return
	}
	r.started = true
	r.timer = r.clk.AfterFunc(max(delay, 0), r.attempt)
}

// Stop ends the probe: no attempt starts any more, the one in flight is
// cancelled and its result dropped, and the hook is not called again. It
// does not wait for that attempt (see Wait).
func (r *Runner) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.cancel != nil {
		r.cancel(errStopped)
	}
}

// Wait returns once no attempt is in flight; call it after Stop to know
// that whatever an attempt started (an exec probe's process) is gone.
func (r *Runner) Wait() { r.inFlight.Wait() }

// Busy reports whether an attempt is in flight (cancelled by Stop, it may
// still be ending).
func (r *Runner) Busy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy
}

// Status returns a snapshot of the results so far.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// attempt makes one attempt, counts it, and schedules the next.
func (r *Runner) attempt() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	r.cancel, r.busy = cancel, true
	r.inFlight.Add(1)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.busy = false
		r.mu.Unlock()
		r.inFlight.Done()
	}()

	start := r.clk.Now()
	deadline := r.clk.AfterFunc(r.set.Timeout, func() { cancel(&TimeoutError{After: r.set.Timeout}) })
	err := r.check.Check(ctx)
	deadline.Stop()
	end := r.clk.Now()
	cancel(nil)

	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.cancel = nil
	from := r.st.State
	r.count(err, end, end.Sub(start))
	to, snap := r.st.State, r.st
	r.mu.Unlock()
	if to != from && r.onChange != nil {
		r.onChange(from, to, snap)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopped {
		r.timer = r.clk.AfterFunc(max(r.set.Interval-end.Sub(start), 0), r.attempt)
	}
}

// count adds the result of an attempt to the status; the caller holds mu.
func (r *Runner) count(err error, at time.Time, took time.Duration) {
	st := &r.st
	st.Attempts++
	st.LastAt, st.LastDuration = at, took
	st.TotalDuration += took
	if err == nil {
		st.ConsecutiveSuccesses++
		st.ConsecutiveFailures = 0
		if st.State != Passing && st.ConsecutiveSuccesses >= r.set.SuccessThreshold {
			st.State = Passing
		}
		return
	}
	st.Failures++
	st.ConsecutiveFailures++
	st.ConsecutiveSuccesses = 0
	st.LastError, st.LastFailureAt = err.Error(), at
	if st.State != Failing && st.ConsecutiveFailures >= r.set.FailureThreshold {
		st.State = Failing
	}
}
