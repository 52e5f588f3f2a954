package importer

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/supervise/supervise/conf"
)

// process-compose's defaults, from its sources.
const (
	pcBackoff         = 1  // seconds between restarts
	pcShutdownTimeout = 10 // seconds, when a shutdown command runs
	pcPeriod          = 10
	pcTimeout         = 1
	pcFailure         = 3
)

// pcConv converts one process-compose file.
type pcConv struct {
	*converter
	shell     []string // the shell and its argument: ["bash", "-c"]
	noExpand  bool     // disable_env_expansion
	vars      map[string]any
	globalEnv map[string]string
	procs     []*pcProc
	byName    map[string]*pcProc
	http      bool // some probe is an HTTP probe
}

// pcProc is one process.
type pcProc struct {
	name     string
	key      *yaml.Node
	fields   []yEntry
	t        *table
	disabled bool
	probe    bool // has a readiness or a liveness probe
	logReady string
	replicas int
	env      map[string]string
	vars     map[string]any
}

// field returns the value of key, or nil.
func (p *pcProc) field(key string) *yaml.Node {
	for _, e := range p.fields {
		if e.key == key {
			return e.v
		}
	}
	return nil
}

func (c *converter) processCompose(data []byte) error {
	if !utf8.Valid(data) {
		line := 1 + strings.Count(string(data[:firstInvalidUTF8(data)]), "\n")
		return &Error{File: c.path, Line: line, Msg: "not UTF-8 text"}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return c.yamlError(err)
	}
	if len(root.Content) == 0 {
		return &Error{File: c.path, Msg: "empty file: a process-compose file is a mapping with processes"}
	}
	pc := &pcConv{converter: c, shell: []string{"bash", "-c"}, byName: map[string]*pcProc{}, globalEnv: map[string]string{}}
	top, err := c.yMapping("", root.Content[0])
	if err != nil {
		return err
	}
	var processes *yaml.Node
	// Settings that shape the others first.
	for _, e := range top {
		switch e.key {
		case "disable_env_expansion":
			if pc.noExpand, err = c.yBool(e.key, e.v); err != nil {
				return err
			}
		case "vars":
			if pc.vars, err = pc.varsOf(e.key, e.v); err != nil {
				return err
			}
		}
	}
	for _, e := range top {
		line := e.k.Line
		switch e.key {
		case "processes":
			processes = e.v
		case "version", "disable_env_expansion", "vars", "is_tui_disabled", "ordered_shutdown", "is_strict":
		case "name":
			if v, err := c.yString(e.key, e.v); err == nil && v != "" {
				c.doc.header = append(c.doc.header, "Project "+v+".")
			}
		case "environment":
			env, err := pc.environment("environment", e.v, nil)
			if err != nil {
				return err
			}
			pc.globalEnv = env
			if len(env) > 0 {
				c.doc.defaults.set("environment", tomlMap(env), fmt.Sprintf("environment (line %d)", line))
			}
		case "shell":
			fields, err := c.yMapping("shell", e.v)
			if err != nil {
				return err
			}
			for _, f := range fields {
				v, err := c.yString("shell."+f.key, f.v)
				if err != nil {
					return err
				}
				switch f.key {
				case "shell_command":
					if v != "" {
						pc.shell[0] = v
					}
				case "shell_argument":
					if v != "" {
						pc.shell[1] = v
					}
				case "elevated_shell_cmd", "elevated_shell_arg":
				default:
					c.note(c.path, f.k.Line, "shell."+f.key, "not a process-compose shell setting: ignored")
				}
			}
		case "log_level":
			v, err := c.yString(e.key, e.v)
			if err != nil {
				return err
			}
			switch l := strings.ToLower(v); l {
			case "debug", "info", "warn", "error":
				c.doc.supervisor.set("log_level", tomlString(l), fmt.Sprintf("log_level (line %d)", line))
			case "trace":
				c.doc.supervisor.set("log_level", tomlString("debug"), fmt.Sprintf("log_level (line %d)", line))
			default:
				c.note(c.path, line, e.key, "supervise's levels are debug, info, warn and error: not converted")
			}
		case "log_location", "log_length", "log_configuration", "log_format":
			c.note(c.path, line, e.key, "not converted: supervise writes its own log to stderr (log_format = \"json\" for JSON lines)")
		case "extends":
			c.note(c.path, line, e.key, "not followed: convert the file it extends too, and put both in one file or in [supervisor] include")
		case "env_cmds":
			c.note(c.path, line, e.key, "not converted: supervise does not run commands to make its environment; run them in the commands that need the values")
		case "mcp_server":
			c.note(c.path, line, e.key, "not converted: supervise has no MCP server")
		default:
			if !strings.HasPrefix(e.key, "x-") {
				c.note(c.path, line, e.key, "not a process-compose setting: ignored")
			}
		}
	}
	if processes == nil {
		return &Error{File: c.path, Line: root.Content[0].Line, Msg: "no processes mapping"}
	}
	procs, err := c.yMapping("processes", processes)
	if err != nil {
		return err
	}
	for _, e := range procs {
		if err := pc.collect(e); err != nil {
			return err
		}
	}
	for _, p := range pc.procs {
		if err := pc.process(p); err != nil {
			return err
		}
	}
	pc.header()
	return nil
}

