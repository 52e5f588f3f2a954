// Package shutdown runs a prioritized, time-bounded graceful shutdown: named
// steps registered ahead of time, run once when the shutdown is triggered
// (by a call, a signal or a cancelled wait), lowest priority first.
//
// The package promises:
//
//   - steps run in ascending priority; steps of equal priority run in
//     parallel, except that a step waits for the steps named in its After
//     list; a step never starts before every step of lower priority has
//     finished;
//   - every step gets a context that ends when its own timeout passes or the
//     total timeout passes, whichever is first (ctx.Err() is then
//     context.DeadlineExceeded), or at once when the run is forced
//     (context.Cause is then ErrForced);
//   - a step that outlives its own timeout is abandoned: it is reported in
//     Result.Errors (ErrStepTimeout) and Result.Unfinished, and the run goes
//     on without it; past the total timeout, or when forced, the run ends at
//     once and every step not finished is listed as unfinished;
//   - a panicking step is recovered and reported as a *PanicError;
//   - the run happens once: concurrent triggers join it, registration
//     during or after it is refused with ErrShuttingDown;
//   - a second signal during the run forces it;
//   - all timing goes through a clock.Clock, so tests never sleep.
//
// Go cannot stop a goroutine: an abandoned step keeps running until its
// function returns; the Manager no longer waits for it or reports it.
package shutdown

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/supervise/supervise/clock"
)

// Errors returned or reported by a Manager.
var (
	// ErrDuplicate: a step of that name is already registered.
	ErrDuplicate = errors.New("shutdown: duplicate step")
	// ErrShuttingDown: the shutdown has been triggered; nothing can be
	// registered any more.
	ErrShuttingDown = errors.New("shutdown: shutting down")
	// ErrUnknownStep: an After list names a step that is not registered.
	ErrUnknownStep = errors.New("shutdown: unknown step")
	// ErrCycle: an After list would make a step wait for itself, or for a
	// step that runs later (higher priority).
	ErrCycle = errors.New("shutdown: step order cycle")
	// ErrInvalidStep: a step without a name or a function.
	ErrInvalidStep = errors.New("shutdown: invalid step")
	// ErrStepTimeout is reported for a step abandoned at its own timeout.
	ErrStepTimeout = errors.New("shutdown: step timed out")
	// ErrForced is the context.Cause of step contexts when the run is
	// forced.
	ErrForced = errors.New("shutdown: forced")
)

// PanicError reports a step that panicked.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine.
	Stack []byte
}

// Error describes the panic.
func (e *PanicError) Error() string { return fmt.Sprintf("shutdown: step panicked: %v", e.Value) }

// Step is a named shutdown callback.
type Step struct {
	// Name identifies the step; it must be unique in its Manager.
	Name string
	// Priority orders steps: lower runs first, equal runs in parallel.
	Priority int
	// Timeout bounds the step; 0 means only the total timeout bounds it.
	Timeout time.Duration
	// After names steps (registered before this one, of equal or lower
	// priority) that must finish before this step starts.
	After []string
	// Fn does the work. It should return when ctx is done.
	Fn func(ctx context.Context) error
}

// Result describes a finished shutdown run.
type Result struct {
	// Reason is the reason given to the trigger.
	Reason string
	// Errors maps the name of each step that failed (returned an error,
	// panicked, or was abandoned at its timeout) to its error. It is never
	// nil.
	Errors map[string]error
	// Unfinished names, sorted, the steps that had not returned when the run
	// ended: abandoned at their timeout, still running, or never started.
	Unfinished []string
	// TimedOut reports that the total timeout passed before every step
	// finished.
	TimedOut bool
	// Forced reports that the run was forced to end (Force, a second
	// signal, or a cancelled Wait).
	Forced bool
	// ExitCode is 0, or the force exit code when TimedOut or Forced.
	ExitCode int
	// Duration is how long the run took.
	Duration time.Duration
}

// Defaults of a Manager.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultForceExitCode = 1
)

