package conf

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// lineIndex maps TOML key paths to the line that defines them. The TOML
// decoder keeps key positions to itself, so a small scanner over the source
// finds them: it tracks the current [table] header and every `key =` line,
// steps over strings, comments and multi-line arrays and inline tables, and
// never fails; whatever it cannot make sense of is skipped to the end of the
// line. Keys inside inline tables are not indexed: they fall back to the line
// of the key that holds the inline table.
type lineIndex struct {
	exact  map[string]int // a header or key written out in full
	prefix map[string]int // first line on which a path was implicitly opened
}

// keyString joins a key path with a separator that cannot occur in TOML keys
// as decoded by this package's scanner in practice (NUL is not allowed in
// TOML keys).
func keyString(path []string) string { return strings.Join(path, "\x00") }

// line returns the line defining path, else the line of its nearest indexed
// ancestor, else 0.
func (ix *lineIndex) line(path ...string) int {
	if ix == nil {
		return 0
	}
	for n := len(path); n > 0; n-- {
		k := keyString(path[:n])
		if l, ok := ix.exact[k]; ok {
			return l
		}
		if l, ok := ix.prefix[k]; ok {
			return l
		}
	}
	return 0
}

// lookup returns the line of path itself (written out, or first opened
// implicitly by a dotted key), without falling back to an ancestor.
func (ix *lineIndex) lookup(path ...string) (int, bool) {
	if ix == nil {
		return 0, false
	}
	k := keyString(path)
	if l, ok := ix.exact[k]; ok {
		return l, true
	}
	l, ok := ix.prefix[k]
	return l, ok
}

func (ix *lineIndex) record(path []string, line int) {
	k := keyString(path)
	if _, ok := ix.exact[k]; !ok {
		ix.exact[k] = line
	}
	for n := 1; n < len(path); n++ {
		k := keyString(path[:n])
		if _, ok := ix.prefix[k]; !ok {
			ix.prefix[k] = line
		}
	}
}

// scanLines indexes the key lines of src. It accepts any input.
func scanLines(src []byte) *lineIndex {
	s := &scanner{src: src, line: 1}
	ix := &lineIndex{exact: map[string]int{}, prefix: map[string]int{}}
	var header []string
	for {
		s.skipBlank()
		if s.eof() {
			return ix
		}
		line := s.line
		if s.peek() == '[' {
			s.pos++
			if s.peek() == '[' {
				s.pos++
			}
			path, ok := s.key(']')
			if ok {
				header = path
				ix.record(path, line)
			}
			s.skipLine()
			continue
		}
		path, ok := s.key('=')
		if !ok || s.peek() != '=' {
			s.skipLine()
			continue
		}
		s.pos++ // '='
		full := make([]string, 0, len(header)+len(path))
		full = append(append(full, header...), path...)
		ix.record(full, line)
		s.value()
	}
}

type scanner struct {
	src  []byte
	pos  int
	line int
}

func (s *scanner) eof() bool { return s.pos >= len(s.src) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *scanner) hasPrefix(p string) bool {
	if s.pos >= len(s.src) {
		return false
	}
	return strings.HasPrefix(string(s.src[s.pos:min(len(s.src), s.pos+len(p))]), p)
}

// skipBlank skips whitespace, newlines and comments between statements.
func (s *scanner) skipBlank() {
	for !s.eof() {
		switch c := s.peek(); c {
		case ' ', '\t', '\r':
			s.pos++
		case '\n':
			s.pos++
			s.line++
		case '#':
			s.skipComment()
		default:
			return
		}
	}
}

func (s *scanner) skipComment() {
	for !s.eof() && s.peek() != '\n' {
		s.pos++
	}
}

// skipLine skips to just past the end of the current line.
func (s *scanner) skipLine() {
	for !s.eof() {
		c := s.src[s.pos]
		s.pos++
		if c == '\n' {
			s.line++
			return
		}
	}
}

