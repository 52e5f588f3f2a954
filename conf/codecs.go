package conf

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/supervise/supervise/supervisor/events"
)

// The codecs of the key declarations: how each kind of value is read,
// checked, compared and written.

func same[T comparable](a, b T) bool { return a == b }

// scalar adapts a checking function of table to a codec's decode.
func scalar[T any](f func(t *table, key []string, v any) (T, bool)) func(*table, []string, any, *T) bool {
	return func(t *table, key []string, v any, dst *T) bool {
		x, ok := f(t, key, v)
		if ok {
			*dst = x
		}
		return ok
	}
}

func quoted(s string) string { return strconv.Quote(s) }

func tomlStrings(a []string) string {
	q := make([]string, len(a))
	for i, s := range a {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// markdownList writes values as "`a`, `b` or `c`".
func markdownList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "`" + v + "`"
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

var (
	boolCodec = &codec[bool]{
		typ:    "boolean",
		decode: scalar((*table).boolean),
		equal:  same[bool],
		toml:   strconv.FormatBool,
	}

	pathCodec = &codec[string]{
		typ:    "path (relative to the file's directory)",
		decode: scalar((*table).filePath),
		equal:  same[string],
		toml:   quoted,
		show:   func(s string) string { return s },
	}

	socketCodec = &codec[string]{
		typ: "path, or `off`",
		decode: scalar(func(t *table, key []string, v any) (string, bool) {
			x, ok := t.str(key, v)
			if ok && x != "" && x != "off" {
				x = resolvePath(t.d.file, x)
			}
			return x, ok
		}),
		equal: same[string],
		toml:  quoted,
		show:  func(s string) string { return s },
	}

	hostPortCodec = newHostPortCodec(false)

	durationCodec         = newDurationCodec(false)
	positiveDurationCodec = newDurationCodec(true)

	priorityCodec = newIntCodec(math.MinInt32, math.MaxInt32)
	countCodec    = newIntCodec(1, math.MaxInt32)
	sizeCodec     = newIntCodec(0, math.MaxInt32)
	exitCodeCodec = newIntCodec(0, 255)
	maxFilesCodec = newIntCodec(0, MaxLogFiles)

	byteSizeCodec = &codec[int64]{
		typ: "size: bytes, or a string such as `\"50MB\"` (KB, MB, GB are 1024-based)",
		decode: scalar(func(t *table, key []string, v any) (int64, bool) {
			switch x := v.(type) {
			case int64:
				if x < 0 {
					t.keyErr(key, "must not be negative, got %d", x)
					return 0, false
				}
				return x, true
			case string:
				n, err := ParseSize(x)
				if err != nil {
					t.keyErr(key, "%v", err)
					return 0, false
				}
				return n, true
			}
			t.wrongType(key, `a size ("50MB") or a number of bytes`, v)
			return 0, false
		}),
		equal: same[int64],
		toml: func(n int64) string {
			if n == 0 {
				return "0"
			}
			return strconv.Quote(FormatSize(n))
		},
		show: FormatSize,
	}
	replicasCodec = newIntCodec(0, MaxReplicas)

	rateCodec = &codec[float64]{
		typ: "number, at least 0",
		decode: scalar(func(t *table, key []string, v any) (float64, bool) {
			var r float64
			switch x := v.(type) {
			case int64:
				r = float64(x)
			case float64:
				r = x
			default:
				t.wrongType(key, "a number", v)
				return 0, false
			}
			if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
				t.keyErr(key, "must be a number of lines per second, at least 0, got %v", v)
				return 0, false
			}
			return r, true
		}),
		equal: same[float64],
		toml:  func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) },
	}

	commandCodec = &codec[[]string]{
		typ:    "array of strings (argv), or a string run by `/bin/sh -c`",
		decode: scalar((*table).command),
		equal:  slices.Equal[[]string],
		clone:  slices.Clone[[]string],
		toml:   tomlStrings,
		show:   func(a []string) string { return strings.Join(a, " ") },
	}

	environmentCodec = &codec[map[string]string]{
		typ: "table of strings",
		// Variables merge into those already set (by [defaults]).
		decode: func(t *table, key []string, v any, dst *map[string]string) bool {
			env, ok := t.asTable(key, v)
			if !ok {
				return false
			}
			ok = true
			for _, name := range t.under(key).sortedKeys(env) {
				ek := append(slices.Clone(key), name)
				if name == "" || strings.ContainsAny(name, "=\x00") {
					t.keyErr(ek, "invalid variable name %q", name)
					ok = false
					continue
				}
				if s, good := t.str(ek, env[name]); good {
					(*dst)[name] = s
				} else {
					ok = false
				}
			}
			return ok
		},
		equal: maps.Equal[map[string]string, map[string]string],
		clone: func(m map[string]string) map[string]string {
			if m == nil {
				return map[string]string{}
			}
			return maps.Clone(m)
		},
		toml: func(m map[string]string) string {
			if len(m) == 0 {
				return "{}"
			}
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(m)) {
				kv = append(kv, strconv.Quote(k)+" = "+strconv.Quote(m[k]))
			}
			return "{ " + strings.Join(kv, ", ") + " }"
		},
		// Names only: values may be secrets.
		show: func(m map[string]string) string { return strings.Join(slices.Sorted(maps.Keys(m)), ",") },
	}

	includeCodec = &codec[[]string]{
		typ: "array of glob patterns (relative to the file's directory); only the last element may hold wildcards",
		decode: scalar(func(t *table, key []string, v any) ([]string, bool) {
			pats, ok := t.strArray(key, v)
			if !ok {
				return nil, false
			}
			for i, p := range pats {
				if p == "" {
					t.keyErr(key, "element %d: empty pattern", i)
					return nil, false
				}
				if err := checkPattern(p); err != nil {
					t.keyErr(key, "element %d: pattern %q: %v", i, p, err)
					return nil, false
				}
			}
			return pats, true
		}),
		equal: slices.Equal[[]string],
		clone: slices.Clone[[]string],
		toml:  tomlStrings,
		show:  func(a []string) string { return strings.Join(a, ",") },
	}

	idCodec = &codec[string]{
		typ: "name, or numeric id",
		decode: scalar(func(t *table, key []string, v any) (string, bool) {
			switch x := v.(type) {
			case int64:
				if x < 0 || x > math.MaxUint32-1 {
					t.keyErr(key, "invalid id %d", x)
					return "", false
				}
				return strconv.FormatInt(x, 10), true
			case string:
				return t.str(key, v)
			}
			t.wrongType(key, "a name or a numeric id", v)
			return "", false
		}),
		equal: same[string],
		toml:  quoted,
		show:  func(s string) string { return s },
	}

	dependsCodec = &codec[[]Dependency]{
		typ: "array of program names, or a table of program names to `started`, `ready` or `completed`",
		decode: scalar(func(t *table, key []string, v any) ([]Dependency, bool) {
			if m, isTable := v.(map[string]any); isTable {
				return t.dependencyTable(key, m)
			}
			if _, isArray := v.([]any); !isArray {
				t.wrongType(key, "an array of program names or a table of conditions", v)
				return nil, false
			}
			names, ok := t.strArray(key, v)
			if !ok {
				return nil, false
			}
			seen := map[string]bool{}
			deps := make([]Dependency, 0, len(names))
			for _, n := range names {
				if seen[n] {
					t.keyErr(key, "%q is listed twice", n)
					continue
				}
				seen[n] = true
				deps = append(deps, Dependency{Name: n, Condition: DependsReady})
			}
			return deps, true
		}),
		equal: slices.Equal[[]Dependency],
		clone: slices.Clone[[]Dependency],
		toml: func(deps []Dependency) string {
			if !slices.ContainsFunc(deps, func(d Dependency) bool { return d.Condition != DependsReady }) {
				names := make([]string, len(deps))
				for i, d := range deps {
					names[i] = d.Name
				}
				return tomlStrings(names)
			}
			kv := make([]string, len(deps))
			for i, d := range deps {
				kv[i] = tomlKey(d.Name) + " = " + strconv.Quote(string(d.Condition))
			}
			return "{ " + strings.Join(kv, ", ") + " }"
		},
		show: func(deps []Dependency) string {
			parts := make([]string, len(deps))
			for i, d := range deps {
				parts[i] = d.Name
				if d.Condition != DependsReady {
					parts[i] += " (" + string(d.Condition) + ")"
				}
			}
			return strings.Join(parts, ", ")
		},
	}

	// urlCodec and probeAddrCodec decode probe targets: a value with a
	// template ({replica}, {name}) is checked for each instance once
	// replaced (scaleProblems).
	urlCodec = &codec[string]{
		typ: "`http://` or `https://` URL",
		decode: scalar(func(t *table, key []string, v any) (string, bool) {
			x, ok := t.str(key, v)
			if ok && x != "" && !hasTemplate(x) {
				if err := checkProbeURL(x); err != nil {
					t.keyErr(key, "invalid URL %q: %v", x, err)
					return "", false
				}
			}
			return x, ok
		}),
		equal: same[string],
		toml:  quoted,
		show:  func(s string) string { return s },
	}

	probeAddrCodec = newHostPortCodec(true)

	regexpCodec = &codec[*regexp.Regexp]{
		typ: "regular expression (Go syntax)",
		decode: scalar(func(t *table, key []string, v any) (*regexp.Regexp, bool) {
			x, ok := t.str(key, v)
			if !ok {
				return nil, false
			}
			if x == "" {
				t.keyErr(key, "empty regular expression: it would match every line")
				return nil, false
			}
			re, err := regexp.Compile(x)
			if err != nil {
				t.keyErr(key, "invalid regular expression %q: %v", x, unwrapRegexpError(err))
				return nil, false
			}
			return re, true
		}),
		equal: func(a, b *regexp.Regexp) bool {
			if a == nil || b == nil {
				return a == b
			}
			return a.String() == b.String()
		},
		toml: func(re *regexp.Regexp) string {
			if re == nil {
				return `""`
			}
			return strconv.Quote(re.String())
		},
		show: func(re *regexp.Regexp) string { return re.String() },
	}

	exitCodesCodec = &codec[[]int]{
		typ: "array of integers from 0 to 255",
		decode: scalar(func(t *table, key []string, v any) ([]int, bool) {
			arr, ok := v.([]any)
			if !ok {
				t.wrongType(key, "an array of integers", v)
				return nil, false
			}
			codes := make([]int, 0, len(arr))
			for i, e := range arr {
				n, isInt := e.(int64)
				if !isInt {
					t.keyErr(key, "element %d: expected an integer, got %s", i, typeName(e))
					return nil, false
				}
				if n < 0 || n > 255 {
					t.keyErr(key, "exit code %d is not between 0 and 255", n)
					ok = false
					continue
				}
				codes = append(codes, int(n))
			}
			return codes, ok
		}),
		equal: slices.Equal[[]int],
		clone: slices.Clone[[]int],
		toml: func(a []int) string {
			s := make([]string, len(a))
			for i, n := range a {
				s[i] = strconv.Itoa(n)
			}
			return "[" + strings.Join(s, ", ") + "]"
		},
	}

	signalCodec = &codec[syscall.Signal]{
		typ: "signal name or number",
		decode: scalar(func(t *table, key []string, v any) (syscall.Signal, bool) {
			var s string
			switch x := v.(type) {
			case string:
				s = x
			case int64:
				s = strconv.FormatInt(x, 10)
			default:
				t.wrongType(key, `a signal name or number ("TERM", "SIGTERM", 15)`, v)
				return 0, false
			}
			sig, err := ParseSignal(s)
			if err != nil {
				t.keyErr(key, "%v", err)
				return 0, false
			}
			return sig, true
		}),
		equal: same[syscall.Signal],
		toml:  func(s syscall.Signal) string { return strconv.Quote(SignalName(s)) },
		show:  SignalName,
	}

	outputCodec = &codec[Output]{
		typ:    "`log`, `inherit`, `null`, or a file path containing `/`",
		decode: scalar((*table).output),
		equal:  same[Output],
		toml:   func(o Output) string { return strconv.Quote(o.String()) },
		show:   Output.String,
	}

	kindsCodec = &codec[[]events.Kind]{
		typ: "array of event kinds: " + markdownList(events.KindNames()),
		decode: scalar(func(t *table, key []string, v any) ([]events.Kind, bool) {
			names, ok := t.strArray(key, v)
			if !ok {
				return nil, false
			}
			var out []events.Kind
			for _, n := range names {
				k, err := events.ParseKind(n)
				if err != nil {
					t.keyErr(key, "unknown event kind %q%s", n, suggest(n, events.KindNames()))
					ok = false
					continue
				}
				if slices.Contains(out, k) {
					t.keyErr(key, "%q is listed twice", n)
					ok = false
					continue
				}
				out = append(out, k)
			}
			return out, ok
		}),
		equal: slices.Equal[[]events.Kind],
		clone: slices.Clone[[]events.Kind],
		toml: func(ks []events.Kind) string {
			names := make([]string, len(ks))
			for i, k := range ks {
				names[i] = k.String()
			}
			return tomlStrings(names)
		},
	}

	// hookProgramsCodec checks the form of the names; that they name
	// programs is checked once every program is known.
	hookProgramsCodec = &codec[[]string]{
		typ: "array of program names",
		decode: scalar(func(t *table, key []string, v any) ([]string, bool) {
			names, ok := t.strArray(key, v)
			if !ok {
				return nil, false
			}
			for _, n := range names {
				if base, _, _ := SplitInstance(n); !nameRE.MatchString(base) {
					t.keyErr(key, "invalid program name %q: use a program's name, or NAME:i for one of its instances", n)
					ok = false
				}
			}
			return names, ok
		}),
		equal: slices.Equal[[]string],
		clone: slices.Clone[[]string],
		toml:  tomlStrings,
	}

	logLevelCodec  = newEnumCodec(logLevels...)
	logFormatCodec = newEnumCodec(logFormats...)
	restartCodec   = newEnumCodec(RestartAlways, RestartOnFailure, RestartNever)
	actionCodec    = newEnumCodec(WatchdogRestart, WatchdogStop, WatchdogLog)
	conditionCodec = newEnumCodec(DependsStarted, DependsReady, DependsCompleted)
)

