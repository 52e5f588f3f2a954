package systemd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotAccepted reports a datagram whose sender the accept function
	// refused.
	ErrNotAccepted = errors.New("systemd: sender not accepted")
	// ErrNoCredentials reports a datagram that came without sender
	// credentials.
	ErrNoCredentials = errors.New("systemd: datagram without credentials")
	// ErrControlTruncated reports a datagram whose ancillary data did not
	// fit: it carried more file descriptors than the listener takes.
	ErrControlTruncated = errors.New("systemd: ancillary data truncated")
	// ErrSocketInUse is returned by Listen when a live socket is bound at
	// the path already.
	ErrSocketInUse = errors.New("systemd: socket in use")
	// ErrNotSocket is returned by Listen when the path exists and is not a
	// socket; Listen never removes such a file.
	ErrNotSocket = errors.New("systemd: path exists and is not a socket")
	// ErrFDsRefused reports the file descriptors that came with a message
	// other than systemd-notify's barrier: the message is delivered, the
	// descriptors are closed (the file descriptor store, FDSTORE=1, is not
	// supported).
	ErrFDsRefused = errors.New("systemd: file descriptors refused (FDSTORE is not supported)")
)

// MaxFDs is the number of file descriptors per datagram the listener has room
// for. A datagram with more is dropped (the kernel closes the excess).
const MaxFDs = 64

// DropError describes input the listener refused: a datagram it dropped,
// or (Err is ErrFDsRefused) the file descriptors of a message it delivered.
// It is passed to the handler set with WithErrorHandler.
type DropError struct {
	// Socket is the listener's path.
	Socket string
	// PID and UID are the sender's credentials, -1 when unknown. PID is 0
	// for a sender in another PID namespace.
	PID, UID int
	// FDs is the number of file descriptors that came with the datagram;
	// the listener has closed them.
	FDs int
	// Err says why: ErrNotAccepted, ErrNoCredentials, ErrControlTruncated,
	// ErrFDsRefused, or an error from ParseMessage (ErrMessageTooLarge,
	// ErrEmptyMessage, ErrMalformed) that describes the content.
	Err error
}

// Error says what was refused, from whom and why.
func (e *DropError) Error() string {
	from := fmt.Sprintf("pid %d uid %d", e.PID, e.UID)
	if e.PID == 0 {
		from = fmt.Sprintf("pid 0 (another PID namespace) uid %d", e.UID)
	}
	if errors.Is(e.Err, ErrFDsRefused) {
		return fmt.Sprintf("systemd: notify socket %s: closed %d file descriptors sent by %s: %v", e.Socket, e.FDs, from, e.Err)
	}
	if e.FDs > 0 {
		from += fmt.Sprintf(" (with %d file descriptors)", e.FDs)
	}
	return fmt.Sprintf("systemd: notify socket %s: dropped datagram from %s: %v", e.Socket, from, e.Err)
}

// Unwrap returns e.Err.
func (e *DropError) Unwrap() error { return e.Err }

// ListenOption configures Listen.
type ListenOption func(*listenConfig)

type listenConfig struct {
	onError func(error)
}

// WithErrorHandler sets a function called with every refused input (a
// *DropError: a datagram from a sender not accepted, without credentials,
// too large, malformed or empty, with more descriptors than MaxFDs, and the
// descriptors sent with a delivered message) and with receive errors. It
// is called once per datagram, with no rate limit: a caller that logs
// should limit by source (DropError.PID and UID). It runs on the
// listener's goroutine and must not call Close.
func WithErrorHandler(f func(error)) ListenOption {
	return func(c *listenConfig) { c.onError = f }
}

