// Package procs spawns and reaps the supervisor's child processes.
//
// It promises:
//
//   - Exactly one goroutine (owned by a Reaper) reaps children, calling
//     wait4(-1, WNOHANG) until nothing is left each time SIGCHLD arrives.
//     Nothing in this package ever calls os.Process.Wait or exec.Cmd.Wait.
//   - A child spawned through Reaper.Spawn is registered before it can be
//     reaped: the reaper's lock is held across fork and registration, so an
//     instant exit is always delivered to the child's own onExit, exactly
//     once, never reported as an unknown pid.
//   - Unknown pids (orphans reparented to a PID 1 or to a child subreaper)
//     are reaped too and reported to ReaperOptions.OnOrphan, so no zombie is
//     left behind.
//   - Every child gets its own process group, stdin from /dev/null, an empty
//     signal mask and default signal dispositions (signals the supervisor
//     inherited as ignored are not passed on while a Reaper runs).
//   - Output is read by two goroutines woken by epoll, whatever the number
//     of children: one splits Lines outputs into lines, the other hands
//     Copy outputs to their Sinks unframed, so a sink that waits for a
//     slow disk never delays the lines of other programs.
//   - Process.Signal goes through the child's pidfd, so it can never hit a
//     recycled pid; once the exit is reaped it returns ErrFinished.
//
// Only one Reaper may run in a process at a time, and no other code in the
// process may wait for children while it runs: the reaper would steal their
// exit statuses.
package procs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/clock"
)

var (
	// ErrClosed is returned by Spawn after Close.
	ErrClosed = errors.New("procs: reaper closed")
	// ErrReaperRunning is returned by NewReaper while another Reaper runs
	// in this process: two reapers would steal each other's children.
	ErrReaperRunning = errors.New("procs: a reaper is already running in this process")
)

// running guards the one-reaper-per-process rule.
var running atomic.Bool

// ReaperOptions configure a Reaper.
type ReaperOptions struct {
	// OnOrphan is called from the reaper goroutine for every reaped pid
	// that was not spawned through this Reaper. It may be nil.
	OnOrphan func(pid int, status unix.WaitStatus)
	// Subreaper makes the process a child subreaper (PR_SET_CHILD_SUBREAPER)
	// when it is not PID 1, so daemonized descendants are reparented to it
	// and reaped. Close clears the flag again.
	Subreaper bool
	// Clock stamps Exit.At and Process.Started; nil means clock.Real().
	Clock clock.Clock
	// OutputBatch, when set, is called with true before the lines of one
	// read round of the Lines outputs are delivered and with false after,
	// so a log sink can write a whole round with one system call.
	OutputBatch func(begin bool)
}

// Reaper owns the process's children: it spawns them and is the only
// place that reaps them.
type Reaper struct {
	opts  ReaperOptions
	clock clock.Clock

	sigs   chan os.Signal // SIGCHLD
	absorb chan os.Signal // signals that were ignored at start; never read
	stop   chan struct{}
	done   chan struct{}

	subreaper bool // PR_SET_CHILD_SUBREAPER was set by NewReaper
	closeOnce sync.Once

	mu     sync.Mutex // held across fork+register and across each wait4 drain
	procs  map[int]*Process
	closed bool
	lines  *lineMux // reads every Lines output
	copies *lineMux // reads every Copy output; made at the first one

	pipes pipeBudget // pipes given bigPipeSize, still open
}

