package conf

import (
	"maps"
	"slices"
	"strings"

	"github.com/supervise/supervise/conf/typo"
)

// This file holds the machinery behind the key declarations of keys.go.
//
// Every table of the file (supervisor, programs.NAME with its breaker and
// watchdog subtables, teardown.NAME) has a schema: the list of its keys,
// each a typed descriptor made once at start-up. A key knows its TOML
// name, its doc line, its default, the codec that decodes and checks its
// value, whether a change restarts the program, and the accessor of the
// struct field that holds it. Decoding, unknown-key suggestions, defaults,
// Diff and Equal, Summary, NeedsRestart and the README's key reference all
// walk the schemas, so a key is described once.

// node is one key of a table whose values live in a struct S: a value of
// some type, or a subtable.
type node[S any] interface {
	meta() *keyMeta
	reset(s *S)
	// decode checks v and stores it in s, reporting problems under key.
	decode(t *table, key []string, v any, s *S, w *written) bool
	// diff appends prefix+name to out when a and b differ (the keys below
	// prefix+name+"." for a subtable).
	diff(prefix string, a, b *S, out []string) []string
	// checkRequired reports a required key (below prefix) missing from s.
	checkRequired(t *table, prefix []string, s *S, w *written)
	summary(name string, s *S) []string
	ref() refInfo
	// copyTo makes dst's value of the key a copy of src's that shares no
	// memory with it.
	copyTo(dst, src *S)
}

// keyMeta is what every key declares beside its value.
type keyMeta struct {
	name     string
	doc      string // one line for the reference
	restart  bool   // a change restarts the program (program keys only)
	required bool   // an error when no layer sets it
	defDoc   string // the default as the reference writes it, when not the codec's form
}

func (m *keyMeta) meta() *keyMeta { return m }

// refInfo is a key as the reference and NeedsRestart see it.
type refInfo struct {
	name, typ, def, doc string
	restart             bool
	header              string    // subtables: "programs.NAME.breaker"
	keys                []refInfo // subtables: their keys
}

// codec reads, checks, compares and writes one kind of value.
type codec[T any] struct {
	typ string // the type as the reference writes it
	// decode checks v (as the TOML decoder gave it) and stores it in dst,
	// or reports the problem under key and returns false.
	decode func(t *table, key []string, v any, dst *T) bool
	equal  func(a, b T) bool
	clone  func(T) T      // nil: a plain copy is enough
	toml   func(T) string // the value written in TOML, for the reference
	show   func(T) string // the value for Summary; nil: toml
}

// value is a key holding a T in the field get returns.
type value[S, T any] struct {
	keyMeta
	get func(*S) *T
	def T
	c   *codec[T]
	// phrase, when set, gives the key's part of Summary ("" for none);
	// otherwise a value that differs from its default shows as "key value".
	phrase func(*S) string
}

// key declares a key of default def, held in the field get returns.
func key[S, T any](name string, get func(*S) *T, c *codec[T], def T, doc string) *value[S, T] {
	return &value[S, T]{keyMeta: keyMeta{name: name, doc: doc}, get: get, def: def, c: c}
}

// restarts marks the key as one whose change restarts the program.
func (v *value[S, T]) restarts() *value[S, T] { v.restart = true; return v }

// mandatory marks the key as required.
func (v *value[S, T]) mandatory() *value[S, T] { v.required = true; return v }

// defaultIs sets how the reference writes the default.
func (v *value[S, T]) defaultIs(s string) *value[S, T] { v.defDoc = s; return v }

// phrased sets the key's part of Summary.
func (v *value[S, T]) phrased(f func(*S) string) *value[S, T] { v.phrase = f; return v }

func (v *value[S, T]) copyOf(x T) T {
	if v.c.clone != nil {
		return v.c.clone(x)
	}
	return x
}

func (v *value[S, T]) reset(s *S) { *v.get(s) = v.copyOf(v.def) }

func (v *value[S, T]) copyTo(dst, src *S) { *v.get(dst) = v.copyOf(*v.get(src)) }

func (v *value[S, T]) decode(t *table, key []string, x any, s *S, w *written) bool {
	ok := v.c.decode(t, key, x, v.get(s))
	if !ok && w != nil {
		w.failed[strings.Join(key, ".")] = true
	}
	return ok
}

func (v *value[S, T]) diff(prefix string, a, b *S, out []string) []string {
	if !v.c.equal(*v.get(a), *v.get(b)) {
		out = append(out, prefix+v.name)
	}
	return out
}

