package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/supervise/supervise/procs"
)

// Warning is a setting that is valid but, as this machine is now, would
// make a start fail: a binary, directory, user or group that does not
// exist. It is not an error, since it may be fixed before the start (a
// binary on a volume mounted later), so `run` starts anyway; it is for
// `validate` to report (and `validate --strict` to fail on). Its text is "File:Line: Section: key "k": Msg", like an
// Error's.
type Warning struct {
	File    string
	Line    int    // the line that sets the key (in the program's table or [defaults]), else the table's
	Program string // the section: "programs.web" or "teardown.x"
	Key     string
	Msg     string
}

// String formats the warning as "file:line: section: key "k": message".
func (w Warning) String() string {
	return (&Error{File: w.File, Line: w.Line, Program: w.Program, Msg: fmt.Sprintf("key %q: %s", w.Key, w.Msg)}).Error()
}

// defaultPath is the PATH a command is looked up in when neither the
// program's environment nor the supervisor's has one, as procs does.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Warnings checks what the file names on this machine, as a start would
// find it now: that each program's, teardown step's and hook's
// command[0], and the command of each exec probe, exists and is
// executable (a name without "/" looked up in the PATH the program gets),
// that its directory exists, that its user and group exist (as
// procs.Credential resolves them; unknown numeric ids are allowed) and
// that the directory of a stdout or stderr file exists. It checks every
// instance, with its templates replaced, and reports a problem that
// instances share once. It returns the problems in file order, none when
// all is well. It reads the file system and the user database, so it is
// for `validate`, not for the event loop.
func (c *Config) Warnings() []Warning {
	var out []Warning
	// Instances share their table: a problem they have in common is
	// reported once.
	seen := map[Warning]bool{}
	add := func(w Warning) {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	for _, name := range c.Order {
		p := c.Programs[name]
		at := func(key, format string, args ...any) {
			file, line := c.keyLine(p, key)
			add(Warning{File: file, Line: line, Program: "programs." + p.Base, Key: key, Msg: fmt.Sprintf(format, args...)})
		}
		if msg := checkCommand(p.Command, p.Directory, programPath(p)); msg != "" {
			at("command", "%s", msg)
		}
		for _, pr := range []struct {
			key   string
			probe *Probe
		}{{"readiness", p.Readiness}, {"liveness", p.Liveness}} {
			if pr.probe == nil || pr.probe.Kind() != ProbeExec {
				continue
			}
			if msg := checkCommand(pr.probe.Exec, p.Directory, programPath(p)); msg != "" {
				file, line := c.probeLine(p, pr.key)
				add(Warning{File: file, Line: line, Program: "programs." + p.Base, Key: pr.key + ".exec", Msg: msg})
			}
		}
		if p.Directory != "" {
			if fi, err := os.Stat(p.Directory); err != nil {
				at("directory", "%s", pathProblem(p.Directory, err))
			} else if !fi.IsDir() {
				at("directory", "%s is not a directory", p.Directory)
			}
		}
		if p.User != "" {
			if _, err := procs.Credential(p.User, ""); err != nil {
				at("user", "%s", credentialProblem("user", p.User, procs.ErrUnknownUser, err))
			}
		}
		if p.Group != "" {
			if _, err := procs.Credential("", p.Group); err != nil {
				at("group", "%s", credentialProblem("group", p.Group, procs.ErrUnknownGroup, err))
			}
		}
		for _, o := range []struct {
			key string
			out Output
		}{{"stdout", p.Stdout}, {"stderr", p.Stderr}} {
			if o.out.Kind != OutputFile {
				continue
			}
			dir := filepath.Dir(o.out.Path)
			if fi, err := os.Stat(dir); err != nil {
				at(o.key, "the directory of %s: %s", o.out.Path, pathProblem(dir, err))
			} else if !fi.IsDir() {
				at(o.key, "the directory of %s: %s is not a directory", o.out.Path, dir)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Teardown)) {
		s := c.Teardown[name]
		if msg := checkCommand(s.Command, "", os.Getenv("PATH")); msg != "" {
			line := c.lines[s.File].line("teardown", name, "command")
			out = append(out, Warning{File: s.File, Line: line, Program: "teardown." + name, Key: "command", Msg: msg})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Hooks)) {
		h := c.Hooks[name]
		if msg := checkCommand(h.Command, "", os.Getenv("PATH")); msg != "" {
			line := c.lines[h.File].line("hooks", name, "command")
			out = append(out, Warning{File: h.File, Line: line, Program: "hooks." + name, Key: "command", Msg: msg})
		}
	}
	return out
}

// keyLine returns the file and line that set key for p: in its own
// table, else in [defaults] (of the main file), else p's header.
func (c *Config) keyLine(p *Program, key string) (string, int) {
	if l, ok := c.lines[p.File].lookup("programs", p.Base, key); ok {
		return p.File, l
	}
	if l, ok := c.lines[c.File].lookup("defaults", key); ok {
		return c.File, l
	}
	return p.File, p.Line
}

// probeLine returns the file and line of the exec key of the probe table
// key (readiness or liveness) of p, else of the table (in p's file, else
// in [defaults] of the main file), else p's header.
func (c *Config) probeLine(p *Program, key string) (string, int) {
	for _, at := range []struct {
		file string
		path []string
	}{
		{p.File, []string{"programs", p.Base, key, "exec"}}, {p.File, []string{"programs", p.Base, key}},
		{c.File, []string{"defaults", key, "exec"}}, {c.File, []string{"defaults", key}},
	} {
		if l, ok := c.lines[at.file].lookup(at.path...); ok {
			return at.file, l
		}
	}
	return p.File, p.Line
}

// programPath is the PATH the program's command is looked up in.
func programPath(p *Program) string {
	if v, ok := p.Env()["PATH"]; ok {
		return v
	}
	return os.Getenv("PATH")
}

// checkCommand describes why argv[0] could not be run, or returns "".
// A name with a "/" is used as given, relative to dir (not checked when
// dir is empty, since the supervisor's working directory is not known
// here); a bare name is looked up in pathVar.
func checkCommand(argv []string, dir, pathVar string) string {
	if len(argv) == 0 {
		return ""
	}
	name := argv[0]
	if strings.Contains(name, "/") {
		check := name
		if !filepath.IsAbs(check) {
			if dir == "" {
				return ""
			}
			check = filepath.Join(dir, check)
		}
		fi, err := os.Stat(check)
		switch {
		case err != nil:
			return pathProblem(check, err)
		case !fi.Mode().IsRegular():
			return check + " is not a regular file"
		case fi.Mode().Perm()&0o111 == 0:
			return check + " is not executable"
		}
		return ""
	}
	if pathVar == "" {
		pathVar = defaultPath
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" {
			d = "."
		}
		cand := filepath.Join(d, name)
		if !filepath.IsAbs(cand) {
			if dir == "" {
				return "" // relative to a working directory not known here
			}
			cand = filepath.Join(dir, cand)
		}
		if fi, err := os.Stat(cand); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return ""
		}
	}
	return fmt.Sprintf("%q is not found in PATH (%s)", name, pathVar)
}

// pathProblem describes a stat error of path.
func pathProblem(path string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return path + " does not exist"
	case errors.Is(err, fs.ErrPermission):
		return path + ": permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return path + ": " + pe.Err.Error()
	}
	return err.Error()
}

func credentialProblem(kind, name string, unknown, err error) string {
	if errors.Is(err, unknown) {
		return fmt.Sprintf("unknown %s %q", kind, name)
	}
	var se *procs.SpawnError
	if errors.As(err, &se) {
		err = se.Err
	}
	return fmt.Sprintf("looking up %s %q: %v", kind, name, err)
}
