package conf

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
)

// EnvFile is one entry of a program's env_file: a file of variables, in
// the dotenv format parseEnv reads, put in the program's environment
// before its environment table.
type EnvFile struct {
	Path     string // absolute
	Optional bool   // written with a leading "-": a missing file is no error
	// read is what Load read from the file; nil when it was not read
	// (Parse). A pointer, so that printing a Program never shows the
	// values, which may be secrets.
	read *envRead
}

// String returns the entry as written in the file: the path, after a "-"
// when the file may be missing.
func (f EnvFile) String() string {
	if f.Optional {
		return "-" + f.Path
	}
	return f.Path
}

// envRead is the outcome of reading one env file.
type envRead struct {
	missing bool
	vars    []envVar
	err     *envError // a line that does not parse
	readErr error     // the file could not be read
}

// envVar is one variable of an env file.
type envVar struct{ name, value string }

// envError is a line of an env file that does not parse. Its message never
// quotes the line: it may hold a secret.
type envError struct {
	line int
	msg  string
}

// Env returns the variables the program adds to its environment: those of
// its env files, in order (a later file overrides an earlier one), then
// its environment table, which overrides them. The values may be secrets:
// they are for the process, never for logs, status or events.
func (p *Program) Env() map[string]string {
	env := map[string]string{}
	for _, f := range p.EnvFile {
		if f.read != nil {
			for _, v := range f.read.vars {
				env[v.name] = v.value
			}
		}
	}
	maps.Copy(env, p.Environment)
	return env
}

func envFilesEqual(a, b []EnvFile) bool {
	return slices.EqualFunc(a, b, func(x, y EnvFile) bool {
		if x.Path != y.Path || x.Optional != y.Optional || (x.read == nil) != (y.read == nil) {
			return false
		}
		return x.read == nil || x.read.missing == y.read.missing && slices.Equal(x.read.vars, y.read.vars)
	})
}

var envFileCodec = &codec[[]EnvFile]{
	typ: "array of paths (relative to the file's directory); a leading `-` allows the file to be missing",
	decode: scalar(func(t *table, key []string, v any) ([]EnvFile, bool) {
		paths, ok := t.strArray(key, v)
		if !ok {
			return nil, false
		}
		out := make([]EnvFile, 0, len(paths))
		for i, p := range paths {
			rest, optional := strings.CutPrefix(p, "-")
			if rest == "" {
				t.keyErr(key, "element %d: empty path", i)
				return nil, false
			}
			out = append(out, EnvFile{Path: resolvePath(t.d.file, rest), Optional: optional})
		}
		return out, true
	}),
	equal: envFilesEqual,
	clone: slices.Clone[[]EnvFile],
	toml: func(fs []EnvFile) string {
		s := make([]string, len(fs))
		for i, f := range fs {
			s[i] = f.String()
		}
		return tomlStrings(s)
	},
	show: func(fs []EnvFile) string {
		s := make([]string, len(fs))
		for i, f := range fs {
			s[i] = f.String()
		}
		return strings.Join(s, ",")
	},
}

// readEnv reads and parses the env file at path, once per load.
func (ld *loader) readEnv(path string) *envRead {
	if r, ok := ld.env[path]; ok {
		return r
	}
	r := &envRead{}
	data, err := readRegular(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.missing = true
		ld.src.add(Source{Path: path, Kind: SourceEnv, Missing: true})
	case err != nil:
		r.readErr = err
		ld.src.add(Source{Path: path, Kind: SourceEnv, Missing: true})
	default:
		ld.src.add(Source{Path: path, Kind: SourceEnv, Sum: sha256.Sum256(data)})
		r.vars, r.err = parseEnv(data)
		if r.err != nil {
			r.vars = nil
		}
	}
	ld.env[path] = r
	return r
}

// envFiles reads the env files of p and reports their problems, each file's
// once, naming the section and line that set env_file.
func (ld *loader) envFiles(b *builder, p *Program) {
	if len(p.EnvFile) == 0 {
		return
	}
	p.EnvFile = slices.Clone(p.EnvFile)
	cfg := b.cfg
	section, file, line := "programs."+p.Name, p.File, p.Line
	if l, ok := cfg.lines[p.File].lookup("programs", p.Name, "env_file"); ok {
		line = l
	} else if l, ok := cfg.lines[cfg.File].lookup("defaults", "env_file"); ok {
		section, file, line = "defaults", cfg.File, l
	}
	setAt := origin{file, line}
	for i := range p.EnvFile {
		ef := &p.EnvFile[i]
		r := ld.readEnv(ef.Path)
		ef.read = r
		problem := r.readErr != nil || r.err != nil || r.missing && !ef.Optional
		if !problem || ld.envReported[ef.Path] {
			continue
		}
		ld.envReported[ef.Path] = true
		e := &Error{File: file, Line: line, Program: section, Key: "env_file"}
		switch {
		case r.err != nil:
			if !slices.Contains(b.files, ef.Path) {
				b.files = append(b.files, ef.Path)
			}
			e.File, e.Line = ef.Path, r.err.line
			e.Msg = fmt.Sprintf("%s (an env_file of %s)", r.err.msg, setAt)
		case r.readErr != nil:
			e.Msg = fmt.Sprintf("key %q: cannot read %s", "env_file", describeReadError(r.readErr))
		default:
			e.Msg = fmt.Sprintf("key %q: %s does not exist (a path written with a leading \"-\" may be missing)",
				"env_file", ef.Path)
		}
		b.d.add(e)
	}
}

