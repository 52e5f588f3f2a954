package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Limits of the server side of the protocol.
const (
	// MaxRequestSize is the largest request the server reads, in bytes,
	// not counting the terminating newline.
	MaxRequestSize = 64 << 10
	// RequestTimeout bounds the time a client has to send its request,
	// and the time the server has to write its response.
	RequestTimeout = 5 * time.Second
	// maxPathLen is the longest socket path Linux can bind (sun_path is
	// 108 bytes including the terminating NUL).
	maxPathLen = 107
)

// Errors of Listen and Serve.
var (
	// ErrInUse means a live supervisor already listens on the path.
	ErrInUse = errors.New("another supervisor is listening")
	// ErrNotSocket means the path exists and is not a socket; Listen
	// never removes such a file.
	ErrNotSocket = errors.New("exists and is not a socket")
	// ErrPathTooLong means the path does not fit in a Unix socket address.
	ErrPathTooLong = errors.New("socket path too long")
	// ErrServerClosed is returned by Serve after Close.
	ErrServerClosed = errors.New("control server closed")
)

// Handler answers one validated request. Its context ends when the
// Serve context ends or the server is closed; a handler must not call
// Close itself, since Close waits for handlers to return.
type Handler func(ctx context.Context, req Request) Response

// Server is a listening control socket. Create it with Listen, run it with
// Serve and end it with Close. Its methods are safe for concurrent use.
type Server struct {
	path    string
	ln      *net.UnixListener
	file    os.FileInfo // the socket file as created, to remove only our own
	uid     int         // the supervisor's effective uid; it and root may connect
	timeout time.Duration

	mu      sync.Mutex
	closed  bool
	serving bool
	onError func(error)
	done    chan struct{} // closed by shutdown

	loops sync.WaitGroup // the running Serve call
	conns sync.WaitGroup // connection goroutines
}

// Listen creates the control socket at path and returns a Server ready
// for Serve. The parent directory is created with mode 0755 if missing.
// The socket file is mode 0600 from the moment it appears: the socket's
// mode is set before bind, so no wider mode is ever exposed, whatever the
// umask. A socket file already at path is tested by connecting to it: if
// a supervisor answers, Listen fails with ErrInUse ("another supervisor
// is listening on PATH"); if nobody does, the stale file is removed. A
// path that exists and is not a socket is never removed (ErrNotSocket).
func Listen(path string) (*Server, error) {
	if path == "" {
		return nil, errors.New("control socket: empty path")
	}
	if len(path) > maxPathLen {
		return nil, fmt.Errorf("%w: %s (%d bytes, limit %d)", ErrPathTooLong, path, len(path), maxPathLen)
	}
	if err := makeDirs(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		// The bound file takes the socket inode's mode (less the umask):
		// narrowing it before bind means the file is never wider than 0600.
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), 0o600) }); cerr != nil {
			return cerr
		}
		if err != nil {
			return fmt.Errorf("fchmod: %w", err)
		}
		return nil
	}}
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w on %s", ErrInUse, path)
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln := l.(*net.UnixListener)
	ln.SetUnlinkOnClose(false) // Close removes the file only if it is still ours
	// A restrictive umask may have narrowed the mode below 0600, which
	// would lock out a non-root owner: set it exactly.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Server{
		path:    path,
		ln:      ln,
		file:    fi,
		uid:     os.Geteuid(),
		timeout: RequestTimeout,
		done:    make(chan struct{}),
	}, nil
}

// makeDirs creates dir and its missing parents with mode 0755, whatever
// the umask; existing directories are left as they are.
func makeDirs(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	// Top down, fixing each mode before creating the next level in it.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Chmod(missing[i], 0o755); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// clearStale removes a dead socket at path, refuses a live one, and
// leaves alone anything that is not a socket.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket: %s %w", path, ErrNotSocket)
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.Dial("unix", path)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("%w on %s", ErrInUse, path)
	case errors.Is(err, syscall.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("control socket: removing stale socket: %w", err)
		}
		return nil
	case errors.Is(err, syscall.ENOENT):
		return nil
	default:
		return fmt.Errorf("control socket: cannot tell whether %s is in use: %w", path, err)
	}
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// SetErrorHandler sets a function that receives what the server survives:
// malformed requests, refused peers, failed writes, accept errors. Each
// error names the peer's pid and uid where known. It may be called at any
// time; nil turns reporting off.
func (s *Server) SetErrorHandler(f func(error)) {
	s.mu.Lock()
	s.onError = f
	s.mu.Unlock()
}

func (s *Server) report(err error) {
	s.mu.Lock()
	f := s.onError
	s.mu.Unlock()
	if f != nil {
		f(err)
	}
}

