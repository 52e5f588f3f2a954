// Package conf reads and checks supervise's TOML configuration.
//
// It decodes the whole schema of the configuration file (the [supervisor]
// table, [defaults], every [programs.NAME] with its breaker, watchdog,
// readiness and liveness subtables, the [teardown.NAME] steps and the
// [hooks.NAME] commands) into typed values, with the
// built-in defaults and the [defaults] table already applied to every
// program. A file is validated whole: Parse returns either a complete,
// valid *Config or an ErrorList naming every problem with its file, line,
// section and key, so a reload can swap in a new value or keep the old one.
//
// Resolution rules that fix the meaning of a valid file:
//
//   - A program setting comes from its own table, else from [defaults],
//     else from the built-in default. The environment table and the breaker
//     and watchdog subtables merge key by key: a program's environment adds
//     to (and overrides single variables of) the one in [defaults].
//   - Durations are Go duration strings ("1m30s") or numbers of seconds.
//   - Relative paths (directory, stdout/stderr files, heartbeat files) are
//     taken relative to the directory of the configuration file.
//   - stdout/stderr are "log", "inherit", "null", or a file path, which must
//     contain a "/" ("./web.log"), so a misspelt keyword is an error rather
//     than a file name.
//   - A probe table has exactly one kind (exec, http, tcp, or log_line for
//     readiness only); a log_line probe needs stdout or stderr = "log".
//   - depends_on is a list of names, each meaning DependsReady, or a table
//     of names to conditions; a "completed" dependency cannot have
//     restart = "always", and the dependencies form no cycle.
//   - A file with no settings at all (empty, or only whitespace and
//     comments) is refused: applied by a reload it would stop every program.
//     A [supervisor] table alone is a valid file with no programs.
//   - Load follows [supervisor] include: the files its patterns match, read
//     in lexical order after the main file, may hold only [programs.*],
//     [teardown.*] and [hooks.*] tables, and a name defined twice is an
//     error naming both places. Each program, teardown step and hook
//     records its File and Line.
//   - A hook's programs name programs of any file, or instances NAME:i of
//     a program with replicas below its count, as depends_on does.
//   - Load reads each program's env_file entries (dotenv files, a leading
//     "-" allowing a missing one); their variables come before the
//     environment table (Program.Env), count as the program's settings for
//     Diff and Equal, and are never printed: not by Summary, an Error,
//     fmt's verbs on a Program, nor JSON.
//   - replicas = N makes a program N instances, NAME:0 ... NAME:N-1
//     (Config.Programs), each a Program of its own made from the table
//     (Config.Definitions), with {replica} and {name} replaced in its
//     command, directory, environment values, output files, heartbeat
//     file and probe targets; without the key a program is one instance,
//     NAME. Instances share their table's origin and env files.
//   - Compare gives the diff a reload applies from one configuration to
//     another.
//
// Each key is declared once (keys.go) with its TOML name, type, default,
// check, doc line and whether a change restarts the program; decoding,
// the "did you mean" suggestions, Program.Diff and Equal, NeedsRestart,
// Summary and the README's key reference are all derived from those
// declarations. Warnings reports what would fail at a start on this
// machine (a missing binary, directory, user or group) without making the
// file invalid.
package conf

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/supervise/supervise/supervisor/events"
)

// RestartPolicy says when a program that ended is started again.
type RestartPolicy string

// The restart policies.
const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// OutputKind says where a program's stdout or stderr goes.
type OutputKind int

// The output kinds.
const (
	OutputLog     OutputKind = iota // lines go to the supervisor's log
	OutputInherit                   // the supervisor's own stdout/stderr
	OutputNull                      // /dev/null
	OutputFile                      // appended to Output.Path
)

// String returns the configuration keyword of k ("log", "inherit", "null",
// "file").
func (k OutputKind) String() string {
	switch k {
	case OutputLog:
		return "log"
	case OutputInherit:
		return "inherit"
	case OutputNull:
		return "null"
	case OutputFile:
		return "file"
	}
	return fmt.Sprintf("OutputKind(%d)", int(k))
}

// Output is the destination of one output stream of a program.
type Output struct {
	Kind OutputKind
	Path string // absolute file path, for OutputFile only
}

