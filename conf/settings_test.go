package conf

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
)

// snake turns a Go field name into its TOML key: HalfOpenMaxCalls is
// half_open_max_calls.
func snake(s string) string {
	switch s { // acronyms
	case "HTTP":
		return "http"
	case "TCP":
		return "tcp"
	case "HTTPVerifyTLS":
		return "http_verify_tls"
	}
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mutate changes the value v (settable) to another value of its type.
func mutate(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Float64:
		v.SetFloat(v.Float() + 1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Pointer:
		if v.Type() != reflect.TypeFor[*regexp.Regexp]() {
			t.Fatalf("no mutation for a %s field: add one to this test", v.Type())
		}
		src := "x"
		if !v.IsNil() {
			src = v.Interface().(*regexp.Regexp).String() + "x"
		}
		v.Set(reflect.ValueOf(regexp.MustCompile(src)))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for _, k := range v.MapKeys() {
			m.SetMapIndex(k, v.MapIndex(k))
		}
		m.SetMapIndex(reflect.ValueOf("ADDED"), reflect.ValueOf(""))
		v.Set(m)
	default:
		t.Fatalf("no mutation for a %s field: add one to this test", v.Type())
	}
}

// leafField is one changeable field below a struct: its index path and the
// key its change must show as.
type leafField struct {
	path []int
	key  string
}

// leafFields lists the fields of typ. Struct-typed fields listed in subs
// (by type) are subtables: their fields are keys below the field's key.
// Other struct fields (Output) are one key: each of their fields is a
// separate change of that key.
func leafFields(typ reflect.Type, prefix string, path []int, skip map[string]bool) []leafField {
	var out []leafField
	for i := range typ.NumField() {
		f := typ.Field(i)
		if skip[f.Name] {
			continue
		}
		p := append(slices.Clone(path), i)
		key := prefix + snake(f.Name)
		ft := f.Type
		switch {
		case ft == reflect.TypeFor[Breaker]() || ft == reflect.TypeFor[*Watchdog]():
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			out = append(out, leafFields(ft, key+".", p, nil)...)
		case ft == reflect.TypeFor[*Probe]():
			// One struct for both tables: each lacks one key.
			notKeys := map[string]bool{"Action": true}
			if f.Name == "Liveness" {
				notKeys = map[string]bool{"LogLine": true}
			}
			out = append(out, leafFields(ft.Elem(), key+".", p, notKeys)...)
		case ft.Kind() == reflect.Struct:
			for j := range ft.NumField() {
				out = append(out, leafField{append(slices.Clone(p), j), key})
			}
		default:
			out = append(out, leafField{p, key})
		}
	}
	return out
}

// fieldAt returns the field at path in the struct v points to, following
// pointers.
func fieldAt(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

// checkCovered changes every field of a fresh *S (from base) one at a time
// and checks that diff names exactly the field's key, and that every key
// of keys is reached so.
func checkCovered[S any](t *testing.T, base func() *S, diff func(a, b *S) []string, keys []string, skip map[string]bool) {
	t.Helper()
	reached := map[string]bool{}
	for _, lf := range leafFields(reflect.TypeFor[S](), "", nil, skip) {
		s := base()
		mutate(t, fieldAt(reflect.ValueOf(s), lf.path))
		got := diff(base(), s)
		if !slices.Equal(got, []string{lf.key}) {
			t.Errorf("%T: changing the field of key %s gives Diff %q, want [%s]: declare the field's key in keys.go",
				s, lf.key, got, lf.key)
		}
		if back := diff(s, base()); !slices.Equal(back, got) {
			t.Errorf("%T: Diff is not symmetric for %s: %q vs %q", s, lf.key, got, back)
		}
		reached[lf.key] = true
	}
	for _, k := range keys {
		if !reached[k] {
			t.Errorf("%T: key %s is declared but no field reaches it", *new(S), k)
		}
	}
}

// leafKeys lists the dotted keys of refs, descending into every subtable.
func leafKeys(prefix string, refs []refInfo) []string {
	var out []string
	for _, r := range refs {
		if r.header != "" {
			out = append(out, leafKeys(prefix+r.name+".", r.keys)...)
			continue
		}
		out = append(out, prefix+r.name)
	}
	return out
}

func fullProgram() *Program {
	p := builtin("a", "/bin/a")
	p.Watchdog = &Watchdog{HeartbeatFile: "/run/a", Timeout: time.Second, StartGrace: time.Second, Action: WatchdogRestart}
	p.Readiness = &Probe{HTTP: "http://127.0.0.1/", Interval: time.Second, Timeout: time.Second,
		SuccessThreshold: 1, FailureThreshold: 3}
	p.Liveness = &Probe{TCP: "127.0.0.1:1", Interval: time.Second, Timeout: time.Second,
		SuccessThreshold: 1, FailureThreshold: 3, Action: WatchdogRestart}
	return p
}

// TestDeclarationsCoverEveryField fails when a field of Program, Breaker,
// Watchdog, Supervisor or TeardownStep has no key declaration: its change
// would then escape Diff, Equal, the defaults and the README reference.
func TestDeclarationsCoverEveryField(t *testing.T) {
	// File and Line say where a program is defined, not what it does.
	// Base and Replica follow from an instance's Name; Replicated says
	// whether a layer set replicas, which shows in the instances' names.
	identity := map[string]bool{"Name": true, "File": true, "Line": true, "Base": true, "Replica": true, "Replicated": true}
	checkCovered(t, fullProgram, (*Program).Diff, leafKeys("", programKeys.refs()), identity)
	checkCovered(t, func() *Supervisor { s := defaultSupervisor(); return &s }, (*Supervisor).Diff,
		leafKeys("", supervisorKeys.refs()), nil)
	checkCovered(t, func() *TeardownStep { return &TeardownStep{Name: "t", Command: []string{"/bin/t"}} },
		func(a, b *TeardownStep) []string { return teardownKeys.diff("", a, b, nil) },
		leafKeys("", teardownKeys.refs()), map[string]bool{"Name": true, "File": true, "Line": true})

	// Every change that Diff sees makes Equal false, and Equal is true
	// exactly when Diff is empty and the names match.
	for _, lf := range leafFields(reflect.TypeFor[Program](), "", nil,
		map[string]bool{"File": true, "Line": true, "Base": true, "Replica": true, "Replicated": true}) {
		p := fullProgram()
		mutate(t, fieldAt(reflect.ValueOf(p), lf.path))
		if fullProgram().Equal(p) || p.Equal(fullProgram()) {
			t.Errorf("%s changed, Equal still true", lf.key)
		}
	}
	noWatchdog := fullProgram()
	noWatchdog.Watchdog = nil
	if d := fullProgram().Diff(noWatchdog); !slices.Equal(d, []string{"watchdog"}) {
		t.Errorf("Diff with the watchdog removed = %q, want [watchdog]", d)
	}
	if d := fullProgram().Diff(fullProgram()); d != nil {
		t.Errorf("Diff of equal programs = %q", d)
	}
}

// TestDeclarationsDocumented checks that every key has its doc line and a
// type and default for the reference.
func TestDeclarationsDocumented(t *testing.T) {
	for _, tab := range referenceTables() {
		for _, r := range tab.keys {
			if r.doc == "" || strings.ContainsAny(r.doc, "|\n") {
				t.Errorf("[%s] %s: doc %q must be one line without |", tab.header, r.name, r.doc)
			}
			if r.typ == "" || r.def == "" || strings.ContainsAny(r.typ+r.def, "|\n") {
				t.Errorf("[%s] %s: type %q default %q", tab.header, r.name, r.typ, r.def)
			}
		}
	}
}

func TestDiffNamesKeys(t *testing.T) {
	c := mustParse(t, `
[programs.a]
command = ["/bin/a"]
[programs.b]
command = ["/bin/b"]
stop_priority = 5
log_rate = 3
breaker = { reset_timeout = "1s" }
watchdog = { heartbeat_file = "/run/b", action = "log" }`)
	a, b := c.Programs["a"], c.Programs["b"]
	a.Watchdog = &Watchdog{HeartbeatFile: "/run/b", Timeout: DefaultWatchdogTimeout, StartGrace: DefaultWatchdogTimeout, Action: WatchdogRestart}
	want := []string{"command", "stop_priority", "log_rate", "breaker.reset_timeout", "watchdog.action"}
	if got := a.Diff(b); !slices.Equal(got, want) {
		t.Errorf("Diff = %q, want %q", got, want)
	}
	for _, k := range want[1:] {
		if NeedsRestart(k) != (k == "log_rate") {
			t.Errorf("NeedsRestart(%q) = %v", k, NeedsRestart(k))
		}
	}
}

func TestNeedsRestart(t *testing.T) {
	restart := []string{"command", "directory", "environment", "clear_environment", "user", "group",
		"stdout", "stderr", "log_rate", "log_burst", "notify", "watchdog", "watchdog.heartbeat_file", "watchdog.timeout",
		"readiness", "readiness.http", "readiness.interval", "readiness.log_line", "liveness", "liveness.exec",
		"liveness.failure_threshold",
		"no_such_key", "breaker.nope", "command.x", ""}
	inPlace := []string{"autostart", "depends_on", "restart", "success_exit_codes", "min_uptime",
		"backoff_initial", "backoff_max", "stop_signal", "stop_timeout", "stop_priority", "critical",
		"ready_timeout", "breaker", "breaker.max_failures", "breaker.reset_timeout",
		"breaker.half_open_max_calls", "watchdog.start_grace", "watchdog.action", "liveness.action"}
	for _, k := range restart {
		if !NeedsRestart(k) {
			t.Errorf("NeedsRestart(%q) = false, want true", k)
		}
	}
	for _, k := range inPlace {
		if NeedsRestart(k) {
			t.Errorf("NeedsRestart(%q) = true, want false", k)
		}
	}
}

func TestSupervisorDiff(t *testing.T) {
	a := mustParse(t, "[supervisor]\nlog_level = \"debug\"\n").Supervisor
	b := mustParse(t, "[supervisor]\nsocket = \"off\"\n").Supervisor
	if d := a.Diff(&b); !slices.Equal(d, []string{"log_level", "socket"}) {
		t.Errorf("Diff = %q", d)
	}
}

func TestReadyTimeout(t *testing.T) {
	c := mustParse(t, `
[defaults]
ready_timeout = "30s"
[programs.a]
command = ["/bin/a"]
[programs.b]
command = ["/bin/b"]
ready_timeout = 0
[programs.c]
command = ["/bin/c"]
ready_timeout = 1.5`)
	got := []time.Duration{c.Programs["a"].ReadyTimeout, c.Programs["b"].ReadyTimeout, c.Programs["c"].ReadyTimeout}
	if want := []time.Duration{30 * time.Second, 0, 1500 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("ready_timeout = %v, want %v", got, want)
	}
	if defaultProgram("x").ReadyTimeout != 0 {
		t.Error("ready_timeout defaults to non-zero")
	}
	_, err := Parse("f.toml", []byte("[programs.a]\ncommand = \"x\"\nready_timeout = \"-1s\"\n"))
	if err == nil || err.Error() != `f.toml:3: programs.a: key "ready_timeout": must not be negative, got -1s` {
		t.Errorf("negative ready_timeout: %v", err)
	}
}

// A required key that is misspelt is reported once, as the misspelling,
// in a subtable as in the program table; written empty, it is missing.
func TestRequiredKeys(t *testing.T) {
	cases := map[string]string{
		"[programs.a]\ncommand = \"x\"\nwatchdog = { heartbeat_fil = \"/h\" }\n": `f.toml:3: programs.a: unknown key "watchdog.heartbeat_fil" (did you mean "watchdog.heartbeat_file"?)`,
		"[programs.a]\ncommand = \"x\"\nwatchdog = { heartbeat_file = \"\" }\n":  `f.toml:3: programs.a: missing required key "watchdog.heartbeat_file"`,
		"[programs.a]\ncommnd = \"x\"\n":                                         `f.toml:2: programs.a: unknown key "commnd" (did you mean "command"?)`,
		"[teardown.a]\ncommands = \"x\"\n":                                       `f.toml:2: teardown.a: unknown key "commands" (did you mean "command"?)`,
		"[defaults]\ncommand = \"x\"\n[defaults.watchdog]\ntimeout = 1\n[programs.a]\n[programs.b]\nwatchdog.heartbeat_file = \"/b\"\n": `f.toml:5: programs.a: missing required key "watchdog.heartbeat_file"`,
	}
	for src, want := range cases {
		_, err := Parse("f.toml", []byte(src))
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", src, err, want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	cases := map[time.Duration]string{
		0:                                     "0s",
		5999999023 * time.Nanosecond:          "6s",
		250 * time.Millisecond:                "250ms",
		90 * time.Second:                      "1m30s",
		time.Minute:                           "1m",
		2 * time.Hour:                         "2h",
		time.Hour + 5*time.Second:             "1h0m5s",
		time.Hour + 90*time.Minute:            "2h30m",
		1250 * time.Millisecond:               "1.25s",
		999600 * time.Microsecond:             "1s",
		123456 * time.Nanosecond:              "123µs",
		12345 * time.Millisecond:              "12.3s",
		59960 * time.Millisecond:              "1m",
		61*time.Second + 600*time.Millisecond: "1m2s",
		7:                                     "7ns",
		-1500 * time.Millisecond:              "-1.5s",
	}
	for d, want := range cases {
		got := FormatDuration(d)
		if got != want {
			t.Errorf("FormatDuration(%d) = %q, want %q", int64(d), got, want)
		}
		if back, err := time.ParseDuration(got); err != nil {
			t.Errorf("ParseDuration(%q): %v", got, err)
		} else if diff := (back - d).Abs(); diff > d.Abs()/100+time.Nanosecond {
			t.Errorf("FormatDuration(%v) = %q is %v away", d, got, diff)
		}
	}
	FormatDuration(time.Duration(-1 << 63)) // must not overflow
}

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 programs", 1: "1 program", 2: "2 programs"} {
		if got := Plural(n, "program"); got != want {
			t.Errorf("Plural(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSummaryShowsNonDefaults(t *testing.T) {
	c := mustParse(t, `
[defaults]
min_uptime = 5.999999023
[programs.a]
command = ["/bin/a"]
environment = { SECRET = "hunter2", A = "1" }
user = "www"
stop_signal = "INT"
stdout = "null"
log_rate = 2.5
restart = "always"
breaker = { max_failures = 3, reset_timeout = "90s", half_open_max_calls = 2 }
watchdog = { heartbeat_file = "/run/a", timeout = "250ms", start_grace = "1m", action = "log" }`)
	got := c.Programs["a"].Summary()
	want := "a: /bin/a (environment A,SECRET, user www, restart always, min_uptime 6s, stop_signal SIGINT, " +
		"stdout null, log_rate 2.5, breaker 3/1m30s, half-open 2, watchdog 250ms on /run/a, grace 1m, action log)"
	if got != want {
		t.Errorf("Summary =\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "hunter2") {
		t.Error("Summary shows an environment value")
	}
	step := &TeardownStep{Name: "drain", Command: []string{"/bin/drain", "x"}, Priority: 10, Timeout: 5999 * time.Millisecond}
	if got, want := step.Summary(), "teardown.drain: /bin/drain x (priority 10, timeout 6s)"; got != want {
		t.Errorf("teardown Summary = %q, want %q", got, want)
	}
}

func TestDefaultsFromDeclarations(t *testing.T) {
	p := defaultProgram("x")
	if p.StopSignal != syscall.SIGTERM || !p.Autostart || p.Environment == nil || !slices.Equal(p.SuccessExitCodes, []int{0}) {
		t.Errorf("defaults %+v", p)
	}
	// Defaults are copies: changing one program's slice or map leaves the
	// next program's alone.
	p.SuccessExitCodes[0] = 9
	p.Environment["X"] = "1"
	q := defaultProgram("y")
	if q.SuccessExitCodes[0] != 0 || len(q.Environment) != 0 {
		t.Error("defaults shared between programs")
	}
}

func TestRoundDuration(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		5999948874 * time.Nanosecond: 6 * time.Second,
		1234567 * time.Nanosecond:    1230 * time.Microsecond,
		12345 * time.Millisecond:     12300 * time.Millisecond,
		61500 * time.Millisecond:     62 * time.Second,
		-time.Second:                 -time.Second,
	} {
		if got := RoundDuration(in); got != want {
			t.Errorf("RoundDuration(%v) = %v, want %v", in, got, want)
		}
	}
}