// NewReaper installs SIGCHLD handling (signal.Notify with an explicit list),
// makes the process a child subreaper when opts.Subreaper is set and it is
// not PID 1, and starts the single reaping goroutine. It also takes over
// signals this process inherited as ignored (SIGHUP/SIGINT under nohup, for
// instance) so that children start with default dispositions; for this
// process they stay effectively ignored unless it asks for them itself.
func NewReaper(opts ReaperOptions) (*Reaper, error) {
	if !running.CompareAndSwap(false, true) {
		return nil, ErrReaperRunning
	}
	r := &Reaper{
		opts:   opts,
		clock:  opts.Clock,
		sigs:   make(chan os.Signal, 1),
		absorb: make(chan os.Signal, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		procs:  make(map[int]*Process),
	}
	if r.clock == nil {
		r.clock = clock.Real()
	}
	lines, err := newLineMux(opts.OutputBatch, &r.pipes)
	if err != nil {
		running.Store(false)
		return nil, err
	}
	r.lines = lines
	if opts.Subreaper && !IsPID1() {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			running.Store(false)
			lines.stop()
			return nil, fmt.Errorf("procs: prctl PR_SET_CHILD_SUBREAPER: %w", err)
		}
		r.subreaper = true
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	if ign, err := ignoredSignals(); err == nil && len(ign) > 0 {
		signal.Notify(r.absorb, ign...)
	}
	go r.loop()
	return r, nil
}

// Close stops the reaping goroutine (after a last drain) and waits for it.
// Children still running are not touched and their onExit is never called.
// Close must not be called from an onExit or OnOrphan callback.
func (r *Reaper) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		signal.Stop(r.sigs)
		close(r.stop)
		<-r.done
		r.lines.stop()
		r.mu.Lock()
		copies := r.copies
		r.mu.Unlock()
		if copies != nil {
			copies.stop()
		}
		signal.Stop(r.absorb)
		if r.subreaper {
			if e := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); e != nil {
				err = fmt.Errorf("procs: prctl clear PR_SET_CHILD_SUBREAPER: %w", e)
			}
		}
		running.Store(false)
	})
	return err
}

func (r *Reaper) loop() {
	defer close(r.done)
	r.reapAll() // children that exited before Notify took effect
	for {
		select {
		case <-r.sigs:
			r.reapAll()
		case <-r.stop:
			r.reapAll()
			return
		}
	}
}

type reaped struct {
	pid    int
	status unix.WaitStatus
	proc   *Process
}

// reapAll drains every exited child. The lock is held while waiting so that
// a fork in progress (which holds it) is registered first, and so that
// os.StartProcess can reap its own child when exec fails. Callbacks run
// after the lock is released, so they may call Spawn.
func (r *Reaper) reapAll() {
	var batch []reaped
	r.mu.Lock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD or nothing exited
			break
		}
		p := r.procs[pid]
		delete(r.procs, pid)
		batch = append(batch, reaped{pid: pid, status: ws, proc: p})
	}
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	now := r.clock.Now()
	for _, b := range batch {
		if b.proc != nil {
			b.proc.finish(Exit{Pid: b.pid, Status: b.status, At: now})
		} else if r.opts.OnOrphan != nil {
			r.opts.OnOrphan(b.pid, b.status)
		}
	}
}

// IsPID1 reports whether this process is PID 1 (of its pid namespace).
func IsPID1() bool { return os.Getpid() == 1 }

// Children returns the pids of live (non-zombie) processes whose parent is
// this process, read from /proc. The teardown uses it to find escapees:
// daemons that left their process group and were reparented to this
// process as subreaper or PID 1.
func Children() ([]int, error) {
	return childrenOf(os.Getpid())
}

func childrenOf(ppid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("procs: children: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil { // gone meanwhile
			continue
		}
		if st.ppid == ppid && st.state != 'Z' && st.state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// procStat is the part of /proc/PID/stat this package needs.
type procStat struct {
	state byte
	ppid  int
	pgrp  int
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// parseStat parses "pid (comm) S ppid pgrp ...". comm may contain spaces
// and parentheses, so fields are taken after the last ')'.
func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("procs: malformed stat %q", s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("procs: malformed stat %q", s)
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("procs: malformed stat %q", s)
	}
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp}, nil
}

// ignoredSignals lists the standard signals this process currently ignores
// (SigIgn in /proc/self/status). Children would inherit them.
func ignoredSignals() ([]os.Signal, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "SigIgn:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, err
		}
		var sigs []os.Signal
		for s := 1; s <= 31; s++ { // realtime signals belong to libc/runtime
			if mask&(1<<(s-1)) != 0 && s != int(syscall.SIGKILL) && s != int(syscall.SIGSTOP) {
				sigs = append(sigs, syscall.Signal(s))
			}
		}
		return sigs, nil
	}
	return nil, sc.Err()
}

// HasChildren reports whether this process has any child, live or zombie.
// It asks the kernel with waitid(P_ALL, WNOHANG|WNOWAIT), which reaps
// nothing, so it is cheap and safe beside the reaper: the teardown uses it
// to skip scanning /proc when nothing is left.
func HasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != unix.ECHILD
}
