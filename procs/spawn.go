package procs

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

var (
	// ErrUnknownUser is the cause in a SpawnError for a user name that does
	// not exist.
	ErrUnknownUser = errors.New("unknown user")
	// ErrUnknownGroup is the cause in a SpawnError for a group name that
	// does not exist.
	ErrUnknownGroup = errors.New("unknown group")
	// ErrNoArgv is the cause in a SpawnError for an empty Spec.Argv.
	ErrNoArgv = errors.New("empty argv")
	// ErrNotFound is the cause in a SpawnError when argv[0] is not found in
	// PATH. It is exec.ErrNotFound, so errors.Is works with either.
	ErrNotFound = exec.ErrNotFound
)

// MaxLine is the longest line a Lines output delivers whole; longer lines
// are cut into MaxLine pieces, all but the last with partial=true.
const MaxLine = 64 << 10

// defaultPath is used when neither Spec.Env nor this process has a PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Spec describes a process to spawn.
type Spec struct {
	// Argv is the command; argv[0] is looked up in the PATH of Env (or of
	// this process when Env has none) unless it contains a '/'.
	Argv []string
	// Dir is the working directory; "" keeps this process's.
	Dir string
	// Env is the full environment; nil means empty.
	Env []string
	// User and Group are names or numeric ids; "" leaves them unchanged.
	// User sets the uid, its primary gid (unless Group is set) and its
	// supplementary groups. A numeric uid without a passwd entry keeps this
	// process's gid and gets no supplementary groups. Group alone keeps the
	// uid and the supplementary groups.
	User, Group string
	// Stdout and Stderr say where the output goes.
	Stdout, Stderr Output
	// Stdin is the child's standard input; nil means /dev/null.
	Stdin *os.File
	// Foreground makes the child's process group the foreground group of
	// the terminal on Stdin (as tini does for an interactive command), so
	// that reading the terminal does not stop it with SIGTTIN. It is
	// ignored unless Stdin is a terminal.
	Foreground bool
	// ExtraFiles become fd 3, 4, ... in the child.
	ExtraFiles []*os.File
	// DrainOutput holds back onExit until the Lines and Copy readers have
	// read the pipes empty after the exit and delivered those bytes, so that a
	// program's last words come before the report of its end. A
	// descendant that keeps a pipe open does not hold it back.
	DrainOutput bool
}

// OutputKind selects what happens to an output stream.
type OutputKind int

// Output kinds.
const (
	// Inherit passes this process's own stdout/stderr.
	Inherit OutputKind = iota
	// Null discards the output (/dev/null).
	Null
	// File appends to Output.Path.
	File
	// Lines delivers each line to Output.OnLine.
	Lines
	// Copy hands the output, unframed, to Output.Sink, which takes it
	// from the pipe in large pieces: no per-line work at all.
	Copy
)

// String names the kind.
func (k OutputKind) String() string {
	switch k {
	case Inherit:
		return "inherit"
	case Null:
		return "null"
	case File:
		return "file"
	case Lines:
		return "lines"
	case Copy:
		return "copy"
	}
	return "OutputKind(" + strconv.Itoa(int(k)) + ")"
}

// Output configures one output stream of a child.
type Output struct {
	Kind OutputKind
	// Path is the file for File: opened O_APPEND|O_CREATE|O_WRONLY, mode
	// 0644; its directory must exist.
	Path string
	// OnLine is called for Lines with each line without its newline, from
	// a reader goroutine owned by the Process (one per stream: a function
	// shared by Stdout and Stderr is called concurrently). line is only valid during
	// the call. partial is true for the leading pieces of a line longer
	// than MaxLine. A last line without a newline is delivered at EOF.
	OnLine func(line []byte, partial bool)
	// Sink takes the bytes of a Copy output.
	Sink Sink
	// OnRoundEnd, when set, is called for a Lines output at the end of
	// each read round in which OnLine was called for it, from the same
	// goroutine, before the round's exits are delivered (DrainOutput). A
	// round reads every pipe that has data; a consumer may gather the
	// lines of a round and publish them at once.
	OnRoundEnd func()
	// OnClose, when set, is called once for a Lines or Copy output, from
	// its reader goroutine, after the last line or Take, once the pipe is
	// closed: the program and every descendant that held it are done
	// with it, or CloseOutput cut it. When Spawn fails, it is called
	// before Spawn returns.
	OnClose func()
}

