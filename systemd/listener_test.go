package systemd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRoundTrip(t *testing.T) {
	l, c := listen(t, nil)
	t.Setenv("NOTIFY_SOCKET", l.Path())

	mono := MonotonicNow()
	steps := []struct {
		send  func() error
		check func(Message) bool
	}{
		{Ready, func(m Message) bool { return m.Ready && len(m.Fields) == 1 }},
		{func() error { return Status("serving\n3 clients") }, func(m Message) bool { return m.Status == "serving 3 clients" }},
		{func() error { return Reloading(mono) }, func(m Message) bool {
			return m.Reloading && m.Fields["MONOTONIC_USEC"] == strconv.FormatInt(mono.Microseconds(), 10)
		}},
		{Stopping, func(m Message) bool { return m.Stopping }},
		{WatchdogPing, func(m Message) bool { return m.Watchdog && !m.WatchdogTrigger }},
		{func() error { return Notify("WATCHDOG=trigger\nX_CUSTOM=a=b") }, func(m Message) bool {
			return m.WatchdogTrigger && !m.Watchdog && m.Fields["X_CUSTOM"] == "a=b"
		}},
	}
	for i, s := range steps {
		if err := s.send(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		m := c.next(t)
		if !s.check(m) {
			t.Errorf("step %d: unexpected message %+v", i, m)
		}
		if m.PID != os.Getpid() || m.UID != os.Getuid() {
			t.Errorf("step %d: credentials pid %d uid %d, want %d %d", i, m.PID, m.UID, os.Getpid(), os.Getuid())
		}
	}
	c.noMore(t)
}

func TestAbstractSocket(t *testing.T) {
	c := newCollector()
	name := fmt.Sprintf("@supervise-test-%d-%d", os.Getpid(), rand.Uint64())
	l, err := Listen(name, -1, -1, nil, c.onMessage, WithErrorHandler(c.onError))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Listen(name, -1, -1, nil, c.onMessage); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("second listener on %s: got %v, want EADDRINUSE", name, err)
	}
	if err := NotifyTo(name, "READY=1\nSTATUS=abstract"); err != nil {
		t.Fatal(err)
	}
	if m := c.next(t); !m.Ready || m.Status != "abstract" {
		t.Errorf("got %+v", m)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := NotifyTo(name, "READY=1"); err == nil {
		t.Error("send to a closed abstract socket succeeded")
	}
}

// startHelper starts the test binary as a child that sends state once it
// reads a line from the returned writer.
func startHelper(t *testing.T, socket, state string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=notify", "NOTIFY_SOCKET="+socket, "SYSTEMD_TEST_STATE="+state)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin
}

func TestNotAcceptedDropped(t *testing.T) {
	var allowed atomic.Int64
	l, c := listen(t, func(pid int) bool { return int64(pid) == allowed.Load() })

	// The test process itself is a stranger to this socket.
	if err := NotifyTo(l.Path(), "STATUS=stranger"); err != nil {
		t.Fatal(err)
	}
	de := wantDrop(t, c.nextErr(t), ErrNotAccepted)
	if de.PID != os.Getpid() || de.UID != os.Getuid() || de.Socket != l.Path() {
		t.Errorf("drop error names pid %d uid %d socket %s", de.PID, de.UID, de.Socket)
	}

	// A child process that is accepted gets through.
	cmd, stdin := startHelper(t, l.Path(), "STATUS=child")
	allowed.Store(int64(cmd.Process.Pid))
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if m := c.next(t); m.Status != "child" || m.PID != cmd.Process.Pid {
		t.Errorf("got status %q from pid %d, want \"child\" from %d", m.Status, m.PID, cmd.Process.Pid)
	}

	// The same child, refused, is dropped.
	cmd, stdin = startHelper(t, l.Path(), "STATUS=refused")
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if de := wantDrop(t, c.nextErr(t), ErrNotAccepted); de.PID != cmd.Process.Pid {
		t.Errorf("dropped pid %d, want %d", de.PID, cmd.Process.Pid)
	}
	c.noMore(t)
}

// sendWithFD sends data with one file descriptor attached, as
// systemd-notify's barrier does.
func sendWithFD(t *testing.T, socket string, data []byte, fd int) {
	t.Helper()
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	if err := unix.Sendmsg(s, data, unix.UnixRights(fd), &unix.SockaddrUnix{Name: socket}, 0); err != nil {
		t.Fatal(err)
	}
}

// TestFDsClosed checks that the listener closes descriptors that arrive with
// a barrier, a refused datagram and a garbage datagram: the read end of a
// pipe sees EOF once the listener closed its copy of the write end.
func TestFDsClosed(t *testing.T) {
	var refuse atomic.Bool
	l, c := listen(t, func(int) bool { return !refuse.Load() })
	cases := []struct {
		name  string
		data  string
		check func(t *testing.T)
	}{
		{"barrier", "BARRIER=1", func(t *testing.T) {}},
		{"message", "READY=1", func(t *testing.T) {
			if m := c.next(t); !m.Ready || m.FDs != 1 {
				t.Errorf("got %+v", m)
			}
			// The message is delivered; its descriptor is refused, and
			// that is reported.
			if de := wantDrop(t, c.nextErr(t), ErrFDsRefused); de.FDs != 1 || de.PID != os.Getpid() {
				t.Errorf("descriptors refused: %+v", de)
			}
		}},
		{"garbage", "\x00\xff", func(t *testing.T) { wantDrop(t, c.nextErr(t), ErrMalformed) }},
		{"refused", "READY=1", func(t *testing.T) { wantDrop(t, c.nextErr(t), ErrNotAccepted) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refuse.Store(tc.name == "refused")
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			sendWithFD(t, l.Path(), []byte(tc.data), int(w.Fd()))
			w.Close()
			r.SetReadDeadline(time.Now().Add(waitTimeout))
			if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("pipe read: %d, %v; want EOF (listener kept the fd)", n, err)
			}
			tc.check(t)
		})
	}
	c.noMore(t)
}

