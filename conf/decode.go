package conf

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

var (
	logLevels      = []string{LogDebug, LogInfo, LogWarn, LogError}
	logFormats     = []string{FormatConsole, FormatJSON}
	outputKeywords = []string{"log", "inherit", "null"}

	topKeys = []string{"supervisor", "defaults", "programs", "teardown", "hooks"}

	nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// maxDurationSeconds bounds numeric durations so they fit a time.Duration.
const maxDurationSeconds = float64(math.MaxInt64 / int64(time.Second))

// Parse decodes and validates a configuration. file is used in error
// messages and to resolve relative paths. On any problem it returns an
// ErrorList holding every problem found. A file without a single key or
// table header (empty, or only whitespace and comments) is refused with
// ErrEmpty: applied by a reload, it would stop every program.
//
// Parse reads no other file: it does not follow [supervisor] include and
// does not read env files (each EnvFile is left unread, and Program.Env
// holds the environment table alone). Load does both.
func Parse(file string, data []byte) (*Config, error) {
	return compose(file, data, nil)
}

// decoder decodes the tables of one file. The decoders of the files of
// one configuration share their list of problems.
type decoder struct {
	file  string
	lines *lineIndex
	errs  *ErrorList
	// base decodes the [defaults] layer of the programs of this file: the
	// main file's decoder (nil: this one), so that relative paths set in
	// [defaults] are taken relative to the main file.
	base *decoder
}

func newDecoder(file string, lines *lineIndex) *decoder {
	return &decoder{file: file, lines: lines, errs: new(ErrorList)}
}

// forFile returns a decoder for another file of the same configuration.
func (d *decoder) forFile(file string, lines *lineIndex) *decoder {
	return &decoder{file: file, lines: lines, errs: d.errs, base: d}
}

func (d *decoder) add(e *Error) { *d.errs = append(*d.errs, e) }

// table is the context for decoding one section of the file.
type table struct {
	d       *decoder
	section string   // "programs.web"; "" at top level
	path    []string // TOML path of the section, for line numbers
	quiet   bool     // drop errors (a table already checked once)
}

func (t *table) line(key []string) int {
	return t.d.lines.line(append(slices.Clone(t.path), key...)...)
}

// errAt records a problem about key (a path below the section).
func (t *table) errAt(key []string, format string, args ...any) {
	if t.quiet {
		return
	}
	t.d.add(&Error{
		File: t.d.file, Line: t.line(key), Program: t.section,
		Key: strings.Join(key, "."), Msg: fmt.Sprintf(format, args...),
	})
}

// keyErr records a problem with a key's value: `key "k": ...`.
func (t *table) keyErr(key []string, format string, args ...any) {
	t.errAt(key, "key %q: %s", strings.Join(key, "."), fmt.Sprintf(format, args...))
}

// under returns the table for the subtable at key below t.
func (t *table) under(key []string) *table {
	return &table{d: t.d, section: t.section, path: append(slices.Clone(t.path), key...), quiet: t.quiet}
}

// sortedKeys returns the keys of m ordered by line, then name.
func (t *table) sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	lines := make(map[string]int, len(m))
	for k := range m {
		keys = append(keys, k)
		lines[k] = t.line([]string{k})
	}
	sort.Slice(keys, func(i, j int) bool {
		if lines[keys[i]] != lines[keys[j]] {
			return lines[keys[i]] < lines[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// unknown reports key as unknown, suggesting the nearest of known. prefix
// is the subtable the key sits in, if any.
func (t *table) unknown(prefix []string, key string, known []string) {
	full := append(slices.Clone(prefix), key)
	cands := known
	if len(prefix) > 0 {
		cands = make([]string, len(known))
		for i, k := range known {
			cands[i] = strings.Join(prefix, ".") + "." + k
		}
	}
	name := strings.Join(full, ".")
	t.errAt(full, "unknown key %q%s", name, suggest(name, cands))
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case time.Time:
		return "datetime"
	}
	return fmt.Sprintf("%T", v)
}

func (t *table) wrongType(key []string, want string, v any) {
	t.keyErr(key, "expected %s, got %s", want, typeName(v))
}

func (t *table) asTable(key []string, v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		t.wrongType(key, "a table", v)
	}
	return m, ok
}

func (t *table) str(key []string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		t.wrongType(key, "a string", v)
		return "", false
	}
	if strings.ContainsRune(s, 0) {
		t.keyErr(key, "contains a NUL byte")
		return "", false
	}
	return s, true
}

func (t *table) boolean(key []string, v any) (bool, bool) {
	b, ok := v.(bool)
	if !ok {
		t.wrongType(key, "a boolean", v)
	}
	return b, ok
}

// integer checks an integer in [lo, hi].
func (t *table) integer(key []string, v any, lo, hi int64) (int, bool) {
	n, ok := v.(int64)
	if !ok {
		t.wrongType(key, "an integer", v)
		return 0, false
	}
	if n < lo || n > hi {
		switch {
		case hi == math.MaxInt32:
			t.keyErr(key, "must be at least %d, got %d", lo, n)
		default:
			t.keyErr(key, "must be between %d and %d, got %d", lo, hi, n)
		}
		return 0, false
	}
	return int(n), true
}

// duration accepts a Go duration string or a number of seconds. Negative
// durations are refused, and zero too when positive is set.
func (t *table) duration(key []string, v any, positive bool) (time.Duration, bool) {
	var d time.Duration
	switch x := v.(type) {
	case string:
		var err error
		d, err = time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			t.keyErr(key, `invalid duration %q (use Go syntax like "1m30s", or a number of seconds)`, x)
			return 0, false
		}
	case int64:
		if x < 0 {
			t.keyErr(key, "must not be negative, got %d", x)
			return 0, false
		}
		if float64(x) > maxDurationSeconds {
			t.keyErr(key, "%d seconds is too long", x)
			return 0, false
		}
		d = time.Duration(x) * time.Second
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 || x >= maxDurationSeconds {
			t.keyErr(key, "invalid duration: %v seconds", x)
			return 0, false
		}
		d = time.Duration(x * float64(time.Second))
	default:
		t.wrongType(key, `a duration (a string like "1m30s" or a number of seconds)`, v)
		return 0, false
	}
	if d < 0 {
		t.keyErr(key, "must not be negative, got %v", v)
		return 0, false
	}
	if positive && d == 0 {
		t.keyErr(key, "must be greater than zero")
		return 0, false
	}
	return d, true
}

func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func (t *table) enum(key []string, v any, allowed []string) (string, bool) {
	s, ok := t.str(key, v)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		t.keyErr(key, "invalid value %q: must be %s%s", s, quoteList(allowed), suggest(s, allowed))
		return "", false
	}
	return s, true
}