// collect reads what the other processes need to know of a process.
func (pc *pcConv) collect(e yEntry) error {
	path := "processes." + e.key
	fields, err := pc.yMapping(path, e.v)
	if err != nil {
		return err
	}
	p := &pcProc{name: e.key, key: e.k, fields: fields, replicas: 1}
	if p.disabled, err = pc.yBool(path+".disabled", p.field("disabled")); err != nil {
		return err
	}
	if n := p.field("replicas"); n != nil {
		if p.replicas, err = pc.yInt(path+".replicas", n); err != nil {
			return err
		}
		p.replicas = max(p.replicas, 1)
	}
	if p.vars, err = pc.varsOf(path+".vars", p.field("vars")); err != nil {
		return err
	}
	p.probe = p.field("readiness_probe") != nil || p.field("liveness_probe") != nil
	if n := p.field("ready_log_line"); n != nil {
		if p.logReady, err = pc.yString(path+".ready_log_line", n); err != nil {
			return err
		}
		p.logReady = pc.expand(p.logReady, path+".ready_log_line", n.Line)
	}
	pc.procs = append(pc.procs, p)
	pc.byName[p.name] = p
	return nil
}

// varsOf reads a vars mapping.
func (pc *pcConv) varsOf(path string, n *yaml.Node) (map[string]any, error) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, pc.yErr(n, path, "expected a mapping, got %s", describeNode(n))
	}
	var v map[string]any
	if err := n.Decode(&v); err != nil {
		return nil, pc.yErr(n, path, "%v", err)
	}
	return v, nil
}

// pcProcessKeys are the keys of a process that process-compose reads.
var pcProcessKeys = []string{"name", "extends", "disabled", "is_daemon", "command", "entrypoint", "log_location",
	"log_configuration", "environment", "env_file", "availability", "depends_on", "liveness_probe", "readiness_probe",
	"ready_log_line", "shutdown", "disable_ansi_colors", "working_dir", "namespace", "replicas", "description", "vars",
	"is_foreground", "is_tty", "is_elevated", "is_interactive", "launch_timeout_seconds", "is_disabled",
	"is_dotenv_disabled", "schedule", "watch", "mcp", "truncate_log", "is_template_disabled", "monitor_for",
	"monitor_silence_threshold", "success_exit_codes"}

