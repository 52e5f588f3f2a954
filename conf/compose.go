package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// includedTables are the top-level tables an included file may hold.
var includedTables = []string{"programs", "teardown", "hooks"}

// unit is one file of a configuration: the main file or an included one,
// decoded as TOML.
type unit struct {
	file  string // as problems name it
	raw   map[string]any
	keys  []toml.Key
	lines *lineIndex
}

// decodeTOML decodes one file, or returns its syntax error.
func decodeTOML(file string, data []byte) (*unit, *Error) {
	var raw map[string]any
	md, derr := toml.Decode(string(data), &raw)
	if derr != nil {
		e := &Error{File: file, Msg: "syntax error: " + derr.Error()}
		var pe toml.ParseError
		if errors.As(derr, &pe) {
			e.Line = pe.Position.Line
			e.Msg = "syntax error: " + pe.Message
		}
		return nil, e
	}
	return &unit{file: file, raw: raw, keys: md.Keys(), lines: scanLines(data)}, nil
}

// origin is where a program, teardown step or hook is defined.
type origin struct {
	file string
	line int
}

func (o origin) String() string {
	if o.line > 0 {
		return o.file + ":" + strconv.Itoa(o.line)
	}
	return o.file
}

// fileTables are the program, teardown and hook tables of one file.
type fileTables struct {
	u                         *unit
	d                         *decoder
	programs, teardown, hooks map[string]any
}

// builder puts a configuration together from its files.
type builder struct {
	cfg    *Config
	d      *decoder          // the main file's
	files  []string          // every file with problems to report, in reading order
	progAt map[string]origin // where each program name is defined
	stepAt map[string]origin // where each teardown step name is defined
	hookAt map[string]origin // where each hook name is defined
}

// compose decodes the main file and, with a loader, the files its include
// patterns match and the env files its programs name. The result is a
// complete configuration or an ErrorList of every problem found.
func compose(file string, data []byte, ld *loader) (*Config, error) {
	u, serr := decodeTOML(file, data)
	if serr != nil {
		return nil, ErrorList{serr}
	}
	if len(u.keys) == 0 {
		return nil, ErrorList{{File: file, Msg: "the file has no settings; an empty configuration would stop " +
			"every program (write a [supervisor] table to run no programs)", err: ErrEmpty}}
	}
	cfg := Default()
	cfg.File = file
	cfg.lines = map[string]*lineIndex{file: u.lines}
	b := &builder{cfg: cfg, d: newDecoder(file, u.lines), files: []string{file},
		progAt: map[string]origin{}, stepAt: map[string]origin{}, hookAt: map[string]origin{}}
	tabs := []*fileTables{b.mainFile(u)}
	if ld != nil {
		tabs = append(tabs, ld.includes(b)...)
	}
	for _, ft := range tabs {
		b.programs(ft)
	}
	b.d.checkDependencies(cfg.Definitions, cfg.DefinitionOrder, cfg.lineIndex)
	for _, ft := range tabs {
		b.teardown(ft)
	}
	for _, ft := range tabs {
		b.hooks(ft)
	}
	if ld != nil {
		// Read once per table: its instances share the env files.
		for _, name := range cfg.DefinitionOrder {
			ld.envFiles(b, cfg.Definitions[name])
		}
	}
	if errs := *b.d.errs; len(errs) > 0 {
		sortErrorsByFile(errs, b.files)
		return nil, errs
	}
	cfg.expand()
	return cfg, nil
}

// lineIndex returns the line index of file, nil when unknown.
func (c *Config) lineIndex(file string) *lineIndex { return c.lines[file] }

