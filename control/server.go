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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/supervise/supervise/watch/trustedpath"
)

// Limits of the server side of the protocol.
const (
	// MaxRequestSize is the largest request the server reads, in bytes,
	// not counting the terminating newline.
	MaxRequestSize = 64 << 10
	// RequestTimeout bounds the time a client has to send its request.
	// The answer may take longer: a stream lasts as long as it lasts.
	RequestTimeout = 5 * time.Second
	// WriteTimeout bounds each write of a message to the client; a
	// client that reads nothing for that long is cut off.
	WriteTimeout = 10 * time.Second
	// SendBuffer bounds the bytes of replies waiting for one client: a
	// Send that would exceed it ends the stream with ErrSlowClient
	// instead of waiting. A single reply larger than it is still sent
	// when nothing else waits.
	SendBuffer = 8 << 20
	// MaxMessageSize is the largest message either side accepts.
	MaxMessageSize = 16 << 20
	// closeGrace bounds the writes still under way when the server
	// closes.
	closeGrace = time.Second
	// maxPathLen is the longest socket path Linux can bind (sun_path is
	// 108 bytes including the terminating NUL).
	maxPathLen = 107
)

// Errors of Listen, Serve and Sender.Send, and causes of the errors the
// server reports.
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
	// ErrPermission is the cause reported for a peer whose uid is
	// neither root nor the server's.
	ErrPermission = errors.New("permission denied")
	// ErrEmptyRequest is the cause reported for a connection closed
	// before it sent anything, such as the liveness probe of Listen.
	ErrEmptyRequest = errors.New("connection closed without a request")
	// ErrSlowClient ends a stream whose client does not keep up: more
	// than SendBuffer bytes would wait for it.
	ErrSlowClient = errors.New("client too slow")
	// ErrStreamClosed is returned by Send once the handler has
	// returned, or after the client went away.
	ErrStreamClosed = errors.New("stream closed")
)

// ErrClientGone is the cause of a stream handler's context when its
// client closed its end of the connection.
var ErrClientGone = errors.New("client went away")

// Handler answers one validated request of a remote command. The server
// calls it on the connection's own goroutine, so it may wait for an event
// loop's answer; an event loop must never call a handler itself. It sends
// its replies with out.Send, which never waits for the client (see
// Sender), so out may also be handed to an event loop that feeds a
// stream. Returning nil ends the answer with a done message; returning an
// error ends it with an error message that carries err.Error(). A unary
// command sends at most one reply; a Stream command sends any number
// until ctx ends, which happens when the client closes its end of the
// connection, when the stream fails (a slow client, a failed write), or
// when the server is closed or its Serve context ends. Context.Cause(ctx)
// says which. A handler must not call Close, which waits for handlers to
// return.
type Handler func(ctx context.Context, req Request, out *Sender) error

// Handlers maps each remote command of the registry to its Handler.
type Handlers map[string]Handler

// Unary adapts a function that answers with one Response: a Response with
// Error set becomes the error message, any other is sent as the one reply.
func Unary(f func(ctx context.Context, req Request) Response) Handler {
	return func(ctx context.Context, req Request, out *Sender) error {
		r := f(ctx, req)
		if r.Error != "" {
			return errors.New(r.Error)
		}
		return out.Send(r)
	}
}

// CheckHandlers is Commands.CheckHandlers.
func CheckHandlers(hs Handlers) error { return Commands.CheckHandlers(hs) }

// CheckHandlers reports an error unless hs has a non-nil handler for
// every remote command of r and nothing else.
func (r *Registry) CheckHandlers(hs Handlers) error {
	var missing, extra []string
	for _, name := range r.Names(true) {
		if hs[name] == nil {
			missing = append(missing, name)
		}
	}
	for name := range hs {
		if c := r.Lookup(name); c == nil || c.Local {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("no handler for %s", strings.Join(missing, ", ")))
	}
	if len(extra) > 0 {
		errs = append(errs, fmt.Errorf("handlers for commands that are not remote commands of the registry: %s", strings.Join(extra, ", ")))
	}
	if len(errs) > 0 {
		return fmt.Errorf("control: %w", errors.Join(errs...))
	}
	return nil
}

