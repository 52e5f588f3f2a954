package conf

import (
	"fmt"
	"regexp"
	"syscall"
	"time"

	"github.com/supervise/supervise/supervisor/events"
)

//go:generate go test -run ^TestReadmeReference$ -update .

// The key declarations: one entry per key of the file, in the order the
// README's reference lists them. Adding a key means adding its field to
// the struct and its entry here; decoding, defaults, Diff and Equal,
// Summary and the reference follow.
//
// A program key marked restarts() is one whose change, on a reload, needs
// the program restarted to take effect: it shapes the process as it is
// spawned (argv, directory, environment, credentials, output descriptors,
// the notify socket and WATCHDOG_USEC, the log rate limiter of its output
// pipes). The other program keys are read by
// the supervisor when it acts on the program (when it stops it, judges an
// exit, schedules a restart, limits its log lines or waits for readiness),
// so a reload can apply them to the running process in place.

var supervisorKeys = schema[Supervisor]{
	key("log_level", func(s *Supervisor) *string { return &s.LogLevel }, logLevelCodec, LogInfo,
		"the supervisor's log level"),
	key("log_format", func(s *Supervisor) *string { return &s.LogFormat }, logFormatCodec, FormatConsole,
		"the supervisor's log format"),
	key("socket", func(s *Supervisor) *string { return &s.Socket }, socketCodec, "",
		"the control socket; `\"\"` is `$XDG_RUNTIME_DIR/supervise.sock`, or `/run/supervise.sock` as root; `\"off\"` disables it"),
	key("heartbeat_file", func(s *Supervisor) *string { return &s.HeartbeatFile }, pathCodec, "",
		"the supervisor's own heartbeat file, read by `supervise check`; `\"\"` disables it"),
	key("heartbeat_interval", func(s *Supervisor) *time.Duration { return &s.HeartbeatInterval }, positiveDurationCodec, DefaultHeartbeatInterval,
		"how often the supervisor writes its heartbeat"),
	key("shutdown_timeout", func(s *Supervisor) *time.Duration { return &s.ShutdownTimeout }, positiveDurationCodec, DefaultShutdownTimeout,
		"the budget for the whole teardown, after which everything left is killed"),
	key("force_exit_code", func(s *Supervisor) *int { return &s.ForceExitCode }, exitCodeCodec, DefaultForceExitCode,
		"the exit code when the teardown exceeds `shutdown_timeout`"),
	key("stop_signal", func(s *Supervisor) *syscall.Signal { return &s.StopSignal }, signalCodec, DefaultStopSignal,
		"a signal that starts the teardown, besides SIGTERM and SIGINT: the image's `STOPSIGNAL` when it is another"),
	key("watch_config", func(s *Supervisor) *bool { return &s.WatchConfig }, boolCodec, true,
		"apply edits of the configuration file while running"),
	key("metrics", func(s *Supervisor) *string { return &s.Metrics }, hostPortCodec, "",
		"serve Prometheus `/metrics` and `/healthz` over HTTP at this address, such as `\"127.0.0.1:9100\"`; `\"\"` disables it"),
	key("include", func(s *Supervisor) *[]string { return &s.Include }, includeCodec, nil,
		"files of more `[programs.*]`, `[teardown.*]` and `[hooks.*]` tables, such as `[\"conf.d/*.toml\"]`, read in lexical order"),
}

