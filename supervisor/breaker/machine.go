// Package breaker implements the circuit breaker of the classic pattern:
// closed, open and half-open, with a failure threshold, a reset timeout and
// a limit on trial calls while half-open.
//
// Machine is the state machine itself: a plain value without goroutines or
// locks, driven by the caller with the current time, so that an event loop
// (or a table test) owns it and walks it through every state. Breaker wraps
// a Machine for concurrent use and runs calls through it.
//
// The package promises:
//
//   - closed: consecutive failures are counted and a success sets the count
//     to 0; when the count reaches MaxFailures the breaker opens;
//   - open: every call is refused with an *OpenError carrying the time left
//     until the breaker half-opens, ResetTimeout after it opened;
//   - half-open: at most HalfOpenMaxCalls trial calls are admitted; a trial
//     success closes the breaker, a trial failure opens it again and
//     restarts the reset timeout;
//   - time comes only from the caller (Machine) or from an injected
//     clock.Clock (Breaker), so tests never sleep.
package breaker

import (
	"errors"
	"fmt"
	"time"
)

// State is the state of a circuit breaker.
type State int

const (
	// Closed admits every call and counts consecutive failures.
	Closed State = iota
	// Open refuses every call until the reset timeout has passed.
	Open
	// HalfOpen admits a limited number of trial calls.
	HalfOpen
)

// String returns "closed", "open" or "half_open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Default settings, used in place of zero (or negative) values.
const (
	DefaultMaxFailures      = 5
	DefaultResetTimeout     = 60 * time.Second
	DefaultHalfOpenMaxCalls = 1
)

// Settings configures a breaker. Zero (or negative) values take the
// defaults: MaxFailures 5, ResetTimeout 60s, HalfOpenMaxCalls 1.
type Settings struct {
	// MaxFailures is the number of consecutive failures that opens the
	// breaker.
	MaxFailures int
	// ResetTimeout is how long the breaker stays open before it half-opens.
	ResetTimeout time.Duration
	// HalfOpenMaxCalls is the number of trial calls admitted while
	// half-open.
	HalfOpenMaxCalls int
}

func (s Settings) withDefaults() Settings {
	if s.MaxFailures <= 0 {
		s.MaxFailures = DefaultMaxFailures
	}
	if s.ResetTimeout <= 0 {
		s.ResetTimeout = DefaultResetTimeout
	}
	if s.HalfOpenMaxCalls <= 0 {
		s.HalfOpenMaxCalls = DefaultHalfOpenMaxCalls
	}
	return s
}

// Stats counts what a breaker has seen since it was made. Reset does not
// clear it.
type Stats struct {
	// Total is the number of calls admitted (Allow returned nil).
	Total uint64
	// Successes is the number of successes reported.
	Successes uint64
	// Failures is the number of failures reported.
	Failures uint64
	// Rejected is the number of calls refused.
	Rejected uint64
	// StateChanges is the number of state transitions.
	StateChanges uint64
}

// ErrOpen is matched (errors.Is) by every *OpenError.
var ErrOpen = errors.New("breaker: open")

// OpenError is returned when the breaker refuses a call.
type OpenError struct {
	// Remaining is the time left until the breaker half-opens; 0 when it is
	// already half-open and all its trial slots are taken.
	Remaining time.Duration
	// State is the state that refused the call: Open or HalfOpen.
	State State
}

