package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Errors of Do and Call.
var (
	// ErrUnreachable is wrapped by the error when nothing answers.
	ErrUnreachable = errors.New("cannot reach the supervisor")
	// ErrUntrustedServer is wrapped by the error when the socket is
	// served by a process that is neither root nor the client's own
	// user: nothing is sent to it.
	ErrUntrustedServer = errors.New("refusing to talk to the socket")
	// ErrProtocol is wrapped by the errors for messages that break the
	// protocol, a version mismatch included.
	ErrProtocol = errors.New("protocol error")
)

// RemoteError is the error message that ended an answer: a refused or
// failed request, in the server's words.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Do connects to the supervisor's socket at path and checks with
// SO_PEERCRED that the process serving it is root or runs as the
// caller's effective uid; otherwise it fails, wrapping
// ErrUntrustedServer, before it sends anything. It then sends req with
// the Version set to ProtocolVersion and calls f with each reply, in
// order, until the final message: nil after "done", a *RemoteError after
// "error" (or after a reply that carries Error). An error from f ends the
// answer and is returned as it is. Do waits as long as ctx allows, which
// for a stream is until ctx ends; it then returns an error wrapping
// ctx.Err(). When nothing listens at path the error wraps ErrUnreachable
// and reads, for example, "cannot reach the supervisor at
// /run/supervise.sock: is it running? (connect: no such file or
// directory)".
func Do(ctx context.Context, path string, req Request, f func(Response) error) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("connecting to the supervisor at %s: %w", path, ctx.Err())
		}
		var se *os.SyscallError
		if errors.As(err, &se) {
			if errors.Is(se, syscall.ENOENT) || errors.Is(se, syscall.ECONNREFUSED) {
				return fmt.Errorf("%w at %s: is it running? (%w)", ErrUnreachable, path, se)
			}
			return fmt.Errorf("%w at %s: %w", ErrUnreachable, path, se)
		}
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, path, err)
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	if err := checkServer(uc, path); err != nil {
		return err
	}
	// Ending ctx unblocks any read or write below.
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(what string, err error) error {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("%s the supervisor at %s: %w", what, path, err)
	}

	req.Version = ProtocolVersion
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding the request: %w", err)
	}
	// The connection stays open both ways: closing our side would end
	// a stream. A server that failed to read the request may still have
	// said why: a failed write is the error only when nothing follows.
	_, werr := uc.Write(append(data, '\n'))
	r := bufio.NewReaderSize(uc, 64<<10)
	for {
		line, err := readLine(r, MaxMessageSize)
		if err != nil {
			if werr != nil {
				return fail("sending the request to", werr)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				err = errors.New("connection closed before the end of the answer")
			}
			return fail("reading the answer of", err)
		}
		m, err := DecodeMessage(line)
		if err != nil {
			return fmt.Errorf("reading the answer of the supervisor at %s: %w", path, err)
		}
		switch m.Type {
		case MsgDone:
			return nil
		case MsgError:
			return &RemoteError{Msg: m.Error}
		}
		if m.Reply.Error != "" {
			return &RemoteError{Msg: m.Reply.Error}
		}
		if err := f(*m.Reply); err != nil {
			return err
		}
	}
}

// Call sends the request of a unary command and returns its one reply.
// A refusal is a *RemoteError; see Do for the rest.
func Call(ctx context.Context, path string, req Request) (Response, error) {
	var got []Response
	err := Do(ctx, path, req, func(r Response) error {
		got = append(got, r)
		if len(got) > 1 {
			return fmt.Errorf("%w: the supervisor at %s sent more than one reply to %s", ErrProtocol, path, req.Command)
		}
		return nil
	})
	if err != nil {
		return Response{}, err
	}
	if len(got) == 0 {
		return Response{}, fmt.Errorf("%w: the supervisor at %s sent no reply to %s", ErrProtocol, path, req.Command)
	}
	return got[0], nil
}

// checkServer refuses a socket served by anyone but root or our own uid.
func checkServer(c *net.UnixConn, path string) error {
	cred, err := peerCred(c)
	if err != nil {
		return fmt.Errorf("%w at %s: cannot tell who serves it: %w", ErrUntrustedServer, path, err)
	}
	if me := os.Geteuid(); cred.Uid != 0 && int64(cred.Uid) != int64(me) {
		return fmt.Errorf("%w at %s: it is served by uid %d (pid %d), neither root nor this user (uid %d)",
			ErrUntrustedServer, path, cred.Uid, cred.Pid, me)
	}
	return nil
}

// readLine reads one line without its newline, of at most limit bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > limit+1 {
			return nil, fmt.Errorf("%w: a message longer than %d bytes", ErrProtocol, limit)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, fmt.Errorf("%w: the last message has no newline", ErrProtocol)
		default:
			return nil, err
		}
	}
}

// DecodeMessage decodes one line of a server's answer and checks it: one
// JSON object of ProtocolVersion whose Type is MsgReply with a Reply,
// MsgDone, or MsgError with an Error. Unknown fields are ignored, so that
// a server may add fields without a new protocol version. Errors wrap
// ErrProtocol.
func DecodeMessage(line []byte) (Message, error) {
	var m Message
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("%w: invalid message: %s", ErrProtocol, jsonMessage(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Message{}, fmt.Errorf("%w: unexpected data after the message", ErrProtocol)
	}
	if m.Version != ProtocolVersion {
		return Message{}, fmt.Errorf("%w: the supervisor speaks protocol version %d, this command %d (use the supervise binary of the running supervisor)",
			ErrProtocol, m.Version, ProtocolVersion)
	}
	switch m.Type {
	case MsgReply:
		if m.Reply == nil || m.Error != "" {
			return Message{}, fmt.Errorf("%w: a reply message needs a reply and no error", ErrProtocol)
		}
	case MsgDone:
		if m.Reply != nil || m.Error != "" {
			return Message{}, fmt.Errorf("%w: a done message carries nothing", ErrProtocol)
		}
	case MsgError:
		if m.Reply != nil || m.Error == "" {
			return Message{}, fmt.Errorf("%w: an error message needs an error and no reply", ErrProtocol)
		}
	default:
		return Message{}, fmt.Errorf("%w: unknown message type %q", ErrProtocol, m.Type)
	}
	return m, nil
}