// Listener is a notify socket: a unixgram socket that receives sd_notify
// datagrams on one goroutine. Close stops it.
type Listener struct {
	path      string
	abstract  bool
	dev, ino  uint64
	file      *os.File
	rc        syscall.RawConn
	accept    func(pid int) bool
	onMessage func(Message)
	onError   func(error)
	closing   atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Listen creates a notify socket at path and starts reading it.
//
// path is an absolute filesystem path, whose parent directory must exist, or
// an abstract name "@name". Abstract sockets have no permission check at all:
// anyone in the network namespace may write to them, so only accept guards
// them. A stale socket file at path is removed; a live socket at path gives
// ErrSocketInUse and any other file ErrNotSocket.
//
// The socket file is created mode 0600 (owner only). If uid >= 0 it is
// chowned to uid so a program running as that user may write to it; if only
// gid >= 0 it is chowned to that group and made 0660. Both need privileges.
//
// Every datagram's credentials are checked with accept(pid) (nil accepts
// every sender). onMessage, which must not be nil, receives the accepted,
// well-formed messages in arrival order; systemd-notify's BARRIER=1
// handshake is consumed by the listener and not delivered. Because file
// descriptors are closed only after the datagrams before them are handled,
// by the time systemd-notify returns onMessage has returned for its message.
// onMessage runs on the listener's goroutine and must not call Close; it
// should return quickly, since datagrams queue in the kernel meanwhile and
// senders block (Notify for at most SendTimeout) when the queue is full.
func Listen(path string, uid, gid int, accept func(pid int) bool, onMessage func(Message), opts ...ListenOption) (*Listener, error) {
	var cfg listenConfig
	for _, o := range opts {
		o(&cfg)
	}
	if onMessage == nil {
		return nil, fmt.Errorf("systemd: listen %s: nil message handler", path)
	}
	l := &Listener{
		path:      path,
		abstract:  strings.HasPrefix(path, "@"),
		accept:    accept,
		onMessage: onMessage,
		onError:   cfg.onError,
		done:      make(chan struct{}),
	}
	if !l.abstract && !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("systemd: listen %q: %w", path, ErrBadSocket)
	}
	if !l.abstract {
		if err := removeStale(path); err != nil {
			return nil, fmt.Errorf("systemd: listen %s: %w", path, err)
		}
	}
	fd, err := l.bind(uid, gid)
	if err != nil {
		return nil, fmt.Errorf("systemd: listen %s: %w", path, err)
	}
	l.file = os.NewFile(uintptr(fd), path)
	l.rc, err = l.file.SyscallConn()
	if err != nil {
		l.file.Close()
		l.removeFile()
		return nil, fmt.Errorf("systemd: listen %s: %w", path, err)
	}
	go l.run()
	return l, nil
}

// bind creates, binds and sets up the socket, returning its descriptor.
func (l *Listener) bind(uid, gid int) (fd int, err error) {
	fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	bound := false
	defer func() {
		if err != nil {
			unix.Close(fd)
			if bound {
				os.Remove(l.path)
			}
		}
	}()
	// Credentials must be on before the first datagram can arrive.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return -1, fmt.Errorf("set SO_PASSCRED: %w", err)
	}
	var mode uint32 = 0o600
	if uid < 0 && gid >= 0 {
		mode = 0o660
	}
	if !l.abstract {
		// The mode of the socket inode becomes the mode of the file bind
		// creates (less the umask): no window with a wider mode.
		if err := unix.Fchmod(fd, mode); err != nil {
			return -1, fmt.Errorf("chmod socket: %w", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: l.path}); err != nil {
		return -1, fmt.Errorf("bind: %w", err)
	}
	if l.abstract {
		return fd, nil
	}
	bound = true
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(l.path, uid, gid); err != nil {
			return -1, err
		}
	}
	if err := os.Chmod(l.path, fs.FileMode(mode)); err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Lstat(l.path, &st); err != nil {
		return -1, fmt.Errorf("stat: %w", err)
	}
	l.dev, l.ino = st.Dev, st.Ino
	return fd, nil
}

// removeStale removes a socket file at path that nobody is bound to.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return ErrNotSocket
	}
	probe, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("probe socket: %w", err)
	}
	defer unix.Close(probe)
	switch err := unix.Connect(probe, &unix.SockaddrUnix{Name: path}); err {
	case unix.ECONNREFUSED:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale socket: %w", err)
		}
		return nil
	case nil, unix.EPROTOTYPE:
		return ErrSocketInUse
	default:
		return fmt.Errorf("probe existing socket: %w", err)
	}
}

