// Package importer converts the configuration of another supervisor into
// a supervise TOML file (SPEC §17): a supervisord INI file (with its
// [include] files), a Procfile, or a process-compose YAML file.
//
// What it promises:
//
//   - The output is stable: the same input (and the same environment
//     variables, for the few values a source takes from the environment
//     when it loads) gives the same bytes. Programs come in the order of the
//     source; keys in the order of supervise's key reference; environment
//     tables and dependency tables sorted by name.
//   - Each program's table is headed by a comment naming the file and line
//     it came from, and each key says which source setting it comes from.
//   - A setting is mapped only where supervise can do what the source
//     does; a setting it cannot map, or maps with a difference, is a Note
//     (file, line, setting, why), never silently dropped. Where the source's
//     defaults differ from supervise's, [defaults] restores the source's.
//   - A file that cannot be parsed (or that its own supervisor would
//     refuse: an unknown %(name)s, an unterminated quote) is an *Error with
//     its file and line.
//
// Nothing here starts a program or writes a file.
package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Format is a source format.
type Format string

// The formats Convert reads.
const (
	Supervisord    Format = "supervisord"
	Procfile       Format = "procfile"
	ProcessCompose Format = "process-compose"
)

// Formats lists the formats, as --format takes them.
var Formats = []Format{Supervisord, Procfile, ProcessCompose}

// Options tune a conversion.
type Options struct {
	// Format is the source's format; "" detects it from the content.
	Format Format
	// LookupEnv reads the environment of the import, for the few values
	// a source takes from its own environment when it loads and that no
	// shell can read at run time instead (supervisord's %(ENV_X)s outside
	// a command, process-compose's $X outside a command). nil is
	// os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// Hostname is the host name, for supervisord's %(host_node_name)s
	// outside a command; nil is os.Hostname.
	Hostname func() (string, error)
}

// Result is a conversion.
type Result struct {
	Format Format
	// Files lists the files read: the source, then its includes.
	Files []string
	// TOML is the supervise configuration.
	TOML []byte
	// Notes lists what was not converted, or not exactly, in the order of
	// the source.
	Notes []Note
}

// Note is a setting of the source that the output does not carry, or
// carries with a difference.
type Note struct {
	File    string
	Line    int    // 0 when the note is about the whole file
	Setting string // "[program:web] umask", "processes.web.is_daemon"
	Why     string
}

// String formats the note as "file:line: setting: why".
func (n Note) String() string {
	at := n.File
	if n.Line > 0 {
		at = fmt.Sprintf("%s:%d", n.File, n.Line)
	}
	return at + ": " + n.Setting + ": " + n.Why
}

// Error is a source file that cannot be converted: it does not parse, or
// its own supervisor would refuse it.
type Error struct {
	File string
	Line int // 0 when no line applies
	Msg  string
}

// Error formats the problem as "file:line: message".
func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

// ConvertFile reads the file at path and converts it. path is used as
// given in comments and notes; included files are named by their path.
func ConvertFile(path string, opts Options) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return Convert(path, data, opts)
}

// Convert converts data, the content of the file at path (whose
// directory is where relative paths and includes are taken from).
func Convert(path string, data []byte, opts Options) (*Result, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Hostname == nil {
		opts.Hostname = os.Hostname
	}
	format := opts.Format
	if format == "" {
		var err error
		if format, err = Detect(data); err != nil {
			return nil, &Error{File: path, Msg: err.Error()}
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	c := &converter{path: path, abs: abs, dir: filepath.Dir(abs), opts: opts, doc: newDocument(), files: []string{path}}
	switch format {
	case Supervisord:
		err = c.supervisord(data)
	case Procfile:
		err = c.procfile(data)
	case ProcessCompose:
		err = c.processCompose(data)
	default:
		return nil, fmt.Errorf("import: unknown format %q (want supervisord, procfile or process-compose)", format)
	}
	if err != nil {
		return nil, err
	}
	// Notes in the order of the source: by file, then line.
	fileIndex := func(f string) int {
		if i := slices.Index(c.files, f); i >= 0 {
			return i
		}
		return len(c.files)
	}
	sort.SliceStable(c.notes, func(i, j int) bool {
		a, b := c.notes[i], c.notes[j]
		if fa, fb := fileIndex(a.File), fileIndex(b.File); fa != fb {
			return fa < fb
		}
		return a.Line < b.Line
	})
	return &Result{Format: format, Files: c.files, TOML: c.doc.bytes(), Notes: c.notes}, nil
}

// converter holds one conversion.
type converter struct {
	path  string // the source as named
	abs   string // its absolute path
	dir   string // its absolute directory
	opts  Options
	doc   *document
	notes []Note
	files []string
}

// note records a note.
func (c *converter) note(file string, line int, setting, why string, args ...any) {
	if len(args) > 0 {
		why = fmt.Sprintf(why, args...)
	}
	if setting == "" {
		setting = `""` // an empty key
	}
	c.notes = append(c.notes, Note{File: file, Line: line, Setting: setting, Why: why})
}

var (
	procfileLine = regexp.MustCompile(`^([A-Za-z0-9_-]+):[ \t]*(.*)$`)
	iniHeaderRE  = regexp.MustCompile(`^\s*\[[^\]]+\]`)
)

// Detect tells the format of data from its content: a supervisord file
// begins (after comments) with a [section] header; a process-compose file
// is a YAML mapping with a "processes" mapping; a Procfile is lines of
// "name: command" (and # comments).
func Detect(data []byte) (Format, error) {
	text := string(data)
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
			continue
		}
		if iniHeaderRE.MatchString(line) {
			return Supervisord, nil
		}
		break
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) == nil && len(root.Content) == 1 {
		if m := root.Content[0]; m.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(m.Content); i += 2 {
				if m.Content[i].Value == "processes" && m.Content[i+1].Kind == yaml.MappingNode {
					return ProcessCompose, nil
				}
			}
		}
	}
	procfile, any := true, false
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		any = true
		if !procfileLine.MatchString(strings.TrimRight(line, "\r")) {
			procfile = false
			break
		}
	}
	if procfile && any {
		return Procfile, nil
	}
	return "", fmt.Errorf("cannot tell the format: not a supervisord file ([program:x] sections), " +
		"a process-compose file (a YAML processes: mapping) or a Procfile (name: command lines); use --format")
}

// rel names file for comments and notes: as given for the source, else
// relative to the source's directory when it is below it.
func (c *converter) rel(file string) string {
	if file == c.abs {
		return c.path
	}
	if r, err := filepath.Rel(c.dir, file); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.Join(filepath.Dir(c.path), r)
	}
	return file
}