// Sink takes the bytes of a Copy output straight from its pipe. Take is
// called when the pipe has data or has reached its end, from the one
// goroutine that reads every Copy output of a Reaper, so one call at a
// time for all sinks: a sink shared by several outputs needs no lock for
// that, and a sink that blocks holds up every other Copy output (never a
// Lines output, which another goroutine reads).
//
// fd is the pipe's non-blocking read end; the sink reads it (read(2),
// splice(2)) and must not close or keep it. Take returns what the read
// returned: n > 0 for the bytes taken, 0 and a nil error at the end of
// the stream, unix.EAGAIN when the pipe is empty; another error ends the
// stream. A sink that cannot store the bytes must still read them and drop
// them, or the program blocks once the pipe is full.
type Sink interface {
	Take(fd int) (int, error)
}

// bigPipeSize is the capacity given to Copy pipes, and to Lines pipes
// found busy, above the kernel's 64 KiB default: with a larger pipe the
// program blocks less often and each wakeup of the reader moves more
// (file capture measured 1.5–1.9 GB/s with 256 KiB against 1.0–1.3 with
// 64 KiB). The pages count against the user's pipe-user-pages-soft (64 MiB
// by default), past which the kernel gives every new pipe of the user one
// or two pages: bigPipeBudget keeps the enlarged pipes alive at once to
// an eighth of that.
const (
	bigPipeSize   = 256 << 10
	bigPipeBudget = 32
)

// pipeBudget counts the enlarged pipes still open.
type pipeBudget struct{ n atomic.Int32 }

// enlarge gives the pipe of fd bigPipeSize bytes while the budget allows;
// a refusal leaves the default. It reports whether it did; release must
// then be called once the pipe is closed.
func (b *pipeBudget) enlarge(fd int) bool {
	if b.n.Add(1) > bigPipeBudget {
		b.n.Add(-1)
		return false
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, bigPipeSize); err != nil {
		b.n.Add(-1)
		return false
	}
	return true
}

func (b *pipeBudget) release() { b.n.Add(-1) }

// Spawn starts spec in its own process group and registers onExit before
// any reaping can happen. onExit is called exactly once, from the reaper
// goroutine (or, with Spec.DrainOutput, from the output reader's goroutine
// once it has read the pipes), possibly before Spawn returns; it must not block for long
// (forward it to an event loop). Failures to start are *SpawnError.
func (r *Reaper) Spawn(spec Spec, onExit func(Exit)) (*Process, error) {
	p, err := r.spawn(spec, onExit)
	if err != nil {
		for _, o := range []Output{spec.Stdout, spec.Stderr} {
			if (o.Kind == Lines || o.Kind == Copy) && o.OnClose != nil {
				o.OnClose()
			}
		}
	}
	return p, err
}

