package conf

import (
	"slices"
	"strings"
)

// This file holds the machinery behind the key declarations of keys.go.
//
// Every table of the file (supervisor, programs.NAME with its breaker and
// watchdog subtables, teardown.NAME) is described by one method that
// returns its settings bound to the fields of one struct value, for example
// (*Program).settings. A setting knows its TOML key, its doc line, its
// default, how its value is decoded and checked (its codec), whether a
// change restarts the program, and the field that holds it. Decoding,
// unknown-key suggestions, defaults, Diff and Equal, Summary and the
// README's key reference all walk these lists, so a key is described once.
// Two lists made from two structs by the same method hold the same keys in
// the same order, which is how Diff pairs them.

// setting is one key of a table: a *value[T] or a *subtable.
type setting interface {
	meta() *keyMeta
}

// keyMeta is what every key declares beside its value.
type keyMeta struct {
	name     string
	doc      string // one line for the reference
	restart  bool   // a change restarts the program (program keys only)
	required bool   // an error when no layer sets it
	defDoc   string // the default as the reference writes it, when not the codec's form
	// phrase, when set, gives the key's part of Summary ("" for none);
	// otherwise a key that differs from its default shows as "key value".
	phrase func() string
}

func (m *keyMeta) meta() *keyMeta { return m }

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

// value is a key holding a value of type T in the field *ptr.
type value[T any] struct {
	keyMeta
	ptr *T
	def T
	c   *codec[T]
}

// leaf is the type-independent view of a *value[T].
type leaf interface {
	setting
	reset()
	decode(t *table, key []string, v any) bool
	same(o leaf) bool
	isDefault() bool
	isZero() bool
	typeDoc() string
	defaultDoc() string
	shown() string
}

// key declares a key held in *ptr with default def.
func key[T any](name string, ptr *T, c *codec[T], def T, doc string) *value[T] {
	return &value[T]{keyMeta: keyMeta{name: name, doc: doc}, ptr: ptr, def: def, c: c}
}

// restarts marks the key as one whose change restarts the program.
func (v *value[T]) restarts() *value[T] { v.restart = true; return v }

// mandatory marks the key as required.
func (v *value[T]) mandatory() *value[T] { v.required = true; return v }

// defaultIs sets how the reference writes the default.
func (v *value[T]) defaultIs(s string) *value[T] { v.defDoc = s; return v }

// summary sets the key's part of Summary.
func (v *value[T]) summary(f func() string) *value[T] { v.phrase = f; return v }

func (v *value[T]) copyOf(x T) T {
	if v.c.clone != nil {
		return v.c.clone(x)
	}
	return x
}

func (v *value[T]) reset() { *v.ptr = v.copyOf(v.def) }

func (v *value[T]) decode(t *table, key []string, x any) bool { return v.c.decode(t, key, x, v.ptr) }

func (v *value[T]) same(o leaf) bool {
	w, ok := o.(*value[T])
	return ok && v.c.equal(*v.ptr, *w.ptr)
}

func (v *value[T]) isDefault() bool { return v.c.equal(*v.ptr, v.def) }

func (v *value[T]) isZero() bool {
	var zero T
	return v.c.equal(*v.ptr, zero)
}

func (v *value[T]) typeDoc() string { return v.c.typ }

func (v *value[T]) defaultDoc() string {
	if v.defDoc != "" {
		return v.defDoc
	}
	if v.required {
		return "required"
	}
	return v.c.toml(v.def)
}

func (v *value[T]) shown() string {
	if v.c.show != nil {
		return v.c.show(*v.ptr)
	}
	return v.c.toml(*v.ptr)
}

// subtable is a key holding a table of settings, such as
// [programs.NAME.breaker].
type subtable struct {
	keyMeta
	header string // the table header the reference uses: "programs.NAME.breaker"
	// get returns the settings of the table, or nil when it is absent.
	get func() []setting
	// open returns the settings, first making the table present with its
	// defaults when it is absent.
	open func() []setting
	// clear makes the table as it is when the file does not mention it.
	clear func()
}

// summary sets the table's part of Summary.
func (s *subtable) summary(f func() string) *subtable { s.phrase = f; return s }

// restarts marks the table as one whose change restarts the program.
func (s *subtable) restarts() *subtable { s.restart = true; return s }