// mainFile decodes the top level of the main file: [supervisor] and
// [defaults], and finds its programs, teardown and hooks tables.
func (b *builder) mainFile(u *unit) *fileTables {
	d := b.d
	ft := &fileTables{u: u, d: d}
	top := &table{d: d}
	for _, k := range top.sortedKeys(u.raw) {
		v := u.raw[k]
		switch k {
		case "supervisor":
			if m, ok := top.asTable([]string{k}, v); ok {
				d.supervisor(&b.cfg.Supervisor, m)
			}
		case "defaults":
			if m, ok := top.asTable([]string{k}, v); ok {
				b.cfg.defaults = m
				t := &table{d: d, section: "defaults", path: []string{"defaults"}}
				programKeys.apply(t, nil, defaultProgram(""), m, nil)
			}
		case "programs":
			ft.programs, _ = top.asTable([]string{k}, v)
		case "teardown":
			ft.teardown, _ = top.asTable([]string{k}, v)
		case "hooks":
			ft.hooks, _ = top.asTable([]string{k}, v)
		default:
			top.unknown(nil, k, topKeys)
		}
	}
	return ft
}

// includedFile checks the top level of an included file, which may hold
// only the tables of includedTables.
func (b *builder) includedFile(u *unit) *fileTables {
	d := b.d.forFile(u.file, u.lines)
	ft := &fileTables{u: u, d: d}
	top := &table{d: d}
	allowed := make([]string, len(includedTables))
	for i, k := range includedTables {
		allowed[i] = "[" + k + ".*]"
	}
	for _, k := range top.sortedKeys(u.raw) {
		v := u.raw[k]
		switch {
		case k == "programs":
			ft.programs, _ = top.asTable([]string{k}, v)
		case k == "teardown":
			ft.teardown, _ = top.asTable([]string{k}, v)
		case k == "hooks":
			ft.hooks, _ = top.asTable([]string{k}, v)
		default:
			what := fmt.Sprintf("key %q", k)
			if _, isTable := v.(map[string]any); isTable {
				what = "[" + k + "]"
			}
			top.errAt([]string{k}, "%s is not allowed in an included file, which may hold only %s tables",
				what, listAnd(allowed))
		}
	}
	return ft
}

// programs builds the program definitions of one file. A name defined in
// an earlier file is refused.
func (b *builder) programs(ft *fileTables) {
	for _, name := range programOrder(ft.programs, ft.u.keys) {
		section := "programs." + name
		t := &table{d: ft.d, section: section, path: []string{"programs", name}}
		if !nameRE.MatchString(name) {
			t.errAt(nil, `invalid program name %q: use only letters, digits, "_", "." and "-"`, name)
		}
		if prev, dup := b.progAt[name]; dup {
			t.errAt(nil, "program %q is already defined at %s", name, prev)
			continue
		}
		b.progAt[name] = origin{ft.u.file, ft.u.lines.line("programs", name)}
		m, ok := v2table(t, ft.programs[name])
		if !ok {
			continue
		}
		p := ft.d.buildProgram(name, b.cfg.defaults, m)
		t.checkReplicas(p)
		b.cfg.Definitions[name] = p
		b.cfg.DefinitionOrder = append(b.cfg.DefinitionOrder, name)
	}
}

// teardown builds the teardown steps of one file.
func (b *builder) teardown(ft *fileTables) {
	top := &table{d: ft.d, path: []string{"teardown"}}
	for _, name := range top.sortedKeys(ft.teardown) {
		t := &table{d: ft.d, section: "teardown." + name, path: []string{"teardown", name}}
		if !nameRE.MatchString(name) {
			t.errAt(nil, `invalid teardown step name %q: use only letters, digits, "_", "." and "-"`, name)
		}
		if prev, dup := b.stepAt[name]; dup {
			t.errAt(nil, "teardown step %q is already defined at %s", name, prev)
			continue
		}
		b.stepAt[name] = origin{ft.u.file, ft.u.lines.line("teardown", name)}
		if at, clash := b.progAt[name]; clash {
			where := ""
			if at.file != ft.u.file {
				where = fmt.Sprintf(" (programs.%s is at %s)", name, at)
			}
			t.errAt(nil, "name %q is also a program's; teardown steps and programs need distinct names%s", name, where)
		}
		m, ok := v2table(t, ft.teardown[name])
		if !ok {
			continue
		}
		if s := t.teardownStep(name, m); s != nil {
			b.cfg.Teardown[name] = s
		}
	}
}

