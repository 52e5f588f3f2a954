package importer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The INI reader. supervisord reads its files with Python's
// configparser.RawConfigParser, configured with ';' and '#' as inline
// comment prefixes and strict=False; this reader follows that dialect
// line for line, keeping the file and line of every section and key
// (which the INI libraries for Go do not give), so that the output can
// say where each setting came from:
//
//   - a line whose first non-blank character is ';' or '#' is a comment;
//     so is the rest of a line from a ';' or '#' at its start or after a
//     blank (configparser's search order, quirks included: see
//     inlineComment);
//   - "[name]" opens a section (the name is everything between the first
//     '[' and the last ']'); [DEFAULT] holds keys every section inherits;
//     a section named again continues the first (later keys win);
//   - "key = value" or "key: value" (the first '=' or ':' splits; keys
//     are lower-cased, both sides trimmed);
//   - a non-empty line indented deeper than its key continues the key's
//     value, joined with "\n"; blank lines inside a value are kept,
//     trailing ones dropped;
//   - anything else, and a key before any section, is an error.

// iniKey is one key of a section.
type iniKey struct {
	name  string // lower-cased
	value string
	file  string // where the key was last set
	line  int
}

// iniSection is one section, merged over every place it appears.
type iniSection struct {
	name string
	file string // where it first appears
	line int
	keys []*iniKey // in the order of their first appearance
}

// key returns the key name of s, or nil.
func (s *iniSection) key(name string) *iniKey {
	for _, k := range s.keys {
		if k.name == name {
			return k
		}
	}
	return nil
}

// set sets a key, keeping the position of an earlier one of that name (as
// a Python dict does) but its new value and line.
func (s *iniSection) set(k *iniKey) *iniKey {
	if old := s.key(k.name); old != nil {
		*old = *k
		return old
	}
	s.keys = append(s.keys, k)
	return k
}

// iniDoc is every section read from one or more files.
type iniDoc struct {
	sections []*iniSection // in the order of their first appearance, DEFAULT excluded
	defaults *iniSection   // [DEFAULT]
	headers  []iniHeader   // every section header read, repeated ones included
}

// iniHeader is where a section header was read.
type iniHeader struct {
	name, file string
	line       int
}

// section returns the section name, or nil.
func (d *iniDoc) section(name string) *iniSection {
	for _, s := range d.sections {
		if s.name == name {
			return s
		}
	}
	return nil
}

// get returns the key name of section s, or of [DEFAULT] when s has none,
// as configparser's get does.
func (d *iniDoc) get(s *iniSection, name string) *iniKey {
	if k := s.key(name); k != nil {
		return k
	}
	if d.defaults != nil {
		return d.defaults.key(name)
	}
	return nil
}

// keys returns the keys of s with those of [DEFAULT] it does not set,
// these last.
func (d *iniDoc) keys(s *iniSection) []*iniKey {
	out := append([]*iniKey(nil), s.keys...)
	if d.defaults != nil {
		for _, k := range d.defaults.keys {
			if s.key(k.name) == nil {
				out = append(out, k)
			}
		}
	}
	return out
}

