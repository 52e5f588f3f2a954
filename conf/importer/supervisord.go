package importer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/supervise/supervise/conf"
)

// supervisord's defaults, from its options.py.
const (
	svPriority     = 999
	svStartsecs    = 1
	svStartretries = 3
	svMaxbytes     = 50 << 20
	svBackups      = 10
)

// svConv converts one supervisord configuration.
type svConv struct {
	*converter
	ini        *iniDoc
	hasInclude bool
	supEnv     map[string]string    // [supervisord] environment, as supervisord expands it
	groups     map[string]*svGroup  // by member program name
	groupList  []*svGroup           // in the order of their sections
	programs   map[string]*svOutput // by program name
	names      map[string]string    // output name → where it was taken, for collisions
	priorities bool                 // some program stops in another order than the default
	cur        *table               // the program being converted
}

// svGroup is a [group:x] section.
type svGroup struct {
	name     string
	sec      *iniSection
	priority int
	members  []string
	done     bool // its comment is written
}

// svOutput is a program as converted.
type svOutput struct {
	name string // supervise's
	t    *table
}

// svSetting is one key of a section, read as supervisord reads it.
type svSetting struct {
	k   *iniKey
	raw string // with %(here)s replaced where supervisord replaces it textually
}

func (c *converter) supervisord(data []byte) error {
	sv := &svConv{converter: c, ini: &iniDoc{}, groups: map[string]*svGroup{}, programs: map[string]*svOutput{}, names: map[string]string{}}
	if err := sv.ini.read(c.abs, data); err != nil {
		return sv.fixErr(err)
	}
	if inc := sv.ini.section("include"); inc != nil {
		sv.hasInclude = true
		if err := sv.includes(inc); err != nil {
			return err
		}
	}
	if err := sv.supervisordSection(); err != nil {
		return err
	}
	if err := sv.readGroups(); err != nil {
		return err
	}
	for _, s := range sv.ini.sections {
		kind, name, _ := strings.Cut(s.name, ":")
		at := sv.rel(s.file)
		switch {
		case s.name == "supervisord" || s.name == "include" || kind == "group" && name != "":
		case kind == "program" && name != "":
			if err := sv.program(s, name); err != nil {
				return err
			}
		case kind == "eventlistener":
			sv.note(at, s.line, "["+s.name+"]", "not converted: run its command from a hook instead, [hooks.%s] with the events it wants (SPEC §15)", hookName(name))
		case kind == "fcgi-program":
			sv.note(at, s.line, "["+s.name+"]", "not converted: supervise does not open sockets for its programs; run the FastCGI server as a program that listens itself")
		case s.name == "unix_http_server":
			sv.note(at, s.line, "["+s.name+"]", "not converted: supervise has its own control socket ([supervisor] socket); supervise status, start, stop, restart, signal and reload do what supervisorctl did")
		case s.name == "inet_http_server":
			sv.note(at, s.line, "["+s.name+"]", "not converted: supervise has no web interface; [supervisor] metrics = \"host:port\" serves /metrics and /healthz")
		case s.name == "supervisorctl":
			sv.note(at, s.line, "["+s.name+"]", "not converted: the supervise command line finds the control socket itself (-s SOCKET or $SUPERVISE_SOCKET to choose another)")
		case kind == "rpcinterface" || kind == "ctlplugin":
			sv.note(at, s.line, "["+s.name+"]", "not converted: supervise has no plugins; its control commands and `supervise events` replace the XML-RPC interface")
		default:
			sv.note(at, s.line, "["+s.name+"]", "not a supervisord section: ignored, as supervisord ignores it")
		}
	}
	sv.header()
	return nil
}

// fixErr names the file of an *Error as the notes do.
func (sv *svConv) fixErr(err error) error {
	var e *Error
	if errors.As(err, &e) {
		e.File = sv.rel(e.File)
	}
	return err
}

// errAt is an *Error at a key.
func (sv *svConv) errAt(k *iniKey, section, format string, args ...any) error {
	return &Error{File: sv.rel(k.file), Line: k.line, Msg: "[" + section + "] " + k.name + ": " + fmt.Sprintf(format, args...)}
}

// get reads key of section s (or of [DEFAULT]).
func (sv *svConv) get(s *iniSection, key string) *svSetting {
	k := sv.ini.get(s, key)
	if k == nil {
		return nil
	}
	raw := k.value
	if sv.hasInclude {
		// With an [include], supervisord replaces %(here)s in the text of
		// every value by the directory of the file the value was read from.
		raw = strings.ReplaceAll(raw, "%(here)s", filepath.Dir(k.file))
	}
	return &svSetting{k: k, raw: raw}
}

// baseExpansion is the dictionary of values outside programs.
func (sv *svConv) baseExpansion() *expansion {
	static := map[string]any{"here": sv.dir}
	for k, v := range sv.supEnv {
		static["ENV_"+k] = v
	}
	return &expansion{static: static, env: sv.opts.LookupEnv, host: true}
}

// scalar expands a value that no shell reads: references of the
// environment and the host name take their values of the import (noted).
func (sv *svConv) scalar(st *svSetting, section string, x *expansion) (string, error) {
	ps, err := pyFormat(st.raw, x)
	if err != nil {
		return "", sv.errAt(st.k, section, "%v", err)
	}
	return sv.plain(ps, 0, st.k, section), nil
}

// plain renders pieces where no shell runs: {replica} where exact, the
// values of the import for references of the environment and the host.
func (sv *svConv) plain(ps []piece, count int, k *iniKey, section string) string {
	var b strings.Builder
	setting := "[" + section + "] " + k.name
	for _, p := range ps {
		switch p.kind {
		case refNone:
			b.WriteString(p.text)
		case refReplica:
			t, exact, _ := replicaTemplate(p, count)
			b.WriteString(t)
			sv.replicaNote(p, count, k, setting, exact, t)
		case refEnv:
			if p.val != nil {
				b.WriteString(*p.val)
				sv.note(sv.rel(k.file), k.line, setting, "%s is the value of $%s when importing: supervisord reads its own environment when it starts, supervise does not expand variables here", p.src, p.name)
			} else {
				sv.note(sv.rel(k.file), k.line, setting, "%s: $%s is not set when importing, so it is left empty (supervisord would refuse to start without it)", p.src, p.name)
			}
		case refHost:
			h, err := sv.opts.Hostname()
			if err != nil {
				h = ""
			}
			b.WriteString(h)
			sv.note(sv.rel(k.file), k.line, setting, "%s is this host's name when importing (%q)", p.src, h)
		}
	}
	return b.String()
}