func TestSystemdNotify(t *testing.T) {
	bin, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed")
	}
	l, c := listen(t, func(pid int) bool { return IsDescendant(pid, os.Getpid()) })
	cmd := exec.Command(bin, "--ready", "--status=hi")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+l.Path())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("systemd-notify: %v: %s", err, out.String())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("systemd-notify took %v: the barrier fd was not closed promptly", d)
	}
	// The message is handled before the barrier, so it is there already.
	select {
	case m := <-c.msgs:
		if !m.Ready || m.Status != "hi" {
			t.Errorf("got %+v", m)
		}
		// As root, systemd-notify reports its parent (this process).
		want := cmd.Process.Pid
		if os.Geteuid() == 0 {
			want = os.Getpid()
		}
		if m.PID != want {
			t.Errorf("message attributed to pid %d, want %d", m.PID, want)
		}
	default:
		t.Fatal("no message delivered by the time systemd-notify returned")
	}
	c.noMore(t)
}

// TestSystemdNotifyAsOtherUser checks the socket ownership: a program
// running as another user can write to a socket chowned to it, and not to an
// owner-only socket.
func TestSystemdNotifyAsOtherUser(t *testing.T) {
	bin, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a program as another user")
	}
	const nobody = 65534
	dir, err := os.MkdirTemp("", "supervise-notify-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(socket string) (*exec.Cmd, error) {
		cmd := exec.Command(bin, "--ready", "--status=nobody")
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+socket)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return cmd, cmd.Run()
	}

	c := newCollector()
	accept := func(pid int) bool { return IsDescendant(pid, os.Getpid()) }
	owned, err := Listen(filepath.Join(dir, "owned.sock"), nobody, nobody, accept, c.onMessage, WithErrorHandler(c.onError))
	if err != nil {
		t.Fatal(err)
	}
	defer owned.Close()
	fi, err := os.Lstat(owned.Path())
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != nobody || st.Gid != nobody || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket owner %d:%d mode %v, want %d:%d 0600", st.Uid, st.Gid, fi.Mode().Perm(), nobody, nobody)
	}
	start := time.Now()
	cmd, err := run(owned.Path())
	if err != nil {
		t.Fatalf("systemd-notify as nobody: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("systemd-notify took %v", d)
	}
	select {
	case m := <-c.msgs:
		// Not root: it reports its own pid.
		if !m.Ready || m.Status != "nobody" || m.PID != cmd.Process.Pid || m.UID != nobody {
			t.Errorf("got %+v, want READY from pid %d uid %d", m, cmd.Process.Pid, nobody)
		}
	default:
		t.Fatal("no message delivered by the time systemd-notify returned")
	}

	private, err := Listen(filepath.Join(dir, "private.sock"), -1, -1, accept, c.onMessage, WithErrorHandler(c.onError))
	if err != nil {
		t.Fatal(err)
	}
	defer private.Close()
	if fi, err := os.Lstat(private.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("owner-only socket: %v, %v", fi.Mode(), err)
	}
	if _, err := run(private.Path()); err == nil {
		t.Error("systemd-notify as nobody wrote to an owner-only root socket")
	}
	c.noMore(t)
}