// process converts one process.
func (pc *pcConv) process(p *pcProc) error {
	path := "processes." + p.name
	if !nameRE.MatchString(p.name) {
		return pc.yErr(p.key, path, "supervise names use letters, digits, '_', '.' and '-'")
	}
	p.t = pc.doc.program(p.name)
	t := p.t
	t.comments = []string{fmt.Sprintf("%s:%d processes.%s", pc.path, p.key.Line, p.name)}
	line := func(e yEntry) string { return fmt.Sprintf("%s (line %d)", e.key, e.k.Line) }
	var (
		command, entrypoint *yEntry
		workingDir          string
		templatesOff        bool
	)
	for i := range p.fields {
		switch p.fields[i].key {
		case "command":
			command = &p.fields[i]
		case "entrypoint":
			entrypoint = &p.fields[i]
		case "is_template_disabled":
			var err error
			if templatesOff, err = pc.yBool(path+".is_template_disabled", p.fields[i].v); err != nil {
				return err
			}
		case "working_dir":
			v, err := pc.yString(path+".working_dir", p.fields[i].v)
			if err != nil {
				return err
			}
			v = pc.expand(v, path+".working_dir", p.fields[i].k.Line)
			if v, err = pc.render(v, p, path+".working_dir", p.fields[i].v); err != nil {
				return err
			}
			if v != "" {
				workingDir = pc.absolute(v)
				t.set("directory", tomlString(workingDir), line(p.fields[i]))
			}
		}
	}
	switch {
	case command != nil:
		v, err := pc.yString(path+".command", command.v)
		if err != nil {
			return err
		}
		v = pc.shellText(v, p, path+".command", command.k.Line)
		if !templatesOff {
			if v, err = pc.render(v, p, path+".command", command.v); err != nil {
				return err
			}
		}
		t.set("command", tomlStrings([]string{pc.shell[0], pc.shell[1], v}), line(*command))
		if entrypoint != nil {
			pc.note(pc.path, entrypoint.k.Line, path+".entrypoint", "ignored, as process-compose ignores it when command is set")
		}
	case entrypoint != nil:
		argv, err := pc.yStrings(path+".entrypoint", entrypoint.v)
		if err != nil {
			return err
		}
		if len(argv) == 0 {
			return pc.yErr(entrypoint.v, path+".entrypoint", "empty")
		}
		for i := range argv {
			argv[i] = pc.expand(argv[i], path+".entrypoint", entrypoint.k.Line)
		}
		t.set("command", tomlStrings(argv), line(*entrypoint))
	default:
		return pc.yErr(p.key, path, "no command or entrypoint")
	}

	for _, e := range p.fields {
		fpath := path + "." + e.key
		at := e.k.Line
		switch e.key {
		case "command", "entrypoint", "is_template_disabled", "working_dir", "replicas", "vars", "name",
			"original_config", "replica_num", "replica_name", "executable", "args":
		case "description":
			if v, err := pc.yString(fpath, e.v); err == nil && v != "" {
				t.comments = append(t.comments, shorten(strings.ReplaceAll(v, "\n", " ")))
			}
		case "namespace":
			if v, err := pc.yString(fpath, e.v); err == nil && v != "" {
				t.comments = append(t.comments, "namespace "+v)
			}
		case "disabled":
			if p.disabled {
				t.set("autostart", "false", line(e))
			}
		case "environment":
			env, err := pc.environment(fpath, e.v, p)
			if err != nil {
				return err
			}
			p.env = env
		case "env_file":
			v, err := pc.yString(fpath, e.v)
			if err != nil {
				return err
			}
			if v = pc.expand(v, fpath, at); v != "" {
				if !filepath.IsAbs(v) {
					base := pc.dir
					if workingDir != "" {
						base = workingDir
					}
					v = filepath.Join(base, v)
				}
				files := []string{"-" + v}
				if !slices.ContainsFunc(p.fields, func(f yEntry) bool { return f.key == "is_dotenv_disabled" }) {
					files = append([]string{"-" + filepath.Join(pc.dir, ".env")}, files...)
				}
				t.set("env_file", tomlStrings(files), line(e)+"; a missing file is skipped, as process-compose skips it")
			}
		case "is_dotenv_disabled":
			if off, err := pc.yBool(fpath, e.v); err != nil {
				return err
			} else if off && !t.has("env_file") {
				t.set("env_file", "[]", line(e))
			}
		case "availability":
			if err := pc.availability(p, e); err != nil {
				return err
			}
		case "depends_on":
			if err := pc.dependsOn(p, e); err != nil {
				return err
			}
		case "readiness_probe", "liveness_probe":
			if err := pc.probe(p, e, workingDir); err != nil {
				return err
			}
		case "ready_log_line":
			if p.field("readiness_probe") != nil {
				pc.note(pc.path, at, fpath, "not converted: supervise's readiness is one probe, and readiness_probe is converted")
				continue
			}
			if p.logReady != "" {
				r := t.sub("readiness")
				r.set("log_line", tomlString(regexp.QuoteMeta(p.logReady)), line(e)+": a line holding it")
			}
		case "shutdown":
			if err := pc.shutdown(p, e); err != nil {
				return err
			}
		case "log_location":
			v, err := pc.yString(fpath, e.v)
			if err != nil {
				return err
			}
			v = pc.expand(v, fpath, at)
			if v, err = pc.render(v, p, fpath, e.v); err != nil {
				return err
			}
			if v == "" {
				continue
			}
			v = pc.absolute(strings.ReplaceAll(v, "{PC_REPLICA_NUM}", "{replica}"))
			if p.replicas > 1 && !strings.Contains(v, "{replica}") {
				v += ".{replica}" // process-compose's FILE.N
			}
			t.set("stdout", tomlString(v), line(e))
			t.set("stderr", tomlString(v), line(e))
			pc.note(pc.path, at, fpath, "the lines are appended as the program writes them; process-compose writes them in its own log format (log_configuration)")
		case "success_exit_codes":
			codes := []int{0}
			n := resolve(e.v)
			if n != nil && n.Kind == yaml.SequenceNode {
				for i, c := range n.Content {
					v, err := pc.yInt(fmt.Sprintf("%s[%d]", fpath, i), c)
					if err != nil {
						return err
					}
					if v < 0 || v > 255 {
						return pc.yErr(c, fpath, "exit code %d is not between 0 and 255", v)
					}
					if !slices.Contains(codes, v) {
						codes = append(codes, v)
					}
				}
			} else if n != nil && !isNull(n) {
				return pc.yErr(n, fpath, "expected a list, got %s", describeNode(n))
			}
			t.set("success_exit_codes", tomlInts(codes), line(e)+", and 0")
		case "is_daemon":
			if b, _ := pc.yBool(fpath, e.v); b {
				pc.note(pc.path, at, fpath, "not converted: supervise runs programs in the foreground; run the daemon with its option to stay in the foreground")
			}
		case "is_elevated":
			if b, _ := pc.yBool(fpath, e.v); b {
				pc.note(pc.path, at, fpath, "not converted: supervise does not run sudo; set user (supervise running as root) instead")
			}
		case "is_foreground", "is_tty", "is_interactive":
			if b, _ := pc.yBool(fpath, e.v); b {
				pc.note(pc.path, at, fpath, "not converted: supervise gives programs no terminal")
			}
		case "launch_timeout_seconds":
			pc.note(pc.path, at, fpath, "not converted: it applies to daemons (is_daemon), which supervise does not run")
		case "is_disabled":
			v, _ := pc.yString(fpath, e.v)
			if b, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil {
				if b {
					t.set("autostart", "false", line(e))
				}
			} else {
				pc.note(pc.path, at, fpath, "%q is evaluated by process-compose when it starts: not converted (set autostart = false to keep it stopped)", v)
			}
		case "schedule":
			pc.note(pc.path, at, fpath, "not converted: supervise does not schedule programs; start it from cron or a systemd timer with `supervise start %s`", p.name)
		case "watch":
			pc.note(pc.path, at, fpath, "not converted: supervise does not restart programs on file changes; `supervise restart %s` does it", p.name)
		case "log_configuration", "disable_ansi_colors", "truncate_log", "monitor_for", "monitor_silence_threshold":
			pc.note(pc.path, at, fpath, "not converted: supervise keeps the program's lines as they are")
		case "mcp":
			pc.note(pc.path, at, fpath, "not converted: supervise has no MCP server")
		case "extends":
			pc.note(pc.path, at, fpath, "not followed: copy the settings of the process it extends into it")
		default:
			if !strings.HasPrefix(e.key, "x-") {
				pc.note(pc.path, at, fpath, "not a process-compose setting: ignored")
			}
		}
	}
	if p.replicas > 1 {
		e := p.fields[slices.IndexFunc(p.fields, func(f yEntry) bool { return f.key == "replicas" })]
		t.set("replicas", strconv.Itoa(p.replicas), line(e))
	}
	pc.identity(p)
	if len(p.env) > 0 {
		comment := "the variables process-compose gives every process"
		if i := slices.IndexFunc(p.fields, func(f yEntry) bool { return f.key == "environment" }); i >= 0 {
			comment = line(p.fields[i])
		}
		t.set("environment", tomlMap(p.env), comment)
	}
	return nil
}

