package control

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// ScanSocket finds the [supervisor] socket key in the TOML text data of
// the configuration file named file on its own, so that a file broken
// elsewhere does not keep the operator from reaching the supervisor that
// runs an older, valid version of it. It tolerates errors anywhere else: it reads the file statement by
// statement, skipping values (strings of every kind, arrays and inline
// tables over several lines) without decoding them, and starts afresh on
// the next line after anything it cannot read. It understands the key in
// a [supervisor] table, as a dotted key (supervisor.socket = ...) and in
// an inline table (supervisor = { socket = ... }); the first one found
// wins. The value is decoded as TOML and must be a string without NUL
// bytes; a relative path is resolved against file's directory, as the
// configuration does, and "" and "off" are returned as they are. found
// reports whether the key was there; the error, for a bad value, names
// file and line.
func ScanSocket(file string, data []byte) (socket string, found bool, err error) {
	v, line, found, err := scanSocket(data)
	switch {
	case !found:
		return "", false, nil
	case err != nil:
		return "", true, fmt.Errorf("%s:%d: supervisor: socket: %w", file, line, err)
	case v == "" || v == SocketOff:
		return v, true, nil
	case filepath.IsAbs(v):
		return filepath.Clean(v), true, nil
	}
	return resolveAgainst(file, v), true, nil
}

// scanSocket returns the raw socket value of data and its line.
func scanSocket(data []byte) (socket string, line int, found bool, err error) {
	sc := &tomlScanner{data: data, line: 1, valid: true}
	if strings.HasPrefix(string(data[:min(3, len(data))]), "\uFEFF") {
		sc.pos = 3
	}
	for line, m, ok := sc.next(); ok; line, m, ok = sc.next() {
		if m.table {
			return "", line, true, errors.New("expected a string, got a table")
		}
		v, present, err := decodeSocket(m.rest, m.value)
		if present {
			return v, line, true, err
		}
	}
	return "", 0, false, nil
}

// resolveAgainst makes p absolute relative to the directory of file.
func resolveAgainst(file, p string) string {
	base := "."
	if file != "" {
		base = filepath.Dir(file)
	}
	joined := filepath.Join(base, p)
	if abs, err := filepath.Abs(joined); err == nil {
		return abs
	}
	return joined
}

// decodeSocket decodes a statement's value text; rest is the part of the
// key path supervisor.socket below the statement's key (empty when the
// statement sets the key itself, ["socket"] when it sets the table
// supervisor inline).
func decodeSocket(rest []string, value string) (socket string, present bool, err error) {
	var doc struct{ V any }
	if _, err := toml.Decode("V = "+value, &doc); err != nil {
		return "", true, fmt.Errorf("invalid value: %w", err)
	}
	v := doc.V
	for _, k := range rest {
		m, ok := v.(map[string]any)
		if !ok {
			return "", true, fmt.Errorf("expected a table for supervisor, got %s", tomlType(v))
		}
		if v, ok = m[k]; !ok {
			return "", false, nil
		}
	}
	s, ok := v.(string)
	switch {
	case !ok:
		return "", true, fmt.Errorf("expected a string, got %s", tomlType(v))
	case strings.ContainsRune(s, 0):
		return "", true, errors.New("contains a NUL byte")
	}
	return s, true, nil
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// socketKey is the key path ScanSocket looks for.
var socketKey = []string{"supervisor", "socket"}

// tomlScanner walks the statements of a TOML document. It is no TOML
// parser: it only splits the text into table headers and key/value
// statements well enough to find one key, and survives any input.
type tomlScanner struct {
	data  []byte
	pos   int
	line  int
	table []string // the current table; nil after an unreadable header
	valid bool     // table is usable (not an array of tables or broken)
	// oneLine makes every value end with its line; it is set after a
	// value that spanned lines turned out broken.
	oneLine bool
}

// match is a statement whose key is socketKey or a prefix of it, or one
// that makes socketKey a table.
type match struct {
	rest  []string // socketKey below the statement's full key
	value string   // the value's text
	table bool     // the statement defines keys below socketKey
}

// below reports whether key lies at or under socketKey as a table.
func below(key []string) bool {
	return len(key) > len(socketKey) && slices.Equal(key[:len(socketKey)], socketKey) ||
		slices.Equal(key, socketKey)
}

// next returns the next statement that may set the socket, with its line.
func (s *tomlScanner) next() (line int, m match, ok bool) {
	for {
		s.skipBlank()
		if s.pos >= len(s.data) {
			return 0, match{}, false
		}
		start, startPos := s.line, s.pos
		// After anything unreadable, start afresh on the statement's
		// next line: a broken value that seemed to span lines (an
		// unterminated array or string) hides nothing after it.
		resync := func() {
			s.pos, s.line = startPos, start
			s.skipLine()
		}
		if s.data[s.pos] == '[' {
			if !s.header() {
				s.table, s.valid = nil, false
				resync()
				continue
			}
			if s.valid && below(s.table) {
				return start, match{table: true}, true
			}
			continue
		}
		key, value, good := s.keyValue()
		if !good {
			// A value that ran over lines and broke makes the rest of
			// the file suspect: from now on, values end with their
			// line, which keeps the scan linear in the file's size.
			s.oneLine = s.oneLine || s.line > start
			resync()
			continue
		}
		if !s.valid {
			continue
		}
		full := append(slices.Clone(s.table), key...)
		if len(full) <= len(socketKey) && slices.Equal(full, socketKey[:len(full)]) {
			return start, match{rest: socketKey[len(full):], value: value}, true
		}
		if below(full) {
			return start, match{table: true}, true
		}
	}
}

// skipBlank skips white space, newlines and comments.
func (s *tomlScanner) skipBlank() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r':
			s.pos++
		case '\n':
			s.pos++
			s.line++
		case '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipSpace skips spaces and tabs on the current line.
func (s *tomlScanner) skipSpace() {
	for s.pos < len(s.data) && (s.data[s.pos] == ' ' || s.data[s.pos] == '\t') {
		s.pos++
	}
}

// skipLine moves past the next newline.
func (s *tomlScanner) skipLine() {
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		s.pos++
		if c == '\n' {
			s.line++
			return
		}
	}
}