// dependencyTable decodes the table form of depends_on: program names to
// conditions, ordered by name. An entry with a bad condition is reported
// and left out, so that the others are still checked.
func (t *table) dependencyTable(key []string, m map[string]any) ([]Dependency, bool) {
	names := slices.Sorted(maps.Keys(m))
	deps := make([]Dependency, 0, len(names))
	for _, n := range names {
		var c DependencyCondition
		if conditionCodec.decode(t, append(slices.Clone(key), n), m[n], &c) {
			deps = append(deps, Dependency{Name: n, Condition: c})
		}
	}
	return deps, true
}

// tomlKey writes a program name as a TOML key: bare when it can be.
func tomlKey(name string) string {
	for _, r := range name {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return strconv.Quote(name)
		}
	}
	if name == "" {
		return `""`
	}
	return name
}

// checkProbeURL accepts an absolute http or https URL with a host.
func checkProbeURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return unwrapURLError(err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New(`the scheme must be "http" or "https"`)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("no host")
	case u.Fragment != "":
		return errors.New("a fragment (#...) is never sent")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number between 1 and 65535", p)
		}
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// unwrapRegexpError drops the "error parsing regexp: " prefix.
func unwrapRegexpError(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%s: `%s`", se.Code, se.Expr)
	}
	return err.Error()
}