// Error describes the refusal.
func (e *OpenError) Error() string {
	if e.State == HalfOpen {
		return "breaker: half_open, all trial calls in progress"
	}
	return fmt.Sprintf("breaker: open, half-open in %v", e.Remaining)
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// Machine is the breaker's state machine. It has no goroutines and no
// locks: every method takes the current time from the caller. A Machine is
// not safe for concurrent use; use Breaker for that.
type Machine struct {
	s        Settings
	state    State
	failures int       // consecutive failures
	openedAt time.Time // when the breaker last opened
	trials   int       // trial slots taken while half-open
	gen      uint64    // incremented on every transition and reset
	stats    Stats
	onChange func(from, to State, now time.Time)
}

// NewMachine returns a closed Machine with settings s (zero values take the
// defaults).
func NewMachine(s Settings) *Machine {
	return &Machine{s: s.withDefaults()}
}

// Settings returns the settings in effect, defaults filled in.
func (m *Machine) Settings() Settings { return m.s }

// OnStateChange sets f to be called on every transition, synchronously,
// from the method that caused it. A nil f removes the hook.
func (m *Machine) OnStateChange(f func(from, to State, now time.Time)) { m.onChange = f }

// Allow asks to make a call at now. It returns nil when the call may go
// ahead (in half-open it takes one of the trial slots), and an *OpenError
// (counted as rejected) when the breaker refuses it.
func (m *Machine) Allow(now time.Time) error {
	_, err := m.allow(now)
	return err
}

func (m *Machine) allow(now time.Time) (uint64, error) {
	m.advance(now)
	switch m.state {
	case Open:
		m.stats.Rejected++
		return 0, &OpenError{Remaining: m.remaining(now), State: Open}
	case HalfOpen:
		if m.trials >= m.s.HalfOpenMaxCalls {
			m.stats.Rejected++
			return 0, &OpenError{State: HalfOpen}
		}
		m.trials++
	}
	m.stats.Total++
	return m.gen, nil
}

// Success reports a successful call at now. In closed it sets the failure
// count to 0; in half-open it closes the breaker; in open it is only
// counted.
func (m *Machine) Success(now time.Time) {
	m.advance(now)
	m.success(now)
}

func (m *Machine) success(now time.Time) {
	m.stats.Successes++
	switch m.state {
	case Closed:
		m.failures = 0
	case HalfOpen:
		m.failures = 0
		m.transition(Closed, now)
	}
}

// Failure reports a failed call at now. In closed it counts the failure and
// opens the breaker at MaxFailures consecutive failures; in half-open it
// opens the breaker again, restarting the reset timeout; in open it is only
// counted.
func (m *Machine) Failure(now time.Time) {
	m.advance(now)
	m.failure(now)
}

func (m *Machine) failure(now time.Time) {
	m.stats.Failures++
	switch m.state {
	case Closed:
		m.failures++
		if m.failures >= m.s.MaxFailures {
			m.open(now)
		}
	case HalfOpen:
		m.failures++
		m.open(now)
	}
}

// Release gives back a half-open trial slot taken by Allow without
// reporting an outcome, for a call that ended neither in success nor in
// failure (for example, one stopped on purpose). Outside half-open it does
// nothing.
func (m *Machine) Release(now time.Time) {
	m.advance(now)
	if m.state == HalfOpen && m.trials > 0 {
		m.trials--
	}
}

// State returns the state at now, moving open to half-open when the reset
// timeout has passed.
func (m *Machine) State(now time.Time) State {
	m.advance(now)
	return m.state
}

// Failures returns the number of consecutive failures since the last
// success or reset.
func (m *Machine) Failures() int { return m.failures }

// Remaining returns the time left at now until the breaker half-opens; 0
// unless it is open.
func (m *Machine) Remaining(now time.Time) time.Duration {
	m.advance(now)
	if m.state != Open {
		return 0
	}
	return m.remaining(now)
}

// Reset closes the breaker by hand and sets the failure count to 0.
func (m *Machine) Reset(now time.Time) {
	m.failures = 0
	m.trials = 0
	m.gen++
	if m.state != Closed {
		m.transition(Closed, now)
	}
}

// Stats returns the counters.
func (m *Machine) Stats() Stats { return m.stats }

func (m *Machine) remaining(now time.Time) time.Duration {
	d := m.openedAt.Add(m.s.ResetTimeout).Sub(now)
	if d < 0 {
		return 0
	}
	return d
}

// advance moves open to half-open once the reset timeout has passed.
func (m *Machine) advance(now time.Time) {
	if m.state == Open && !now.Before(m.openedAt.Add(m.s.ResetTimeout)) {
		m.transition(HalfOpen, now)
	}
}

func (m *Machine) open(now time.Time) {
	m.openedAt = now
	m.transition(Open, now)
}

func (m *Machine) transition(to State, now time.Time) {
	from := m.state
	m.state = to
	m.trials = 0
	m.gen++
	m.stats.StateChanges++
	if m.onChange != nil {
		m.onChange(from, to, now)
	}
}
