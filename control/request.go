package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ErrBadRequest is wrapped by every error ParseRequest returns, and by the
// errors the server reports for requests it could not read.
var ErrBadRequest = errors.New("bad request")

// ParseRequest is Commands.ParseRequest.
func ParseRequest(data []byte) (Request, error) { return Commands.ParseRequest(data) }

// ParseRequest decodes one request strictly and validates it against the
// registry: data must hold exactly one JSON object (surrounding white
// space allowed) with no unknown fields; Version must be ProtocolVersion;
// Command must be a remote command of r; Names must fit the command's
// program argument (none without one, exactly one for a single NAME, at
// least one for a required NAME...), each a valid name; Params may hold
// only the command's other arguments (by lower-case name, each required
// one present) and its remote flags, each value of its Kind. Errors wrap
// ErrBadRequest and say what is wrong.
func (r *Registry) ParseRequest(data []byte) (Request, error) {
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
	if err := r.validate(req); err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return req, nil
}

// jsonMessage strips the "json: " prefix encoding/json puts on some errors.
func jsonMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func (r *Registry) validate(req Request) error {
	if req.Version != ProtocolVersion {
		return fmt.Errorf("protocol version %d, this supervisor speaks %d (use the supervise binary of the running supervisor)",
			req.Version, ProtocolVersion)
	}
	want := strings.Join(r.Names(true), ", ")
	c := r.Lookup(req.Command)
	switch {
	case req.Command == "":
		return fmt.Errorf("missing command (want one of %s)", want)
	case c == nil:
		return fmt.Errorf("unknown command %q (want one of %s)", req.Command, want)
	case c.Local:
		return fmt.Errorf("%s is a command of the command line, not of the supervisor (want one of %s)", c.Name, want)
	}
	if i := c.programArg(); i < 0 {
		if len(req.Names) != 0 {
			return fmt.Errorf("%s takes no program names", c.Name)
		}
	} else {
		a := c.Args[i]
		switch n := len(req.Names); {
		case n == 0 && !a.Optional:
			return fmt.Errorf("%s needs %s", c.Name, a.describe())
		case n > 1 && !a.Repeat:
			return fmt.Errorf("%s needs exactly one program name, got %d", c.Name, n)
		}
		for _, name := range req.Names {
			if err := KindProgram.check(name); err != nil {
				return err
			}
		}
	}
	known := map[string]Kind{}
	for _, a := range c.Args {
		if a.Kind == KindProgram {
			continue
		}
		known[a.param()] = a.Kind
		if _, ok := req.Params[a.param()]; !ok && !a.Optional {
			return fmt.Errorf("%s needs %s", c.Name, a.describe())
		}
	}
	for _, f := range c.Flags {
		if f.Remote {
			known[f.Name] = f.Kind
		}
	}
	for _, k := range sortedKeys(req.Params) {
		kind, ok := known[k]
		if !ok {
			return fmt.Errorf("%s takes no parameter %q", c.Name, k)
		}
		if err := kind.check(req.Params[k]); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// ValidName reports whether s looks like a program name, or the name of
// one instance of a program with replicas: one or more of the characters
// A-Z, a-z, 0-9, '_', '.' and '-', optionally followed by ':' and an
// index written without leading zeros ("web", "web:0", "web:12").
func ValidName(s string) bool {
	base, idx, inst := strings.Cut(s, ":")
	if inst && (idx == "" || len(idx) > 9 || (len(idx) > 1 && idx[0] == '0') ||
		strings.Trim(idx, "0123456789") != "") {
		return false
	}
	if base == "" {
		return false
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
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
	if s == "" || len(s) > 32 {
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

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