// identity gives a program the variables process-compose gives every
// process, when its settings name them.
func (pc *pcConv) identity(p *pcProc) {
	var text strings.Builder
	for _, e := range p.fields {
		if b, err := yaml.Marshal(e.v); err == nil {
			text.Write(b)
		}
	}
	uses := func(name string) bool { return strings.Contains(text.String(), name) }
	add := func(name, value string) {
		if p.env == nil {
			p.env = map[string]string{}
		}
		if _, set := p.env[name]; !set {
			p.env[name] = value
		}
	}
	if uses("PC_REPLICA_NUM") {
		if p.replicas > 1 {
			add("PC_REPLICA_NUM", "{replica}")
		} else {
			add("PC_REPLICA_NUM", "0")
		}
	}
	if uses("PC_PROC_NAME") {
		add("PC_PROC_NAME", p.name)
	}
}

// absolute takes a relative path from the file's directory.
func (pc *pcConv) absolute(p string) string {
	if filepath.IsAbs(p) || strings.HasPrefix(p, "{") {
		return p
	}
	return filepath.Join(pc.dir, p)
}

// environment reads a list of KEY=value strings (p is nil for the
// global one).
func (pc *pcConv) environment(path string, n *yaml.Node, p *pcProc) (map[string]string, error) {
	list, err := pc.yStrings(path, n)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for i, kv := range list {
		line := resolve(n).Content[i].Line
		kv = pc.expand(kv, path, line)
		if p != nil {
			if kv, err = pc.render(kv, p, path, resolve(n).Content[i]); err != nil {
				return nil, err
			}
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			pc.note(pc.path, line, path, "%q is not KEY=value: not converted", shorten(kv))
			continue
		}
		env[k] = v
	}
	return env, nil
}