// readEnvFiles reads the env files of p, a program added to a loaded
// configuration; it reads nothing for a configuration Parse made.
func (c *Config) readEnvFiles(p *Program) error {
	if c.Sources == nil || len(p.EnvFile) == 0 {
		return nil
	}
	src := *c.Sources
	src.Files = slices.Clone(src.Files)
	ld := newLoader(&src)
	for _, q := range c.Programs {
		for _, f := range q.EnvFile {
			if f.read != nil {
				ld.env[f.Path] = f.read
			}
		}
	}
	b := &builder{cfg: c, d: newDecoder(c.File, c.lines[c.File]), files: []string{c.File}}
	ld.envFiles(b, p)
	if errs := *b.d.errs; len(errs) > 0 {
		sortErrorsByFile(errs, b.files)
		return errs
	}
	*c.Sources = src
	return nil
}

// parseEnv reads an env file: lines of NAME=VALUE, where
//
//   - blank lines and lines whose first non-blank character is "#" are
//     skipped, and "export " before the name is allowed and ignored;
//   - NAME is letters, digits, "_" and ".", not beginning with a digit,
//     and blanks around "=" are ignored;
//   - a VALUE in single quotes is taken literally; one in double quotes
//     turns \n, \t, \r, \" and \\ into a newline, a tab, a carriage return,
//     a quote and a backslash, and keeps any other backslash; after the
//     closing quote only blanks and a "#" comment may follow; a quoted
//     value ends on its line;
//   - an unquoted VALUE runs to the end of the line or to a "#" after a
//     blank, blanks around it removed; it may be empty;
//   - nothing is expanded: "$X" is a dollar sign and an X.
//
// A later line overrides an earlier one of the same NAME. A UTF-8 byte
// order mark at the start and carriage returns at line ends are ignored.
// The first line that does not parse is returned as an envError; its
// message names the variable, never the value.
func parseEnv(data []byte) ([]envVar, *envError) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	var out []envVar
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		v, ok, err := parseEnvLine(string(bytes.TrimSuffix(line, []byte("\r"))))
		if err != "" {
			return nil, &envError{line: n, msg: err}
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func trimBlanks(s string) string { return strings.Trim(s, " \t") }

func isEnvNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || !first && (c >= '0' && c <= '9' || c == '.')
}

// parseEnvLine parses one line: a variable (ok), nothing, or the problem.
func parseEnvLine(s string) (v envVar, ok bool, problem string) {
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return envVar{}, false, ""
	}
	if strings.IndexByte(s, 0) >= 0 {
		return envVar{}, false, "the line contains a NUL byte, which no environment can hold"
	}
	if rest, found := strings.CutPrefix(s, "export"); found && rest != "" && isBlank(rest[0]) {
		s = strings.TrimLeft(rest, " \t")
	}
	i := 0
	for i < len(s) && isEnvNameByte(s[i], i == 0) {
		i++
	}
	name, rest := s[:i], strings.TrimLeft(s[i:], " \t")
	switch {
	case name == "" || rest != "" && rest[0] != '=':
		return envVar{}, false, `expected NAME=VALUE, with a NAME of letters, digits, "_" and "." not beginning with a digit`
	case rest == "":
		return envVar{}, false, fmt.Sprintf("%q has no \"=\" and value", name)
	}
	value, problem := parseEnvValue(rest[1:])
	if problem != "" {
		return envVar{}, false, fmt.Sprintf("the value of %q: %s", name, problem)
	}
	return envVar{name: name, value: value}, true, ""
}

// parseEnvValue parses what follows the "=".
func parseEnvValue(s string) (string, string) {
	t := strings.TrimLeft(s, " \t")
	if t == "" {
		return "", ""
	}
	switch t[0] {
	case '\'':
		end := strings.IndexByte(t[1:], '\'')
		if end < 0 {
			return "", "no closing single quote on the line"
		}
		return t[1 : 1+end], afterQuote(t[2+end:])
	case '"':
		var b strings.Builder
		for i := 1; i < len(t); i++ {
			c := t[i]
			switch {
			case c == '"':
				return b.String(), afterQuote(t[i+1:])
			case c == '\\' && i+1 < len(t):
				i++
				switch t[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\':
					b.WriteByte(t[i])
				default:
					b.WriteByte('\\')
					b.WriteByte(t[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", "no closing double quote on the line"
	}
	// Unquoted: up to a "#" that follows a blank.
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && isBlank(s[i-1]) {
			s = s[:i]
			break
		}
	}
	return trimBlanks(s), ""
}

// afterQuote checks what follows a closing quote: blanks, and perhaps a
// comment.
func afterQuote(rest string) string {
	rest = strings.TrimLeft(rest, " \t")
	if rest == "" || rest[0] == '#' {
		return ""
	}
	return "unexpected text after the closing quote (quote the whole value)"
}