func (r *Reaper) spawn(spec Spec, onExit func(Exit)) (*Process, error) {
	if len(spec.Argv) == 0 {
		return nil, &SpawnError{Op: "exec", Path: "", Err: ErrNoArgv}
	}
	path, err := lookPath(spec.Argv[0], spec.Env, spec.Dir)
	if err != nil {
		return nil, err
	}
	if spec.Dir != "" {
		fi, err := os.Stat(spec.Dir)
		if err != nil {
			return nil, &SpawnError{Op: "chdir", Path: spec.Dir, Err: causeOf(err)}
		}
		if !fi.IsDir() {
			return nil, &SpawnError{Op: "chdir", Path: spec.Dir, Err: syscall.ENOTDIR}
		}
	}
	cred, err := Credential(spec.User, spec.Group)
	if err != nil {
		return nil, err
	}

	type lineStream struct {
		fd     int
		onLine func([]byte, bool)
		sink   Sink
		close  func()
		round  func()
		big    bool // enlarged by the pipe budget
	}
	var streams []lineStream
	var childEnds []*os.File // closed on every path
	var parentFDs []int      // read ends of Lines pipes, closed on failure
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
	}()
	fail := func(err error) (*Process, error) {
		for _, fd := range parentFDs {
			unix.Close(fd)
		}
		for _, s := range streams {
			if s.big {
				r.pipes.release()
			}
		}
		return nil, err
	}
	stdin := spec.Stdin
	if stdin == nil {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return fail(&SpawnError{Op: "open", Path: os.DevNull, Err: causeOf(err)})
		}
		childEnds = append(childEnds, devnull)
		stdin = devnull
	}
	foreground := spec.Foreground && spec.Stdin != nil && isTerminal(spec.Stdin)
	outFile := func(o Output, inherit *os.File) (*os.File, error) {
		switch o.Kind {
		case Inherit:
			return inherit, nil
		case Null:
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return nil, &SpawnError{Op: "open", Path: os.DevNull, Err: causeOf(err)}
			}
			childEnds = append(childEnds, f)
			return f, nil
		case File:
			f, err := os.OpenFile(o.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, &SpawnError{Op: "open", Path: o.Path, Err: causeOf(err)}
			}
			childEnds = append(childEnds, f)
			return f, nil
		case Lines, Copy:
			if o.Kind == Copy && o.Sink == nil {
				return nil, &SpawnError{Op: "pipe", Path: "output", Err: errors.New("copy output without a sink")}
			}
			var fds [2]int
			if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
				return nil, &SpawnError{Op: "pipe", Path: "output", Err: err}
			}
			if err := unix.SetNonblock(fds[0], true); err != nil {
				unix.Close(fds[0])
				unix.Close(fds[1])
				return nil, &SpawnError{Op: "pipe", Path: "output", Err: err}
			}
			pw := os.NewFile(uintptr(fds[1]), "|output")
			childEnds = append(childEnds, pw)
			parentFDs = append(parentFDs, fds[0])
			if o.Kind == Copy {
				streams = append(streams, lineStream{fd: fds[0], sink: o.Sink, close: o.OnClose, big: r.pipes.enlarge(fds[0])})
			} else {
				streams = append(streams, lineStream{fd: fds[0], onLine: o.OnLine, close: o.OnClose, round: o.OnRoundEnd})
			}
			return pw, nil
		}
		return nil, &SpawnError{Op: "open", Path: o.Kind.String(), Err: errors.New("unknown output kind")}
	}
	stdout, err := outFile(spec.Stdout, os.Stdout)
	if err != nil {
		return fail(err)
	}
	stderr, err := outFile(spec.Stderr, os.Stderr)
	if err != nil {
		return fail(err)
	}

	env := spec.Env
	if env == nil {
		env = []string{} // nil would make os.StartProcess pass our own environment
	}
	attr := &os.ProcAttr{
		Dir:   spec.Dir,
		Env:   env,
		Files: append([]*os.File{stdin, stdout, stderr}, spec.ExtraFiles...),
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: cred, Foreground: foreground, Ctty: 0},
	}
	p := &Process{
		onExit:      onExit,
		drainOutput: spec.DrainOutput,
		done:        make(chan struct{}),
		outputDone:  make(chan struct{}),
		outLeft:     int32(len(streams)),
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fail(ErrClosed)
	}
	for _, s := range streams {
		mux := r.lines
		if s.sink != nil {
			if r.copies == nil {
				m, err := newLineMux(nil, nil)
				if err != nil {
					r.mu.Unlock()
					return fail(&SpawnError{Op: "pipe", Path: "output", Err: err})
				}
				r.copies = m
			}
			mux = r.copies
		}
		if !slices.Contains(p.muxes, mux) {
			p.muxes = append(p.muxes, mux)
		}
	}
	osp, err := startProcess(path, spec.Argv, attr)
	if err == nil {
		p.pid = osp.Pid
		p.osp = osp
		p.started = r.clock.Now()
		r.procs[p.pid] = p
		// Before the reaper can see the exit, so that a drain asked for
		// at the exit finds the streams.
		for _, s := range streams {
			if s.sink != nil {
				release := s.close
				if s.big {
					release = func() {
						r.pipes.release()
						if s.close != nil {
							s.close()
						}
					}
				}
				r.copies.add(s.fd, p, nil, s.sink, release, nil)
			} else {
				r.lines.add(s.fd, p, s.onLine, nil, s.close, s.round)
			}
		}
	}
	r.mu.Unlock()
	if err != nil {
		return fail(&SpawnError{Op: "exec", Path: path, Err: causeOf(err)})
	}

	if len(streams) == 0 {
		close(p.outputDone)
	}
	return p, nil
}