func (v *value[S, T]) checkRequired(t *table, prefix []string, s *S, w *written) {
	if !v.required {
		return
	}
	var zero T
	key := append(slices.Clone(prefix), v.name)
	if !v.c.equal(*v.get(s), zero) || w.failed[strings.Join(key, ".")] {
		return
	}
	// A near misspelling is already reported as an unknown key.
	if slices.ContainsFunc(w.keys[strings.Join(prefix, ".")], func(k string) bool {
		return k != v.name && typo.Distance(k, v.name) <= 2
	}) {
		return
	}
	t.errAt(key, "missing required key %q", strings.Join(key, "."))
}

func (v *value[S, T]) summary(name string, s *S) []string {
	if v.phrase != nil {
		if ph := v.phrase(s); ph != "" {
			return []string{ph}
		}
		return nil
	}
	x := *v.get(s)
	if v.c.equal(x, v.def) {
		return nil
	}
	show := v.c.toml
	if v.c.show != nil {
		show = v.c.show
	}
	return []string{name + " " + show(x)}
}

func (v *value[S, T]) ref() refInfo {
	r := refInfo{name: v.name, typ: v.c.typ, doc: v.doc, restart: v.restart, def: v.defDoc}
	switch {
	case r.def != "":
	case v.required:
		r.def = "required"
	default:
		r.def = "`" + v.c.toml(v.def) + "`"
	}
	return r
}

// subtable is a key holding a table of keys, such as
// [programs.NAME.breaker], in a struct U inside S.
type subtable[S, U any] struct {
	keyMeta
	dot    string // name + "."
	header string // the table header the reference uses: "programs.NAME.breaker"
	keys   schema[U]
	// get returns the table, or nil when it is absent; with create it
	// first makes it present, with its defaults.
	get   func(s *S, create bool) *U
	clear func(s *S) // makes the table as it is when no layer mentions it
	// phrase, when set, gives the table's part of Summary; otherwise its
	// keys give theirs.
	phrase func(*S) string
	// refused maps keys the table does not take, though a similar table
	// does, to the error that explains why.
	refused map[string]string
}

// always declares a subtable that is always present, held in the field get
// returns: its defaults apply whether or not the file has the table.
func always[S, U any](name, header string, get func(*S) *U, keys schema[U], doc string) *subtable[S, U] {
	return &subtable[S, U]{
		keyMeta: keyMeta{name: name, doc: doc},
		dot:     name + ".",
		header:  header,
		keys:    keys,
		get:     func(s *S, _ bool) *U { return get(s) },
		clear:   func(s *S) { keys.reset(get(s)) },
	}
}

// optional declares a subtable held in the field get returns, nil when no
// layer has the table; it takes its defaults when it first appears.
func optional[S, U any](name, header string, get func(*S) **U, keys schema[U], doc string) *subtable[S, U] {
	return &subtable[S, U]{
		keyMeta: keyMeta{name: name, doc: doc, defDoc: "none"},
		dot:     name + ".",
		header:  header,
		keys:    keys,
		get: func(s *S, create bool) *U {
			p := get(s)
			if *p == nil && create {
				*p = new(U)
				keys.reset(*p)
			}
			return *p
		},
		clear: func(s *S) { *get(s) = nil },
	}
}

// restarts marks the table as one whose appearance or removal restarts the
// program.
func (st *subtable[S, U]) restarts() *subtable[S, U] { st.restart = true; return st }

// phrased sets the table's part of Summary.
func (st *subtable[S, U]) phrased(f func(*S) string) *subtable[S, U] { st.phrase = f; return st }

// refusing makes key, which the table does not take, an error saying why
// rather than an unknown key.
func (st *subtable[S, U]) refusing(key, why string) *subtable[S, U] {
	if st.refused == nil {
		st.refused = map[string]string{}
	}
	st.refused[key] = why
	return st
}

func (st *subtable[S, U]) reset(s *S) { st.clear(s) }

func (st *subtable[S, U]) copyTo(dst, src *S) {
	u := st.get(src, false)
	st.clear(dst)
	if u != nil {
		st.keys.copyTo(st.get(dst, true), u)
	}
}

