// Package heartbeat writes and reads heartbeat files: small JSON documents that
// a program rewrites periodically to say "I am alive", and that another
// process reads to decide whether the writer is still making progress.
//
// # File format
//
// The file format is the contract between supervise and the programs it
// watches. A heartbeat file holds one JSON object:
//
//	{
//	  "timestamp": "2024-05-01T12:00:00.123456789Z",
//	  "pid": 4123,
//	  "hostname": "web-1",
//	  "metadata": {"version": "1.2.3", "programs": {"running": 3}}
//	}
//
// The keys are:
//
//   - timestamp (required): when the beat was written, RFC 3339 in UTC with
//     fractional seconds. Readers accept any RFC 3339 time (any offset, with
//     or without a fraction) and convert it to UTC.
//   - pid: the writer's process id (an integer, not negative).
//   - hostname: the writer's host name.
//   - metadata: any JSON object; Write emits {} when there is none.
//
// Unknown keys are ignored by readers, so the format can grow. A file larger
// than [MaxSize] is rejected.
//
// # Promises
//
// [Write] replaces the file atomically: a reader that re-opens the file for
// each read (as [Read] does) sees either the previous complete document or the
// new one, never a torn or empty one. The file is created with mode 0644 so
// that other users may read it. [Writer] beats at once and then every
// interval, driven by an injectable clock, and reports each beat and each
// failed write through hooks. [IsAlive] decides freshness from the timestamp
// inside the file, not from the file's modification time.
package heartbeat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// MaxSize is the largest heartbeat file, in bytes, that Read accepts.
const MaxSize = 1 << 20

// TimeLayout is the layout Write uses for the timestamp: RFC 3339 in UTC with
// nine fractional digits.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

var (
	// ErrEmpty is returned when a heartbeat file or document is empty.
	ErrEmpty = errors.New("heartbeat: empty")
	// ErrMalformed is returned when a heartbeat document is not the JSON
	// object described in the package documentation.
	ErrMalformed = errors.New("heartbeat: malformed")
	// ErrTooLarge is returned when a heartbeat file is larger than MaxSize.
	ErrTooLarge = errors.New("heartbeat: file too large")
	// ErrNotRegular is returned when the heartbeat path is not a regular file.
	ErrNotRegular = errors.New("heartbeat: not a regular file")
	// ErrStale is returned (inside a *StaleError) by IsAlive when the last
	// beat is older than the allowed age.
	ErrStale = errors.New("heartbeat: stale")
)

// State is the content of a heartbeat file.
type State struct {
	// Timestamp is when the beat was written.
	Timestamp time.Time `json:"timestamp"`
	// PID is the process id of the writer.
	PID int `json:"pid"`
	// Hostname is the host name of the writer.
	Hostname string `json:"hostname"`
	// Metadata is free-form data from the writer.
	Metadata map[string]any `json:"metadata"`
}

// wire is the JSON shape of State.
type wire struct {
	Timestamp *string         `json:"timestamp"`
	PID       *int            `json:"pid"`
	Hostname  *string         `json:"hostname"`
	Metadata  json.RawMessage `json:"metadata"`
}

// MarshalJSON encodes s in the heartbeat file format, with the timestamp in
// UTC and fractional seconds (TimeLayout) and a nil Metadata written as {}.
func (s State) MarshalJSON() ([]byte, error) {
	if y := s.Timestamp.UTC().Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("%w: timestamp year %d outside 0..9999", ErrMalformed, y)
	}
	md := s.Metadata
	if md == nil {
		md = map[string]any{}
	}
	return json.Marshal(struct {
		Timestamp string         `json:"timestamp"`
		PID       int            `json:"pid"`
		Hostname  string         `json:"hostname"`
		Metadata  map[string]any `json:"metadata"`
	}{s.Timestamp.UTC().Format(TimeLayout), s.PID, s.Hostname, md})
}

