// Package ratelimit is a token-bucket rate limiter: rate tokens per period,
// holding at most burst tokens, with non-blocking, blocking and
// timeout-bounded acquisition, counters, and an injectable clock.
//
// The package promises:
//
//   - the bucket starts full (burst tokens) and refills continuously at
//     rate/period; TryAcquire never blocks;
//   - Wait and WaitTimeout queue callers in order of arrival (each reserves
//     its tokens ahead, so a later caller cannot overtake an earlier one),
//     and a wait that is given up returns its reserved tokens;
//   - a wait that cannot finish in time (WaitTimeout's bound, or the
//     context's deadline) fails at once with an *ExceededError carrying the
//     time after which the tokens would be there, instead of sleeping first;
//   - all timing goes through a clock.Clock: with clock.NewFake a blocked
//     Wait returns when the fake clock is advanced, so tests never sleep.
//
// # Built on golang.org/x/time/rate
//
// The bucket arithmetic is golang.org/x/time/rate. Its AllowN, ReserveN,
// TokensAt and Reservation.DelayFrom/CancelAt all take the time as an
// argument, so they work with an injected clock unchanged, and its
// reservations give first-come-first-served waiting and token return on
// cancellation, which are easy to get subtly wrong in a re-implementation.
// Only its own Wait is not used, because it sleeps on a real timer: this
// package reserves, then waits on clock.AfterFunc. Around it this package
// adds the clock, the counters, Reset (a fresh bucket), NextIn and the typed
// errors.
//
// The clock is read under the Limiter's own lock, so that rate.Limiter sees
// times in order. Given out-of-order times (two goroutines reading the clock
// before either reaches rate.Limiter's lock, as rate.Limiter.Allow itself
// does), rate.Limiter moves its last-update time backwards and refills the
// same interval twice: a test with 100 goroutines and a moving fake clock got
// 117 tokens where at most 110 were due. The extra lock costs a few
// nanoseconds per call; see the benchmarks.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/supervise/supervise/clock"
)

// ErrExceeded is matched (errors.Is) by every *ExceededError.
var ErrExceeded = errors.New("ratelimit: rate exceeded")

// ErrInvalid is returned by New for a non-positive rate or period, and
// wrapped by waits asking for more tokens than the burst.
var ErrInvalid = errors.New("ratelimit: invalid request")

// ExceededError reports that tokens are not available in time.
type ExceededError struct {
	// RetryAfter is how long until the requested tokens would be available.
	RetryAfter time.Duration
}

// Error describes the refusal.
func (e *ExceededError) Error() string {
	return fmt.Sprintf("ratelimit: rate exceeded, retry after %v", e.RetryAfter)
}

// Is reports whether target is ErrExceeded.
func (e *ExceededError) Is(target error) bool { return target == ErrExceeded }

// Stats counts what a Limiter has done since it was made. Reset does not
// clear it.
type Stats struct {
	// Acquired is the number of tokens handed out.
	Acquired uint64
	// Rejected is the number of tokens refused: by TryAcquire, and by waits
	// that failed with an *ExceededError. Waits whose context was cancelled
	// are not counted.
	Rejected uint64
	// Waited is the total time callers of Wait and WaitTimeout were made to
	// wait for tokens they got.
	Waited time.Duration
}