func (st *subtable[S, U]) decode(t *table, key []string, v any, s *S, w *written) bool {
	m, ok := t.asTable(key, v)
	if !ok {
		return false
	}
	for k, why := range st.refused {
		if _, has := m[k]; has {
			m = maps.Clone(m)
			delete(m, k)
			t.keyErr(append(slices.Clone(key), k), "%s", why)
			if w != nil {
				w.failed[strings.Join(append(slices.Clone(key), k), ".")] = true
			}
		}
	}
	st.keys.apply(t, key, st.get(s, true), m, w)
	return true
}

func (st *subtable[S, U]) diff(prefix string, a, b *S, out []string) []string {
	ua, ub := st.get(a, false), st.get(b, false)
	switch {
	case (ua == nil) != (ub == nil):
		return append(out, prefix+st.name)
	case ua == nil:
		return out
	}
	return st.keys.diff(prefix+st.dot, ua, ub, out)
}

func (st *subtable[S, U]) checkRequired(t *table, prefix []string, s *S, w *written) {
	if u := st.get(s, false); u != nil {
		st.keys.checkRequired(t, append(slices.Clone(prefix), st.name), u, w)
	}
}

func (st *subtable[S, U]) summary(name string, s *S) []string {
	if st.phrase != nil {
		if ph := st.phrase(s); ph != "" {
			return []string{ph}
		}
		return nil
	}
	if u := st.get(s, false); u != nil {
		return st.keys.summary(name+".", u)
	}
	return nil
}

func (st *subtable[S, U]) ref() refInfo {
	def := st.defDoc
	if def == "" {
		def = "its keys' defaults"
	}
	return refInfo{name: st.name, typ: "table `[" + st.header + "]`", def: def, doc: st.doc,
		restart: st.restart, header: st.header, keys: st.keys.refs()}
}

// schema is the list of keys of a table whose values live in an S, in the
// order of the README's reference.
type schema[S any] []node[S]

// reset sets every key of s to its default.
func (sc schema[S]) reset(s *S) {
	for _, n := range sc {
		n.reset(s)
	}
}

// copyTo makes every key of dst a copy of src's, sharing no memory with
// it (slices, maps and optional subtables are copied).
func (sc schema[S]) copyTo(dst, src *S) {
	for _, n := range sc {
		n.copyTo(dst, src)
	}
}

// names returns the keys of the table.
func (sc schema[S]) names() []string {
	out := make([]string, len(sc))
	for i, n := range sc {
		out[i] = n.meta().name
	}
	return out
}

func (sc schema[S]) find(name string) node[S] {
	for _, n := range sc {
		if n.meta().name == name {
			return n
		}
	}
	return nil
}

// apply decodes the keys of m, the table at the key path prefix of t's
// section, into s. Unknown keys are reported with the nearest known one.
// w, when not nil, records what was written, for checkRequired.
func (sc schema[S]) apply(t *table, prefix []string, s *S, m map[string]any, w *written) {
	p := strings.Join(prefix, ".")
	for _, k := range t.under(prefix).sortedKeys(m) {
		if w != nil {
			w.keys[p] = append(w.keys[p], k)
		}
		n := sc.find(k)
		if n == nil {
			t.unknown(prefix, k, sc.names())
			continue
		}
		n.decode(t, append(slices.Clone(prefix), k), m[k], s, w)
	}
}

// diff appends to out the keys (after prefix) whose values differ.
func (sc schema[S]) diff(prefix string, a, b *S, out []string) []string {
	for _, n := range sc {
		out = n.diff(prefix, a, b, out)
	}
	return out
}

// checkRequired reports the required keys that no layer set. A key is not
// reported when a layer wrote it with a refused value or wrote a near
// misspelling of it: that problem is already reported.
func (sc schema[S]) checkRequired(t *table, prefix []string, s *S, w *written) {
	for _, n := range sc {
		n.checkRequired(t, prefix, s, w)
	}
}

// summary gives the Summary parts of s.
func (sc schema[S]) summary(prefix string, s *S) []string {
	var parts []string
	for _, n := range sc {
		parts = append(parts, n.summary(prefix+n.meta().name, s)...)
	}
	return parts
}

func (sc schema[S]) refs() []refInfo {
	out := make([]refInfo, len(sc))
	for i, n := range sc {
		out[i] = n.ref()
	}
	return out
}

// written records, for one table being built from its layers, the keys the
// layers wrote and those whose values were refused, to decide whether a
// required key is missing.
type written struct {
	keys   map[string][]string // by dotted subtable prefix ("" for the table itself)
	failed map[string]bool     // dotted keys whose value was refused
}

func newWritten() *written {
	return &written{keys: map[string][]string{}, failed: map[string]bool{}}
}
