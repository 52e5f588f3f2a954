package importer

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/supervise/supervise/conf"
)

// The output: a TOML document written by hand, so that its order and its
// comments are the converter's, and the same input always gives the same
// bytes. Keys are written in a fixed order (keyOrder), whatever order the
// converters set them in.

// entry is one key = value line.
type entry struct {
	key     string
	value   string // TOML text
	comment string // after the value, without "# "; may be ""
}

// table is one [header] with its keys, and the subtables written after it.
type table struct {
	path     []string // ["programs", "web"]
	comments []string // the lines above the header, without "# "
	entries  []entry
	subs     []*table
}

// set sets key to the TOML text value, replacing an earlier value.
func (t *table) set(key, value, comment string) {
	for i := range t.entries {
		if t.entries[i].key == key {
			t.entries[i] = entry{key, value, comment}
			return
		}
	}
	t.entries = append(t.entries, entry{key, value, comment})
}

// has reports whether key is set.
func (t *table) has(key string) bool {
	return slices.ContainsFunc(t.entries, func(e entry) bool { return e.key == key })
}

// unset removes key.
func (t *table) unset(key string) {
	t.entries = slices.DeleteFunc(t.entries, func(e entry) bool { return e.key == key })
}

// sub returns the subtable name of t, made on first use.
func (t *table) sub(name string) *table {
	for _, s := range t.subs {
		if s.path[len(s.path)-1] == name {
			return s
		}
	}
	s := &table{path: append(slices.Clone(t.path), name)}
	t.subs = append(t.subs, s)
	return s
}

// empty reports whether t and its subtables set nothing.
func (t *table) empty() bool {
	if len(t.entries) > 0 {
		return false
	}
	for _, s := range t.subs {
		if !s.empty() {
			return false
		}
	}
	return true
}

// keyOrder is the order keys are written in: that of the key reference.
var keyOrder = []string{
	// [supervisor]
	"log_level", "log_format", "socket", "heartbeat_file", "heartbeat_interval",
	"shutdown_timeout", "force_exit_code", "watch_config", "metrics", "include",
	// programs
	"command", "directory", "env_file", "environment", "clear_environment", "user", "group",
	"autostart", "replicas", "depends_on", "restart", "success_exit_codes", "min_uptime",
	"backoff_initial", "backoff_max", "stop_signal", "stop_timeout", "stop_priority", "critical",
	"stdout", "stderr", "log_rate", "log_burst", "log_max_size", "log_max_files", "log_compress",
	"notify", "ready_timeout",
	// breaker
	"max_failures", "reset_timeout", "half_open_max_calls",
	// probes
	"exec", "http", "tcp", "log_line", "http_verify_tls", "interval", "timeout", "initial_delay",
	"success_threshold", "failure_threshold", "action",
}

// subOrder is the order of subtables.
var subOrder = []string{"breaker", "watchdog", "readiness", "liveness"}

func orderOf(list []string, key string) int {
	if i := slices.Index(list, key); i >= 0 {
		return i
	}
	return len(list)
}

// document is the whole output.
type document struct {
	header     []string // comment lines at the top
	supervisor *table
	defaults   *table
	programs   []*table
	stops      []stopStep
}

// stopStep is how a program stops: at which place of the teardown, and
// how long it may take.
type stopStep struct {
	order   int // programs of equal order stop together, lower first
	timeout time.Duration
}

// shutdownBudget sets [supervisor] shutdown_timeout when the stops, one
// place after the other, may take longer than supervise's default budget:
// the sum over the places of their longest stop_timeout, and a margin for
// the final SIGKILLs. The sources have no such budget: they wait as long
// as their programs' stop timeouts say.
func (d *document) shutdownBudget(why string) {
	longest := map[int]time.Duration{}
	for _, s := range d.stops {
		longest[s.order] = max(longest[s.order], s.timeout)
	}
	var total time.Duration
	for _, t := range longest {
		total = min(total+t, maxBudget) // the timeouts are below maxBudget: no overflow
	}
	if total+shutdownMargin > conf.DefaultShutdownTimeout {
		d.supervisor.set("shutdown_timeout", tomlDuration(total+shutdownMargin), why)
	}
}