// PeerError is what the server reports about one connection: a refused
// peer, a bad request, a failed write, a slow client. It names the peer
// so that reports can be rate-limited per source.
type PeerError struct {
	// PID and UID are the peer's, from SO_PEERCRED; -1 when unknown.
	PID, UID int
	// Command is the request's command, "" when none was read.
	Command string
	// Err is the cause; errors.Is finds ErrBadRequest, ErrPermission,
	// ErrEmptyRequest, ErrSlowClient and the like through it.
	Err error
}

func (e *PeerError) Error() string {
	if e.PID < 0 {
		return fmt.Sprintf("control: peer unknown: %v", e.Err)
	}
	return fmt.Sprintf("control: peer pid %d uid %d: %v", e.PID, e.UID, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

// Server is a listening control socket. Create it with Listen, run it with
// Serve and end it with Close. Its methods are safe for concurrent use.
type Server struct {
	path    string
	ln      *net.UnixListener
	file    os.FileInfo // the socket file as created, to remove only our own
	uid     int         // the supervisor's effective uid; it and root may connect
	timeout time.Duration
	reg     *Registry

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
		reg:     Commands,
		done:    make(chan struct{}),
	}, nil
}

// makeDirs creates dir and its missing parents with mode 0755, whatever
// the umask, following only symbolic links owned by root or the
// supervisor's user; existing directories are left as they are.
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
	// Created without following a symbolic link planted by another user;
	// then the new levels get 0755 exactly, whatever the umask.
	if err := trustedpath.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
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

// SetErrorHandler sets a function that receives what the server
// survives: every refused connection or request (other uids, garbage,
// malformed or oversized requests, requests not sent in time, empty
// connections), failed writes, slow clients, handler panics, and accept
// errors. The errors about a connection are *PeerError values naming the
// peer's pid and uid. f is called from the connection's goroutine and
// should return quickly. It may be set at any time; nil turns reporting
// off.
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
// Ending ctx also removes the socket file, as Close does. hs must have a
// handler for every remote command of the registry and no other (see
// CheckHandlers), else Serve returns an error at once.
//
// Each connection carries one request, a JSON object ended by a newline
// or by the end of the client's stream, of at most MaxRequestSize bytes,
// sent within RequestTimeout. Only root and the server's own uid may use
// the socket (checked with SO_PEERCRED); others get the error message
// "permission denied: uid N". Requests that cannot be read or fail
// ParseRequest get "bad request: ...". In neither case is a handler
// called. A panic in a handler is recovered and answered with an internal
// error. Serve returns ErrServerClosed if the server was already closed,
// and an error if accepting fails for good.
func (s *Server) Serve(ctx context.Context, hs Handlers) error {
	if err := s.reg.CheckHandlers(hs); err != nil {
		return err
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
			s.handle(base, c, hs)
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

// handle serves one connection.
func (s *Server) handle(ctx context.Context, c *net.UnixConn, hs Handlers) {
	defer c.Close()
	pe := &PeerError{PID: -1, UID: -1}
	report := func(err error) {
		e := *pe
		e.Err = err
		s.report(&e)
	}
	cred, cerr := peerCred(c)
	if cerr == nil {
		pe.PID, pe.UID = int(cred.Pid), int(cred.Uid)
	}
	if err := c.SetReadDeadline(time.Now().Add(s.timeout)); err != nil {
		report(err)
		return
	}
	data, buffered, rerr := s.readRequest(c)
	if errors.Is(rerr, ErrEmptyRequest) {
		report(rerr)
		return
	}
	var refusal error
	var req Request
	switch {
	case cerr != nil:
		refusal = fmt.Errorf("reading peer credentials: %w", cerr)
	case !s.permitted(cred.Uid):
		refusal = fmt.Errorf("%w: uid %d", ErrPermission, cred.Uid)
	case rerr != nil:
		refusal = rerr
	default:
		req, refusal = s.reg.ParseRequest(data)
	}
	if refusal != nil {
		report(refusal)
		if err := writeMessage(c, Message{Version: ProtocolVersion, Type: MsgError, Error: refusal.Error()}); err != nil {
			report(fmt.Errorf("writing the refusal: %w", err))
		}
		return
	}
	pe.Command = req.Command
	cmd := s.reg.Lookup(req.Command)

	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := &Sender{conn: c, stream: cmd.Stream, wake: make(chan struct{}, 1), cancel: cancel}
	stopClosing := context.AfterFunc(ctx, out.serverClosing)
	defer stopClosing()
	var workers sync.WaitGroup
	workers.Go(out.run)
	if cmd.Stream {
		// The client sends nothing after its request: whatever the
		// read returns, end of file or data, means it is done with us.
		// (Once the handler has returned, fail does nothing: the read
		// then ends by the deadline set below.) The request's deadline
		// is lifted here, before the reader starts, so that it can never
		// lift the deadline that ends it.
		rerr := c.SetReadDeadline(time.Time{})
		workers.Go(func() {
			if rerr != nil {
				out.fail(rerr)
				return
			}
			if buffered {
				out.fail(fmt.Errorf("%w: data after the request", ErrBadRequest))
				return
			}
			var b [1]byte
			if n, err := c.Read(b[:]); n > 0 {
				out.fail(fmt.Errorf("%w: data after the request", ErrBadRequest))
			} else if err != nil {
				out.fail(ErrClientGone)
			}
		})
	}
	herr := s.call(hctx, out, hs[req.Command], req, report)
	final := Message{Version: ProtocolVersion, Type: MsgDone}
	if herr != nil {
		final = Message{Version: ProtocolVersion, Type: MsgError, Error: herr.Error()}
	}
	out.finish(final)
	if cmd.Stream {
		// Unblock the read of a client that is still connected.
		c.SetReadDeadline(time.Unix(1, 0))
	}
	workers.Wait()
	// A client that leaves a stream and a server that closes are no
	// failures; a slow client, a failed write or stray data are.
	if cause := context.Cause(hctx); cause != nil && !errors.Is(cause, ErrClientGone) && !errors.Is(cause, context.Canceled) {
		report(cause)
	}
}

// call runs h, turning a panic into an error that is also reported.
func (s *Server) call(ctx context.Context, out *Sender, h Handler, req Request, report func(error)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error handling %q: %v", req.Command, p)
			report(err)
		}
	}()
	return h(ctx, req, out)
}

// writeMessage writes one message with the write deadline.
func writeMessage(c *net.UnixConn, m Message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := c.SetWriteDeadline(time.Now().Add(WriteTimeout)); err != nil {
		return err
	}
	_, err = c.Write(append(data, '\n'))
	return err
}

func (s *Server) permitted(uid uint32) bool {
	return uid == 0 || int64(uid) == int64(s.uid)
}

// readRequest reads one request: up to a newline or the end of the
// client's stream, at most MaxRequestSize bytes. buffered reports data
// read past the newline.
func (s *Server) readRequest(c *net.UnixConn) (req []byte, buffered bool, err error) {
	r := bufio.NewReader(io.LimitReader(c, MaxRequestSize+1))
	line, err := r.ReadBytes('\n')
	switch {
	case err == nil:
		return line[:len(line)-1], r.Buffered() > 0, nil
	case errors.Is(err, io.EOF):
		if len(line) > MaxRequestSize {
			return nil, false, fmt.Errorf("%w: request larger than %d bytes", ErrBadRequest, MaxRequestSize)
		}
		if len(line) == 0 {
			return nil, false, ErrEmptyRequest
		}
		return line, false, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, false, fmt.Errorf("%w: no complete request within %v", ErrBadRequest, s.timeout)
	default:
		return nil, false, fmt.Errorf("%w: reading the request: %w", ErrBadRequest, err)
	}
}

// peerCred returns the credentials of the process at the other end of c:
// for a server's connection, the client; for a client's, the process that
// created the listening socket.
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