// endOfLine accepts only white space and a comment up to the newline.
func (s *tomlScanner) endOfLine() bool {
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '\r' {
		s.pos++
	}
	if s.pos < len(s.data) && s.data[s.pos] == '#' {
		s.skipLine()
		return true
	}
	if s.pos >= len(s.data) {
		return true
	}
	if s.data[s.pos] == '\n' {
		s.pos++
		s.line++
		return true
	}
	return false
}

// header reads [a.b] or [[a.b]] and the rest of its line.
func (s *tomlScanner) header() bool {
	s.pos++ // '['
	array := s.pos < len(s.data) && s.data[s.pos] == '['
	if array {
		s.pos++
	}
	s.skipSpace()
	key, ok := s.key()
	if !ok {
		return false
	}
	s.skipSpace()
	closing := "]"
	if array {
		closing = "]]"
	}
	if !strings.HasPrefix(string(s.data[s.pos:min(len(s.data), s.pos+2)]), closing) {
		return false
	}
	s.pos += len(closing)
	if !s.endOfLine() {
		return false
	}
	s.table, s.valid = key, !array
	return true
}

// key reads a dotted key: bare, "basic" or 'literal' parts.
func (s *tomlScanner) key() ([]string, bool) {
	var parts []string
	for {
		s.skipSpace()
		part, ok := s.keyPart()
		if !ok {
			return nil, false
		}
		parts = append(parts, part)
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '.' {
			return parts, true
		}
		s.pos++
	}
}

func (s *tomlScanner) keyPart() (string, bool) {
	if s.pos >= len(s.data) {
		return "", false
	}
	switch s.data[s.pos] {
	case '"', '\'':
		start := s.pos
		if !s.skipString() {
			return "", false
		}
		var doc struct{ K string }
		if _, err := toml.Decode("K = "+string(s.data[start:s.pos]), &doc); err != nil {
			return "", false
		}
		return doc.K, true
	}
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			s.pos++
			continue
		}
		break
	}
	return string(s.data[start:s.pos]), s.pos > start
}

// keyValue reads key = value and the rest of its line.
func (s *tomlScanner) keyValue() (key []string, value string, ok bool) {
	key, ok = s.key()
	if !ok {
		return nil, "", false
	}
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '=' {
		return nil, "", false
	}
	s.pos++
	s.skipSpace()
	start := s.pos
	if !s.skipValue() {
		return nil, "", false
	}
	value = string(s.data[start:s.pos])
	if !s.endOfLine() {
		return nil, "", false
	}
	return key, value, true
}

// skipValue moves past one value.
func (s *tomlScanner) skipValue() bool {
	if s.pos >= len(s.data) {
		return false
	}
	switch s.data[s.pos] {
	case '"', '\'':
		return s.skipString()
	case '[', '{':
		return s.skipNested()
	}
	start := s.pos
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n', '#', ',', ']', '}':
			return s.pos > start
		}
		s.pos++
	}
	return s.pos > start
}

// skipNested moves past an array or inline table, which may span lines.
func (s *tomlScanner) skipNested() bool {
	var stack []byte
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch c {
		case '[', '{':
			stack = append(stack, c)
			s.pos++
		case ']', '}':
			if len(stack) == 0 || (c == ']') != (stack[len(stack)-1] == '[') {
				return false
			}
			stack = stack[:len(stack)-1]
			s.pos++
			if len(stack) == 0 {
				return true
			}
		case '"', '\'':
			if !s.skipString() {
				return false
			}
		case '#':
			for s.pos < len(s.data) && s.data[s.pos] != '\n' {
				s.pos++
			}
		case '\n':
			if s.oneLine {
				return false
			}
			s.pos++
			s.line++
		default:
			s.pos++
		}
	}
	return false
}

// skipString moves past a string of any of the four kinds; single-line
// strings must end on their line.
func (s *tomlScanner) skipString() bool {
	q := s.data[s.pos]
	if s.pos+2 < len(s.data) && s.data[s.pos+1] == q && s.data[s.pos+2] == q {
		s.pos += 3
		for s.pos < len(s.data) {
			c := s.data[s.pos]
			switch {
			case c == '\\' && q == '"':
				if s.pos+1 < len(s.data) && s.data[s.pos+1] == '\n' {
					if s.oneLine {
						return false
					}
					s.line++
				}
				s.pos += 2
			case c == q && s.pos+2 < len(s.data) && s.data[s.pos+1] == q && s.data[s.pos+2] == q:
				s.pos += 3
				// Up to two more quotes belong to the content.
				for i := 0; i < 2 && s.pos < len(s.data) && s.data[s.pos] == q; i++ {
					s.pos++
				}
				return true
			case c == '\n':
				if s.oneLine {
					return false
				}
				s.line++
				s.pos++
			default:
				s.pos++
			}
		}
		return false
	}
	s.pos++
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '\n':
			return false
		case c == '\\' && q == '"':
			if s.pos+1 < len(s.data) && s.data[s.pos+1] == '\n' {
				return false
			}
			s.pos += 2
		case c == q:
			s.pos++
			return true
		default:
			s.pos++
		}
	}
	return false
}