// replicaNote says what became of a %(process_num) reference outside a
// shell.
func (sv *svConv) replicaNote(p piece, count int, k *iniKey, setting string, exact bool, tmpl string) {
	at := sv.rel(k.file)
	switch {
	case !exact && p.off != 0:
		sv.note(at, k.line, setting, "%s counts from numprocs_start = %d, but {replica} counts from 0 (only a command can compute it, in /bin/sh)", p.src, p.off)
	case !exact:
		sv.note(at, k.line, setting, "%s pads the %d indices to different widths; {replica} is not padded, so some values differ from supervisord's (only a command can compute them, in /bin/sh)", p.src, count)
	case tmpl != "{replica}":
		limit := count
		for ; limit < maxReplicas; limit++ {
			if s, _ := pyConvert(limit, p.spec, p.src); s != strings.Replace(tmpl, "{replica}", strconv.Itoa(limit), 1) {
				break
			}
		}
		if limit < maxReplicas {
			got := strings.Replace(tmpl, "{replica}", strconv.Itoa(limit), 1)
			want, _ := pyConvert(limit, p.spec, p.src)
			sv.note(at, k.line, setting, "%s is written %s, since {replica} has no padding: the values are supervisord's for up to %d instances (scaled to more, instance %d would give %s where supervisord gives %s)",
				p.src, tmpl, limit, limit, got, want)
			if sv.cur != nil {
				sv.cur.comments = append(sv.cur.comments, fmt.Sprintf("%s in %s (line %d) is written %s: {replica} is not padded, so this holds for up to %d instances.",
					p.src, k.name, k.line, tmpl, limit))
			}
		}
	}
}

// maxReplicas is the largest replicas count supervise takes.
const maxReplicas = 10000

// includes reads the files of [include] files: space-separated glob
// patterns, relative to the main file's directory, each pattern's matches
// in sorted order. As supervisord does, it follows the main file's
// [include] only, and skips a match it cannot read.
func (sv *svConv) includes(inc *iniSection) error {
	st := sv.get(inc, "files")
	if st == nil {
		return &Error{File: sv.rel(inc.file), Line: inc.line, Msg: "[include] has no files setting"}
	}
	// The key as read now: an included file may set it again.
	k := *st.k
	st.k = &k
	files, err := sv.scalar(st, "include", sv.baseExpansion())
	if err != nil {
		return err
	}
	read := map[string]bool{sv.abs: true}
	for _, pattern := range strings.Fields(files) {
		full := pattern
		if !filepath.IsAbs(full) {
			full = filepath.Join(sv.dir, pattern)
		}
		matches, err := pyGlob(full)
		if err != nil {
			sv.note(sv.rel(st.k.file), st.k.line, "[include] files", "pattern %q: %v", pattern, err)
			continue
		}
		if len(matches) == 0 {
			sv.note(sv.rel(st.k.file), st.k.line, "[include] files", "no file matches %q", pattern)
			continue
		}
		for _, m := range matches {
			if read[m] {
				continue
			}
			read[m] = true
			data, err := os.ReadFile(m)
			if err != nil {
				sv.note(sv.rel(st.k.file), st.k.line, "[include] files", "%s: skipped, as supervisord skips a file it cannot read: %v", sv.rel(m), unwrapPath(err))
				continue
			}
			before := len(sv.ini.headers)
			if err := sv.ini.read(m, data); err != nil {
				return sv.fixErr(err)
			}
			sv.files = append(sv.files, sv.rel(m))
			for _, h := range sv.ini.headers[before:] {
				if h.name == "include" {
					sv.note(sv.rel(h.file), h.line, "[include]", "in an included file: not followed, as supervisord follows the [include] of the main file only")
				}
			}
		}
	}
	return nil
}