// String returns the value as it would be written in the file.
func (o Output) String() string {
	if o.Kind == OutputFile {
		return o.Path
	}
	return o.Kind.String()
}

// WatchdogAction is what a watchdog does when a program's heartbeat stops.
type WatchdogAction string

// The watchdog actions.
const (
	WatchdogRestart WatchdogAction = "restart"
	WatchdogStop    WatchdogAction = "stop"
	WatchdogLog     WatchdogAction = "log"
)

// DependencyCondition is what a program waits for of one of its
// dependencies (SPEC §12).
type DependencyCondition string

// The dependency conditions.
const (
	// DependsStarted holds once the dependency has been spawned (or its run
	// has completed).
	DependsStarted DependencyCondition = "started"
	// DependsReady holds while the dependency is ready (SPEC §4); a plain
	// list of names means this.
	DependsReady DependencyCondition = "ready"
	// DependsCompleted holds once the dependency's last run ended with a
	// success exit code and no restart is due: a one-shot task that
	// finished.
	DependsCompleted DependencyCondition = "completed"
)

// Dependency is one entry of depends_on: a program and the condition it
// must meet before the dependent starts.
type Dependency struct {
	Name      string
	Condition DependencyCondition
}

// ProbeKind is the kind of check a probe makes (SPEC §11).
type ProbeKind string

// The probe kinds.
const (
	ProbeExec    ProbeKind = "exec"     // a command; exit 0 passes
	ProbeHTTP    ProbeKind = "http"     // a GET; a 2xx or 3xx status passes
	ProbeTCP     ProbeKind = "tcp"      // a connection opens
	ProbeLogLine ProbeKind = "log_line" // a line of stdout or stderr matches (readiness only)
)

// Probe holds a program's [readiness] or [liveness] subtable. Exactly one
// of Exec, HTTP, TCP and LogLine is set.
type Probe struct {
	Exec          []string       // argv; a TOML string becomes {"/bin/sh", "-c", s}
	HTTP          string         // an http:// or https:// URL
	TCP           string         // host:port
	LogLine       *regexp.Regexp // readiness only
	HTTPVerifyTLS bool
	Interval      time.Duration
	Timeout       time.Duration
	InitialDelay  time.Duration
	// SuccessThreshold and FailureThreshold are the consecutive passes
	// and failures that make the probe passing or failing.
	SuccessThreshold int
	FailureThreshold int
	Action           WatchdogAction // liveness only; "" for readiness
}

// Kind returns the kind of check the probe makes.
func (p *Probe) Kind() ProbeKind {
	switch {
	case len(p.Exec) > 0:
		return ProbeExec
	case p.HTTP != "":
		return ProbeHTTP
	case p.TCP != "":
		return ProbeTCP
	case p.LogLine != nil:
		return ProbeLogLine
	}
	return ""
}

// Target describes what the probe checks: the command, URL, address or
// pattern.
func (p *Probe) Target() string {
	switch p.Kind() {
	case ProbeExec:
		return strings.Join(p.Exec, " ")
	case ProbeHTTP:
		return p.HTTP
	case ProbeTCP:
		return p.TCP
	case ProbeLogLine:
		return p.LogLine.String()
	}
	return ""
}

// Log levels and formats accepted by [supervisor] and Overrides.
const (
	LogDebug = "debug"
	LogInfo  = "info"
	LogWarn  = "warn"
	LogError = "error"

	FormatConsole = "console"
	FormatJSON    = "json"
)

// MainProgram is the name of the program added by AddCommand.
const MainProgram = "main"

// Config is a complete, validated configuration.
type Config struct {
	File       string // path of the main file, as given ("" for Default)
	Supervisor Supervisor
	// Programs holds what runs: every instance by name, with [defaults]
	// applied and the templates {replica} and {name} replaced. A program
	// without replicas is one instance named like its table ("web"); a
	// program with replicas = N is N instances "web:0" ... "web:N-1".
	Programs map[string]*Program
	// Order lists the instance names in file order (the main file's
	// programs, then those of each included file, the files in lexical
	// order), a program's instances by index.
	Order []string
	// Definitions holds each [programs.NAME] table as resolved, with its
	// templates not replaced: what Instances expands.
	Definitions map[string]*Program
	// DefinitionOrder lists the program (table) names in the order of
	// Order.
	DefinitionOrder []string
	Teardown        map[string]*TeardownStep
	Hooks           map[string]*Hook
	// Sources lists the files Load read; nil for Parse and Default.
	Sources *Sources

	// defaults is the raw [defaults] table, kept for AddCommand.
	defaults map[string]any
	// lines finds the line of a key in each file, by the file's name as
	// Program.File gives it, for Warnings (nil for Default).
	lines map[string]*lineIndex
}