// Option configures a Manager.
type Option func(*Manager)

// WithTimeout sets the total timeout of the run (default 30s); 0 or less
// means no total timeout.
func WithTimeout(d time.Duration) Option { return func(m *Manager) { m.timeout = d } }

// WithForceExitCode sets Result.ExitCode for a run that timed out or was
// forced (default 1).
func WithForceExitCode(code int) Option { return func(m *Manager) { m.forceCode = code } }

// WithClock sets the clock (default clock.Real()).
func WithClock(c clock.Clock) Option { return func(m *Manager) { m.clock = c } }

// WithProgress makes the run call fn every interval, while steps run, with
// the sorted names of the steps running. fn is called from the run's own
// goroutine and must not block.
func WithProgress(every time.Duration, fn func(waiting []string)) Option {
	return func(m *Manager) {
		m.progressEvery = every
		m.progress = fn
	}
}

// Manager holds the shutdown steps and runs them once. It is safe for
// concurrent use.
type Manager struct {
	clock         clock.Clock
	timeout       time.Duration
	forceCode     int
	progressEvery time.Duration
	progress      func([]string)

	mu        sync.Mutex
	steps     map[string]*registered
	seq       int
	run       *runner // set by the trigger
	triggered chan struct{}
	done      chan struct{}
	result    Result

	sigMu   sync.Mutex
	sigCh   chan os.Signal
	sigStop chan struct{}
	sigDone chan struct{}
}

type registered struct {
	Step
	seq int
}