var programKeys = schema[Program]{
	key("command", func(p *Program) *[]string { return &p.Command }, commandCodec, nil,
		"the command to run; an array is the argv, with no shell").
		mandatory().restarts().phrased(func(p *Program) string { return "" }),
	key("directory", func(p *Program) *string { return &p.Directory }, pathCodec, "",
		"the working directory; `\"\"` keeps the supervisor's").restarts(),
	key("env_file", func(p *Program) *[]EnvFile { return &p.EnvFile }, envFileCodec, nil,
		"files of `NAME=VALUE` lines (dotenv) put in the environment in order, before `environment`; "+
			"a change of their variables restarts the program").restarts(),
	key("environment", func(p *Program) *map[string]string { return &p.Environment }, environmentCodec, map[string]string{},
		"variables added to the supervisor's environment (merged with those of `[defaults]`)").restarts(),
	key("clear_environment", func(p *Program) *bool { return &p.ClearEnvironment }, boolCodec, false,
		"start from an empty environment instead of the supervisor's").restarts(),
	key("user", func(p *Program) *string { return &p.User }, idCodec, "",
		"run as this user, with its primary and supplementary groups (needs root); `\"\"` keeps the supervisor's").restarts(),
	key("group", func(p *Program) *string { return &p.Group }, idCodec, "",
		"run with this primary group instead of the user's (needs root); `\"\"` keeps it").restarts(),
	key("autostart", func(p *Program) *bool { return &p.Autostart }, boolCodec, true,
		"start the program with the supervisor; `false` leaves it stopped until started").
		phrased(func(p *Program) string { return cond(!p.Autostart, "no autostart") }),
	key("replicas", func(p *Program) *int { return &p.Replicas }, replicasCodec, 1,
		"run this many instances, `NAME:0` to `NAME:N-1` (`0`: defined, none running); without the key, one instance named `NAME`; a reload that changes only this key starts or stops the difference").
		phrased(func(p *Program) string { return cond(p.Replicated, fmt.Sprintf("replicas %d", p.Replicas)) }),
	key("depends_on", func(p *Program) *[]Dependency { return &p.DependsOn }, dependsCodec, nil,
		"programs to start before this one, and to stop after it: a list waits for each to be ready; "+
			"a table (`{ db = \"ready\", migrate = \"completed\", cache = \"started\" }`) names the condition per program; "+
			"`NAME` waits for every instance of a program with replicas, `NAME:i` for one").
		phrased(func(p *Program) string {
			return cond(len(p.DependsOn) > 0, "depends on "+dependsCodec.show(p.DependsOn))
		}),
	key("restart", func(p *Program) *RestartPolicy { return &p.Restart }, restartCodec, RestartOnFailure,
		"when an ended run is started again").
		phrased(func(p *Program) string { return "restart " + string(p.Restart) }),
	key("success_exit_codes", func(p *Program) *[]int { return &p.SuccessExitCodes }, exitCodesCodec, []int{0},
		"exit codes that are not failures"),
	key("min_uptime", func(p *Program) *time.Duration { return &p.MinUptime }, durationCodec, DefaultMinUptime,
		"a run that lives this long counts as a success"),
	key("backoff_initial", func(p *Program) *time.Duration { return &p.BackoffInitial }, durationCodec, DefaultBackoffInitial,
		"the delay before the first restart after a failure"),
	key("backoff_max", func(p *Program) *time.Duration { return &p.BackoffMax }, durationCodec, DefaultBackoffMax,
		"the cap of the restart delay, which doubles with each consecutive failure"),
	key("stop_signal", func(p *Program) *syscall.Signal { return &p.StopSignal }, signalCodec, DefaultStopSignal,
		"the signal that asks the program to stop (`\"TERM\"`, `\"SIGTERM\"` and `15` are the same)"),
	key("stop_timeout", func(p *Program) *time.Duration { return &p.StopTimeout }, positiveDurationCodec, DefaultStopTimeout,
		"how long a stop waits after `stop_signal` before SIGKILL to the process group"),
	key("stop_priority", func(p *Program) *int { return &p.StopPriority }, priorityCodec, DefaultPriority,
		"the teardown order: lower stops first"),
	key("critical", func(p *Program) *bool { return &p.Critical }, boolCodec, false,
		"when the program fails for good, tear everything down and exit with its code").
		phrased(func(p *Program) string { return cond(p.Critical, "critical") }),
	key("stdout", func(p *Program) *Output { return &p.Stdout }, outputCodec, Output{Kind: OutputLog},
		"where standard output goes: the supervisor's log, its own stdout, `/dev/null`, or appended to a file (rotated by the supervisor with `log_max_size`)").restarts(),
	key("stderr", func(p *Program) *Output { return &p.Stderr }, outputCodec, Output{Kind: OutputLog},
		"where standard error goes, as for `stdout`").restarts(),
	key("log_rate", func(p *Program) *float64 { return &p.LogRate }, rateCodec, 0,
		"the most output lines per second kept, in the log, the buffer of `supervise logs` and a file the supervisor writes; `0` is unlimited").restarts(),
	key("log_burst", func(p *Program) *int { return &p.LogBurst }, sizeCodec, 0,
		"the token bucket size of `log_rate`; `0` is `log_rate` rounded up").restarts(),
	key("log_buffer", func(p *Program) *int { return &p.LogBuffer }, sizeCodec, DefaultLogBuffer,
		"the last output lines kept in memory for `supervise logs` (at most 1 MiB of them); `0` keeps none").restarts(),
	key("log_max_size", func(p *Program) *int64 { return &p.LogMaxSize }, byteSizeCodec, 0,
		"with `stdout`/`stderr` a file: the supervisor writes it and rotates it at this size; `0` lets the program append to it itself, unrotated").restarts(),
	key("log_max_files", func(p *Program) *int { return &p.LogMaxFiles }, maxFilesCodec, DefaultLogMaxFiles,
		"rotated files kept: `FILE.1` (the newest) to `FILE.N`; `0` keeps none").restarts(),
	key("log_compress", func(p *Program) *bool { return &p.LogCompress }, boolCodec, false,
		"gzip rotated files (`FILE.1.gz` ...), after the rotation and off the output path").restarts(),
	key("notify", func(p *Program) *bool { return &p.Notify }, boolCodec, false,
		"give the program a `NOTIFY_SOCKET` for the sd_notify protocol; `READY=1` then marks it ready").
		restarts().phrased(func(p *Program) string { return cond(p.Notify, "notify") }),
	key("ready_timeout", func(p *Program) *time.Duration { return &p.ReadyTimeout }, durationCodec, 0,
		"a run not ready this long after its start is a failure; `0` waits for ever"),
	always("breaker", "programs.NAME.breaker", func(p *Program) *Breaker { return &p.Breaker }, breakerKeys,
		"the restart circuit breaker").phrased(func(p *Program) string { return p.Breaker.phrase() }),
	optional("watchdog", "programs.NAME.watchdog", func(p *Program) **Watchdog { return &p.Watchdog }, watchdogKeys,
		"the heartbeat watchdog; none when the table is absent").restarts().phrased((*Program).watchdogPhrase),
	optional("readiness", "programs.NAME.readiness", func(p *Program) **Probe { return &p.Readiness }, readinessKeys,
		"the readiness probe, which gates `depends_on`; none when the table is absent").
		restarts().phrased(func(p *Program) string { return p.Readiness.phrase("readiness") }),
	optional("liveness", "programs.NAME.liveness", func(p *Program) **Probe { return &p.Liveness }, livenessKeys,
		"the liveness probe, checked once the program is ready; none when the table is absent").
		restarts().phrased(func(p *Program) string { return p.Liveness.phrase("liveness") }).
		refusing("log_line", "log_line is a readiness probe only: a liveness probe is exec, http or tcp"),
}