// always declares a subtable that is always present, held in *ptr (its
// defaults apply whether or not the file has the table).
func always[U any](name, header string, ptr *U, keys func(*U) []setting, doc string) *subtable {
	return &subtable{
		keyMeta: keyMeta{name: name, doc: doc},
		header:  header,
		get:     func() []setting { return keys(ptr) },
		open:    func() []setting { return keys(ptr) },
		clear:   func() { resetAll(keys(ptr)) },
	}
}

// optional declares a subtable held in *ptr, nil when the file has no such
// table; it takes its defaults when it first appears.
func optional[U any](name, header string, ptr **U, keys func(*U) []setting, doc string) *subtable {
	return &subtable{
		keyMeta: keyMeta{name: name, doc: doc, defDoc: "none"},
		header:  header,
		get: func() []setting {
			if *ptr == nil {
				return nil
			}
			return keys(*ptr)
		},
		open: func() []setting {
			if *ptr == nil {
				*ptr = new(U)
				resetAll(keys(*ptr))
			}
			return keys(*ptr)
		},
		clear: func() { *ptr = nil },
	}
}

// resetAll sets every key of ss to its default.
func resetAll(ss []setting) {
	for _, s := range ss {
		switch s := s.(type) {
		case leaf:
			s.reset()
		case *subtable:
			s.clear()
		}
	}
}

// names returns the keys of ss.
func names(ss []setting) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.meta().name
	}
	return out
}

func find(ss []setting, name string) setting {
	for _, s := range ss {
		if s.meta().name == name {
			return s
		}
	}
	return nil
}

// diffSettings appends to out the keys (dotted below prefix) whose values
// differ between a and b, two lists made by the same method.
func diffSettings(prefix string, a, b []setting, out []string) []string {
	for i, s := range a {
		name := prefix + s.meta().name
		switch s := s.(type) {
		case leaf:
			if !s.same(b[i].(leaf)) {
				out = append(out, name)
			}
		case *subtable:
			sa, sb := s.get(), b[i].(*subtable).get()
			switch {
			case (sa == nil) != (sb == nil):
				out = append(out, name)
			case sa != nil:
				out = diffSettings(name+".", sa, sb, out)
			}
		}
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

// apply decodes the keys of m, found at the subtable prefix of t's
// section, into ss. Unknown keys are reported with the nearest known one.
func (t *table) apply(prefix []string, ss []setting, m map[string]any, w *written) {
	at := t.under(prefix)
	for _, k := range at.sortedKeys(m) {
		v := m[k]
		full := append(slices.Clone(prefix), k)
		if w != nil {
			p := strings.Join(prefix, ".")
			w.keys[p] = append(w.keys[p], k)
		}
		switch s := find(ss, k).(type) {
		case nil:
			t.unknown(prefix, k, names(ss))
		case leaf:
			if !s.decode(t, full, v) && w != nil {
				w.failed[strings.Join(full, ".")] = true
			}
		case *subtable:
			if sm, ok := t.asTable(full, v); ok {
				t.apply(full, s.open(), sm, w)
			}
		}
	}
}

// checkRequired reports the required keys of ss (at prefix) that no layer
// set. A key is not reported when a layer wrote it with a refused value or
// wrote a near misspelling of it: that problem is already reported.
func (t *table) checkRequired(prefix []string, ss []setting, w *written) {
	p := strings.Join(prefix, ".")
	for _, s := range ss {
		m := s.meta()
		full := append(slices.Clone(prefix), m.name)
		switch s := s.(type) {
		case leaf:
			if !m.required || !s.isZero() || w.failed[strings.Join(full, ".")] {
				continue
			}
			if slices.ContainsFunc(w.keys[p], func(k string) bool {
				return k != m.name && editDistance(k, m.name) <= 2
			}) {
				continue
			}
			t.errAt(full, "missing required key %q", strings.Join(full, "."))
		case *subtable:
			if sub := s.get(); sub != nil {
				t.checkRequired(full, sub, w)
			}
		}
	}
}

// summaryParts gives the Summary parts of ss, keys below prefix.
func summaryParts(prefix string, ss []setting) []string {
	var parts []string
	for _, s := range ss {
		m := s.meta()
		if m.phrase != nil {
			if ph := m.phrase(); ph != "" {
				parts = append(parts, ph)
			}
			continue
		}
		switch s := s.(type) {
		case leaf:
			if !s.isDefault() {
				parts = append(parts, prefix+m.name+" "+s.shown())
			}
		case *subtable:
			if sub := s.get(); sub != nil {
				parts = append(parts, summaryParts(prefix+m.name+".", sub)...)
			}
		}
	}
	return parts
}