// UnmarshalJSON decodes a heartbeat document with the checks of Parse.
func (s *State) UnmarshalJSON(data []byte) error {
	st, err := Parse(data)
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// Parse decodes a heartbeat document. It returns ErrEmpty for an empty (or
// blank) document and ErrMalformed, wrapped with the reason, for anything
// that is not a JSON object with an RFC 3339 "timestamp", an integer "pid" not
// below zero, a string "hostname" and an object (or null) "metadata".
// Unknown keys are ignored. The returned Timestamp is in UTC.
func Parse(data []byte) (State, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return State{}, ErrEmpty
	}
	if trimmed[0] != '{' {
		return State{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var w wire
	if err := dec.Decode(&w); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return State{}, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	if w.Timestamp == nil {
		return State{}, fmt.Errorf("%w: missing \"timestamp\"", ErrMalformed)
	}
	ts, err := time.Parse(time.RFC3339Nano, *w.Timestamp)
	if err != nil {
		return State{}, fmt.Errorf("%w: timestamp %q is not RFC 3339", ErrMalformed, *w.Timestamp)
	}
	st := State{Timestamp: ts.UTC()}
	if w.PID != nil {
		if *w.PID < 0 {
			return State{}, fmt.Errorf("%w: negative pid %d", ErrMalformed, *w.PID)
		}
		st.PID = *w.PID
	}
	if w.Hostname != nil {
		st.Hostname = *w.Hostname
	}
	if len(w.Metadata) > 0 && !bytes.Equal(w.Metadata, []byte("null")) {
		if w.Metadata[0] != '{' {
			return State{}, fmt.Errorf("%w: \"metadata\" is not an object", ErrMalformed)
		}
		if err := json.Unmarshal(w.Metadata, &st.Metadata); err != nil {
			return State{}, fmt.Errorf("%w: metadata: %w", ErrMalformed, err)
		}
	}
	return st, nil
}

// Read opens path afresh, reads at most MaxSize bytes and parses them. A
// missing file gives an error matching fs.ErrNotExist; an empty file
// ErrEmpty; a file larger than MaxSize ErrTooLarge; something other than a
// regular file ErrNotRegular; bad content ErrMalformed. Errors name the path.
func Read(path string) (State, error) {
	f, err := os.Open(path)
	if err != nil {
		return State{}, fmt.Errorf("heartbeat: read: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return State{}, fmt.Errorf("heartbeat: read: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return State{}, fmt.Errorf("heartbeat: read %s: %w (%s)", path, ErrNotRegular, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return State{}, fmt.Errorf("heartbeat: read: %w", err)
	}
	if len(data) > MaxSize {
		return State{}, fmt.Errorf("heartbeat: read %s: %w (over %d bytes)", path, ErrTooLarge, MaxSize)
	}
	st, err := Parse(data)
	if err != nil {
		return State{}, fmt.Errorf("heartbeat: read %s: %w", path, err)
	}
	return st, nil
}

// Write replaces the heartbeat file at path with s, atomically: it writes a
// temporary file in the same directory, syncs it, closes it, makes it mode
// 0644, renames it onto path and syncs the directory. A reader never sees a
// partial document. A zero s.Timestamp is written as the current time. The
// directory must exist.
func Write(path string, s State) (err error) {
	if s.Timestamp.IsZero() {
		s.Timestamp = time.Now()
	}
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("heartbeat: write %s: %w", path, err)
	}
	data = append(data, '\n')
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("heartbeat: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("heartbeat: write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("heartbeat: write %s: sync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("heartbeat: write %s: close: %w", path, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("heartbeat: write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("heartbeat: write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil {
			return fmt.Errorf("heartbeat: write %s: sync directory: %w", path, serr)
		}
	}
	return nil
}

// StaleError reports a heartbeat older than the allowed age.
type StaleError struct {
	// Path is the heartbeat file.
	Path string
	// Age is how old the last beat was at the time of the check.
	Age time.Duration
	// MaxAge is the allowed age.
	MaxAge time.Duration
}

// Error describes the stale heartbeat.
func (e *StaleError) Error() string {
	return fmt.Sprintf("heartbeat: %s is stale: last beat %s ago, allowed %s",
		e.Path, e.Age.Round(time.Millisecond), e.MaxAge)
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// IsAlive reads path and reports whether its timestamp is at most maxAge
// before now. When the answer is false, the error says why: the file is
// missing or unreadable (the State is then zero), or the beat is stale (a
// *StaleError matching ErrStale, with the State that was read). A timestamp
// in the future counts as alive.
func IsAlive(path string, maxAge time.Duration, now time.Time) (bool, State, error) {
	st, err := Read(path)
	if err != nil {
		return false, State{}, err
	}
	if age := now.Sub(st.Timestamp); age > maxAge {
		return false, st, &StaleError{Path: path, Age: age, MaxAge: maxAge}
	}
	return true, st, nil
}

// isNotExist reports whether err says a path is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