// availability converts the restart policy.
func (pc *pcConv) availability(p *pcProc, e yEntry) error {
	path := "processes." + p.name + ".availability"
	fields, err := pc.yMapping(path, e.v)
	if err != nil {
		return err
	}
	t := p.t
	line := func(f yEntry) string { return fmt.Sprintf("availability.%s (line %d)", f.key, f.k.Line) }
	restart := "no"
	var exitOnEnd bool
	var restartAt, exitAt yEntry
	for _, f := range fields {
		fpath := path + "." + f.key
		switch f.key {
		case "restart":
			if restart, err = pc.yString(fpath, f.v); err != nil {
				return err
			}
			restartAt = f
		case "backoff_seconds":
			n, err := pc.yInt(fpath, f.v)
			if err != nil {
				return err
			}
			n = max(n, pcBackoff)
			t.set("backoff_initial", tomlSeconds(n), line(f))
			t.set("backoff_max", tomlSeconds(n), line(f)+": the same delay every time")
		case "max_restarts":
			n, err := pc.yInt(fpath, f.v)
			if err != nil {
				return err
			}
			if n > 0 {
				t.sub("breaker").set("max_failures", strconv.Itoa(n+1), line(f)+" + 1")
				pc.note(pc.path, f.k.Line, fpath, "%d: supervise's breaker opens after %d failures in a row and tries again after reset_timeout; process-compose counts every restart, successful runs included, and gives up for good", n, n+1)
			}
		case "exit_on_end":
			if exitOnEnd, err = pc.yBool(fpath, f.v); err != nil {
				return err
			}
			exitAt = f
		case "exit_on_skipped":
			if b, _ := pc.yBool(fpath, f.v); b {
				pc.note(pc.path, f.k.Line, fpath, "not converted: supervise skips no program; a program whose dependency failed waits for it (status says why)")
			}
		default:
			pc.note(pc.path, f.k.Line, fpath, "not an availability setting: ignored")
		}
	}
	switch restart {
	case "no":
		if restartAt.k != nil {
			t.set("restart", tomlString("never"), line(restartAt))
		}
	case "always":
		t.set("restart", tomlString("always"), line(restartAt))
	case "on_failure":
		t.set("restart", tomlString("on-failure"), line(restartAt))
	case "exit_on_failure":
		// Stop everything on a failure, not on a success: the breaker opens
		// at the first failure, and the program is critical.
		t.set("restart", tomlString("on-failure"), line(restartAt)+": a failure opens the breaker")
		t.set("critical", "true", line(restartAt)+": then everything stops")
		t.sub("breaker").set("max_failures", "1", line(restartAt))
	default:
		return pc.yErr(restartAt.v, path+".restart", "%q is not always, on_failure, exit_on_failure or no", restart)
	}
	if exitOnEnd {
		if restart != "no" {
			pc.note(pc.path, exitAt.k.Line, path+".exit_on_end", "with restart %q: the first end stops everything, so it is not restarted", restart)
		}
		t.set("restart", tomlString("never"), line(exitAt))
		t.set("critical", "true", line(exitAt)+": its end stops everything")
		t.sub("breaker").unset("max_failures")
	}
	return nil
}

// pcConditions maps process-compose's dependency conditions.
var pcConditions = map[string]string{
	"process_started":                "started",
	"process_healthy":                "ready",
	"process_log_ready":              "ready",
	"process_completed_successfully": "completed",
	"process_completed":              "completed",
}

// dependsOn converts depends_on: names with a condition.
func (pc *pcConv) dependsOn(p *pcProc, e yEntry) error {
	path := "processes." + p.name + ".depends_on"
	deps, err := pc.yMapping(path, e.v)
	if err != nil {
		return err
	}
	conds := map[string]string{}
	for _, d := range deps {
		dpath := path + "." + d.key
		cond := "process_completed" // process-compose's zero value
		fields, err := pc.yMapping(dpath, d.v)
		if err != nil {
			return err
		}
		for _, f := range fields {
			switch f.key {
			case "condition":
				if cond, err = pc.yString(dpath+".condition", f.v); err != nil {
					return err
				}
			default:
				if !strings.HasPrefix(f.key, "x-") {
					pc.note(pc.path, f.k.Line, dpath+"."+f.key, "not a dependency setting: ignored")
				}
			}
		}
		mapped, ok := pcConditions[cond]
		if !ok {
			return pc.yErr(d.v, dpath+".condition", "%q is not a process-compose condition", cond)
		}
		dep := pc.byName[d.key]
		switch {
		case dep == nil:
			pc.note(pc.path, d.k.Line, dpath, "no process %s: not converted (process-compose starts %s without waiting)", d.key, p.name)
			continue
		case dep.disabled:
			pc.note(pc.path, d.k.Line, dpath, "%s is disabled: not converted (process-compose does not wait for a process it does not start)", d.key)
			continue
		case d.key == p.name:
			return pc.yErr(d.k, dpath, "a process cannot depend on itself")
		}
		switch cond {
		case "process_completed":
			pc.note(pc.path, d.k.Line, dpath, "process_completed: supervise's completed waits for a successful end; process-compose starts %s after any end of %s", p.name, d.key)
		case "process_healthy":
			if !dep.probe {
				pc.note(pc.path, d.k.Line, dpath, "process_healthy, but %s has no probe: process-compose refuses to start %s; here it waits for %s to be started", d.key, p.name, d.key)
			}
		case "process_log_ready":
			if dep.logReady == "" {
				pc.note(pc.path, d.k.Line, dpath, "process_log_ready, but %s has no ready_log_line: here it waits for %s to be started", d.key, d.key)
			}
		}
		conds[d.key] = mapped
	}
	if len(conds) == 0 {
		return nil
	}
	names := make([]string, 0, len(conds))
	allReady := true
	for n, c := range conds {
		names = append(names, n)
		allReady = allReady && c == "ready"
	}
	sort.Strings(names)
	comment := fmt.Sprintf("depends_on (line %d)", e.k.Line)
	if allReady {
		p.t.set("depends_on", tomlStrings(names), comment)
		return nil
	}
	p.t.set("depends_on", tomlMap(conds), comment)
	return nil
}