// maxBudget bounds the computed budget (about 146 years).
const maxBudget = time.Duration(1 << 62)

// shutdownMargin is added to the longest teardown, for the SIGKILLs.
const shutdownMargin = 5 * time.Second

func newDocument() *document {
	return &document{
		supervisor: &table{path: []string{"supervisor"}},
		defaults:   &table{path: []string{"defaults"}},
	}
}

// program adds the table of a program.
func (d *document) program(name string) *table {
	t := &table{path: []string{"programs", name}}
	d.programs = append(d.programs, t)
	return t
}

// bytes writes the document. A document without programs gets a
// [supervisor] table even when empty, since supervise refuses a file of
// comments only.
func (d *document) bytes() []byte {
	var b strings.Builder
	for _, c := range d.header {
		writeComment(&b, c)
	}
	write := func(t *table) {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		writeTable(&b, t)
	}
	if !d.supervisor.empty() || len(d.programs) == 0 {
		write(d.supervisor)
	}
	if !d.defaults.empty() {
		write(d.defaults)
	}
	for _, p := range d.programs {
		write(p)
	}
	return []byte(b.String())
}

func writeComment(b *strings.Builder, c string) {
	if c == "" {
		b.WriteString("#\n")
		return
	}
	b.WriteString("# " + commentText(c) + "\n")
}

// commentText makes s fit in a TOML comment: valid UTF-8, control
// characters (which TOML refuses there) written \xNN.
func commentText(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			fmt.Fprintf(&b, `\x%02x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// commentColumn is where trailing comments start, when the lines allow.
const commentColumn = 40

func writeTable(b *strings.Builder, t *table) {
	for _, c := range t.comments {
		writeComment(b, c)
	}
	fmt.Fprintf(b, "[%s]\n", tomlPath(t.path))
	entries := slices.Clone(t.entries)
	sort.SliceStable(entries, func(i, j int) bool {
		return orderOf(keyOrder, entries[i].key) < orderOf(keyOrder, entries[j].key)
	})
	for _, e := range entries {
		line := tomlKey(e.key) + " = " + e.value
		if e.comment != "" {
			line += strings.Repeat(" ", max(2, commentColumn-utf8.RuneCountInString(line))) + "# " + commentText(e.comment)
		}
		b.WriteString(line + "\n")
	}
	subs := slices.Clone(t.subs)
	sort.SliceStable(subs, func(i, j int) bool {
		return orderOf(subOrder, subs[i].path[len(subs[i].path)-1]) < orderOf(subOrder, subs[j].path[len(subs[j].path)-1])
	})
	for _, s := range subs {
		if !s.empty() {
			b.WriteString("\n")
			writeTable(b, s)
		}
	}
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// tomlKey writes a key, quoted unless bare.
func tomlKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return tomlString(k)
}

func tomlPath(p []string) string {
	parts := make([]string, len(p))
	for i, k := range p {
		parts[i] = tomlKey(k)
	}
	return strings.Join(parts, ".")
}

// tomlString writes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlStrings writes an array of strings on one line.
func tomlStrings(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = tomlString(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// tomlInts writes an array of integers.
func tomlInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// tomlMap writes an inline table of strings, sorted by key.
func tomlMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return "{}"
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = tomlKey(k) + " = " + tomlString(m[k])
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

// tomlDuration writes a duration as supervise's files spell it.
func tomlDuration(d time.Duration) string { return tomlString(conf.FormatDuration(d)) }

// tomlSeconds writes n seconds as a duration.
func tomlSeconds(n int) string { return tomlDuration(time.Duration(n) * time.Second) }

func tomlBool(v bool) string { return strconv.FormatBool(v) }

// tomlSize writes a byte count with the largest unit (1024-based, as
// supervisord and supervise read them) that divides it, else as a number.
func tomlSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
		if n > 0 && n%u.m == 0 {
			return tomlString(strconv.FormatInt(n/u.m, 10) + u.s)
		}
	}
	return strconv.FormatInt(n, 10)
}
