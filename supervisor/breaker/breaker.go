package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/supervise/supervise/clock"
)

// Breaker is a circuit breaker safe for concurrent use: a Machine behind a
// mutex, timed by an injected clock, that runs calls through itself.
//
// Call and Do classify the outcome of each call:
//
//   - a nil error is a success;
//   - an error returned while the caller's own context is done, and that is
//     (or wraps) context.Canceled or context.DeadlineExceeded, is neither a
//     success nor a failure: the caller gave up, the dependency did not fail
//     (a half-open trial slot taken by the call is given back);
//   - an error that the WithIsFailure predicate rejects, or that matches one
//     of the WithExcluded errors, counts as a success: the dependency
//     answered;
//   - any other error, and a panic, is a failure.
//
// An outcome that arrives after the breaker has changed state since the call
// was admitted (for example, a slow call admitted while closed that returns
// after the breaker opened) is counted in Stats but does not move the state.
type Breaker struct {
	clock     clock.Clock
	isFailure func(error) bool
	hook      func(from, to State, now time.Time)

	mu         sync.Mutex
	m          Machine
	pending    []change // transitions not yet handed to hook
	delivering bool     // some goroutine is calling hook
}

type change struct {
	from, to State
	at       time.Time
}

// Option configures a Breaker.
type Option func(*Breaker)

// WithClock sets the clock (default clock.Real()).
func WithClock(c clock.Clock) Option { return func(b *Breaker) { b.clock = c } }

// WithIsFailure sets the predicate that decides whether a non-nil error
// returned by a call is a failure. Errors it rejects count as successes.
func WithIsFailure(f func(error) bool) Option { return func(b *Breaker) { b.isFailure = f } }

// WithExcluded makes errors matching any of errs (errors.Is) count as
// successes instead of failures. It replaces any WithIsFailure predicate.
func WithExcluded(errs ...error) Option {
	errs = append([]error(nil), errs...)
	return WithIsFailure(func(err error) bool {
		for _, e := range errs {
			if errors.Is(err, e) {
				return false
			}
		}
		return true
	})
}

// WithOnStateChange sets a hook called on every transition. It is called
// outside the breaker's lock (so it may call the breaker), one call at a
// time and in the order of the transitions, from a goroutine that caused
// one of them.
func WithOnStateChange(f func(from, to State, now time.Time)) Option {
	return func(b *Breaker) { b.hook = f }
}

// New returns a closed Breaker with settings s (zero values take the
// defaults).
func New(s Settings, opts ...Option) *Breaker {
	b := &Breaker{clock: clock.Real()}
	for _, o := range opts {
		o(b)
	}
	b.m = Machine{s: s.withDefaults()}
	if b.hook != nil {
		b.m.onChange = b.enqueue
	}
	return b
}

type outcome int

const (
	success outcome = iota
	failure
	neutral
)

// Call runs fn if the breaker admits it and records the outcome (see
// Breaker). It returns fn's error unchanged, an *OpenError when the breaker
// refuses the call, or the context's error (wrapped) when ctx is already
// done, in which case fn is not called and nothing is counted. If fn panics,
// the call counts as a failure and the panic continues.
func (b *Breaker) Call(ctx context.Context, fn func(context.Context) error) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("breaker: call not made: %w", err)
	}
	gen, err := b.before()
	if err != nil {
		return err
	}
	returned := false
	defer func() {
		if !returned { // fn panicked or called runtime.Goexit
			b.after(gen, failure)
		}
	}()
	err = fn(ctx)
	returned = true
	b.after(gen, b.classify(ctx, err))
	return err
}

// Do is Call for a function that returns a value. On a refused call it
// returns the zero T and the *OpenError.
func Do[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	var v T
	err := b.Call(ctx, func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	})
	return v, err
}

func (b *Breaker) classify(ctx context.Context, err error) outcome {
	switch {
	case err == nil:
		return success
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return neutral
	case b.isFailure != nil && !b.isFailure(err):
		return success
	}
	return failure
}

func (b *Breaker) before() (uint64, error) {
	b.mu.Lock()
	// Only an open breaker needs the time (to half-open); closed and
	// half-open admit without it, which keeps the common path off the clock.
	var now time.Time
	if b.m.state == Open {
		now = b.clock.Now()
	}
	gen, err := b.m.allow(now)
	b.unlock()
	return gen, err
}

func (b *Breaker) after(gen uint64, o outcome) {
	b.mu.Lock()
	if gen != b.m.gen {
		// The state changed since the call was admitted: count only.
		switch o {
		case success:
			b.m.stats.Successes++
		case failure:
			b.m.stats.Failures++
		}
		b.unlock()
		return
	}
	// Same generation: the state is still the closed or half-open state
	// that admitted the call, so no time-driven transition is due.
	switch o {
	case success:
		if b.m.state == Closed {
			b.m.success(time.Time{}) // no transition from closed on success
		} else {
			b.m.success(b.clock.Now())
		}
	case failure:
		b.m.failure(b.clock.Now())
	case neutral:
		if b.m.state == HalfOpen && b.m.trials > 0 {
			b.m.trials--
		}
	}
	b.unlock()
}

// unlock releases b.mu and hands pending transitions to the hook.
func (b *Breaker) unlock() {
	deliver := false
	if len(b.pending) > 0 && !b.delivering {
		b.delivering = true
		deliver = true
	}
	b.mu.Unlock()
	if deliver {
		b.deliver()
	}
}

func (b *Breaker) enqueue(from, to State, now time.Time) {
	b.pending = append(b.pending, change{from, to, now})
}

func (b *Breaker) deliver() {
	defer func() {
		if r := recover(); r != nil {
			b.mu.Lock()
			b.delivering = false
			b.mu.Unlock()
			panic(r)
		}
	}()
	for {
		b.mu.Lock()
		batch := b.pending
		b.pending = nil
		if len(batch) == 0 {
			b.delivering = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		for _, c := range batch {
			b.hook(c.from, c.to, c.at)
		}
	}
}

// State returns the current state, half-opening an open breaker whose reset
// timeout has passed.
func (b *Breaker) State() State {
	now := b.clock.Now()
	b.mu.Lock()
	s := b.m.State(now)
	b.unlock()
	return s
}

// Failures returns the number of consecutive failures since the last
// success or reset.
func (b *Breaker) Failures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m.failures
}

// Remaining returns the time left until the breaker half-opens; 0 unless it
// is open.
func (b *Breaker) Remaining() time.Duration {
	now := b.clock.Now()
	b.mu.Lock()
	d := b.m.Remaining(now)
	b.unlock()
	return d
}

// Stats returns the counters.
func (b *Breaker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m.stats
}

// Settings returns the settings in effect, defaults filled in.
func (b *Breaker) Settings() Settings { return b.m.s }

// Reset closes the breaker by hand and sets the failure count to 0.
// Outcomes of calls admitted before the reset are counted but move nothing.
func (b *Breaker) Reset() {
	now := b.clock.Now()
	b.mu.Lock()
	b.m.Reset(now)
	b.unlock()
}