func TestGarbageFlood(t *testing.T) {
	l, c := listen(t, nil)
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20); err != nil {
		t.Fatal(err)
	}
	to := &unix.SockaddrUnix{Name: l.Path()}
	rng := rand.New(rand.NewPCG(1, 2))
	var sent int
	send := func(b []byte) {
		t.Helper()
		if err := unix.Sendto(s, b, 0, to); err != nil {
			t.Fatalf("send %d bytes: %v", len(b), err)
		}
		sent++
	}
	for i := range 300 {
		switch i % 6 {
		case 0:
			send(nil)
		case 1:
			send(bytes.Repeat([]byte("READY=1\n"), 20000)) // 160 kB
		case 2:
			send(make([]byte, MaxMessageSize+1))
		case 3:
			b := make([]byte, 1+rng.IntN(MaxMessageSize))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			b[0] = 0 // random, but never valid by chance
			send(b)
		case 4:
			send([]byte("READY=1\nno equals sign"))
		case 5:
			send([]byte("\n\n\n"))
		}
	}
	if err := NotifyTo(l.Path(), "READY=1\nSTATUS=survived"); err != nil {
		t.Fatal(err)
	}
	if m := c.next(t); m.Status != "survived" {
		t.Errorf("got %+v", m)
	}
	if got := len(c.errs); got != sent {
		t.Errorf("%d drops reported, want %d", got, sent)
	}
	kinds := map[string]int{}
	for range sent {
		err := <-c.errs
		wantDrop(t, err, err.(*DropError).Err) // every one is a *DropError
		for _, k := range []error{ErrEmptyMessage, ErrMessageTooLarge, ErrMalformed} {
			if errors.Is(err, k) {
				kinds[k.Error()]++
			}
		}
	}
	if kinds[ErrEmptyMessage.Error()] != 100 || kinds[ErrMessageTooLarge.Error()] != 100 || kinds[ErrMalformed.Error()] != 100 {
		t.Errorf("drop kinds %v", kinds)
	}
}

func TestListenStaleAndInUse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	noop := func(Message) {}

	// A stale socket file: bound once, then its socket closed.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	l, err := Listen(path, -1, -1, nil, noop)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	if _, err := Listen(path, -1, -1, nil, noop); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("over a live socket: got %v, want ErrSocketInUse", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("keep"), 0o644)
	if _, err := Listen(regular, -1, -1, nil, noop); !errors.Is(err, ErrNotSocket) {
		t.Errorf("over a regular file: got %v, want ErrNotSocket", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep" {
		t.Error("regular file was touched")
	}
	if _, err := Listen(filepath.Join(dir, "missing", "s.sock"), -1, -1, nil, noop); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing directory: got %v, want ENOENT", err)
	}
	if _, err := Listen("relative.sock", -1, -1, nil, noop); !errors.Is(err, ErrBadSocket) {
		t.Errorf("relative path: got %v, want ErrBadSocket", err)
	}
	if _, err := Listen(filepath.Join(dir, "x.sock"), -1, -1, nil, nil); err == nil {
		t.Error("nil handler accepted")
	}
}

// TestCloseReplacedFile checks that Close leaves alone a file that replaced
// the socket.
func TestCloseReplacedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(path, -1, -1, nil, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	os.WriteFile(path, nil, 0o644)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("replacement removed: %v", err)
	}
}

// TestCloseUnderTraffic checks that no handler runs after Close returns
// while a sender keeps sending.
func TestCloseUnderTraffic(t *testing.T) {
	var closed, late atomic.Bool
	var delivered atomic.Int64
	enough := make(chan struct{}) // closed at the 50th message
	check := func() {
		if closed.Load() {
			late.Store(true)
		}
	}
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(path, -1, -1, nil,
		func(Message) {
			if delivered.Add(1) == 50 {
				close(enough)
			}
			check()
		},
		WithErrorHandler(func(error) { check() }))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			state := "WATCHDOG=1"
			if i%2 == 1 {
				state = "garbage"
			}
			NotifyTo(path, state) // fails once the socket is gone
		}
	}()
	select {
	case <-enough:
	case <-time.After(waitTimeout):
		t.Error("fewer than 50 messages delivered")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	close(stop)
	<-done
	if late.Load() {
		t.Error("handler ran after Close returned")
	}
}