// probe converts a readiness or liveness probe.
func (pc *pcConv) probe(p *pcProc, e yEntry, workingDir string) error {
	path := "processes." + p.name + "." + e.key
	fields, err := pc.yMapping(path, e.v)
	if err != nil {
		return err
	}
	kind := strings.TrimSuffix(e.key, "_probe")
	t := p.t.sub(kind)
	from := fmt.Sprintf("%s (line %d)", e.key, e.k.Line)
	period, timeout, delay, failure := pcPeriod, pcTimeout, 0, pcFailure
	var exec, http *yEntry
	for i, f := range fields {
		fpath := path + "." + f.key
		var n int
		switch f.key {
		case "exec":
			exec = &fields[i]
		case "http_get":
			http = &fields[i]
		case "initial_delay_seconds", "period_seconds", "timeout_seconds", "success_threshold", "failure_threshold":
			if n, err = pc.yInt(fpath, f.v); err != nil {
				return err
			}
		default:
			pc.note(pc.path, f.k.Line, fpath, "not a probe setting: ignored")
		}
		// process-compose replaces values below 1 by its defaults.
		switch f.key {
		case "initial_delay_seconds":
			delay = max(n, 0)
		case "period_seconds":
			if n >= 1 {
				period = n
			}
		case "timeout_seconds":
			if n >= 1 {
				timeout = n
			}
		case "success_threshold":
			if n > 1 {
				pc.note(pc.path, f.k.Line, fpath, "%d: process-compose does not use it (one pass counts), so neither does this file", n)
			}
		case "failure_threshold":
			if n >= 1 {
				failure = n
			}
		}
	}
	switch {
	case exec != nil:
		if http != nil {
			pc.note(pc.path, http.k.Line, path+".http_get", "ignored, as process-compose ignores it beside exec")
		}
		fs, err := pc.yMapping(path+".exec", exec.v)
		if err != nil {
			return err
		}
		var cmd, dir string
		for _, f := range fs {
			v, err := pc.yString(path+".exec."+f.key, f.v)
			if err != nil {
				return err
			}
			switch f.key {
			case "command":
				v = pc.shellText(v, p, path+".exec.command", f.k.Line)
				if cmd, err = pc.render(v, p, path+".exec.command", f.v); err != nil {
					return err
				}
			case "working_dir":
				dir = pc.expand(v, path+".exec.working_dir", f.k.Line)
			default:
				pc.note(pc.path, f.k.Line, path+".exec."+f.key, "not an exec probe setting: ignored")
			}
		}
		if cmd == "" {
			return pc.yErr(exec.v, path+".exec", "no command")
		}
		// process-compose runs an exec probe in its own working directory
		// (the file's) unless the probe names one; supervise in the
		// program's.
		probeDir := pc.dir
		if dir != "" {
			probeDir = pc.absolute(dir)
		}
		progDir := pc.dir
		if workingDir != "" {
			progDir = workingDir
		}
		if probeDir != progDir {
			cmd = "cd " + shellQuote(probeDir) + " && " + cmd
		}
		t.set("exec", tomlStrings([]string{pc.shell[0], pc.shell[1], cmd}), from)
	case http != nil:
		u, err := pc.httpURL(p, path+".http_get", http)
		if err != nil {
			return err
		}
		if u == "" {
			p.t.subs = slices.DeleteFunc(p.t.subs, func(s *table) bool { return s == t })
			return nil
		}
		pc.http = true
		t.set("http", tomlString(u), from)
	default:
		pc.note(pc.path, e.k.Line, path, "neither exec nor http_get: not converted")
		p.t.subs = slices.DeleteFunc(p.t.subs, func(s *table) bool { return s == t })
		return nil
	}
	t.set("interval", tomlSeconds(period), "period_seconds")
	t.set("timeout", tomlSeconds(timeout), "timeout_seconds")
	if delay > 0 {
		t.set("initial_delay", tomlSeconds(delay), "initial_delay_seconds")
	}
	t.set("success_threshold", "1", "")
	t.set("failure_threshold", strconv.Itoa(failure), "failure_threshold")
	if kind == "liveness" {
		t.set("action", tomlString("log"), "process-compose only logs it (for a process that is no daemon)")
		t.comments = append(t.comments, `action = "restart" kills and restarts the program on failure, as Kubernetes does.`)
	} else {
		pc.note(pc.path, e.k.Line, path, "when it fails failure_threshold times in a row, process-compose stops the process (and restarts it as availability says); supervise marks it not ready: add a [programs.%s.liveness] table with the same check to restart it", p.name)
	}
	return nil
}

