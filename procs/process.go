package procs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrFinished is returned when signalling a process (or process group) that
// has already been reaped (or no longer exists).
var ErrFinished = errors.New("procs: process already finished")

// Process is a child started by Reaper.Spawn. Its exit is delivered to the
// onExit given to Spawn; Process never waits for it itself.
type Process struct {
	pid     int
	started time.Time
	onExit  func(Exit)
	// drainOutput holds back onExit until the output is read (Spec.DrainOutput).
	drainOutput bool

	mu       sync.Mutex // guards osp and finished
	osp      *os.Process
	finished bool
	exit     Exit
	done     chan struct{} // closed after onExit returned

	muxes      []*lineMux    // read the Lines and Copy pipes
	outLeft    int32         // readers still running; guarded by outMu
	outMu      sync.Mutex    //
	outputDone chan struct{} // closed when outLeft reaches 0
}

// Pid returns the process id. It stays valid after the exit (the os.Process
// is released then, but the pid is kept here).
func (p *Process) Pid() int { return p.pid }

// Started returns when the process was spawned.
func (p *Process) Started() time.Time { return p.started }

// Signal sends sig to the process itself through its pidfd, so a recycled
// pid can never be hit. It returns ErrFinished once the process has been
// reaped.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return ErrFinished
	}
	if err := p.osp.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return ErrFinished
		}
		return fmt.Errorf("procs: signal %d: %w", p.pid, err)
	}
	return nil
}

// SignalGroup sends sig to the process group the child leads (kill(-pgid)),
// which reaches its descendants too, even after the leader itself exited.
// ESRCH (no process left in the group) is reported as ErrFinished.
func (p *Process) SignalGroup(sig syscall.Signal) error {
	if err := unix.Kill(-p.pid, sig); err != nil {
		if err == unix.ESRCH {
			return ErrFinished
		}
		return fmt.Errorf("procs: signal group %d: %w", p.pid, err)
	}
	return nil
}

// Done is closed after the exit has been reaped and onExit has returned.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exit returns the exit once it has been reaped; ok is false before that.
func (p *Process) Exit() (e Exit, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit, p.finished
}

// OutputDone is closed when every Lines reader has hit EOF (all writers,
// the child and the descendants that inherited the pipe, are gone) and has
// delivered its last line. It is closed from the start when no stream uses
// Lines.
func (p *Process) OutputDone() <-chan struct{} { return p.outputDone }

// CloseOutput closes the read ends of the Lines pipes, so the readers stop
// even while a descendant still holds the write end. Lines not yet read are
// lost; OutputDone is closed once the readers have stopped.
func (p *Process) CloseOutput() {
	for _, m := range p.muxes {
		m.closeOutput(p)
	}
}

// finish is called once, from the reaper goroutine.
func (p *Process) finish(e Exit) {
	p.mu.Lock()
	p.finished = true
	p.exit = e
	osp := p.osp
	p.mu.Unlock()
	osp.Release() // closes the pidfd; the pid is kept in p.pid
	if p.drainOutput && len(p.muxes) > 0 {
		select {
		case <-p.outputDone:
		default:
			// The pipes may still hold the last lines: deliver the exit
			// after the readers have read and written them.
			var left atomic.Int32
			left.Store(int32(len(p.muxes)))
			for _, m := range p.muxes {
				m.flush(p, func() {
					if left.Add(-1) == 0 {
						p.deliver(e)
					}
				})
			}
			return
		}
	}
	p.deliver(e)
}

func (p *Process) deliver(e Exit) {
	if p.onExit != nil {
		p.onExit(e)
	}
	close(p.done)
}

func (p *Process) readerDone() {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	p.outLeft--
	if p.outLeft == 0 {
		close(p.outputDone)
	}
}

// Exit is how a child ended.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
	At     time.Time
}

// Code returns the exit code, or -1 when the process was killed by a signal.
func (e Exit) Code() int {
	if e.Status.Exited() {
		return e.Status.ExitStatus()
	}
	return -1
}

// Signal returns the signal that killed the process, or 0.
func (e Exit) Signal() syscall.Signal {
	if e.Status.Signaled() {
		return syscall.Signal(e.Status.Signal())
	}
	return 0
}

// ShellCode returns the exit code, or 128+signal when killed by a signal
// (the convention of shells and tini).
func (e Exit) ShellCode() int {
	if s := e.Signal(); s != 0 {
		return 128 + int(s)
	}
	return e.Code()
}

// String returns "exit 3" or "signal SIGKILL".
func (e Exit) String() string {
	if s := e.Signal(); s != 0 {
		name := unix.SignalName(s)
		if name == "" {
			name = fmt.Sprintf("%d", int(s))
		}
		return "signal " + name
	}
	return fmt.Sprintf("exit %d", e.Code())
}

// SpawnError is a failure to start a process: missing binary, bad
// directory, unknown user or group, unopenable output file. Its message
// names the step and the object, e.g. `exec /usr/bin/wbe: no such file or
// directory`, `chdir /nope: no such file or directory`,
// `user "nosuch": unknown user`.
type SpawnError struct {
	Op   string // "exec", "chdir", "user", "group", "open", "pipe"
	Path string // the binary, directory, user, group or file concerned
	Err  error
}

// Error implements error.
func (e *SpawnError) Error() string {
	switch e.Op {
	case "user", "group":
		return fmt.Sprintf("%s %q: %v", e.Op, e.Path, e.Err)
	}
	return e.Op + " " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *SpawnError) Unwrap() error { return e.Err }