// Limiter is a token bucket. It is safe for concurrent use.
type Limiter struct {
	clock  clock.Clock
	rate   int
	period time.Duration
	burst  int
	limit  rate.Limit // tokens per second

	mu       sync.Mutex
	lim      *rate.Limiter // guarded by mu, as is every clock reading fed to it
	acquired atomic.Uint64
	rejected atomic.Uint64
	waited   atomic.Int64
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock sets the clock (default clock.Real()).
func WithClock(c clock.Clock) Option { return func(l *Limiter) { l.clock = c } }

// New returns a full bucket that refills rate tokens per period and holds at
// most burst tokens; burst <= 0 means burst = rate. For example
// New(10, time.Second, 20) allows 10 per second with bursts of 20. It fails
// with ErrInvalid when rate or period is not positive.
func New(rate int, period time.Duration, burst int, opts ...Option) (*Limiter, error) {
	if rate <= 0 || period <= 0 {
		return nil, fmt.Errorf("ratelimit: rate %d per %v: %w", rate, period, ErrInvalid)
	}
	if burst <= 0 {
		burst = rate
	}
	l := &Limiter{clock: clock.Real(), rate: rate, period: period, burst: burst}
	for _, o := range opts {
		o(l)
	}
	l.limit = limitOf(rate, period)
	l.lim = newBucket(l.limit, burst)
	return l, nil
}

func limitOf(r int, period time.Duration) rate.Limit {
	return rate.Limit(float64(r) / period.Seconds())
}

func newBucket(limit rate.Limit, burst int) *rate.Limiter {
	return rate.NewLimiter(limit, burst)
}

// Rate returns the rate, period and burst in effect.
func (l *Limiter) Rate() (rate int, period time.Duration, burst int) {
	return l.rate, l.period, l.burst
}

// TryAcquire takes one token if one is available now, without blocking.
func (l *Limiter) TryAcquire() bool { return l.TryAcquireN(1) }

// TryAcquireN takes n tokens if all are available now, without blocking.
// It takes none and reports false otherwise (always when n > burst).
func (l *Limiter) TryAcquireN(n int) bool {
	if n <= 0 {
		return true
	}
	l.mu.Lock()
	ok := l.lim.AllowN(l.clock.Now(), n)
	l.mu.Unlock()
	if ok {
		l.acquired.Add(uint64(n))
		return true
	}
	l.rejected.Add(uint64(n))
	return false
}

// Wait blocks until a token is available or ctx is done. See WaitN.
func (l *Limiter) Wait(ctx context.Context) error { return l.WaitN(ctx, 1) }

// WaitN blocks until n tokens are available and takes them. If ctx is done
// first, the tokens reserved for the caller are returned and the context's
// error is returned (wrapped). If ctx has a deadline (on the wall clock)
// sooner than the wait, WaitN fails at once with an *ExceededError. Asking
// for more than the burst fails with ErrInvalid.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	return l.wait(ctx, n, -1)
}

// WaitTimeout blocks until a token is available, or fails at once with an
// *ExceededError if the token would not be there within d (measured on the
// limiter's clock).
func (l *Limiter) WaitTimeout(d time.Duration) error {
	if d < 0 {
		d = 0
	}
	return l.wait(context.Background(), 1, d)
}

// wait takes n tokens, waiting at most bound (no bound when negative).
func (l *Limiter) wait(ctx context.Context, n int, bound time.Duration) error {
	if n <= 0 {
		return nil
	}
	if n > l.burst {
		return fmt.Errorf("ratelimit: wait for %d tokens, burst is %d: %w", n, l.burst, ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ratelimit: wait: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); bound < 0 || left < bound {
			bound = max(left, 0)
		}
	}
	l.mu.Lock()
	now := l.clock.Now()
	r := l.lim.ReserveN(now, n)
	delay := r.DelayFrom(now)
	if bound >= 0 && delay > bound {
		r.CancelAt(now)
		l.mu.Unlock()
		l.rejected.Add(uint64(n))
		return &ExceededError{RetryAfter: delay}
	}
	l.mu.Unlock()
	if delay > 0 {
		fired := make(chan struct{})
		t := l.clock.AfterFunc(delay, func() { close(fired) })
		select {
		case <-fired:
		case <-ctx.Done():
			if t.Stop() {
				l.mu.Lock()
				r.CancelAt(l.clock.Now())
				l.mu.Unlock()
				return fmt.Errorf("ratelimit: wait: %w", context.Cause(ctx))
			}
			<-fired // the timer fired as ctx ended: the tokens are ours
		}
		l.waited.Add(int64(delay))
	}
	l.acquired.Add(uint64(n))
	return nil
}

// NextIn returns the time until the next token is available: 0 when one is
// available now. With waits in progress holding reserved tokens it includes
// the time to refill those.
func (l *Limiter) NextIn() time.Duration {
	tokens := l.Tokens()
	if tokens >= 1 {
		return 0
	}
	// Round up so that the token is really there after NextIn has passed.
	return time.Duration(math.Ceil((1 - tokens) / float64(l.limit) * float64(time.Second)))
}

// Tokens returns the number of tokens available now. It is fractional while
// the bucket refills, and negative while waits hold reserved tokens.
func (l *Limiter) Tokens() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim.TokensAt(l.clock.Now())
}

// Reset refills the bucket to burst tokens. Waits already in progress keep
// the times they were given. Stats are not cleared.
func (l *Limiter) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lim = newBucket(l.limit, l.burst)
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	return Stats{
		Acquired: l.acquired.Load(),
		Rejected: l.rejected.Load(),
		Waited:   time.Duration(l.waited.Load()),
	}
}