// httpURL is process-compose's URL of an http_get probe: scheme://host[:port]path.
func (pc *pcConv) httpURL(p *pcProc, path string, e *yEntry) (string, error) {
	fields, err := pc.yMapping(path, e.v)
	if err != nil {
		return "", err
	}
	host, scheme, urlPath, port := "127.0.0.1", "http", "/", 0
	for _, f := range fields {
		fpath := path + "." + f.key
		switch f.key {
		case "host", "scheme", "path", "port":
			v, err := pc.yString(fpath, f.v)
			if err != nil {
				return "", err
			}
			v = pc.expand(v, fpath, f.k.Line)
			if v, err = pc.render(v, p, fpath, f.v); err != nil {
				return "", err
			}
			if strings.TrimSpace(v) == "" {
				continue
			}
			switch f.key {
			case "host":
				host = v
			case "scheme":
				scheme = v
			case "path":
				urlPath = v
			case "port":
				if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= 65535 {
					port = n
				} else {
					pc.note(pc.path, f.k.Line, fpath, "%q is no port: left out of the URL, as process-compose leaves it out", v)
				}
			}
		case "num_port":
			n, err := pc.yInt(fpath, f.v)
			if err != nil {
				return "", err
			}
			if n >= 1 && n <= 65535 {
				port = n
			}
		case "headers":
			pc.note(pc.path, f.k.Line, fpath, "not converted: supervise's HTTP probes send no extra headers")
		case "status_code":
			if n, _ := pc.yInt(fpath, f.v); n != 200 && n > 0 && n < 400 {
				pc.note(pc.path, f.k.Line, fpath, "%d: supervise passes any 2xx or 3xx status", n)
			}
		default:
			pc.note(pc.path, f.k.Line, fpath, "not an http_get setting: ignored")
		}
	}
	u := fmt.Sprintf("%s://%s%s", scheme, host, urlPath)
	if port != 0 {
		u = fmt.Sprintf("%s://%s:%d%s", scheme, host, port, urlPath)
	}
	if parsed, err := url.Parse(u); err != nil || parsed.Host == "" || (parsed.Scheme != "http" && parsed.Scheme != "https") {
		pc.note(pc.path, e.k.Line, path, "%q is not an http:// or https:// URL: the probe is not converted", u)
		return "", nil
	}
	return u, nil
}

// shutdown converts the stop settings.
func (pc *pcConv) shutdown(p *pcProc, e yEntry) error {
	path := "processes." + p.name + ".shutdown"
	fields, err := pc.yMapping(path, e.v)
	if err != nil {
		return err
	}
	for _, f := range fields {
		fpath := path + "." + f.key
		from := fmt.Sprintf("shutdown.%s (line %d)", f.key, f.k.Line)
		switch f.key {
		case "signal":
			n, err := pc.yInt(fpath, f.v)
			if err != nil {
				return err
			}
			if n < 1 || n > 31 {
				n = int(syscall.SIGTERM) // process-compose's choice for any other number
			}
			p.t.set("stop_signal", tomlString(strings.TrimPrefix(conf.SignalName(syscall.Signal(n)), "SIG")), from)
		case "timeout_seconds":
			n, err := pc.yInt(fpath, f.v)
			if err != nil {
				return err
			}
			if n > 0 {
				p.t.set("stop_timeout", tomlSeconds(n), from)
				pc.doc.stops = append(pc.doc.stops, stopStep{timeout: time.Duration(n) * time.Second})
			}
		case "command":
			pc.note(pc.path, f.k.Line, fpath, "not converted: supervise stops a program with stop_signal; a [teardown.NAME] command runs at shutdown only")
		case "parent_only":
			if b, _ := pc.yBool(fpath, f.v); b {
				pc.note(pc.path, f.k.Line, fpath, "not converted: supervise signals the whole process group")
			}
		case "send_keys":
			pc.note(pc.path, f.k.Line, fpath, "not converted: supervise gives programs no terminal")
		default:
			pc.note(pc.path, f.k.Line, fpath, "not a shutdown setting: ignored")
		}
	}
	return nil
}

// header writes the comments at the top and the defaults where
// process-compose's differ from supervise's.
func (pc *pcConv) header() {
	h := []string{fmt.Sprintf("Converted by `supervise import` from %s (process-compose).", pc.path)}
	h = append(h, pc.doc.header...)
	h = append(h, "",
		"Where supervise differs from process-compose:",
		fmt.Sprintf("- Commands run with `%s %s`, as process-compose runs them, in the file's directory unless", pc.shell[0], pc.shell[1]),
		"  working_dir says otherwise (process-compose uses the directory it is started in, usually",
		"  the file's, for relative paths too).",
		"- $VAR in a command is expanded by the shell when the program starts, from its environment;",
		"  process-compose expands it when it loads the file, from its own.",
		"- A restart waits backoff_seconds every time, as in process-compose. The breaker opens after",
		"  breaker.max_failures failures in a row (max_restarts + 1, else 5) and tries again after",
		"  reset_timeout; process-compose counts every restart and then gives up, or never gives up.",
		"- A stop sends SIGKILL to the process group stop_timeout after stop_signal; process-compose",
		"  without shutdown.timeout_seconds waits for ever.",
		"- .env is read for every program, after supervise's own environment (process-compose lets",
		"  its own environment win over .env).")
	if pc.http {
		h = append(h, "- An HTTP probe passes on any 2xx or 3xx status; process-compose's on status_code (200) only.")
	}
	pc.doc.header = h
	pc.doc.shutdownBudget("the longest shutdown.timeout_seconds, and 5s")
	pc.doc.defaults.set("directory", tomlString(pc.dir), "the file's directory")
	pc.doc.defaults.set("env_file", tomlStrings([]string{"-" + filepath.Join(pc.dir, ".env")}), "read by process-compose when it exists")
	pc.doc.defaults.set("restart", tomlString("never"), "availability.restart defaults to \"no\"")
	pc.doc.defaults.set("backoff_initial", tomlSeconds(pcBackoff), "availability.backoff_seconds defaults to 1")
	pc.doc.defaults.set("backoff_max", tomlSeconds(pcBackoff), "the same delay every time")
}