// Serve accepts connections until ctx ends or Close is called, then
// stops accepting, waits for the connections in flight and returns nil.
// Ending ctx also removes the socket file, as Close does. Each connection
// carries one request, a JSON object ended by a newline or by the end of
// the client's stream, of at most MaxRequestSize bytes, sent within
// RequestTimeout; it gets one JSON response. Only root and the server's
// own uid may use the socket (checked with SO_PEERCRED); others get
// {"ok":false,"error":"permission denied: uid N"}. Requests that cannot
// be read or fail ParseRequest get {"ok":false,"error":"bad request: ..."}.
// In neither case is h called. A panic in h is recovered and answered
// with an internal error. Serve returns ErrServerClosed if the server was
// already closed, and an error if accepting fails for good.
func (s *Server) Serve(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("control: Serve: nil handler")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.serving {
		s.mu.Unlock()
		return errors.New("control: Serve called twice")
	}
	s.serving = true
	s.loops.Add(1)
	s.mu.Unlock()
	defer s.loops.Done()

	base, cancel := context.WithCancel(ctx)
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		select {
		case <-base.Done(): // ctx ended, or Serve is returning
			s.shutdown()
		case <-s.done: // Close: end the handlers' contexts
			cancel()
		}
	}()

	var err error
	backoff := 5 * time.Millisecond
	for {
		c, aerr := s.ln.AcceptUnix()
		if aerr != nil {
			if s.isClosed() || errors.Is(aerr, net.ErrClosed) {
				break
			}
			if temporary(aerr) {
				s.report(fmt.Errorf("control: accept: %w (retrying in %v)", aerr, backoff))
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			err = fmt.Errorf("control: accept on %s: %w", s.path, aerr)
			break
		}
		backoff = 5 * time.Millisecond
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.handle(base, c, h)
		}()
	}
	s.conns.Wait()
	cancel()
	watcher.Wait()
	return err
}

// temporary reports whether an accept error may go away by itself.
func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// shutdown stops accepting and removes the socket file, once.
func (s *Server) shutdown() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()

	err := s.ln.Close()
	if err != nil {
		err = fmt.Errorf("control socket: %w", err)
	}
	// Remove the file only if it is still the one Listen created.
	if fi, serr := os.Lstat(s.path); serr == nil && os.SameFile(fi, s.file) {
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("control socket: %w", rerr)
		}
	}
	return err
}

// Close stops accepting, ends the handlers' contexts, waits for the
// connections in flight to finish and removes the socket file. It is safe
// to call more than once; later calls return nil.
func (s *Server) Close() error {
	err := s.shutdown()
	s.loops.Wait()
	s.conns.Wait()
	return err
}

// peerError describes a failure on one connection.
func peerError(cred *syscall.Ucred, err error) error {
	if cred == nil {
		return fmt.Errorf("control: peer unknown: %w", err)
	}
	return fmt.Errorf("control: peer pid %d uid %d: %w", cred.Pid, cred.Uid, err)
}

// errEmpty is a connection closed before sending anything, such as the
// liveness probe of another Listen.
var errEmpty = errors.New("empty connection")

func (s *Server) handle(ctx context.Context, c *net.UnixConn, h Handler) {
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(s.timeout)); err != nil {
		s.report(peerError(nil, err))
		return
	}
	cred, cerr := peerCred(c)
	data, rerr := s.readRequest(c)
	if errors.Is(rerr, errEmpty) {
		return
	}
	var resp Response
	switch {
	case cerr != nil:
		err := fmt.Errorf("reading peer credentials: %w", cerr)
		s.report(peerError(nil, err))
		resp = Response{Error: err.Error()}
	case !s.permitted(cred.Uid):
		err := fmt.Errorf("permission denied: uid %d", cred.Uid)
		s.report(peerError(cred, err))
		resp = Response{Error: err.Error()}
	case rerr != nil:
		s.report(peerError(cred, rerr))
		resp = Response{Error: rerr.Error()}
	default:
		req, err := ParseRequest(data)
		if err != nil {
			s.report(peerError(cred, err))
			resp = Response{Error: err.Error()}
		} else {
			resp = s.call(ctx, cred, h, req)
		}
	}
	if err := c.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		s.report(peerError(cred, err))
		return
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		s.report(peerError(cred, fmt.Errorf("writing response: %w", err)))
	}
}

// call runs h, turning a panic into an error response.
func (s *Server) call(ctx context.Context, cred *syscall.Ucred, h Handler, req Request) (resp Response) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("internal error handling %q: %v", req.Command, p)
			s.report(peerError(cred, err))
			resp = Response{Error: err.Error()}
		}
	}()
	return h(ctx, req)
}

func (s *Server) permitted(uid uint32) bool {
	return uid == 0 || int64(uid) == int64(s.uid)
}

// readRequest reads one request: up to a newline or the end of the
// client's stream, at most MaxRequestSize bytes.
func (s *Server) readRequest(c *net.UnixConn) ([]byte, error) {
	r := bufio.NewReader(io.LimitReader(c, MaxRequestSize+1))
	line, err := r.ReadBytes('\n')
	switch {
	case err == nil:
		return line[:len(line)-1], nil
	case errors.Is(err, io.EOF):
		if len(line) > MaxRequestSize {
			return nil, fmt.Errorf("%w: request larger than %d bytes", ErrBadRequest, MaxRequestSize)
		}
		if len(line) == 0 {
			return nil, errEmpty
		}
		return line, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("%w: no complete request within %v", ErrBadRequest, s.timeout)
	default:
		return nil, fmt.Errorf("%w: reading the request: %w", ErrBadRequest, err)
	}
}

// peerCred returns the credentials of the process at the other end of c.
func peerCred(c *net.UnixConn) (*syscall.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		cred, gerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if gerr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", gerr)
	}
	return cred, nil
}