func isBare(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// key reads a dotted key up to (not including) stop, which must follow it on
// the same line. It reports false when the text is not a key.
func (s *scanner) key(stop byte) ([]string, bool) {
	var path []string
	for {
		for s.peek() == ' ' || s.peek() == '\t' {
			s.pos++
		}
		var part string
		switch c := s.peek(); {
		case c == '"':
			str, ok := s.basicString()
			if !ok {
				return nil, false
			}
			part = str
		case c == '\'':
			str, ok := s.literalString()
			if !ok {
				return nil, false
			}
			part = str
		case isBare(c):
			start := s.pos
			for !s.eof() && isBare(s.peek()) {
				s.pos++
			}
			part = string(s.src[start:s.pos])
		default:
			return nil, false
		}
		path = append(path, part)
		for s.peek() == ' ' || s.peek() == '\t' {
			s.pos++
		}
		switch s.peek() {
		case '.':
			s.pos++
		case stop:
			if stop == ']' {
				s.pos++
			}
			return path, true
		default:
			return nil, false
		}
	}
}

// basicString reads a single-line "..." string and returns its value.
func (s *scanner) basicString() (string, bool) {
	s.pos++ // opening quote
	start := s.pos
	for !s.eof() {
		switch s.src[s.pos] {
		case '\\':
			s.pos += 2
		case '\n':
			return "", false
		case '"':
			raw := string(s.src[start:s.pos])
			s.pos++
			return unescape(raw), true
		default:
			s.pos++
		}
	}
	s.pos = len(s.src)
	return "", false
}

// literalString reads a single-line '...' string and returns its value.
func (s *scanner) literalString() (string, bool) {
	s.pos++
	start := s.pos
	for !s.eof() {
		switch s.src[s.pos] {
		case '\n':
			return "", false
		case '\'':
			v := string(s.src[start:s.pos])
			s.pos++
			return v, true
		default:
			s.pos++
		}
	}
	return "", false
}

// unescape decodes the escapes of a TOML basic string; anything it does not
// understand is kept as written.
func unescape(raw string) string {
	if !strings.Contains(raw, `\`) {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			b.WriteByte(c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"':
			b.WriteByte('"')
		case '\\':
			b.WriteByte('\\')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[raw[i]]
			if i+n < len(raw) {
				if r, err := strconv.ParseUint(raw[i+1:i+1+n], 16, 32); err == nil && utf8.ValidRune(rune(r)) {
					b.WriteRune(rune(r))
					i += n
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(raw[i])
		default:
			b.WriteByte('\\')
			b.WriteByte(raw[i])
		}
	}
	return b.String()
}

// value skips a value up to the end of its statement: the end of the line
// once every array and inline table it opened is closed.
func (s *scanner) value() {
	depth := 0
	for !s.eof() {
		switch c := s.peek(); {
		case c == '\n':
			s.pos++
			s.line++
			if depth <= 0 {
				return
			}
		case c == '#':
			s.skipComment()
		case c == '[' || c == '{':
			depth++
			s.pos++
		case c == ']' || c == '}':
			depth--
			s.pos++
		case s.hasPrefix(`"""`):
			s.multiline(`"""`, true)
		case s.hasPrefix(`'''`):
			s.multiline(`'''`, false)
		case c == '"':
			s.basicString()
		case c == '\'':
			s.literalString()
		default:
			s.pos++
		}
	}
}

// multiline skips a multi-line string, counting its newlines.
func (s *scanner) multiline(delim string, escapes bool) {
	s.pos += len(delim)
	for !s.eof() {
		switch {
		case escapes && s.peek() == '\\':
			s.pos++
			if s.peek() == '\n' {
				s.line++
			}
			s.pos++
		case s.hasPrefix(delim):
			s.pos += len(delim)
			// Up to two more quotes may belong to the content.
			for i := 0; i < 2 && s.peek() == delim[0]; i++ {
				s.pos++
			}
			return
		case s.peek() == '\n':
			s.line++
			s.pos++
		default:
			s.pos++
		}
	}
}
