package importer

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// procfileEntry is one "name: command" line.
type procfileEntry struct {
	name, command string
	line          int
}

// parseProcfile reads a Procfile: "name: command" lines (names of letters,
// digits, '_' and '-', as foreman and honcho read them), blank lines and
// '#' comments. Any other line is an error, and so is a name given twice.
func parseProcfile(file string, data []byte) ([]procfileEntry, error) {
	if !utf8.Valid(data) {
		line := 1 + strings.Count(string(data[:firstInvalidUTF8(data)]), "\n")
		return nil, &Error{File: file, Line: line, Msg: "not UTF-8 text"}
	}
	if i := strings.IndexByte(string(data), 0); i >= 0 {
		return nil, &Error{File: file, Line: 1 + strings.Count(string(data[:i]), "\n"), Msg: "a NUL byte: not a text file"}
	}
	var out []procfileEntry
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		m := procfileLine.FindStringSubmatch(line)
		if m == nil {
			return nil, &Error{File: file, Line: i + 1, Msg: "not a \"name: command\" line (a name of letters, digits, '_' and '-' at the start of the line): " + quoteLine(t)}
		}
		name, cmd := m[1], strings.TrimSpace(m[2])
		if cmd == "" {
			return nil, &Error{File: file, Line: i + 1, Msg: fmt.Sprintf("process type %q has no command", name)}
		}
		if first, dup := seen[name]; dup {
			return nil, &Error{File: file, Line: i + 1, Msg: fmt.Sprintf("process type %q is already defined at line %d", name, first)}
		}
		seen[name] = i + 1
		out = append(out, procfileEntry{name: name, command: cmd, line: i + 1})
	}
	return out, nil
}

// Procfile conventions of foreman and honcho.
const (
	procfileBasePort = 5000
	procfilePortStep = 100
)

func (c *converter) procfile(data []byte) error {
	entries, err := parseProcfile(c.path, data)
	if err != nil {
		return err
	}
	c.doc.header = []string{
		fmt.Sprintf("Converted by `supervise import` from %s (Procfile).", c.path),
		"",
		"Each process type is a program, run by /bin/sh in the Procfile's directory with the",
		".env file beside it (when there is one), as foreman and honcho run them.",
		fmt.Sprintf("PORT: foreman and honcho give each process type its own port, %d for the first, %d for",
			procfileBasePort, procfileBasePort+procfilePortStep),
		fmt.Sprintf("the second and so on (%d more each); environment PORT below keeps that. Heroku sets",
			procfilePortStep),
		"PORT for web processes only, to a port of its router's choosing: set the port your proxy",
		"or load balancer expects.",
		"Unlike foreman and honcho, which stop everything when one process ends, supervise restarts",
		"an ended program (restart = \"always\", as Heroku restarts dynos); set critical = true on",
		"a program whose end must stop the others.",
	}
	c.doc.defaults.set("directory", tomlString(c.dir), "the Procfile's directory")
	c.doc.defaults.set("env_file", tomlStrings([]string{"-" + filepath.Join(c.dir, ".env")}), "read by foreman and honcho when it exists")
	c.doc.defaults.set("restart", tomlString("always"), "as Heroku restarts dynos that end")
	for i, e := range entries {
		t := c.doc.program(e.name)
		t.comments = []string{fmt.Sprintf("%s:%d %s", c.path, e.line, e.name)}
		t.set("command", tomlString(e.command), fmt.Sprintf("line %d", e.line))
		port := procfileBasePort + i*procfilePortStep
		t.set("environment", tomlMap(map[string]string{"PORT": strconv.Itoa(port)}), "foreman's and honcho's PORT")
		if e.name == "release" {
			c.note(c.path, e.line, "release", "Heroku runs it once, before the other process types start; here it is a program like the others: "+
				"to keep Heroku's order, set restart = \"never\" in it and depends_on = { release = \"completed\" } in the others")
		}
	}
	return nil
}