func newDurationCodec(positive bool) *codec[time.Duration] {
	typ := "duration"
	if positive {
		typ = "duration, more than 0"
	}
	return &codec[time.Duration]{
		typ: typ,
		decode: scalar(func(t *table, key []string, v any) (time.Duration, bool) {
			return t.duration(key, v, positive)
		}),
		equal: same[time.Duration],
		toml:  func(d time.Duration) string { return strconv.Quote(FormatDuration(d)) },
		show:  FormatDuration,
	}
}

func newIntCodec(lo, hi int64) *codec[int] {
	typ := "integer"
	switch {
	case lo == math.MinInt32 && hi == math.MaxInt32:
	case hi == math.MaxInt32:
		typ = fmt.Sprintf("integer, at least %d", lo)
	default:
		typ = fmt.Sprintf("integer from %d to %d", lo, hi)
	}
	return &codec[int]{
		typ: typ,
		decode: scalar(func(t *table, key []string, v any) (int, bool) {
			return t.integer(key, v, lo, hi)
		}),
		equal: same[int],
		toml:  strconv.Itoa,
	}
}

func newEnumCodec[T ~string](vals ...T) *codec[T] {
	strs := make([]string, len(vals))
	for i, v := range vals {
		strs[i] = string(v)
	}
	return &codec[T]{
		typ: markdownList(strs),
		decode: scalar(func(t *table, key []string, v any) (T, bool) {
			s, ok := t.enum(key, v, strs)
			return T(s), ok
		}),
		equal: same[T],
		toml:  func(x T) string { return strconv.Quote(string(x)) },
		show:  func(x T) string { return string(x) },
	}
}

// newHostPortCodec returns the codec of a host:port value. With
// templates, a value holding {replica} or {name} is left to be checked
// for each instance once replaced (scaleProblems).
func newHostPortCodec(templates bool) *codec[string] {
	return &codec[string]{
		typ: "host:port",
		decode: scalar(func(t *table, key []string, v any) (string, bool) {
			x, ok := t.str(key, v)
			if ok && x != "" && !(templates && hasTemplate(x)) {
				if err := checkHostPort(x); err != nil {
					t.keyErr(key, "invalid address %q: %v", x, err)
					return "", false
				}
			}
			return x, ok
		}),
		equal: same[string],
		toml:  quoted,
		show:  func(s string) string { return s },
	}
}