// startProcess forks from a locked thread whose signal mask is empty for the
// duration, because the child starts with the forking thread's mask: a
// mask this process inherited (the Go runtime keeps signals such as SIGUSR1
// blocked when it started so) would otherwise pass on to every child.
// Unblocking is harmless here: the runtime already catches every signal.
func startProcess(path string, argv []string, attr *os.ProcAttr) (*os.Process, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var empty, old unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &empty, &old); err == nil {
		defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	}
	return os.StartProcess(path, argv, attr)
}

// lookPath resolves argv0 the way execvp would, against the PATH of env
// (or of this process when env has none). Names containing '/' are used
// as given (relative ones are resolved in the child's Dir by execve).
func lookPath(argv0 string, env []string, dir string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	if argv0 == "" {
		return "", &SpawnError{Op: "exec", Path: `""`, Err: ErrNotFound}
	}
	pathVar, found := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar, found = v, true // the last one wins, as in getenv
		}
	}
	if !found {
		pathVar = os.Getenv("PATH")
		if pathVar == "" {
			pathVar = defaultPath
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" {
			d = "."
		}
		cand := filepath.Join(d, argv0)
		check := cand
		if !filepath.IsAbs(check) && dir != "" {
			check = filepath.Join(dir, check) // execve runs after chdir
		}
		if isExecutable(check) {
			if !filepath.IsAbs(cand) {
				cand = "./" + cand
			}
			return cand, nil
		}
	}
	return "", &SpawnError{Op: "exec", Path: argv0, Err: ErrNotFound}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// causeOf strips the *PathError wrapper so SpawnError names its own path.
func causeOf(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// credential resolves User/Group into the credential for the child; nil
// when both are empty.
// Credential resolves a user and a group (names or numeric ids, "" for
// unchanged) as Spawn does: the user's uid, primary gid (unless group is
// set) and supplementary groups. It returns nil when both are "".
func Credential(userName, groupName string) (*syscall.Credential, error) {
	if userName == "" && groupName == "" {
		return nil, nil
	}
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), NoSetGroups: true}
	if userName != "" {
		uid, gid, groups, err := lookupUser(userName)
		if err != nil {
			return nil, err
		}
		cred.Uid, cred.Gid, cred.Groups, cred.NoSetGroups = uid, gid, groups, false
	}
	if groupName != "" {
		gid, err := lookupGroup(groupName)
		if err != nil {
			return nil, err
		}
		cred.Gid = gid
	}
	return cred, nil
}

func lookupUser(name string) (uid, gid uint32, groups []uint32, err error) {
	var u *user.User
	if n, perr := strconv.ParseUint(name, 10, 32); perr == nil {
		u, err = user.LookupId(name)
		var unknown user.UnknownUserIdError
		if errors.As(err, &unknown) {
			return uint32(n), uint32(os.Getgid()), []uint32{}, nil
		}
	} else {
		u, err = user.Lookup(name)
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return 0, 0, nil, &SpawnError{Op: "user", Path: name, Err: ErrUnknownUser}
		}
	}
	if err != nil {
		return 0, 0, nil, &SpawnError{Op: "user", Path: name, Err: err}
	}
	uid64, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid64, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, nil, &SpawnError{Op: "user", Path: name, Err: errors.New("non-numeric uid or gid")}
	}
	ids, err := u.GroupIds()
	if err != nil {
		return 0, 0, nil, &SpawnError{Op: "user", Path: name, Err: err}
	}
	groups = []uint32{}
	for _, id := range ids {
		g, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return 0, 0, nil, &SpawnError{Op: "user", Path: name, Err: errors.New("non-numeric group id " + id)}
		}
		groups = append(groups, uint32(g))
	}
	return uint32(uid64), uint32(gid64), groups, nil
}

func lookupGroup(name string) (uint32, error) {
	if n, perr := strconv.ParseUint(name, 10, 32); perr == nil {
		return uint32(n), nil // numeric ids need no entry in /etc/group
	}
	g, err := user.LookupGroup(name)
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return 0, &SpawnError{Op: "group", Path: name, Err: ErrUnknownGroup}
	}
	if err != nil {
		return 0, &SpawnError{Op: "group", Path: name, Err: err}
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, &SpawnError{Op: "group", Path: name, Err: errors.New("non-numeric gid " + g.Gid)}
	}
	return uint32(gid), nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
