package control

import (
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

// ErrUnreachable is wrapped by Call's error when it cannot connect.
var ErrUnreachable = errors.New("cannot reach the supervisor")

// maxResponseSize bounds what Call reads; a status of thousands of
// programs fits well within it.
const maxResponseSize = 16 << 20

// Call connects to the supervisor's socket at path, sends req and returns
// the response. It waits as long as ctx allows: give ctx a deadline.
// A response with OK false is returned as it is, not as an error; the
// error is for failures to talk at all. When nothing listens at path the
// error wraps ErrUnreachable and reads, for example,
// "cannot reach the supervisor at /run/supervise.sock: is it running?
// (connect: no such file or directory)".
func Call(ctx context.Context, path string, req Request) (Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("connecting to the supervisor at %s: %w", path, ctx.Err())
		}
		var se *os.SyscallError
		if errors.As(err, &se) {
			if errors.Is(se, syscall.ENOENT) || errors.Is(se, syscall.ECONNREFUSED) {
				return Response{}, fmt.Errorf("%w at %s: is it running? (%w)", ErrUnreachable, path, se)
			}
			return Response{}, fmt.Errorf("%w at %s: %w", ErrUnreachable, path, se)
		}
		return Response{}, fmt.Errorf("%w at %s: %w", ErrUnreachable, path, err)
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	// Ending ctx unblocks any read or write below.
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	fail := func(what string, err error) (Response, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Response{}, fmt.Errorf("%s the supervisor at %s: %w", what, path, err)
	}
	data, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("encoding request: %w", err)
	}
	data = append(data, '\n')
	if _, err := uc.Write(data); err != nil {
		return fail("sending the request to", err)
	}
	if err := uc.CloseWrite(); err != nil {
		return fail("sending the request to", err)
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(uc, maxResponseSize)).Decode(&resp); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("connection closed without a response")
		}
		return fail("reading the response of", err)
	}
	return resp, nil
}
