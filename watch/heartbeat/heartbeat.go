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
// that other users may read it, in a directory reached without following
// another user's symbolic link; [Writer] creates a missing directory the
// same way. [Read] and [ReadNoFollow] never block on a FIFO or device put in
// the file's place and never read more than [MaxSize] bytes; ReadNoFollow
// also refuses a symbolic link, for files that a supervised program
// controls. [Writer] beats at once and then every
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
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/watch/trustedpath"
)

// MaxSize is the largest heartbeat file, in bytes, that Read and
// ReadNoFollow accept.
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
//
// Read follows symbolic links. It never blocks on a FIFO or a device: the
// file is opened with O_NONBLOCK and its type is checked on the open
// descriptor before anything is read. For a file that someone else
// controls, use ReadNoFollow.
func Read(path string) (State, error) {
	return read(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY)
}

// ReadNoFollow is Read for a heartbeat file that another user or a
// supervised program controls: it refuses a symbolic link at the last
// component of path (an error matching ErrNotRegular that says so, without
// opening what the link points to), and, as Read, never blocks on a FIFO,
// device or socket put in the file's place, reads at most MaxSize bytes and
// refuses anything but a regular file. The type is checked on the open
// descriptor (O_RDONLY|O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC), so a file swapped
// after a check cannot slip through. It still waits for a slow file
// system (a stalled network mount), so call it off any loop that must not
// stall.
func ReadNoFollow(path string) (State, error) {
	return read(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NOFOLLOW)
}

func read(path string, flags int) (State, error) {
	fd, err := unix.Open(path, flags, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, flags, 0)
	}
	if err == unix.ELOOP && flags&unix.O_NOFOLLOW != 0 {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return State{}, fmt.Errorf("heartbeat: read %s: %w (a symbolic link, not followed)", path, ErrNotRegular)
		}
	}
	if err != nil {
		return State{}, fmt.Errorf("heartbeat: read: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return State{}, fmt.Errorf("heartbeat: read: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return State{}, fmt.Errorf("heartbeat: read %s: %w (%s)", path, ErrNotRegular, typeName(fi.Mode()))
	}
	if fi.Size() > MaxSize {
		return State{}, fmt.Errorf("heartbeat: read %s: %w (%d bytes, limit %d)", path, ErrTooLarge, fi.Size(), MaxSize)
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

// typeName describes a file type that is not a regular file.
func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return m.Type().String()
}

// Write replaces the heartbeat file at path with s, atomically: it writes a
// temporary file in the same directory, syncs it, makes it mode 0644,
// closes it, renames it onto path and syncs the directory. A reader never
// sees a partial document. A zero s.Timestamp is written as the current
// time. The directory must exist (an error matching fs.ErrNotExist
// otherwise).
//
// The directory is opened once, following only symbolic links owned by
// root or by the effective user (trustedpath.OpenDir; another user's link
// gives an error matching trustedpath.ErrUntrustedLink), and the temporary
// file is created, renamed and synced relative to that descriptor, so the
// file cannot be written into a directory that another user swapped in
// meanwhile.
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
	if base == "" {
		return fmt.Errorf("heartbeat: write %s: no file name", path)
	}
	d, err := trustedpath.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("heartbeat: write %s: %w", path, err)
	}
	defer d.Close()
	dfd := int(d.Fd())
	var tmp string
	var fd int
	for range 100 {
		tmp = fmt.Sprintf(".%s.tmp-%d", base, rand.Uint32())
		fd, err = unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != unix.EEXIST {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("heartbeat: write %s: create temporary file: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, tmp))
	defer func() {
		if err != nil {
			f.Close()
			unix.Unlinkat(dfd, tmp, 0)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("heartbeat: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("heartbeat: write %s: sync: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("heartbeat: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("heartbeat: write %s: close: %w", path, err)
	}
	if err = unix.Renameat(dfd, tmp, dfd, base); err != nil {
		return fmt.Errorf("heartbeat: write %s: rename: %w", path, err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("heartbeat: write %s: sync directory: %w", path, err)
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