// unwrapPath drops the path of a *PathError, already named.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pyGlob is Python's glob.glob(pattern) for an absolute pattern: sorted
// matches of shell wildcards (*, ?, [...], [!...]), where a wildcard does
// not match a name beginning with a dot.
func pyGlob(pattern string) ([]string, error) {
	goPattern := strings.ReplaceAll(pattern, "[!", "[^")
	matches, err := filepath.Glob(goPattern)
	if err != nil {
		return nil, err
	}
	pat := strings.Split(filepath.Clean(pattern), string(filepath.Separator))
	var out []string
	for _, m := range matches {
		parts := strings.Split(m, string(filepath.Separator))
		hidden := false
		for i := range parts {
			if i < len(pat) && strings.ContainsAny(pat[i], "*?[") && !strings.HasPrefix(pat[i], ".") && strings.HasPrefix(parts[i], ".") {
				hidden = true
			}
		}
		if !hidden {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out, nil
}

// supervisordSection converts [supervisord]: its loglevel, and its
// environment, which supervisord gives every program.
func (sv *svConv) supervisordSection() error {
	sv.supEnv = map[string]string{}
	s := sv.ini.section("supervisord")
	if s == nil {
		return nil
	}
	at := sv.rel(s.file)
	for _, k := range sv.ini.keys(s) {
		st := sv.get(s, k.name)
		kat := sv.rel(k.file)
		switch k.name {
		case "environment":
			x := sv.baseExpansion()
			x.static = map[string]any{"here": sv.dir}
			value, err := sv.scalar(st, "supervisord", x)
			if err != nil {
				return err
			}
			keys, vals, err := keyValuePairs(value)
			if err != nil {
				return sv.errAt(k, "supervisord", "%v", err)
			}
			for _, name := range keys {
				sv.supEnv[name] = vals[name]
			}
			if len(keys) > 0 {
				sv.doc.defaults.set("environment", tomlMap(vals), fmt.Sprintf("[supervisord] environment (%s:%d)", kat, k.line))
			}
		case "loglevel":
			v, err := sv.scalar(st, "supervisord", sv.baseExpansion())
			if err != nil {
				return err
			}
			level, ok := map[string]string{"critical": "error", "error": "error", "warn": "warn", "info": "info", "debug": "debug", "trace": "debug", "blather": "debug"}[strings.ToLower(pyStrip(v))]
			if !ok {
				return sv.errAt(k, "supervisord", "%q is not a log level", v)
			}
			if l := strings.ToLower(pyStrip(v)); l == "trace" || l == "blather" || l == "critical" {
				sv.note(kat, k.line, "[supervisord] loglevel", "supervise has no level %q: %q is the nearest", l, level)
			}
			sv.doc.supervisor.set("log_level", tomlString(level), fmt.Sprintf("[supervisord] loglevel (%s:%d)", kat, k.line))
		case "nodaemon", "silent":
			// supervise always runs in the foreground and logs to stderr.
			if k.name == "nodaemon" {
				if v, err := sv.scalar(st, "supervisord", sv.baseExpansion()); err == nil {
					if b, err := pyBool(v); err == nil && !b {
						sv.note(kat, k.line, "[supervisord] nodaemon", "supervise does not daemonize: run it under systemd (Type=notify) or as a container's entrypoint")
					}
				}
			}
		case "logfile", "logfile_maxbytes", "logfile_backups":
			sv.note(kat, k.line, "[supervisord] "+k.name, "not converted: supervise writes its own log to stderr, for systemd's journal or the container's log")
		case "pidfile":
			sv.note(kat, k.line, "[supervisord] pidfile", "not converted: supervise writes no pid file (systemd and containers know its pid; supervise check reads [supervisor] heartbeat_file)")
		case "user":
			sv.note(kat, k.line, "[supervisord] user", "not converted: start supervise as that user (the programs' own user keys are converted)")
		case "umask":
			sv.note(kat, k.line, "[supervisord] umask", "not converted: supervise sets no umask; set it where supervise starts (systemd UMask=)")
		case "directory":
			sv.note(kat, k.line, "[supervisord] directory", "not converted: supervise does not change its working directory; programs run in their own directory, else in supervise's")
		case "minfds", "minprocs":
			sv.note(kat, k.line, "[supervisord] "+k.name, "not converted: supervise does not raise limits; set them where it starts (systemd LimitNOFILE=/LimitNPROC=, ulimit)")
		case "childlogdir":
			sv.note(kat, k.line, "[supervisord] childlogdir", "not converted: the output of a program without a log file goes to supervise's log (stdout = \"log\"), and `supervise logs` shows its last lines")
		default:
			sv.note(kat, k.line, "[supervisord] "+k.name, "not converted: supervise has no such setting")
		}
	}
	_ = at
	return nil
}

// readGroups reads the [group:x] sections.
func (sv *svConv) readGroups() error {
	for _, s := range sv.ini.sections {
		name, ok := strings.CutPrefix(s.name, "group:")
		if !ok || name == "" {
			continue
		}
		name = pyStrip(name)
		if name == "" {
			return &Error{File: sv.rel(s.file), Line: s.line, Msg: "[" + s.name + "]: no group name"}
		}
		if err := checkSvName(name); err != nil {
			return &Error{File: sv.rel(s.file), Line: s.line, Msg: "[" + s.name + "]: " + err.Error()}
		}
		g := &svGroup{name: name, sec: s, priority: svPriority}
		st := sv.get(s, "programs")
		if st == nil {
			return &Error{File: sv.rel(s.file), Line: s.line, Msg: "[" + s.name + "] has no programs setting"}
		}
		list, err := sv.scalar(st, s.name, sv.baseExpansion())
		if err != nil {
			return err
		}
		if p := sv.get(s, "priority"); p != nil {
			v, err := sv.scalar(p, s.name, sv.baseExpansion())
			if err != nil {
				return err
			}
			if g.priority, err = pyInt(v); err != nil {
				return sv.errAt(p.k, s.name, "%v", err)
			}
		}
		for _, k := range sv.ini.keys(s) {
			if k.name != "programs" && k.name != "priority" {
				sv.note(sv.rel(k.file), k.line, "["+s.name+"] "+k.name, "not a [group:x] setting: ignored, as supervisord ignores it")
			}
		}
		for _, m := range strings.Split(list, ",") {
			m = pyStrip(m)
			if m == "" && list == "" {
				continue
			}
			if sv.ini.section("program:"+m) == nil {
				if sv.ini.section("fcgi-program:"+m) != nil {
					sv.note(sv.rel(st.k.file), st.k.line, "["+s.name+"] programs", "%s is an [fcgi-program:%s], not converted", m, m)
					continue
				}
				return sv.errAt(st.k, s.name, "names %q, which is no [program:%s] (supervisord refuses this file)", m, m)
			}
			if other, ok := sv.groups[m]; ok {
				sv.note(sv.rel(st.k.file), st.k.line, "["+s.name+"] programs", "%s is also in [group:%s]: supervisord runs it twice, once per group; converted once, as a member of %s", m, other.name, other.name)
				continue
			}
			sv.groups[m] = g
			g.members = append(g.members, m)
		}
		sv.groupList = append(sv.groupList, g)
	}
	return nil
}

// checkSvName is supervisord's process_or_group_name check.
func checkSvName(name string) error {
	if i := strings.IndexAny(name, " :/"); i >= 0 {
		return fmt.Errorf("invalid name %q: supervisord refuses the character %q in a name", name, name[i])
	}
	return nil
}

var nameChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// outputName is the name of a program in supervise: the group's name and
// '-' before it for a member of a [group:x], characters supervise refuses
// replaced by '_', made unique.
func (sv *svConv) outputName(s *iniSection, prog string) string {
	name := prog
	if g := sv.groups[prog]; g != nil {
		name = g.name + "-" + prog
	}
	clean := nameChars.ReplaceAllString(name, "_")
	if clean != name {
		sv.note(sv.rel(s.file), s.line, "["+s.name+"]", "named %s here: supervise names use letters, digits, '_', '.' and '-'", clean)
	}
	unique := clean
	for i := 2; sv.names[unique] != ""; i++ {
		unique = fmt.Sprintf("%s-%d", clean, i)
	}
	if unique != clean {
		sv.note(sv.rel(s.file), s.line, "["+s.name+"]", "named %s here: %s is already the name of %s", unique, clean, sv.names[clean])
	}
	sv.names[unique] = "[" + s.name + "]"
	return unique
}

// header writes the comments at the top, and the defaults where
// supervisord's differ from supervise's.
func (sv *svConv) header() {
	h := []string{fmt.Sprintf("Converted by `supervise import` from %s (supervisord).", sv.path)}
	if len(sv.files) > 1 {
		h = append(h, "Included files: "+strings.Join(sv.files[1:], ", ")+".")
	}
	h = append(h, "",
		"Where supervise differs from supervisord:",
		"- A stop sends stop_signal, then SIGKILL after stop_timeout, to the program's whole process",
		"  group, as supervisord's stopasgroup/killasgroup = true do (by default supervisord signals",
		"  the program's own process only).",
		"- breaker.max_failures is startretries + 1: the failures in a row after which supervisord",
		"  gives up (FATAL). supervise's breaker then half-opens after reset_timeout and tries again.",
		"- supervisord also retries a run that ends within startsecs under autorestart = false or",
		"  with a code of exitcodes; supervise restarts as restart says, and under restart =",
		"  \"always\" counts a run shorter than min_uptime as a failure.",
		"- A program without a log file logs to supervise's output (supervise logs NAME shows its",
		"  last lines) instead of supervisord's AUTO files.")
	if sv.priorities {
		h = append(h,
			"- priority: supervisord starts low priorities first and stops high priorities first.",
			"  supervise stops in ascending stop_priority, so stop_priority = 999 - priority (a group's",
			"  priority for its programs) keeps supervisord's stop order; programs of equal priority",
			"  stop together. supervise starts every program at once: supervisord does not wait for",
			"  one to run before starting the next either; to wait, use depends_on.")
	}
	sv.doc.header = h
	sv.doc.shutdownBudget("the longest stopwaitsecs of each priority, one priority after the other, and 5s")
	sv.doc.defaults.set("min_uptime", tomlSeconds(svStartsecs), "supervisord's default startsecs")
	sv.doc.defaults.sub("breaker").set("max_failures", strconv.Itoa(svStartretries+1), "supervisord's default startretries + 1")
	if sv.priorities {
		sv.doc.defaults.set("stop_priority", "0", "999 - supervisord's default priority 999")
	}
}

// export is a variable of a program's environment that its command's
// /bin/sh computes, because its value refers to what is known only when
// the program starts.
type export struct {
	name string
	ps   []piece
}

var shellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// program converts one [program:x].
func (sv *svConv) program(s *iniSection, rawName string) error {
	name := pyStrip(rawName)
	sec := s.name
	if name == "" {
		return &Error{File: sv.rel(s.file), Line: s.line, Msg: "[" + sec + "]: no program name"}
	}
	if err := checkSvName(name); err != nil {
		return &Error{File: sv.rel(s.file), Line: s.line, Msg: "[" + sec + "]: " + err.Error()}
	}
	g := sv.groups[name]
	group := name
	if g != nil {
		group = g.name
	}
	t := sv.doc.program(sv.outputName(s, name))
	sv.cur = t
	defer func() { sv.cur = nil }()
	at := sv.rel(s.file)
	if g != nil && !g.done {
		g.done = true
		t.comments = append(t.comments, fmt.Sprintf("[group:%s] at %s:%d: programs %s, named %s-NAME here (supervisorctl's %s:NAME).",
			g.name, sv.rel(g.sec.file), g.sec.line, strings.Join(g.members, ", "), g.name, g.name), "")
	}
	head := fmt.Sprintf("[%s] at %s:%d", sec, at, s.line)
	if g != nil {
		head += fmt.Sprintf(", in [group:%s]", g.name)
	}
	t.comments = append(t.comments, head)

	x := sv.baseExpansion()
	x.static["program_name"] = name
	x.static["group_name"] = group
	used := map[string]bool{}
	get := func(key string) *svSetting {
		used[key] = true
		return sv.get(s, key)
	}
	from := func(st *svSetting) string { return sv.from(st, s) }
	// value expands a key read before supervisord knows the process
	// number; def is its default, "" if none.
	value := func(key string) (string, *svSetting, error) {
		st := get(key)
		if st == nil {
			return "", nil, nil
		}
		v, err := sv.scalar(st, sec, x)
		return v, st, err
	}
	intValue := func(key string, def int) (int, *svSetting, error) {
		v, st, err := value(key)
		if err != nil || st == nil {
			return def, st, err
		}
		n, err := pyInt(v)
		if err != nil {
			return 0, st, sv.errAt(st.k, sec, "%v", err)
		}
		return n, st, nil
	}
	boolValue := func(key string, def bool) (bool, *svSetting, error) {
		v, st, err := value(key)
		if err != nil || st == nil {
			return def, st, err
		}
		b, err := pyBool(v)
		if err != nil {
			return false, st, sv.errAt(st.k, sec, "%v", err)
		}
		return b, st, nil
	}

	// priority → stop_priority.
	prio, st, err := intValue("priority", svPriority)
	if err != nil {
		return err
	}
	switch {
	case g != nil && g.priority != svPriority:
		sv.priorities = true
		gp := sv.get(g.sec, "priority")
		t.set("stop_priority", strconv.Itoa(svPriority-g.priority), fmt.Sprintf("999 - [group:%s] priority (%s:%d)", g.name, sv.rel(gp.k.file), gp.k.line))
	case g != nil && st != nil:
		t.comments = append(t.comments, fmt.Sprintf("priority (line %d) orders it within its group only: the group's priority orders the group.", st.k.line))
	case st != nil && prio != svPriority:
		sv.priorities = true
		t.set("stop_priority", strconv.Itoa(svPriority-prio), "999 - "+from(st))
	}

	if v, st, err := boolValue("autostart", true); err != nil {
		return err
	} else if st != nil {
		t.set("autostart", tomlBool(v), from(st))
	}
	if v, st, err := value("autorestart"); err != nil {
		return err
	} else if st != nil {
		policy, err := autoRestart(v)
		if err != nil {
			return sv.errAt(st.k, sec, "%v", err)
		}
		t.set("restart", tomlString(policy), from(st))
	}
	if n, st, err := intValue("startsecs", svStartsecs); err != nil {
		return err
	} else if st != nil {
		if n < 0 {
			return sv.errAt(st.k, sec, "%d seconds: must not be negative", n)
		}
		t.set("min_uptime", tomlSeconds(n), from(st))
	}
	if n, st, err := intValue("startretries", svStartretries); err != nil {
		return err
	} else if st != nil {
		if n < 0 {
			return sv.errAt(st.k, sec, "%d: must not be negative", n)
		}
		t.sub("breaker").set("max_failures", strconv.Itoa(n+1), from(st)+" + 1")
	}
	if v, st, err := value("stopsignal"); err != nil {
		return err
	} else if st != nil {
		sig, err := conf.ParseSignal(v)
		if err != nil {
			return sv.errAt(st.k, sec, "%v", err)
		}
		t.set("stop_signal", tomlString(strings.TrimPrefix(conf.SignalName(sig), "SIG")), from(st))
	}
	stopWait, st, err := intValue("stopwaitsecs", 10)
	if err != nil {
		return err
	}
	if n := stopWait; st != nil {
		if n <= 0 {
			sv.note(sv.rel(st.k.file), st.k.line, "["+sec+"] stopwaitsecs", "%d: supervise waits at least a moment, written 1s: supervisord kills at its next tick, within a second", n)
			n = 1
		}
		t.set("stop_timeout", tomlSeconds(n), from(st))
		stopWait = n
	}
	order := prio
	if g != nil {
		order = g.priority
	}
	sv.doc.stops = append(sv.doc.stops, stopStep{order: -order, timeout: time.Duration(stopWait) * time.Second})
	stopAsGroup, sag, err := boolValue("stopasgroup", false)
	if err != nil {
		return err
	}
	killAsGroup, kag, err := boolValue("killasgroup", stopAsGroup)
	if err != nil {
		return err
	}
	if stopAsGroup && !killAsGroup {
		return sv.errAt(kag.k, sec, "stopasgroup = true with killasgroup = false (supervisord refuses this)")
	}
	for _, st := range []*svSetting{sag, kag} {
		if st != nil {
			t.comments = append(t.comments, fmt.Sprintf("%s (line %d): supervise always signals the process group.", st.k.name, st.k.line))
		}
	}
	if v, st, err := value("exitcodes"); err != nil {
		return err
	} else if st != nil {
		codes, err := exitCodes(v)
		if err != nil {
			return sv.errAt(st.k, sec, "%v", err)
		}
		t.set("success_exit_codes", tomlInts(codes), from(st))
	}
	redirect, _, err := boolValue("redirect_stderr", false)
	if err != nil {
		return err
	}
	numprocs, npSt, err := intValue("numprocs", 1)
	if err != nil {
		return err
	}
	start, nsSt, err := intValue("numprocs_start", 0)
	if err != nil {
		return err
	}
	if v, st, err := value("user"); err != nil {
		return err
	} else if st != nil {
		t.set("user", tomlString(v), from(st))
	}
	for _, key := range []string{"umask", "serverurl", "stdout_capture_maxbytes", "stderr_capture_maxbytes",
		"stdout_events_enabled", "stderr_events_enabled", "stdout_syslog", "stderr_syslog"} {
		v, st, err := value(key)
		if err != nil {
			return err
		}
		if st == nil {
			continue
		}
		setting := "[" + sec + "] " + key
		kat := sv.rel(st.k.file)
		switch key {
		case "umask":
			sv.note(kat, st.k.line, setting, "not converted: supervise sets no umask; write the command as \"umask %s; exec ...\" (run by /bin/sh) to keep it", pyStrip(v))
		case "serverurl":
			sv.note(kat, st.k.line, setting, "not converted: supervise gives programs no SUPERVISOR_SERVER_URL; a program may run `supervise` commands, which find the control socket themselves")
		case "stdout_capture_maxbytes", "stderr_capture_maxbytes":
			if n, err := byteSize(v); err != nil || n != 0 {
				sv.note(kat, st.k.line, setting, "not converted: supervise has no capture mode; `supervise events` and [hooks.NAME] (SPEC §15) report what programs do")
			}
		case "stdout_events_enabled", "stderr_events_enabled":
			if b, err := pyBool(v); err != nil || b {
				sv.note(kat, st.k.line, setting, "not converted: supervise sends no output events; `supervise logs -f` follows the output, and [hooks.NAME] (SPEC §15) run on state changes")
			}
		case "stdout_syslog", "stderr_syslog":
			if b, err := pyBool(v); err != nil || b {
				sv.note(kat, st.k.line, setting, "not converted: supervise does not write to syslog; its log (stdout = \"log\") goes to stderr, for the journal")
			}
		}
	}

	// process_name and numprocs.
	pname := get("process_name")
	if numprocs > 1 && (pname == nil || !strings.Contains(pname.raw, "%(process_num)")) {
		k := npSt.k
		if pname != nil {
			k = pname.k
		}
		return sv.errAt(k, sec, "numprocs = %d needs %%(process_num) in process_name (supervisord refuses this)", numprocs)
	}
	if pname != nil && pyStrip(pname.raw) != "%(program_name)s" {
		why := "not converted: supervise names a program after its table"
		if numprocs > 1 {
			why += fmt.Sprintf(", and its instances %s:0 ... %s:%d (supervise status %s shows them all)", t.path[1], t.path[1], numprocs-1, t.path[1])
		}
		sv.note(sv.rel(pname.k.file), pname.k.line, "["+sec+"] process_name", "%s", why)
	}
	if numprocs > maxReplicas {
		return sv.errAt(npSt.k, sec, "numprocs = %d: supervise runs at most %d instances of a program", numprocs, maxReplicas)
	}
	count := 1
	switch {
	case numprocs > 1:
		count = numprocs
		x.replica = &replicaRef{start: start, count: numprocs}
		t.set("replicas", strconv.Itoa(numprocs), from(npSt))
		x.static["numprocs"] = numprocs
	case numprocs < 1:
		t.set("replicas", "0", from(npSt))
		sv.note(sv.rel(npSt.k.file), npSt.k.line, "["+sec+"] numprocs", "%d: supervisord defines the program without any process; replicas = 0 does the same", numprocs)
		x.static["numprocs"] = numprocs
		x.static["process_num"] = start
	default:
		x.static["numprocs"] = numprocs
		x.static["process_num"] = start
	}
	if nsSt != nil && start != 0 && numprocs > 1 && !strings.Contains(sv.programText(s), "%(process_num)") {
		sv.note(sv.rel(nsSt.k.file), nsSt.k.line, "["+sec+"] numprocs_start", "only changes supervisord's process names: instances are %s:0 ... here", t.path[1])
	}

	// environment, then the keys that may refer to it.
	var exports []export
	if st := get("environment"); st != nil {
		ps, err := pyFormat(st.raw, x)
		if err != nil {
			return sv.errAt(st.k, sec, "%v", err)
		}
		text, refs := withSentinels(ps)
		keys, vals, err := keyValuePairs(text)
		if err != nil {
			return sv.errAt(st.k, sec, "%v", err)
		}
		env := map[string]string{}
		for _, k := range keys {
			vps := fromSentinels(vals[k], refs)
			if templateExact(vps, count) || !shellName.MatchString(k) {
				env[k] = sv.plain(vps, count, st.k, sec)
				x.static["ENV_"+k] = env[k]
				continue
			}
			exports = append(exports, export{name: k, ps: vps})
			t.comments = append(t.comments, fmt.Sprintf("environment %s (line %d) is set by the command's /bin/sh, which reads %s when the program starts.", k, st.k.line, refList(vps)))
		}
		if len(env) > 0 {
			t.set("environment", tomlMap(env), from(st))
		}
		dynamic := map[string]bool{}
		for _, e := range exports {
			dynamic[e.name] = true
			delete(x.static, "ENV_"+e.name)
		}
		osEnv := x.env
		x.env = func(name string) (string, bool) {
			if dynamic[name] {
				for _, e := range exports {
					if e.name == name {
						v := sv.plainQuiet(e.ps, count)
						return v, true
					}
				}
			}
			return osEnv(name)
		}
	}

	if st := get("directory"); st != nil {
		ps, err := pyFormat(st.raw, x)
		if err != nil {
			return sv.errAt(st.k, sec, "%v", err)
		}
		dir := sv.plain(ps, count, st.k, sec)
		if dir != "" && !filepath.IsAbs(dir) && !strings.HasPrefix(dir, "{") {
			sv.note(sv.rel(st.k.file), st.k.line, "["+sec+"] directory", "%q is relative: supervisord takes it from its own working directory, supervise from the directory of the configuration file", dir)
		}
		t.set("directory", tomlString(dir), from(st))
	}

	if err := sv.logs(s, t, x, count, redirect, get); err != nil {
		return err
	}

	st = get("command")
	if st == nil {
		return &Error{File: at, Line: s.line, Msg: "[" + sec + "] does not specify a command (supervisord refuses this)"}
	}
	ps, err := pyFormat(st.raw, x)
	if err != nil {
		return sv.errAt(st.k, sec, "%v", err)
	}
	cmd, shellWhy, err := sv.command(ps, count, exports, st.k, sec)
	if err != nil {
		return sv.errAt(st.k, sec, "%v", err)
	}
	t.set("command", cmd, from(st))
	if shellWhy != "" {
		t.comments = append(t.comments, fmt.Sprintf("command (line %d) runs through /bin/sh, which computes %s when the program starts.", st.k.line, shellWhy))
	}
	sv.literalTemplates(t, s)

	for _, k := range sv.ini.keys(s) {
		if !used[k.name] && !slices.Contains(svProgramKeys, k.name) {
			sv.note(sv.rel(k.file), k.line, "["+sec+"] "+k.name, "not a supervisord setting: ignored, as supervisord ignores it")
		}
	}
	return nil
}

// svProgramKeys are the keys of a [program:x] that supervisord reads.
var svProgramKeys = []string{"command", "process_name", "numprocs", "numprocs_start", "priority", "autostart",
	"startsecs", "startretries", "autorestart", "exitcodes", "stopsignal", "stopwaitsecs", "stopasgroup",
	"killasgroup", "user", "redirect_stderr", "stdout_logfile", "stdout_logfile_maxbytes",
	"stdout_logfile_backups", "stdout_capture_maxbytes", "stdout_events_enabled", "stdout_syslog",
	"stderr_logfile", "stderr_logfile_maxbytes", "stderr_logfile_backups", "stderr_capture_maxbytes",
	"stderr_events_enabled", "stderr_syslog", "environment", "directory", "umask", "serverurl"}

// from is the comment of a key converted from st of section s.
func (sv *svConv) from(st *svSetting, s *iniSection) string {
	if st.k.file == s.file {
		return fmt.Sprintf("%s (line %d)", st.k.name, st.k.line)
	}
	return fmt.Sprintf("%s (%s:%d)", st.k.name, sv.rel(st.k.file), st.k.line)
}

// programText is every value of a program, for looking for a reference.
func (sv *svConv) programText(s *iniSection) string {
	var b strings.Builder
	for _, k := range sv.ini.keys(s) {
		b.WriteString(k.value + "\n")
	}
	return b.String()
}

// literalTemplates notes the settings whose supervisord text holds
// {replica} or {name}, which supervise would replace.
func (sv *svConv) literalTemplates(t *table, s *iniSection) {
	for _, k := range sv.ini.keys(s) {
		switch k.name {
		case "command", "directory", "environment", "stdout_logfile", "stderr_logfile":
			if strings.Contains(k.value, "{replica}") || strings.Contains(k.value, "{name}") {
				sv.note(sv.rel(k.file), k.line, "["+s.name+"] "+k.name, "holds {replica} or {name}, which supervise replaces by the instance's index or name")
			}
		}
	}
}

// templateExact reports whether pieces render exactly without a shell.
func templateExact(ps []piece, count int) bool {
	for _, p := range ps {
		switch p.kind {
		case refEnv, refHost:
			return false
		case refReplica:
			if _, exact, _ := replicaTemplate(p, count); !exact {
				return false
			}
		}
	}
	return true
}

// refList names the references of pieces, for comments.
func refList(ps []piece) string {
	var names []string
	for _, p := range ps {
		switch p.kind {
		case refEnv:
			names = append(names, "$"+p.name)
		case refHost:
			names = append(names, "the host name")
		case refReplica:
			names = append(names, "the instance's index ($SUPERVISE_REPLICA)")
		}
	}
	return strings.Join(slices.Compact(names), " and ")
}

// plainQuiet renders pieces as plain does, without notes.
func (sv *svConv) plainQuiet(ps []piece, count int) string {
	var b strings.Builder
	for _, p := range ps {
		switch p.kind {
		case refNone:
			b.WriteString(p.text)
		case refReplica:
			t, _, _ := replicaTemplate(p, count)
			b.WriteString(t)
		case refEnv:
			if p.val != nil {
				b.WriteString(*p.val)
			}
		case refHost:
			h, _ := sv.opts.Hostname()
			b.WriteString(h)
		}
	}
	return b.String()
}

// command writes a program's command: an argv array when supervise can
// run it as supervisord does, else a /bin/sh script ("exec ARGV") that
// computes what only the start of the program knows. why names that.
func (sv *svConv) command(ps []piece, count int, exports []export, k *iniKey, sec string) (value, why string, err error) {
	text, refs := withSentinels(ps)
	argv, err := shlexSplit(text)
	if err != nil {
		return "", "", fmt.Errorf("cannot split the command as supervisord does: %w", err)
	}
	if len(argv) == 0 {
		return "", "", errors.New("the command is empty")
	}
	if argv[0] == "" {
		return "", "", errors.New("the command's program is an empty word")
	}
	words := make([][]piece, len(argv))
	shell := len(exports) > 0
	var all []piece
	for i, a := range argv {
		words[i] = fromSentinels(a, refs)
		all = append(all, words[i]...)
		if !templateExact(words[i], count) {
			shell = true
		}
	}
	for _, e := range exports {
		all = append(all, e.ps...)
	}
	for _, p := range all {
		if p.kind == refReplica {
			if t, exact, _ := replicaTemplate(p, count); exact {
				sv.replicaNote(p, count, k, "["+sec+"] "+k.name, exact, t)
			}
		}
	}
	if !shell {
		out := make([]string, len(words))
		for i, w := range words {
			for _, p := range w {
				if p.kind == refReplica {
					t, _, _ := replicaTemplate(p, count)
					out[i] += t
				} else {
					out[i] += p.text
				}
			}
		}
		return tomlStrings(out), "", nil
	}
	var b strings.Builder
	for _, e := range exports {
		b.WriteString("export " + e.name + "=" + shellWord(e.ps, count) + "; ")
	}
	b.WriteString("exec")
	for _, w := range words {
		b.WriteString(" " + shellWord(w, count))
	}
	return tomlString(b.String()), refList(all), nil
}

// svStream is one output stream of a program, as supervisord sets it.
type svStream struct {
	name     string // "stdout", "stderr"
	dest     string // supervise's: "" (the log), "null", "inherit", or a path
	file     bool   // dest is a file the supervisor may rotate
	maxbytes int64
	backups  int
	lf       *svSetting
	mb, bu   *svSetting
}

// logs converts the log file keys: stdout_logfile and stderr_logfile,
// with their maxbytes and backups as log_max_size and log_max_files, and
// redirect_stderr.
func (sv *svConv) logs(s *iniSection, t *table, x *expansion, count int, redirect bool, get func(string) *svSetting) error {
	sec := s.name
	var streams [2]svStream
	for i, name := range []string{"stdout", "stderr"} {
		st := &streams[i]
		st.name = name
		st.maxbytes, st.backups = svMaxbytes, svBackups
		if st.lf = get(name + "_logfile"); st.lf != nil {
			ps, err := pyFormat(st.lf.raw, x)
			if err != nil {
				return sv.errAt(st.lf.k, sec, "%v", err)
			}
			v := sv.plain(ps, count, st.lf.k, sec)
			switch strings.ToLower(v) {
			case "none", "off":
				st.dest = "null"
			case "auto":
			case "syslog":
				sv.note(sv.rel(st.lf.k.file), st.lf.k.line, "["+sec+"] "+st.lf.k.name, "not converted: supervise does not write to syslog; the output goes to supervise's log")
			default:
				st.dest, st.file = sv.logPath(v, name, st.lf)
			}
		}
		if st.mb = get(name + "_logfile_maxbytes"); st.mb != nil {
			v, err := sv.scalar(st.mb, sec, x)
			if err != nil {
				return err
			}
			if st.maxbytes, err = byteSize(v); err != nil {
				return sv.errAt(st.mb.k, sec, "%v", err)
			}
		}
		if st.bu = get(name + "_logfile_backups"); st.bu != nil {
			v, err := sv.scalar(st.bu, sec, x)
			if err != nil {
				return err
			}
			n, err := pyInt(v)
			if err != nil {
				return sv.errAt(st.bu.k, sec, "%v", err)
			}
			st.backups = max(n, 0)
		}
	}
	out, errs := &streams[0], &streams[1]
	if out.file && count > 1 && !strings.Contains(out.dest, "{replica}") && !strings.Contains(out.dest, "{name}") {
		out.dest = perInstance(out.dest)
		sv.note(sv.rel(out.lf.k.file), out.lf.k.line, "["+sec+"] stdout_logfile", "every instance writes its own file in supervise: %s", out.dest)
	}
	if !redirect && errs.file && count > 1 && !strings.Contains(errs.dest, "{replica}") && !strings.Contains(errs.dest, "{name}") {
		errs.dest = perInstance(errs.dest)
		sv.note(sv.rel(errs.lf.k.file), errs.lf.k.line, "["+sec+"] stderr_logfile", "every instance writes its own file in supervise: %s", errs.dest)
	}
	if out.dest != "" {
		t.set("stdout", tomlString(out.dest), sv.from(out.lf, s))
	}
	var rotated []*svStream
	if out.file && out.maxbytes > 0 {
		rotated = append(rotated, out)
	}
	if redirect {
		if errs.lf != nil && errs.dest != "" && errs.dest != "null" {
			sv.note(sv.rel(errs.lf.k.file), errs.lf.k.line, "["+sec+"] stderr_logfile", "ignored, as supervisord ignores it with redirect_stderr = true")
		}
		dest := out.dest
		if dest == "inherit" {
			dest = "/dev/stdout" // supervise's own stdout, as stdout's
		}
		rs := get("redirect_stderr")
		if dest != "" {
			t.set("stderr", tomlString(dest), sv.from(rs, s)+": as stdout")
		}
	} else {
		if errs.dest != "" {
			t.set("stderr", tomlString(errs.dest), sv.from(errs.lf, s))
		}
		if errs.file && errs.maxbytes > 0 {
			rotated = append(rotated, errs)
		}
	}
	if len(rotated) == 0 {
		return nil
	}
	r := rotated[0]
	// A stream whose file supervisord would not rotate, beside one it
	// rotates: supervise rotates both or neither.
	for _, st := range []*svStream{out, errs} {
		if st.file && st.maxbytes == 0 && !(redirect && st == errs) {
			sv.note(sv.rel(st.lf.k.file), st.lf.k.line, "["+sec+"] "+st.name+"_logfile", "supervisord does not rotate it, but supervise rotates both output files of a program with log_max_size (taken from %s)", r.name)
		}
	}
	if len(rotated) == 2 && (rotated[1].maxbytes != r.maxbytes || rotated[1].backups != r.backups) {
		k := rotated[1].lf.k
		if rotated[1].mb != nil {
			k = rotated[1].mb.k
		}
		sv.note(sv.rel(k.file), k.line, "["+sec+"] stderr_logfile_maxbytes/backups", "supervise has one log_max_size and log_max_files per program: stdout's are used")
	}
	comment := func(st *svSetting, key string) string {
		if st == nil {
			return "supervisord's default " + key
		}
		return sv.from(st, s)
	}
	t.set("log_max_size", tomlSize(r.maxbytes), comment(r.mb, r.name+"_logfile_maxbytes"))
	t.set("log_max_files", strconv.Itoa(r.backups), comment(r.bu, r.name+"_logfile_backups"))
	return nil
}

// logPath maps a log file path of stream name: the supervisor's own
// stdout or stderr are inherited, /dev/null is null, a regular path is a
// file supervise may rotate.
func (sv *svConv) logPath(v, name string, st *svSetting) (dest string, file bool) {
	if v == "~" || strings.HasPrefix(v, "~/") {
		if home, ok := sv.opts.LookupEnv("HOME"); ok {
			sv.note(sv.rel(st.k.file), st.k.line, "["+strings.TrimSuffix(st.k.name, "_logfile")+"_logfile] "+st.k.name, "~ is $HOME when importing, %s", home)
			v = home + v[1:]
		}
	}
	switch filepath.Clean(v) {
	case "/dev/" + name:
		return "inherit", false
	case "/dev/null":
		return "null", false
	}
	if strings.HasPrefix(v, "/dev/") || strings.HasPrefix(v, "/proc/") {
		return v, false
	}
	if !strings.Contains(v, "/") {
		// supervise reads a word without '/' as a keyword, supervisord as
		// a file in its working directory.
		v = "./" + v
	}
	return v, true
}

// perInstance puts {replica} into a file name before its extension.
func perInstance(path string) string {
	ext := filepath.Ext(path)
	if ext == "" || strings.Contains(ext, "/") {
		return path + "-{replica}"
	}
	return strings.TrimSuffix(path, ext) + "-{replica}" + ext
}

// pyInt is Python's int() of a string.
func pyInt(s string) (int, error) {
	t := strings.ReplaceAll(pyStrip(s), "_", "")
	if t == "" || strings.HasPrefix(pyStrip(s), "_") || strings.HasSuffix(pyStrip(s), "_") || strings.Contains(s, "__") {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	n, err := strconv.ParseInt(t, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return int(n), nil
}

// pyBool is supervisord's boolean().
func pyBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true/false, yes/no, on/off, 1/0)", s)
}

// autoRestart maps supervisord's autorestart onto restart.
func autoRestart(s string) (string, error) {
	switch v := strings.ToLower(s); {
	case v == "unexpected":
		return "on-failure", nil
	default:
		b, err := pyBool(v)
		if err != nil {
			return "", fmt.Errorf("%q is not true, false or unexpected", s)
		}
		if b {
			return "always", nil
		}
		return "never", nil
	}
}

// exitCodes is supervisord's list_of_exitcodes.
func exitCodes(s string) ([]int, error) {
	if s == "" {
		return []int{}, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := pyInt(f)
		if err != nil || n < 0 || n > 255 {
			return nil, fmt.Errorf("%q is not a list of exit codes from 0 to 255", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// byteSize is supervisord's byte_size: a number, or one with KB, MB or GB
// (1024-based).
func byteSize(s string) (int64, error) {
	v := strings.ToLower(s)
	mult := int64(1)
	for suffix, m := range map[string]int64{"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30} {
		if strings.HasSuffix(v, suffix) {
			v, mult = strings.TrimSuffix(v, suffix), m
			break
		}
	}
	n, err := pyInt(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (a number of bytes, or with KB, MB or GB)", s)
	}
	return int64(n) * mult, nil
}

// hookName is a name of a [hooks.NAME] table made of name.
func hookName(name string) string {
	if n := nameChars.ReplaceAllString(pyStrip(name), "_"); n != "" {
		return n
	}
	return "NAME"
}
