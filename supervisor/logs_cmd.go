package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/supervise/supervise/control"
)

// cmdLogs answers `supervise logs [NAME...] [-n N] [-f] [--since D]` (SPEC
// §14) on the connection's goroutine: it asks the event loop once which
// programs there are (NAME of a program with replicas is every instance
// of it, NAME:i one; the loop refuses unknown names), then reads the kept
// lines from the logStore, never through the loop. Replies are sent only while the client has taken the
// previous ones (Sender.Queued is 0): a client that reads slowly falls
// behind in the programs' buffers and gets "N lines skipped" markers
// where lines were evicted before it could read them, while the programs
// and the loop never wait for it. With follow, the stream lasts until the
// client leaves or the supervisor ends, after the last lines of its
// programs.
func (s *Supervisor) cmdLogs(ctx context.Context, req control.Request, out *control.Sender) error {
	n := -1
	if v := req.Param(control.ParamLines); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return fmt.Errorf("lines: invalid number %q", v)
		}
	}
	var since time.Time
	if v := req.Param(control.ParamSince); v != "" {
		var err error
		// Lines are stamped by the wall clock of the line writer.
		if since, err = control.ParseSince(v, time.Now()); err != nil {
			return fmt.Errorf("since: %w", err)
		}
	}
	follow := req.Param(control.ParamFollow) == "true"

	// The loop says which programs there are (and refuses unknown names).
	st := s.Handle(ctx, control.Request{Command: control.CmdStatus, Names: req.Names})
	if st.Error != "" {
		return errors.New(st.Error)
	}
	rd := newLogReader(s.out.logs, req.Names)
	defer rd.close()
	for _, p := range st.Programs {
		rd.width = max(rd.width, len(p.Name))
	}
	rd.resolve()
	rd.start(since, n)

	notes := rd.notes()
	send := func(lines []control.LogLine) error {
		chunk := &control.LogChunk{Width: rd.width, Lines: lines, Notes: notes}
		notes = nil
		return out.Send(control.Response{OK: true, Logs: chunk})
	}
	// waitTaken waits until the client has taken what was sent.
	waitTaken := func() bool {
		for out.Queued() > 0 {
			select {
			case <-out.Taken():
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	for {
		lines := rd.collect()
		if len(lines) == 0 {
			break
		}
		if !waitTaken() {
			return nil
		}
		if err := send(lines); err != nil {
			return nil // the client is gone or failed: the server reports it
		}
	}
	if len(notes) > 0 {
		if err := send(nil); err != nil {
			return nil
		}
	}
	if !follow {
		return nil
	}
	for {
		// While a reply waits for the client, new lines wait in the
		// buffers: only the client taking it wakes this loop.
		var wake <-chan struct{}
		if out.Queued() == 0 {
			rd.resolve()
			if lines := rd.collect(); len(lines) > 0 {
				if err := send(lines); err != nil {
					return nil
				}
				continue
			}
			wake = rd.wake
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), control.ErrClientGone) {
				return nil
			}
			// The supervisor is closing, after its programs ended:
			// give the follower their last lines.
			rd.resolve()
			for lines := rd.collect(); len(lines) > 0; lines = rd.collect() {
				if send(lines) != nil {
					break
				}
			}
			return nil
		case <-wake:
		case <-out.Taken():
		}
	}
}

// cmdReopenLogs answers `supervise reopen-logs`: it reopens every log file
// the supervisor writes, on the connection's goroutine.
func (s *Supervisor) cmdReopenLogs(_ context.Context, _ control.Request) control.Response {
	paths, errs := s.out.files.reopen()
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		return control.Response{Error: fmt.Sprintf("reopened %s; %s", control.Plural(uint64(len(paths)), "log file"), strings.Join(msgs, "; "))}
	}
	return control.Response{OK: true, Message: "reopened " + control.Plural(uint64(len(paths)), "log file")}
}