// Supervisor holds the [supervisor] table.
type Supervisor struct {
	LogLevel, LogFormat, Socket, HeartbeatFile, Metrics string
	HeartbeatInterval, ShutdownTimeout                  time.Duration
	ForceExitCode                                       int
	WatchConfig                                         bool
	// StopSignal starts the teardown besides SIGTERM and SIGINT (the
	// STOPSIGNAL of an image that uses another).
	StopSignal syscall.Signal
	// Include holds the include patterns as written; Load follows them,
	// relative to the main file's directory.
	Include []string
}

// Program is one [programs.NAME] table with [defaults] and the built-in
// defaults applied: a definition (Config.Definitions), or one instance
// of it (Config.Programs, see Instances).
type Program struct {
	Name string // the table's name; for an instance, its own ("web:0", or "web" without replicas)
	// File and Line locate the [programs.NAME] header: the file as Error
	// names it (the main file's path as given, an included file's joined
	// to the main file's directory) and its line (0 if unknown). File is
	// "" for the program AddCommand adds. Every instance has its
	// definition's.
	File string
	Line int
	// Base is the name of the table an instance comes from: Name without
	// its ":i". It equals Name for a definition and for the one instance
	// of a program without replicas.
	Base string
	// Replica is the instance's index, 0 for a program without replicas.
	Replica int
	// Replicated is set when a layer of the file sets replicas (even to
	// 1): the instances are then named NAME:i, else there is one, NAME.
	Replicated       bool
	Replicas         int      // how many instances run (for an instance: of the expansion that made it)
	Command          []string // argv; a TOML string command becomes {"/bin/sh", "-c", s}
	Directory        string
	EnvFile          []EnvFile         // applied in order, before Environment
	Environment      map[string]string // never nil; see Env for the whole environment
	ClearEnvironment bool
	User, Group      string
	Autostart        bool
	DependsOn        []Dependency // in file order for a list, by name for a table
	Restart          RestartPolicy
	SuccessExitCodes []int
	MinUptime        time.Duration
	BackoffInitial   time.Duration
	BackoffMax       time.Duration
	StopTimeout      time.Duration
	StopSignal       syscall.Signal
	StopPriority     int
	Critical         bool
	Stdout, Stderr   Output
	LogRate          float64 // lines per second; 0 = unlimited
	LogBurst         int     // token bucket size; 0 = EffectiveLogBurst's default
	// LogBuffer is how many of the last lines written to the supervisor's
	// log are kept in memory for `supervise logs` (at most
	// MaxLogBufferBytes of them); 0 keeps none.
	LogBuffer int
	// LogMaxSize, when above 0, makes the supervisor write the program's
	// stdout/stderr file itself and rotate it when it reaches this many
	// bytes; 0 lets the program append to the file itself.
	LogMaxSize int64
	// LogMaxFiles is the number of rotated files kept (FILE.1 ... FILE.N).
	LogMaxFiles int
	// LogCompress gzips rotated files (FILE.1.gz ...).
	LogCompress  bool
	Notify       bool
	ReadyTimeout time.Duration // 0 = wait for readiness for ever
	Breaker      Breaker
	Watchdog     *Watchdog // nil when no [programs.X.watchdog] table
	Readiness    *Probe    // nil when no [programs.X.readiness] table
	Liveness     *Probe    // nil when no [programs.X.liveness] table
}

// DependencyNames returns the names depends_on lists, in its order.
func (p *Program) DependencyNames() []string {
	out := make([]string, len(p.DependsOn))
	for i, d := range p.DependsOn {
		out[i] = d.Name
	}
	return out
}