func (t *table) strArray(key []string, v any) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok {
		t.wrongType(key, "an array of strings", v)
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.keyErr(key, "element %d: expected a string, got %s", i, typeName(e))
			return nil, false
		}
		if strings.ContainsRune(s, 0) {
			t.keyErr(key, "element %d contains a NUL byte", i)
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// command accepts an argv array or a shell command string.
func (t *table) command(key []string, v any) ([]string, bool) {
	if s, ok := v.(string); ok {
		if strings.TrimSpace(s) == "" {
			t.keyErr(key, "empty command")
			return nil, false
		}
		if strings.ContainsRune(s, 0) {
			t.keyErr(key, "contains a NUL byte")
			return nil, false
		}
		return []string{"/bin/sh", "-c", s}, true
	}
	if _, ok := v.([]any); !ok {
		t.wrongType(key, "an array of strings or a string", v)
		return nil, false
	}
	argv, ok := t.strArray(key, v)
	if !ok {
		return nil, false
	}
	if len(argv) == 0 || argv[0] == "" {
		t.keyErr(key, "empty command: the first element must name the program to run")
		return nil, false
	}
	return argv, true
}

// filePath accepts a string path and resolves it against the file's directory.
func (t *table) filePath(key []string, v any) (string, bool) {
	s, ok := t.str(key, v)
	if !ok || s == "" {
		return "", ok
	}
	return resolvePath(t.d.file, s), true
}

// hook decodes a [hooks.NAME] table, as far as it can; ok is false when
// it reported a problem. That its programs name programs is checked once
// every file's programs are known (builder.checkHookPrograms).
func (t *table) hook(name string, m map[string]any) (h *Hook, ok bool) {
	h = &Hook{Name: name}
	hookKeys.reset(h)
	h.File, h.Line = t.d.file, t.d.lines.line("hooks", name)
	before := len(*t.d.errs)
	w := newWritten()
	hookKeys.apply(t, nil, h, m, w)
	hookKeys.checkRequired(t, nil, h, w)
	return h, len(*t.d.errs) == before
}

// v2table checks that a program or teardown entry is a table.
func v2table(t *table, v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		t.errAt(nil, "expected a table, got %s", typeName(v))
	}
	return m, ok
}