// readINI adds the sections of data, read from file, to d. It stops at the
// first line configparser refuses.
func (d *iniDoc) read(file string, data []byte) error {
	if !utf8.Valid(data) {
		line := 1 + strings.Count(string(data[:firstInvalidUTF8(data)]), "\n")
		return &Error{File: file, Line: line, Msg: "not UTF-8 text"}
	}
	if i := strings.IndexByte(string(data), 0); i >= 0 {
		return &Error{File: file, Line: 1 + strings.Count(string(data[:i]), "\n"), Msg: "a NUL byte: not a text file"}
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	// Universal newlines, as Python reads a text file.
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}

	var (
		cur         *iniSection
		opt         *iniKey // the key a continuation line extends
		parts       []string
		indentLevel = 0
	)
	flush := func() {
		if opt != nil {
			opt.value = pyRStrip(strings.Join(parts, "\n"))
		}
		opt, parts = nil, nil
	}
	for i, line := range lines {
		lineno := i + 1
		start := inlineComment(line)
		if strings.HasPrefix(pyStrip(line), "#") || strings.HasPrefix(pyStrip(line), ";") {
			start = 0
		}
		value := line
		if start >= 0 {
			value = line[:start]
		}
		value = pyStrip(value)
		if value == "" {
			// A blank line belongs to the value it is in (dropped again if
			// it ends it); a comment-only line does not.
			if start < 0 && opt != nil {
				parts = append(parts, "")
			}
			continue
		}
		indent := strings.IndexFunc(line, func(r rune) bool { return !pyIsSpace(r) })
		if opt != nil && indent > indentLevel {
			parts = append(parts, value)
			continue
		}
		indentLevel = indent
		if strings.HasPrefix(value, "[") {
			if end := strings.LastIndexByte(value, ']'); end >= 2 {
				flush()
				name := value[1:end]
				d.headers = append(d.headers, iniHeader{name: name, file: file, line: lineno})
				switch {
				case name == "DEFAULT":
					if d.defaults == nil {
						d.defaults = &iniSection{name: name, file: file, line: lineno}
					}
					cur = d.defaults
				case d.section(name) != nil:
					cur = d.section(name)
				default:
					cur = &iniSection{name: name, file: file, line: lineno}
					d.sections = append(d.sections, cur)
				}
				continue
			}
		}
		if cur == nil {
			return &Error{File: file, Line: lineno, Msg: "a key before the first [section] header"}
		}
		at := strings.IndexAny(value, "=:")
		if at < 0 {
			return &Error{File: file, Line: lineno, Msg: "not a [section] header, a key = value line or an indented continuation: " + quoteLine(value)}
		}
		name := strings.ToLower(pyRStrip(value[:at]))
		if name == "" {
			return &Error{File: file, Line: lineno, Msg: "a value without a key: " + quoteLine(value)}
		}
		flush()
		opt = cur.set(&iniKey{name: name, file: file, line: lineno})
		parts = []string{pyStrip(value[at+1:])}
	}
	flush()
	return nil
}

// inlineComment returns where an inline comment starts in line, or -1. It
// is configparser's search: in rounds, the next ';' and the next '#' are
// looked at; the first round in which one of them is at the start of the
// line or after a blank decides, taking the smaller such index of that
// round. (So a comment sign after a blank can be missed when the other
// sign occurs more often before it; supervisord reads the same.)
func inlineComment(line string) int {
	prefixes := []byte{';', '#'}
	index := []int{-1, -1}
	live := []bool{true, true}
	for {
		found := -1
		any := false
		for p := range prefixes {
			if !live[p] {
				continue
			}
			next := strings.IndexByte(line[index[p]+1:], prefixes[p])
			if next < 0 {
				live[p] = false
				continue
			}
			any = true
			index[p] += 1 + next
			i := index[p]
			if i == 0 || (i > 0 && pyIsSpaceBefore(line, i)) {
				if found < 0 || i < found {
					found = i
				}
			}
		}
		if found >= 0 {
			return found
		}
		if !any {
			return -1
		}
	}
}

// pyIsSpaceBefore reports whether the character before byte i of s is
// white space.
func pyIsSpaceBefore(s string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return pyIsSpace(r)
}

// pyIsSpace is Python's str.isspace for one character: Go's unicode.IsSpace
// plus the information separators U+001C to U+001F.
func pyIsSpace(r rune) bool {
	switch {
	case r >= 0x1c && r <= 0x1f:
		return true
	case r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r' || r == ' ' || r == 0x85 || r == 0xa0:
		return true
	case r < 0x80:
		return false
	}
	return unicode.IsSpace(r)
}

func pyStrip(s string) string  { return strings.TrimFunc(s, pyIsSpace) }
func pyRStrip(s string) string { return strings.TrimRightFunc(s, pyIsSpace) }

// quoteLine quotes a line for an error message, shortened.
func quoteLine(s string) string {
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return "\"" + strings.ToValidUTF8(s, "?") + "\""
}

// firstInvalidUTF8 is the offset of the first invalid byte of b.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