// MaxLogBufferBytes caps the memory of one program's kept lines, whatever
// log_buffer says.
const MaxLogBufferBytes = 1 << 20

// OwnsFile reports whether the supervisor writes the output o of p
// itself, rotating it: a file output with log_max_size set.
func (p *Program) OwnsFile(o Output) bool { return o.Kind == OutputFile && p.LogMaxSize > 0 }

// Breaker holds a program's [breaker] subtable.
type Breaker struct {
	MaxFailures      int
	ResetTimeout     time.Duration
	HalfOpenMaxCalls int
}

// Watchdog holds a program's [watchdog] subtable. StartGrace is already
// resolved: it equals Timeout when the file does not set it.
type Watchdog struct {
	HeartbeatFile string
	Timeout       time.Duration
	StartGrace    time.Duration
	Action        WatchdogAction
}

// TeardownStep is one [teardown.NAME] command run during shutdown.
type TeardownStep struct {
	Name     string
	File     string // the file of the [teardown.NAME] table, as for Program.File
	Line     int    // the line of its header (0 if unknown)
	Command  []string
	Priority int
	Timeout  time.Duration
}

// Hook is one [hooks.NAME] table: a command run on chosen events (SPEC
// section 15).
type Hook struct {
	Name    string
	File    string // the file of the [hooks.NAME] table, as for Program.File
	Line    int    // the line of its header (0 if unknown)
	Command []string
	// Events are the kinds that run the hook; empty is every kind.
	Events []events.Kind
	// Programs are the programs (or instances, NAME:i) whose events run
	// the hook; empty is every program's, and the supervisor's own events.
	Programs []string
	Timeout  time.Duration
}

// Wants reports whether an event of kind k about program runs the hook.
func (h *Hook) Wants(k events.Kind, program string) bool {
	return (len(h.Events) == 0 || slices.Contains(h.Events, k)) && events.MatchProgram(h.Programs, program)
}

// Equal reports whether two hooks have the same name and settings.
func (h *Hook) Equal(o *Hook) bool {
	if h == nil || o == nil {
		return h == o
	}
	return h.Name == o.Name && len(hookKeys.diff("", h, o, nil)) == 0
}

// Summary returns a one-line description of the hook, for `supervise
// validate`: "hooks.NAME: COMMAND (events K, ...; programs P, ...; timeout D)".
func (h *Hook) Summary() string {
	evs, progs := "all events", "all programs"
	if len(h.Events) > 0 {
		names := make([]string, len(h.Events))
		for i, k := range h.Events {
			names[i] = k.String()
		}
		evs = "events " + strings.Join(names, ", ")
	}
	if len(h.Programs) > 0 {
		progs = "programs " + strings.Join(h.Programs, ", ")
	}
	return fmt.Sprintf("hooks.%s: %s (%s; %s; timeout %s)", h.Name, strings.Join(h.Command, " "), evs, progs, FormatDuration(h.Timeout))
}

// Overrides are settings given on the command line, which win over the
// file. Empty fields override nothing.
type Overrides struct {
	LogLevel, LogFormat, Socket string
}

// Built-in defaults.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultForceExitCode     = 1
	DefaultMinUptime         = 5 * time.Second
	DefaultBackoffInitial    = 100 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultStopSignal        = syscall.SIGTERM
	DefaultStopTimeout       = 10 * time.Second
	DefaultPriority          = 100
	DefaultMaxFailures       = 5
	DefaultResetTimeout      = 60 * time.Second
	DefaultHalfOpenMaxCalls  = 1
	DefaultWatchdogTimeout   = 30 * time.Second
	DefaultTeardownTimeout   = 10 * time.Second
	DefaultLogBuffer         = 1000
	DefaultLogMaxFiles       = 5
	DefaultHookTimeout       = 10 * time.Second

	DefaultReadinessInterval = time.Second
	DefaultLivenessInterval  = 10 * time.Second
	DefaultProbeTimeout      = time.Second
	DefaultSuccessThreshold  = 1
	DefaultFailureThreshold  = 3
)

func defaultSupervisor() Supervisor {
	var s Supervisor
	supervisorKeys.reset(&s)
	return s
}