// Path returns the socket address given to Listen, the value for the
// program's NOTIFY_SOCKET.
func (l *Listener) Path() string { return l.path }

// Close stops the reading goroutine, waits for it, and removes the socket
// file if it is still the one Listen created. No handler runs after Close
// returns. Close is idempotent; it must not be called from a handler.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		err := l.file.Close()
		<-l.done
		if rerr := l.removeFile(); err == nil {
			err = rerr
		}
		if err != nil {
			l.closeErr = fmt.Errorf("systemd: close %s: %w", l.path, err)
		}
	})
	return l.closeErr
}

// removeFile removes the socket file unless it was replaced meanwhile.
func (l *Listener) removeFile() error {
	if l.abstract || l.ino == 0 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(l.path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Dev != l.dev || st.Ino != l.ino {
		return nil
	}
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// oobSize is room for one SCM_CREDENTIALS and MaxFDs descriptors.
var oobSize = unix.CmsgSpace(unix.SizeofUcred) + unix.CmsgSpace(4*MaxFDs)

func (l *Listener) run() {
	defer close(l.done)
	buf := make([]byte, MaxMessageSize+1)
	oob := make([]byte, oobSize)
	for {
		var n, oobn, flags int
		var rerr error
		err := l.rc.Read(func(fd uintptr) bool {
			// With MSG_TRUNC, n is the datagram's real length even when
			// it did not fit.
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			if !l.closing.Load() {
				l.report(fmt.Errorf("systemd: notify socket %s: receive stopped: %w", l.path, err))
			}
			return
		}
		switch {
		case rerr == unix.EINTR:
		case rerr != nil:
			l.report(fmt.Errorf("systemd: notify socket %s: receive: %w", l.path, rerr))
		default:
			l.handle(buf[:min(n, len(buf))], n, oob[:oobn], flags)
		}
	}
}

// handle attributes, parses and delivers one datagram of size bytes (data
// is its start), then closes the descriptors that came with it.
func (l *Listener) handle(data []byte, size int, oob []byte, flags int) {
	fds, cred, cerr := parseControl(oob)
	defer closeAll(fds)
	drop := func(err error) {
		e := &DropError{Socket: l.path, PID: -1, UID: -1, FDs: len(fds), Err: err}
		if cred != nil {
			e.PID, e.UID = int(cred.Pid), int(cred.Uid)
		}
		l.report(e)
	}
	switch {
	case cerr != nil:
		drop(cerr)
		return
	case flags&unix.MSG_CTRUNC != 0:
		drop(ErrControlTruncated)
		return
	case cred == nil:
		drop(ErrNoCredentials)
		return
	case l.accept != nil && !l.accept(int(cred.Pid)):
		drop(ErrNotAccepted)
		return
	case flags&unix.MSG_TRUNC != 0 || size > MaxMessageSize:
		drop(fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, size, MaxMessageSize))
		return
	}
	m, err := ParseMessage(data)
	if err != nil {
		drop(err)
		return
	}
	if m.isBarrier() {
		return
	}
	m.PID, m.UID, m.FDs = int(cred.Pid), int(cred.Uid), len(fds)
	l.onMessage(m)
	if len(fds) > 0 {
		drop(ErrFDsRefused)
	}
}

// parseControl extracts the credentials and every descriptor from oob. It
// returns the descriptors even when it also returns an error, so that they
// are closed.
func parseControl(oob []byte) (fds []int, cred *unix.Ucred, err error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, nil, fmt.Errorf("systemd: parse ancillary data: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_RIGHTS:
			rights, rerr := unix.ParseUnixRights(&m)
			fds = append(fds, rights...)
			if rerr != nil && err == nil {
				err = fmt.Errorf("systemd: parse SCM_RIGHTS: %w", rerr)
			}
		case unix.SCM_CREDENTIALS:
			c, cerr := unix.ParseUnixCredentials(&m)
			if cerr != nil {
				if err == nil {
					err = fmt.Errorf("systemd: parse SCM_CREDENTIALS: %w", cerr)
				}
				continue
			}
			cred = c
		}
	}
	return fds, cred, err
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func (l *Listener) report(err error) {
	if l.onError != nil {
		l.onError(err)
	}
}