// phrase is a probe's part of Summary: "readiness http http://x/healthz
// every 1s".
func (p *Probe) phrase(what string) string {
	if p == nil {
		return ""
	}
	s := fmt.Sprintf("%s %s %s", what, p.Kind(), p.Target())
	if p.Kind() != ProbeLogLine {
		s += " every " + FormatDuration(p.Interval)
	}
	if p.Action != "" && p.Action != WatchdogRestart {
		s += ", action " + string(p.Action)
	}
	return s
}

// phrase is the breaker's part of Summary: "breaker 5/1m".
func (b *Breaker) phrase() string {
	s := fmt.Sprintf("breaker %d/%s", b.MaxFailures, FormatDuration(b.ResetTimeout))
	if b.HalfOpenMaxCalls != DefaultHalfOpenMaxCalls {
		s += fmt.Sprintf(", half-open %d", b.HalfOpenMaxCalls)
	}
	return s
}

// watchdogPhrase is the watchdog's part of Summary: "watchdog 30s on FILE".
func (p *Program) watchdogPhrase() string {
	w := p.Watchdog
	if w == nil {
		return ""
	}
	s := fmt.Sprintf("watchdog %s on %s", FormatDuration(w.Timeout), w.HeartbeatFile)
	if w.StartGrace != w.Timeout {
		s += ", grace " + FormatDuration(w.StartGrace)
	}
	if w.Action != WatchdogRestart {
		s += ", action " + string(w.Action)
	}
	return s
}

var breakerKeys = schema[Breaker]{
	key("max_failures", func(b *Breaker) *int { return &b.MaxFailures }, countCodec, DefaultMaxFailures,
		"consecutive failures that open the breaker"),
	key("reset_timeout", func(b *Breaker) *time.Duration { return &b.ResetTimeout }, positiveDurationCodec, DefaultResetTimeout,
		"how long the breaker stays open before it half-opens and tries again"),
	key("half_open_max_calls", func(b *Breaker) *int { return &b.HalfOpenMaxCalls }, countCodec, DefaultHalfOpenMaxCalls,
		"starts allowed while half-open; a success closes the breaker, a failure opens it again"),
}

// Watchdog's StartGrace is 0 while a table is decoded and no layer set it;
// resolve then makes it Timeout.
var watchdogKeys = schema[Watchdog]{
	key("heartbeat_file", func(w *Watchdog) *string { return &w.HeartbeatFile }, pathCodec, "",
		"the file the program beats by writing, creating, renaming onto or touching").
		mandatory().restarts(),
	key("timeout", func(w *Watchdog) *time.Duration { return &w.Timeout }, positiveDurationCodec, DefaultWatchdogTimeout,
		"the longest silence allowed between beats (`WATCHDOG_USEC` for a notify program)").restarts(),
	key("start_grace", func(w *Watchdog) *time.Duration { return &w.StartGrace }, positiveDurationCodec, 0,
		"the time allowed from the start to the first beat").defaultIs("`timeout`"),
	key("action", func(w *Watchdog) *WatchdogAction { return &w.Action }, actionCodec, WatchdogRestart,
		"what a missed beat does: kill and count a failure, stop the program, or only log"),
}