// defaultProgram returns a program with the built-in defaults.
func defaultProgram(name string) *Program {
	p := &Program{Name: name, Base: name}
	programKeys.reset(p)
	return p
}

// Resolve returns the config path: flag if non-empty, else
// $SUPERVISE_CONFIG, else ./supervise.toml if it exists, else
// /etc/supervise/supervise.toml.
func Resolve(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("SUPERVISE_CONFIG"); env != "" {
		return env
	}
	if _, err := os.Stat("supervise.toml"); err == nil {
		return "supervise.toml"
	}
	return "/etc/supervise/supervise.toml"
}

// Default returns the configuration used without a file: the supervisor's
// built-in defaults and no programs.
func Default() *Config {
	return &Config{
		Supervisor:  defaultSupervisor(),
		Programs:    map[string]*Program{},
		Definitions: map[string]*Program{},
		Teardown:    map[string]*TeardownStep{},
		Hooks:       map[string]*Hook{},
	}
}

// AddCommand adds program "main" running argv (no shell) with critical =
// true, inheriting [defaults]. It is used by single-command mode and by
// `-c FILE -- CMD`. It fails, changing nothing, when "main" exists or argv
// is empty, or when [defaults] makes the new program invalid (for example
// a depends_on naming it).
func (c *Config) AddCommand(argv []string) error {
	if p := c.Definitions[MainProgram]; p != nil {
		return &Error{File: c.File, Line: p.Line, Program: "programs." + MainProgram,
			Msg: fmt.Sprintf("%v: the name %q is reserved for the command given after --", ErrProgramExists, MainProgram),
			err: ErrProgramExists}
	}
	if len(argv) == 0 || argv[0] == "" {
		return &Error{Program: "programs." + MainProgram, Key: "command", Msg: "empty command"}
	}
	d := newDecoder(c.File, nil)
	cmd := make([]any, len(argv))
	for i, a := range argv {
		cmd[i] = a
	}
	p := d.buildProgram(MainProgram, c.defaults, map[string]any{"command": cmd, "critical": true})
	p.File = "" // from the command line, not from the file
	// The command given after -- is one process, whatever [defaults] says.
	p.Replicated, p.Replicas = false, 1
	(&table{d: d, section: "programs." + MainProgram, path: []string{"programs", MainProgram}}).checkReplicas(p)
	if err := c.readEnvFiles(p); err != nil {
		return err
	}
	defs := maps.Clone(c.Definitions)
	if defs == nil {
		defs = map[string]*Program{}
	}
	defs[MainProgram] = p
	order := append(slices.Clone(c.DefinitionOrder), MainProgram)
	d.checkDependencies(defs, order, c.lineIndex)
	if len(*d.errs) > 0 {
		sortErrors(*d.errs)
		return *d.errs
	}
	inst := p.instance(0, 1)
	// That command is taken literally, not as a template.
	inst.Command = slices.Clone(argv)
	c.Definitions, c.DefinitionOrder = defs, order
	c.Programs = maps.Clone(c.Programs)
	if c.Programs == nil {
		c.Programs = map[string]*Program{}
	}
	c.Programs[MainProgram] = inst
	c.Order = append(slices.Clone(c.Order), MainProgram)
	return nil
}