// Variables in the file: process-compose replaces $VAR and ${VAR} (and
// ${VAR:-default} ...) in the whole file when it loads it, from .env and
// its environment, and $$ by $.

var varRef = regexp.MustCompile(`\$(\$|\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)`)
var varBrace = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=+])(.*))?$`)

// expand does what process-compose does to a value no shell reads: the
// variables take their values when importing (noted).
func (pc *pcConv) expand(s, path string, line int) string {
	if pc.noExpand || !strings.Contains(s, "$") {
		return s
	}
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		if ref == "$$" {
			return "$"
		}
		name, op, word := ref[1:], "", ""
		if strings.HasPrefix(name, "{") {
			m := varBrace.FindStringSubmatch(name[1 : len(name)-1])
			if m == nil {
				pc.note(pc.path, line, path, "%s: this form is not converted: kept as it is", ref)
				return ref
			}
			name, op, word = m[1], m[2], m[3]
		}
		v, set := pc.opts.LookupEnv(name)
		switch op {
		case ":-", ":=":
			if v == "" {
				v = word
			}
		case "-", "=":
			if !set {
				v = word
			}
		case ":+":
			if v != "" {
				v = word
			}
		case "+":
			if set {
				v = word
			}
		}
		pc.note(pc.path, line, path, "%s is %q, its value when importing: process-compose expands it when it loads the file, supervise does not expand variables here", ref, v)
		return v
	})
}

// shellText does what process-compose does to a command: $$ becomes $, and
// the variables are left for the shell, which expands them when the
// program starts. A variable the file sets in the environment is noted:
// process-compose would have taken its value from its own environment.
func (pc *pcConv) shellText(s string, p *pcProc, path string, line int) string {
	if pc.noExpand || !strings.Contains(s, "$") {
		return s
	}
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		if ref == "$$" {
			return "$"
		}
		name := strings.TrimPrefix(ref, "$")
		if strings.HasPrefix(name, "{") {
			if m := varBrace.FindStringSubmatch(name[1 : len(name)-1]); m != nil {
				name = m[1]
			}
		}
		_, inGlobal := pc.globalEnv[name]
		inProc := false
		if v := p.field("environment"); v != nil {
			if list, err := pc.yStrings(path, v); err == nil {
				inProc = slices.ContainsFunc(list, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
			}
		}
		if inGlobal || inProc {
			pc.note(pc.path, line, path, "%s is set by environment, which the shell sees when the program starts; process-compose would have put its own $%s in the command when loading the file (write $$%s there to get the process's)", ref, name, name)
		}
		return ref
	})
}

// errTemplate is a template whose output would be too large.
var errTemplate = errors.New("the template's output is too large")

// limited is a writer that refuses more than 1 MiB.
type limited struct{ b strings.Builder }

func (l *limited) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > 1<<20 {
		return 0, errTemplate
	}
	return l.b.Write(p)
}

// render runs process-compose's Go template rendering of a value, with
// the vars of the file and of the process, and PC_REPLICA_NUM as
// {replica}.
func (pc *pcConv) render(s string, p *pcProc, path string, n *yaml.Node) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	tpl, err := template.New("").Parse(s)
	if err != nil {
		return "", pc.yErr(n, path, "template: %v", err)
	}
	if !simpleTemplate(tpl.Tree.Root) {
		return "", pc.yErr(n, path, "template: only values, conditions and printf are converted (no range, with, define or template)")
	}
	data := map[string]any{}
	for k, v := range pc.vars {
		data[k] = v
	}
	for k, v := range p.vars {
		data[k] = v
	}
	data["PC_REPLICA_NUM"] = 0
	if p.replicas > 1 {
		data["PC_REPLICA_NUM"] = "{replica}"
	}
	var out limited
	if err := tpl.Execute(&out, data); err != nil {
		return "", pc.yErr(n, path, "template: %v", err)
	}
	if p.replicas > 1 && strings.Contains(out.b.String(), "%!") {
		pc.note(pc.path, n.Line, path, "the template formats PC_REPLICA_NUM, which here is {replica}: check the value")
	}
	return out.b.String(), nil
}

// simpleTemplate reports whether a template holds no loop and no nested
// template, so that it runs in bounded time.
func simpleTemplate(n parse.Node) bool {
	switch x := n.(type) {
	case nil:
		return true
	case *parse.ListNode:
		if x == nil {
			return true
		}
		for _, c := range x.Nodes {
			if !simpleTemplate(c) {
				return false
			}
		}
		return true
	case *parse.TextNode, *parse.ActionNode, *parse.CommentNode:
		return true
	case *parse.IfNode:
		return simpleTemplate(x.List) && simpleTemplate(x.ElseList)
	}
	return false
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