// programOrder lists the program names in the order the file gives them.
func programOrder(programs map[string]any, keys []toml.Key) []string {
	var order []string
	seen := map[string]bool{}
	for _, k := range keys {
		if len(k) >= 2 && k[0] == "programs" && !seen[k[1]] {
			if _, ok := programs[k[1]]; ok {
				seen[k[1]] = true
				order = append(order, k[1])
			}
		}
	}
	var rest []string
	for name := range programs {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	return append(order, rest...)
}

func (d *decoder) supervisor(s *Supervisor, m map[string]any) {
	t := &table{d: d, section: "supervisor", path: []string{"supervisor"}}
	supervisorKeys.apply(t, nil, s, m, nil)
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New(`want host:port, such as "127.0.0.1:9100" or ":9100"`)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("bad host %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number between 1 and 65535", port)
	}
	return nil
}

// buildProgram applies the built-in defaults, then [defaults] (already
// checked, so quietly), then the program's own table, then checks the
// result.
func (d *decoder) buildProgram(name string, defaults, own map[string]any) *Program {
	p := defaultProgram(name)
	p.File, p.Line = d.file, d.lines.line("programs", name)
	t := &table{d: d, section: "programs." + name, path: []string{"programs", name}}
	w := newWritten()
	if defaults != nil {
		base := d
		if d.base != nil {
			base = d.base
		}
		programKeys.apply(&table{d: base, section: "defaults", path: []string{"defaults"}, quiet: true}, nil, p, defaults, w)
	}
	programKeys.apply(t, nil, p, own, w)
	programKeys.checkRequired(t, nil, p, w)
	p.Replicated = slices.Contains(w.keys[""], "replicas")
	if p.BackoffMax < p.BackoffInitial {
		t.keyErr([]string{"backoff_max"}, "%v is less than backoff_initial %v", p.BackoffMax, p.BackoffInitial)
	}
	if w := p.Watchdog; w != nil && w.StartGrace == 0 {
		w.StartGrace = w.Timeout
	}
	t.checkProbe(p, "readiness", p.Readiness, w)
	t.checkProbe(p, "liveness", p.Liveness, w)
	return p
}

// probeKinds are the keys that choose a probe's kind.
var probeKinds = []ProbeKind{ProbeExec, ProbeHTTP, ProbeTCP, ProbeLogLine}

// checkProbe checks, once every layer is applied, that the probe table
// (readiness or liveness) names exactly one kind, and that a log_line
// probe can see the program's output.
func (t *table) checkProbe(p *Program, name string, pr *Probe, w *written) {
	if pr == nil {
		return
	}
	var set []string
	for _, k := range probeKinds {
		switch {
		case k == ProbeExec && len(pr.Exec) > 0, k == ProbeHTTP && pr.HTTP != "",
			k == ProbeTCP && pr.TCP != "", k == ProbeLogLine && pr.LogLine != nil:
			set = append(set, string(k))
		}
	}
	key := []string{name}
	switch {
	case len(set) > 1:
		t.errAt(append(key, set[1]), "%s: a probe has one kind, this one has %s", name, strings.Join(set, " and "))
	case len(set) == 0:
		for _, k := range probeKinds {
			if w.failed[name+"."+string(k)] {
				return // its value is already reported
			}
		}
		known := readinessKeys.names()
		for _, k := range w.keys[name] {
			if !slices.Contains(known, k) {
				return // an unknown key, already reported, was meant as the kind
			}
		}
		kinds := "exec, http, tcp or log_line"
		if name == "liveness" {
			kinds = "exec, http or tcp"
		}
		t.errAt(key, "%s: no probe: set one of %s", name, kinds)
	case set[0] == string(ProbeLogLine) && p.Stdout.Kind != OutputLog && p.Stderr.Kind != OutputLog:
		t.errAt(append(key, set[0]), `%s.log_line: the probe reads the output of stdout or stderr = "log", `+
			`but stdout is %q and stderr is %q`, name, p.Stdout.String(), p.Stderr.String())
	}
}