// Apply applies command-line overrides to the supervisor settings after
// checking them.
func (c *Config) Apply(o Overrides) error {
	var errs []error
	if o.LogLevel != "" && !slices.Contains(logLevels, o.LogLevel) {
		errs = append(errs, fmt.Errorf("%w: log level %q: must be one of %s%s",
			ErrInvalid, o.LogLevel, quoteList(logLevels), suggest(o.LogLevel, logLevels)))
	}
	if o.LogFormat != "" && !slices.Contains(logFormats, o.LogFormat) {
		errs = append(errs, fmt.Errorf("%w: log format %q: must be one of %s%s",
			ErrInvalid, o.LogFormat, quoteList(logFormats), suggest(o.LogFormat, logFormats)))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if o.LogLevel != "" {
		c.Supervisor.LogLevel = o.LogLevel
	}
	if o.LogFormat != "" {
		c.Supervisor.LogFormat = o.LogFormat
	}
	if o.Socket != "" {
		c.Supervisor.Socket = o.Socket
	}
	return nil
}

// EffectiveLogBurst returns the token bucket size for LogRate: LogBurst when
// set, else LogRate rounded up (at least 1). It is 0 when LogRate is 0
// (unlimited).
func (p *Program) EffectiveLogBurst() int {
	if p.LogRate <= 0 {
		return 0
	}
	if p.LogBurst > 0 {
		return p.LogBurst
	}
	b := int(p.LogRate)
	if float64(b) < p.LogRate {
		b++
	}
	return max(b, 1)
}

// Diff returns the keys whose values differ between p and q, in the
// order of the README's reference, dotted for subtables
// ("watchdog.timeout"); "watchdog" alone when one of them has a watchdog
// and the other has none. Name, File and Line are not settings and are not
// compared: a program moved to another file is the same program. An env
// file read with other variables than before is a change of "env_file".
// Both programs must be non-nil.
func (p *Program) Diff(q *Program) []string {
	return programKeys.diff("", p, q, nil)
}

// Equal reports whether two programs have the same name and settings, File
// and Line ignored: p.Name == q.Name and p.Diff(q) is empty. A reload leaves Equal
// programs alone; Diff and NeedsRestart tell which of the others' changes
// need a restart.
func (p *Program) Equal(q *Program) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Name == q.Name && len(p.Diff(q)) == 0
}

// NeedsRestart reports whether a change of the program key (as Diff names
// it, "watchdog.timeout") takes a restart of the program to apply. Those
// keys shape the process as it is spawned: its argv, directory,
// environment, credentials, output descriptors, notify socket and
// WATCHDOG_USEC. The others are read when the supervisor acts on the
// program (stops it, judges an exit, schedules a restart, limits its log
// lines, waits for readiness), so a running program can take them in
// place. The README's key reference lists the choice per key ("On
// reload"). An unknown key needs a restart.
func NeedsRestart(key string) bool {
	restart, known := programRestarts[key]
	return restart || !known
}

// programRestarts maps every program key, dotted for subtables, to whether
// its change restarts the program.
var programRestarts = func() map[string]bool {
	m := map[string]bool{}
	var add func(prefix string, refs []refInfo)
	add = func(prefix string, refs []refInfo) {
		for _, r := range refs {
			m[prefix+r.name] = r.restart
			add(prefix+r.name+".", r.keys)
		}
	}
	add("", programKeys.refs())
	return m
}()

// Diff returns the [supervisor] keys whose values differ between s and o.
func (s *Supervisor) Diff(o *Supervisor) []string {
	return supervisorKeys.diff("", s, o, nil)
}

// Equal reports whether two teardown steps have the same settings.
func (t *TeardownStep) Equal(u *TeardownStep) bool {
	if t == nil || u == nil {
		return t == u
	}
	return t.Name == u.Name && len(teardownKeys.diff("", t, u, nil)) == 0
}

// resolvePath makes p absolute relative to the directory of file (or the
// working directory when file is empty), and cleans it.
func resolvePath(file, p string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	base := "."
	if file != "" {
		base = filepath.Dir(file)
	}
	if abs, err := filepath.Abs(filepath.Join(base, p)); err == nil {
		return abs
	}
	return filepath.Join(base, p)
}

// Summary returns a one-line description of the program, for `supervise
// validate`: "NAME: COMMAND (PARTS)", where the parts are its restart
// policy and breaker, and every other setting that differs from the
// built-in default, in the order of the README's reference
// ("web: /usr/bin/web (no autostart, restart always, min_uptime 2s,
// breaker 5/1m)"). Durations are rounded by FormatDuration; environment
// variables are named without their values.
func (p *Program) Summary() string {
	return p.Name + ": " + strings.Join(p.Command, " ") + " (" + strings.Join(programKeys.summary("", p), ", ") + ")"
}

// Summary returns a one-line description of the step, for `supervise
// validate`: "teardown.NAME: COMMAND (priority N, timeout D)".
func (t *TeardownStep) Summary() string {
	return fmt.Sprintf("teardown.%s: %s (priority %d, timeout %s)",
		t.Name, strings.Join(t.Command, " "), t.Priority, FormatDuration(t.Timeout))
}
