package probe

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/supervise/supervise/procs"
)

// OutputLimit is how much of an exec probe's output (stdout and stderr
// together) is kept for the error of a failed attempt.
const OutputLimit = 4 << 10

// Spawner starts processes and hands their exits on: *procs.Reaper, the
// one reaper of the process.
type Spawner interface {
	Spawn(spec procs.Spec, onExit func(procs.Exit)) (*procs.Process, error)
}

// Exec is the exec probe: it runs Spec (its argv, directory, environment,
// user and group; the output settings are its own) in a process group of
// its own through Spawner, so the one reaper reaps it. Exit 0 passes. Its
// output is read, up to OutputLimit, into the error of a failed attempt.
// When the attempt's context ends first, the process group is killed with
// SIGKILL and the attempt ends once the process is reaped. A command that
// cannot be spawned is a failed attempt whose error says why.
type Exec struct {
	Spawner Spawner
	Spec    procs.Spec
}

// ExitError is a failed exec attempt: the probe ran and exited non-zero,
// or was killed.
type ExitError struct {
	Exit   procs.Exit
	Output string // the output, cut to OutputLimit
	Killed error  // why the supervisor killed it (a *TimeoutError), nil if it was not
}

// Error says how the probe ended and what it wrote.
func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Killed != nil {
		b.WriteString(e.Killed.Error())
		b.WriteString(": process group killed")
	} else {
		b.WriteString(e.Exit.String())
	}
	if e.Output != "" {
		b.WriteString(": ")
		b.WriteString(e.Output)
	}
	return b.String()
}

// Unwrap returns why the probe was killed, if it was.
func (e *ExitError) Unwrap() error { return e.Killed }

// Check runs the command once.
func (e *Exec) Check(ctx context.Context) error {
	out := &capped{limit: OutputLimit}
	spec := e.Spec
	spec.Stdout = procs.Output{Kind: procs.Lines, OnLine: out.line}
	spec.Stderr = spec.Stdout
	spec.Stdin, spec.Foreground, spec.ExtraFiles = nil, false, nil
	// The exit comes after the output is read, so the error has it all.
	spec.DrainOutput = true
	done := make(chan procs.Exit, 1)
	proc, err := e.Spawner.Spawn(spec, func(x procs.Exit) { done <- x })
	if err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	var killed error
	var x procs.Exit
	select {
	case x = <-done:
	case <-ctx.Done():
		killed = context.Cause(ctx)
		proc.SignalGroup(syscall.SIGKILL)
		proc.Signal(syscall.SIGKILL) // should it have left its group
		x = <-done
	}
	if killed == nil && x.Code() == 0 {
		return nil
	}
	return &ExitError{Exit: x, Output: out.String(), Killed: killed}
}

// capped keeps the first limit bytes of the lines written to it, joined by
// newlines; it is written from the output readers of both streams.
type capped struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	cut   bool
}

func (c *capped) line(b []byte, partial bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return
	}
	room := c.limit - len(c.buf)
	if len(c.buf) > 0 {
		room-- // the newline before it
	}
	if room < len(b) {
		c.cut = true
		if room <= 0 {
			return
		}
		b = b[:room]
	}
	if len(c.buf) > 0 {
		c.buf = append(c.buf, '\n')
	}
	c.buf = append(c.buf, b...)
}

// String returns what was kept, trimmed, as valid UTF-8, with "…" when
// the output was longer.
func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := bytes.TrimSpace(c.buf)
	if c.cut {
		// Do not end in the middle of a character cut at the limit.
		for i := 0; i < utf8.UTFMax-1 && len(s) > 0; i++ {
			if r, size := utf8.DecodeLastRune(s); r != utf8.RuneError || size > 1 {
				break
			}
			s = s[:len(s)-1]
		}
	}
	out := strings.ToValidUTF8(string(s), "\uFFFD")
	if c.cut {
		out += "…"
	}
	return out
}
