package probe

import (
	"regexp"
	"sync"
	"sync/atomic"

	"github.com/supervise/supervise/clock"
)

// LineMatcher is the log_line readiness probe: it passes once Need lines
// of a program's output have matched its pattern, and stays passing. Line
// is called with every output line, from the output readers; once the
// probe passes it returns at once, so a chatty program pays one lock-free
// check per line.
type LineMatcher struct {
	re     *regexp.Regexp
	need   int
	clk    clock.Clock
	onPass func(line string)

	mu     sync.Mutex
	seen   int
	passed bool
	st     Status
	done   atomic.Bool // set once passed or stopped
}

// NewLineMatcher returns a probe passing once need lines (at least 1)
// matched re; onPass is called once, with the line that made it pass,
// from the goroutine that delivered that line.
func NewLineMatcher(re *regexp.Regexp, need int, clk clock.Clock, onPass func(line string)) *LineMatcher {
	if clk == nil {
		clk = clock.Real()
	}
	return &LineMatcher{re: re, need: max(need, 1), clk: clk, onPass: onPass, st: Status{State: Unknown}}
}

// Line checks one line of output (partial pieces of a long line too).
func (m *LineMatcher) Line(line []byte) {
	if m.done.Load() || !m.re.Match(line) {
		return
	}
	m.mu.Lock()
	if m.passed {
		m.mu.Unlock()
		return
	}
	m.seen++
	m.st.Attempts++
	m.st.ConsecutiveSuccesses = m.seen
	m.st.LastAt = m.clk.Now()
	pass := m.seen >= m.need
	if pass {
		m.passed = true
		m.st.State = Passing
		m.done.Store(true)
	}
	m.mu.Unlock()
	if pass && m.onPass != nil {
		m.onPass(string(line))
	}
}

// Stop makes Line ignore every later line.
func (m *LineMatcher) Stop() { m.done.Store(true) }

// Status returns the probe's results: Unknown until it passes, then
// Passing, with Attempts counting the matching lines.
func (m *LineMatcher) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}
