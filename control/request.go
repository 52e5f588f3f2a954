package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrBadRequest is wrapped by every error ParseRequest returns, and by the
// errors the server reports for requests it could not read.
var ErrBadRequest = errors.New("bad request")

// commands lists the commands in the order error messages name them.
var commands = []string{
	CmdStatus, CmdStart, CmdStop, CmdRestart, CmdReset, CmdSignal, CmdReload, CmdShutdown,
}

// ParseRequest decodes one request strictly and validates it: data must
// hold exactly one JSON object (surrounding white space allowed) with no
// unknown fields; Command must be one of the Cmd constants; start, stop,
// restart and reset need at least one name; signal needs exactly one name
// and a Signal; status may name programs; reload and shutdown take none.
// Only signal takes a Signal. Every name must match [A-Za-z0-9_.-]+.
// Errors wrap ErrBadRequest and say what is wrong.
func ParseRequest(data []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return Request{}, fmt.Errorf("%w: empty request", ErrBadRequest)
		}
		return Request{}, fmt.Errorf("%w: invalid JSON: %s", ErrBadRequest, jsonMessage(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Request{}, fmt.Errorf("%w: unexpected data after the request object", ErrBadRequest)
	}
	if err := validate(req); err != nil {
		return Request{}, err
	}
	return req, nil
}

// jsonMessage strips the "json: " prefix encoding/json puts on some errors.
func jsonMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func validate(req Request) error {
	switch req.Command {
	case "":
		return fmt.Errorf("%w: missing command (want one of %s)", ErrBadRequest, strings.Join(commands, ", "))
	case CmdStatus:
	case CmdStart, CmdStop, CmdRestart, CmdReset:
		if len(req.Names) == 0 {
			return fmt.Errorf("%w: %s needs at least one program name", ErrBadRequest, req.Command)
		}
	case CmdSignal:
		if len(req.Names) != 1 {
			return fmt.Errorf("%w: signal needs exactly one program name, got %d", ErrBadRequest, len(req.Names))
		}
		if req.Signal == "" {
			return fmt.Errorf("%w: signal needs a signal (a name such as HUP or a number)", ErrBadRequest)
		}
		if !validSignal(req.Signal) {
			return fmt.Errorf("%w: invalid signal %q", ErrBadRequest, req.Signal)
		}
	case CmdReload, CmdShutdown:
		if len(req.Names) != 0 {
			return fmt.Errorf("%w: %s takes no program names", ErrBadRequest, req.Command)
		}
	default:
		return fmt.Errorf("%w: unknown command %q (want one of %s)",
			ErrBadRequest, req.Command, strings.Join(commands, ", "))
	}
	if req.Signal != "" && req.Command != CmdSignal {
		return fmt.Errorf("%w: %s takes no signal", ErrBadRequest, req.Command)
	}
	for _, n := range req.Names {
		if !ValidName(n) {
			return fmt.Errorf("%w: invalid program name %q (want letters, digits, '_', '.', '-')", ErrBadRequest, n)
		}
	}
	return nil
}

// ValidName reports whether s looks like a program name: one or more of
// the characters A-Z, a-z, 0-9, '_', '.' and '-'.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// validSignal accepts the shapes of a signal name or number ("HUP",
// "SIGHUP", "sighup", "1", "SIGRTMIN+3"); whether the signal exists is for
// the supervisor to decide.
func validSignal(s string) bool {
	if len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '+', c == '-':
		default:
			return false
		}
	}
	return true
}