// New returns a Manager with no steps.
func New(opts ...Option) *Manager {
	m := &Manager{
		clock:     clock.Real(),
		timeout:   DefaultTimeout,
		forceCode: DefaultForceExitCode,
		steps:     make(map[string]*registered),
		triggered: make(chan struct{}),
		done:      make(chan struct{}),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Register adds a step with no After list. See RegisterStep.
func (m *Manager) Register(name string, priority int, timeout time.Duration, fn func(ctx context.Context) error) error {
	return m.RegisterStep(Step{Name: name, Priority: priority, Timeout: timeout, Fn: fn})
}

// RegisterStep adds s. It fails with ErrInvalidStep (no name or no Fn),
// ErrShuttingDown, ErrDuplicate, ErrUnknownStep (an After name not
// registered) or ErrCycle (an After name that is s itself or has a higher
// priority than s).
func (m *Manager) RegisterStep(s Step) error {
	if s.Name == "" || s.Fn == nil {
		return fmt.Errorf("shutdown: step %q needs a name and a function: %w", s.Name, ErrInvalidStep)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run != nil {
		return fmt.Errorf("shutdown: register %q: %w", s.Name, ErrShuttingDown)
	}
	if _, ok := m.steps[s.Name]; ok {
		return fmt.Errorf("shutdown: register %q: %w", s.Name, ErrDuplicate)
	}
	for _, a := range s.After {
		if a == s.Name {
			return fmt.Errorf("shutdown: step %q after itself: %w", s.Name, ErrCycle)
		}
		dep, ok := m.steps[a]
		if !ok {
			return fmt.Errorf("shutdown: step %q after %q: %w", s.Name, a, ErrUnknownStep)
		}
		if dep.Priority > s.Priority {
			return fmt.Errorf("shutdown: step %q (priority %d) after %q (priority %d), which runs later: %w",
				s.Name, s.Priority, a, dep.Priority, ErrCycle)
		}
	}
	s.After = append([]string(nil), s.After...)
	m.seq++
	m.steps[s.Name] = &registered{Step: s, seq: m.seq}
	return nil
}

// Unregister removes the named step, and removes it from the After lists of
// other steps. It reports false if there is no such step or the shutdown has
// been triggered.
func (m *Manager) Unregister(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run != nil {
		return false
	}
	if _, ok := m.steps[name]; !ok {
		return false
	}
	delete(m.steps, name)
	for _, s := range m.steps {
		kept := s.After[:0]
		for _, a := range s.After {
			if a != name {
				kept = append(kept, a)
			}
		}
		s.After = kept
	}
	return true
}

// Trigger starts the run with reason, unless it has already started:
// concurrent and later triggers join the same run. It does not wait.
func (m *Manager) Trigger(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.triggerLocked(reason)
}

func (m *Manager) triggerLocked(reason string) {
	if m.run != nil {
		return
	}
	m.run = newRunner(m, reason)
	close(m.triggered)
	m.run.start()
	go m.run.loop()
}

// Force makes the run skip to the end: every step context is cancelled
// (cause ErrForced) and the run ends at once, without waiting for running
// steps, with Forced set. If the shutdown was not triggered, Force triggers
// it with reason "forced" and ends it at once. After the run has finished
// it does nothing.
func (m *Manager) Force() {
	m.mu.Lock()
	m.triggerLocked("forced")
	r := m.run
	m.mu.Unlock()
	r.forceOnce.Do(func() { close(r.force) })
}

// Triggered returns a channel closed when the shutdown has been triggered.
func (m *Manager) Triggered() <-chan struct{} { return m.triggered }

// Done returns a channel closed when the run has finished.
func (m *Manager) Done() <-chan struct{} { return m.done }

// Wait blocks until the run has finished and returns its Result. If ctx
// ends first, Wait forces the run (see Force) and returns the Result of the
// forced run; so Wait always returns promptly once ctx is done.
func (m *Manager) Wait(ctx context.Context) Result {
	select {
	case <-m.done:
	case <-ctx.Done():
		m.Force()
		<-m.done
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.result
	r.Errors = make(map[string]error, len(m.result.Errors))
	for k, v := range m.result.Errors {
		r.Errors[k] = v
	}
	r.Unfinished = append([]string(nil), m.result.Unfinished...)
	return r
}

// Run triggers the run (reason "requested") and waits for it, as Trigger
// then Wait.
func (m *Manager) Run(ctx context.Context) Result {
	m.Trigger("requested")
	return m.Wait(ctx)
}

// InstallSignals makes the first of sigs (default SIGINT and SIGTERM)
// trigger the run with reason "signal: NAME", and any later one while the
// run is in progress force it. It uses signal.Notify on a channel of its
// own, so other handlers of the process are untouched. Installing again
// replaces the previous set.
func (m *Manager) InstallSignals(sigs ...os.Signal) {
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	}
	m.sigMu.Lock()
	defer m.sigMu.Unlock()
	m.uninstallLocked()
	ch := make(chan os.Signal, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	signal.Notify(ch, sigs...)
	m.sigCh, m.sigStop, m.sigDone = ch, stop, done
	go func() {
		defer close(done)
		for {
			select {
			case s := <-ch:
				m.onSignal(s)
			case <-stop:
				return
			}
		}
	}()
}

// UninstallSignals stops the handling started by InstallSignals
// (signal.Stop on its channel), so signals go back to whatever else handles
// them, and waits for its goroutine to end.
func (m *Manager) UninstallSignals() {
	m.sigMu.Lock()
	defer m.sigMu.Unlock()
	m.uninstallLocked()
}

func (m *Manager) uninstallLocked() {
	if m.sigCh == nil {
		return
	}
	signal.Stop(m.sigCh)
	close(m.sigStop)
	<-m.sigDone
	m.sigCh, m.sigStop, m.sigDone = nil, nil, nil
}

func (m *Manager) onSignal(s os.Signal) {
	m.mu.Lock()
	if m.run == nil {
		m.triggerLocked("signal: " + s.String())
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	select {
	case <-m.done:
	default:
		m.Force()
	}
}

// sortedSteps returns the registered steps in run order; the caller holds
// m.mu.
func (m *Manager) sortedSteps() []*registered {
	out := make([]*registered, 0, len(m.steps))
	for _, s := range m.steps {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority < out[j].Priority
		}
		return out[i].seq < out[j].seq
	})
	return out
}

// call runs fn, turning a panic into a *PanicError.
func call(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return fn(ctx)
}