func TestDropErrorText(t *testing.T) {
	err := &DropError{Socket: "/run/x.sock", PID: 7, UID: 0, Err: ErrNotAccepted}
	want := "systemd: notify socket /run/x.sock: dropped datagram from pid 7 uid 0: systemd: sender not accepted"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err.Error(), want)
	}
	if !errors.Is(err, ErrNotAccepted) {
		t.Error("DropError does not unwrap to its cause")
	}
	for _, tc := range []struct {
		err  *DropError
		want string
	}{
		{&DropError{Socket: "/run/x.sock", PID: 0, UID: 1000, Err: ErrNotAccepted},
			"systemd: notify socket /run/x.sock: dropped datagram from pid 0 (another PID namespace) uid 1000: systemd: sender not accepted"},
		{&DropError{Socket: "/run/x.sock", PID: 7, UID: 0, FDs: 2, Err: ErrNotAccepted},
			"systemd: notify socket /run/x.sock: dropped datagram from pid 7 uid 0 (with 2 file descriptors): systemd: sender not accepted"},
		{&DropError{Socket: "/run/x.sock", PID: 7, UID: 0, FDs: 2, Err: ErrFDsRefused},
			"systemd: notify socket /run/x.sock: closed 2 file descriptors sent by pid 7 uid 0: systemd: file descriptors refused (FDSTORE is not supported)"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q\nwant %q", got, tc.want)
		}
	}
}

func TestListenGroupOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const nogroup = 65534
	l, err := Listen(filepath.Join(t.TempDir(), "g.sock"), -1, nogroup, nil, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Lstat(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != os.Geteuid() || st.Gid != nogroup || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket owner %d:%d mode %v, want %d:%d 0660", st.Uid, st.Gid, fi.Mode().Perm(), os.Geteuid(), nogroup)
	}
}

// TestEveryRefusalReported sends each kind of input the listener refuses
// and checks that each is reported once, with its cause, the sender's pid
// and uid, and the socket, and that nothing refused is delivered.
func TestEveryRefusalReported(t *testing.T) {
	var refuse atomic.Bool
	l, c := listen(t, func(int) bool { return !refuse.Load() })
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	send := func(data []byte, nfds int) {
		t.Helper()
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(s)
		unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
		var oob []byte
		if nfds > 0 {
			fds := make([]int, nfds)
			for i := range fds {
				fds[i] = int(devNull.Fd())
			}
			oob = unix.UnixRights(fds...)
		}
		if err := unix.Sendmsg(s, data, oob, &unix.SockaddrUnix{Name: l.Path()}, 0); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		data    []byte
		fds     int
		refuse  bool
		cause   error
		says    string
		deliver bool
	}{
		{"stranger", []byte("READY=1"), 0, true, ErrNotAccepted, "sender not accepted", false},
		{"stranger with descriptors", []byte("READY=1"), 2, true, ErrNotAccepted, "(with 2 file descriptors)", false},
		{"garbage", []byte("\xff\xfe not notify"), 0, false, ErrMalformed, "not valid UTF-8", false},
		{"no assignment", []byte("READY"), 0, false, ErrMalformed, `line 1: missing "="`, false},
		{"empty", nil, 0, false, ErrEmptyMessage, "empty", false},
		{"too large", bytes.Repeat([]byte("X=1\n"), 2500), 0, false, ErrMessageTooLarge, "10000 bytes, limit 4096", false},
		{"too many descriptors", []byte("READY=1"), MaxFDs + 1, false, ErrControlTruncated, "truncated", false},
		{"descriptors with a message", []byte("STATUS=fds"), 3, false, ErrFDsRefused, "closed 3 file descriptors sent by", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refuse.Store(tc.refuse)
			send(tc.data, tc.fds)
			if tc.deliver {
				if m := c.next(t); m.Status != "fds" || m.FDs != tc.fds {
					t.Errorf("delivered %+v", m)
				}
			}
			err := c.nextErr(t)
			de := wantDrop(t, err, tc.cause)
			if de.PID != os.Getpid() || de.UID != os.Getuid() || de.Socket != l.Path() {
				t.Errorf("reported pid %d uid %d socket %s, want %d %d %s", de.PID, de.UID, de.Socket, os.Getpid(), os.Getuid(), l.Path())
			}
			for _, want := range []string{tc.says, l.Path(), fmt.Sprintf("pid %d uid %d", os.Getpid(), os.Getuid())} {
				if !bytes.Contains([]byte(err.Error()), []byte(want)) {
					t.Errorf("%q does not say %q", err, want)
				}
			}
			c.noMore(t)
		})
	}
}