// probeKeys are the keys of a [readiness] table (liveness false) or of a
// [liveness] table (liveness true); which kind the table has is checked
// once its layers are applied (checkProbe).
func probeKeys(liveness bool) schema[Probe] {
	interval, delay := DefaultReadinessInterval, "the time from the spawn to the first attempt"
	if liveness {
		interval, delay = DefaultLivenessInterval, delay+"; it also waits for the program to be ready"
	}
	sc := schema[Probe]{
		key("exec", func(p *Probe) *[]string { return &p.Exec }, commandCodec, nil,
			"an exec probe: the command, run as the program's user, in its directory and environment; exit 0 passes").restarts().defaultIs("none"),
		key("http", func(p *Probe) *string { return &p.HTTP }, urlCodec, "",
			"an HTTP probe: GET this URL; a 2xx or 3xx status passes (redirects are not followed)").restarts().defaultIs("none"),
		key("tcp", func(p *Probe) *string { return &p.TCP }, probeAddrCodec, "",
			"a TCP probe: connecting to this address passes").restarts().defaultIs("none"),
	}
	if !liveness {
		sc = append(sc, key("log_line", func(p *Probe) **regexp.Regexp { return &p.LogLine }, regexpCodec, nil,
			"a log line probe: passes once `success_threshold` lines of stdout or stderr (with `\"log\"` output) match; the timing keys do not apply").restarts().defaultIs("none"))
	}
	sc = append(sc,
		key("http_verify_tls", func(p *Probe) *bool { return &p.HTTPVerifyTLS }, boolCodec, false,
			"verify the certificate of an `https://` URL; by default it is not").restarts(),
		key("interval", func(p *Probe) *time.Duration { return &p.Interval }, positiveDurationCodec, interval,
			"the time from the start of one attempt to the start of the next").restarts(),
		key("timeout", func(p *Probe) *time.Duration { return &p.Timeout }, positiveDurationCodec, DefaultProbeTimeout,
			"an attempt running longer fails (an exec probe's process group is killed)").restarts(),
		key("initial_delay", func(p *Probe) *time.Duration { return &p.InitialDelay }, durationCodec, 0,
			delay).restarts(),
		key("success_threshold", func(p *Probe) *int { return &p.SuccessThreshold }, countCodec, DefaultSuccessThreshold,
			"consecutive passes that make the probe passing").restarts(),
		key("failure_threshold", func(p *Probe) *int { return &p.FailureThreshold }, countCodec, DefaultFailureThreshold,
			"consecutive failures that make the probe failing").restarts(),
	)
	if liveness {
		sc = append(sc, key("action", func(p *Probe) *WatchdogAction { return &p.Action }, actionCodec, WatchdogRestart,
			"what a failing probe does: kill and count a failure, stop the program, or only log"))
	}
	return sc
}

var (
	readinessKeys = probeKeys(false)
	livenessKeys  = probeKeys(true)
)

var teardownKeys = schema[TeardownStep]{
	key("command", func(s *TeardownStep) *[]string { return &s.Command }, commandCodec, nil,
		"the command to run; an array is the argv, with no shell").mandatory(),
	key("priority", func(s *TeardownStep) *int { return &s.Priority }, priorityCodec, DefaultPriority,
		"the step's place in the teardown among program stops: lower runs first"),
	key("timeout", func(s *TeardownStep) *time.Duration { return &s.Timeout }, positiveDurationCodec, DefaultTeardownTimeout,
		"the command is killed when it runs longer"),
}

var hookKeys = schema[Hook]{
	key("command", func(h *Hook) *[]string { return &h.Command }, commandCodec, nil,
		"the command to run; an array is the argv, with no shell. It gets the event's JSON on its standard input and in `SUPERVISE_EVENT`, with `SUPERVISE_EVENT_KIND`, `SUPERVISE_PROGRAM` and `SUPERVISE_EVENTS_COALESCED`").mandatory(),
	key("events", func(h *Hook) *[]events.Kind { return &h.Events }, kindsCodec, nil,
		"the kinds of events that run it; `[]` is every kind"),
	key("programs", func(h *Hook) *[]string { return &h.Programs }, hookProgramsCodec, nil,
		"the programs whose events run it (`NAME` includes its instances `NAME:i`); `[]` is every program's, and the supervisor's own events"),
	key("timeout", func(h *Hook) *time.Duration { return &h.Timeout }, positiveDurationCodec, DefaultHookTimeout,
		"a run that lasts longer is killed with its process group"),
}

func cond(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}