// hooks builds the hooks of one file. A name defined in an earlier file
// is refused, and each of a hook's programs must name a program (of any
// file) or an instance of one with replicas.
func (b *builder) hooks(ft *fileTables) {
	top := &table{d: ft.d, path: []string{"hooks"}}
	for _, name := range top.sortedKeys(ft.hooks) {
		t := &table{d: ft.d, section: "hooks." + name, path: []string{"hooks", name}}
		if !nameRE.MatchString(name) {
			t.errAt(nil, `invalid hook name %q: use only letters, digits, "_", "." and "-"`, name)
		}
		if prev, dup := b.hookAt[name]; dup {
			t.errAt(nil, "hook %q is already defined at %s", name, prev)
			continue
		}
		b.hookAt[name] = origin{ft.u.file, ft.u.lines.line("hooks", name)}
		m, ok := v2table(t, ft.hooks[name])
		if !ok {
			continue
		}
		h, ok := t.hook(name, m)
		if b.checkHookPrograms(t, h) && ok {
			b.cfg.Hooks[name] = h
		}
	}
}

// checkHookPrograms checks that the programs of h name programs, or
// instances NAME:i below their program's count, as depends_on does.
func (b *builder) checkHookPrograms(t *table, h *Hook) bool {
	key := []string{"programs"}
	ok := true
	for _, n := range h.Programs {
		base, i, inst := SplitInstance(n)
		dp := b.cfg.Definitions[base]
		switch {
		case dp == nil:
			if _, defined := b.progAt[base]; defined {
				continue // a program with problems of its own, reported
			}
			t.keyErr(key, "unknown program %q%s", n, suggest(base, b.cfg.DefinitionOrder))
		case inst && !dp.Replicated:
			t.keyErr(key, "%q: program %q has no replicas: name it %q", n, base, base)
		case inst && i >= dp.Replicas:
			t.keyErr(key, "%q: program %q has %s", n, base, replicaRange(base, dp.Replicas))
		default:
			continue
		}
		ok = false
	}
	return ok
}

// Origin returns where the hook is defined, as Program.Origin does.
func (h *Hook) Origin() string {
	if h.File == "" {
		return ""
	}
	return origin{h.File, h.Line}.String()
}

// listAnd joins "a", "b" and "c" as "a, b and c".
func listAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// sortErrorsByFile orders problems by file, in the order of files (files
// not listed last), then by line as sortErrors does.
func sortErrorsByFile(l ErrorList, files []string) {
	rank := func(e *Error) int {
		if i := slices.Index(files, e.File); i >= 0 {
			return i
		}
		return len(files)
	}
	line := func(e *Error) int {
		if e.Line <= 0 {
			return int(^uint(0) >> 1)
		}
		return e.Line
	}
	sort.SliceStable(l, func(i, j int) bool {
		if ri, rj := rank(l[i]), rank(l[j]); ri != rj {
			return ri < rj
		}
		return line(l[i]) < line(l[j])
	})
}

// Origin returns where the program is defined, "FILE:LINE" (only FILE
// when the line is unknown), or "" for the program AddCommand added.
func (p *Program) Origin() string {
	if p.File == "" {
		return ""
	}
	return origin{p.File, p.Line}.String()
}

// Origin returns where the step is defined, as Program.Origin does.
func (t *TeardownStep) Origin() string {
	if t.File == "" {
		return ""
	}
	return origin{t.File, t.Line}.String()
}

// checkPattern checks an include pattern: only its last element may hold
// wildcards, since a watcher follows the names of one directory.
func checkPattern(pattern string) error {
	dir, base := filepath.Split(pattern)
	if base == "" {
		return errors.New("no file name pattern after the directory")
	}
	if _, err := filepath.Match(base, ""); err != nil {
		return err
	}
	if strings.ContainsAny(dir, `*?[\`) {
		return errors.New("only the last element of a pattern may hold wildcards")
	}
	return nil
}

// globDir returns the names in the directory of pattern (absolute) that
// its last element matches, sorted: as a shell does, names beginning with
// a dot match only a pattern that does; directories never match. A
// directory that does not exist has no matches.
func globDir(pattern string) ([]string, error) {
	dir, base := filepath.Split(pattern)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		if ok, _ := filepath.Match(base, name); !ok {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.IsDir() {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}