func (t *table) output(key []string, v any) (Output, bool) {
	s, ok := t.str(key, v)
	if !ok {
		return Output{}, false
	}
	switch s {
	case "log":
		return Output{Kind: OutputLog}, true
	case "inherit":
		return Output{Kind: OutputInherit}, true
	case "null":
		return Output{Kind: OutputNull}, true
	}
	if !strings.Contains(s, "/") {
		t.keyErr(key, `invalid value %q: must be "log", "inherit", "null" or a file path containing "/"%s`,
			s, suggest(s, outputKeywords))
		return Output{}, false
	}
	return Output{Kind: OutputFile, Path: resolvePath(t.d.file, s)}, true
}

func (t *table) teardownStep(name string, m map[string]any) *TeardownStep {
	s := &TeardownStep{Name: name}
	teardownKeys.reset(s)
	s.File, s.Line = t.d.file, t.d.lines.line("teardown", name)
	before := len(*t.d.errs)
	w := newWritten()
	teardownKeys.apply(t, nil, s, m, w)
	teardownKeys.checkRequired(t, nil, s, w)
	if len(*t.d.errs) > before {
		return nil
	}
	return s
}

// checkDependencies checks that every depends_on target exists (a
// program, or one instance "NAME:i" of a program with replicas whose
// index is below its count), is not the program itself, that a
// "completed" one can complete, and that the dependencies form no cycle.
// The graph is that of the programs (progs holds the definitions): a
// dependency on one instance is one on its program. Problems are
// reported in the file of the program concerned; lines finds that file's
// line index (nil: d's).
func (d *decoder) checkDependencies(progs map[string]*Program, order []string, lines func(file string) *lineIndex) {
	tab := func(name string) *table {
		pd := d
		if f := progs[name].File; f != "" && f != d.file && lines != nil {
			pd = d.forFile(f, lines(f))
		}
		return &table{d: pd, section: "programs." + name, path: []string{"programs", name}}
	}
	key := []string{"depends_on"}
	for _, name := range order {
		p := progs[name]
		for _, d := range p.DependsOn {
			dep := d.Name
			base, i, inst := SplitInstance(dep)
			dp := progs[base]
			switch {
			case base == name:
				tab(name).keyErr(key, "program %q depends on itself", dep)
			case dp == nil:
				tab(name).keyErr(key, "unknown program %q%s", dep, suggest(dep, order))
			case inst && !dp.Replicated:
				tab(name).keyErr(key, "%q: program %q has no replicas: depend on %q", dep, base, base)
			case inst && i >= dp.Replicas:
				tab(name).keyErr(key, "%q: program %q has %s", dep, base, replicaRange(base, dp.Replicas))
			case d.Condition == DependsCompleted && dp.Restart == RestartAlways:
				tab(name).keyErr(key, `%q never completes: it has restart = "always" `+
					`(a one-shot task has restart = "never" or "on-failure")`, dep)
			}
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		color[name] = grey
		stack = append(stack, name)
		for _, d := range progs[name].DependsOn {
			dep, _, _ := SplitInstance(d.Name)
			if dep == name || progs[dep] == nil {
				continue
			}
			switch color[dep] {
			case white:
				visit(dep)
			case grey:
				i := slices.Index(stack, dep)
				cycle := append(slices.Clone(stack[i:]), dep)
				tab(dep).keyErr(key, "dependency cycle: %s", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		color[name] = black
	}
	for _, name := range order {
		if color[name] == white {
			visit(name)
		}
	}
}
