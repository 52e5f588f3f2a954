package conf

import (
	"fmt"
	"strings"
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
// the notify socket and WATCHDOG_USEC). The other program keys are read by
// the supervisor when it acts on the program (when it stops it, judges an
// exit, schedules a restart, limits its log lines or waits for readiness),
// so a reload can apply them to the running process in place.

func (s *Supervisor) settings() []setting {
	return []setting{
		key("log_level", &s.LogLevel, logLevelCodec, LogInfo,
			"the supervisor's log level"),
		key("log_format", &s.LogFormat, logFormatCodec, FormatConsole,
			"the supervisor's log format"),
		key("socket", &s.Socket, socketCodec, "",
			"the control socket; `\"\"` is `$XDG_RUNTIME_DIR/supervise.sock`, or `/run/supervise.sock` as root; `\"off\"` disables it"),
		key("heartbeat_file", &s.HeartbeatFile, pathCodec, "",
			"the supervisor's own heartbeat file, read by `supervise check`; `\"\"` disables it"),
		key("heartbeat_interval", &s.HeartbeatInterval, positiveDurationCodec, DefaultHeartbeatInterval,
			"how often the supervisor writes its heartbeat"),
		key("shutdown_timeout", &s.ShutdownTimeout, positiveDurationCodec, DefaultShutdownTimeout,
			"the budget for the whole teardown, after which everything left is killed"),
		key("force_exit_code", &s.ForceExitCode, exitCodeCodec, DefaultForceExitCode,
			"the exit code when the teardown exceeds `shutdown_timeout`"),
		key("watch_config", &s.WatchConfig, boolCodec, true,
			"apply edits of the configuration file while running"),
		key("metrics", &s.Metrics, hostPortCodec, "",
			"serve Prometheus `/metrics` and `/healthz` over HTTP at this address, such as `\"127.0.0.1:9100\"`; `\"\"` disables it"),
	}
}

func (p *Program) settings() []setting {
	return []setting{
		key("command", &p.Command, commandCodec, nil,
			"the command to run; an array is the argv, with no shell").
			mandatory().restarts().summary(func() string { return "" }),
		key("directory", &p.Directory, pathCodec, "",
			"the working directory; `\"\"` keeps the supervisor's").restarts(),
		key("environment", &p.Environment, environmentCodec, map[string]string{},
			"variables added to the supervisor's environment (merged with those of `[defaults]`)").restarts(),
		key("clear_environment", &p.ClearEnvironment, boolCodec, false,
			"start from an empty environment instead of the supervisor's").restarts(),
		key("user", &p.User, idCodec, "",
			"run as this user, with its primary and supplementary groups (needs root); `\"\"` keeps the supervisor's").restarts(),
		key("group", &p.Group, idCodec, "",
			"run with this primary group instead of the user's (needs root); `\"\"` keeps it").restarts(),
		key("autostart", &p.Autostart, boolCodec, true,
			"start the program with the supervisor; `false` leaves it stopped until started").
			summary(func() string { return cond(!p.Autostart, "no autostart") }),
		key("depends_on", &p.DependsOn, dependsCodec, nil,
			"programs to start (and be ready) before this one, and to stop after it").
			summary(func() string {
				return cond(len(p.DependsOn) > 0, "depends on "+strings.Join(p.DependsOn, ", "))
			}),
		key("restart", &p.Restart, restartCodec, RestartOnFailure,
			"when an ended run is started again").
			summary(func() string { return "restart " + string(p.Restart) }),
		key("success_exit_codes", &p.SuccessExitCodes, exitCodesCodec, []int{0},
			"exit codes that are not failures"),
		key("min_uptime", &p.MinUptime, durationCodec, DefaultMinUptime,
			"a run that lives this long counts as a success"),
		key("backoff_initial", &p.BackoffInitial, durationCodec, DefaultBackoffInitial,
			"the delay before the first restart after a failure"),
		key("backoff_max", &p.BackoffMax, durationCodec, DefaultBackoffMax,
			"the cap of the restart delay, which doubles with each consecutive failure"),
		key("stop_signal", &p.StopSignal, signalCodec, DefaultStopSignal,
			"the signal that asks the program to stop (`\"TERM\"`, `\"SIGTERM\"` and `15` are the same)"),
		key("stop_timeout", &p.StopTimeout, positiveDurationCodec, DefaultStopTimeout,
			"how long a stop waits after `stop_signal` before SIGKILL to the process group"),
		key("stop_priority", &p.StopPriority, priorityCodec, DefaultPriority,
			"the teardown order: lower stops first"),
		key("critical", &p.Critical, boolCodec, false,
			"when the program fails for good, tear everything down and exit with its code").
			summary(func() string { return cond(p.Critical, "critical") }),
		key("stdout", &p.Stdout, outputCodec, Output{Kind: OutputLog},
			"where standard output goes: the supervisor's log, its own stdout, `/dev/null`, or appended to a file").restarts(),
		key("stderr", &p.Stderr, outputCodec, Output{Kind: OutputLog},
			"where standard error goes, as for `stdout`").restarts(),
		key("log_rate", &p.LogRate, rateCodec, 0,
			"the most output lines per second kept in the log; `0` is unlimited"),
		key("log_burst", &p.LogBurst, sizeCodec, 0,
			"the token bucket size of `log_rate`; `0` is `log_rate` rounded up"),
		key("notify", &p.Notify, boolCodec, false,
			"give the program a `NOTIFY_SOCKET` for the sd_notify protocol; `READY=1` then marks it ready").
			restarts().summary(func() string { return cond(p.Notify, "notify") }),
		key("ready_timeout", &p.ReadyTimeout, durationCodec, 0,
			"a run not ready this long after its start is a failure; `0` waits for ever"),
		always("breaker", "programs.NAME.breaker", &p.Breaker, (*Breaker).settings,
			"the restart circuit breaker").
			summary(func() string {
				b := p.Breaker
				s := fmt.Sprintf("breaker %d/%s", b.MaxFailures, FormatDuration(b.ResetTimeout))
				if b.HalfOpenMaxCalls != DefaultHalfOpenMaxCalls {
					s += fmt.Sprintf(", half-open %d", b.HalfOpenMaxCalls)
				}
				return s
			}),
		optional("watchdog", "programs.NAME.watchdog", &p.Watchdog, (*Watchdog).settings,
			"the heartbeat watchdog; none when the table is absent").
			restarts().summary(func() string {
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
		}),
	}
}

func (b *Breaker) settings() []setting {
	return []setting{
		key("max_failures", &b.MaxFailures, countCodec, DefaultMaxFailures,
			"consecutive failures that open the breaker"),
		key("reset_timeout", &b.ResetTimeout, positiveDurationCodec, DefaultResetTimeout,
			"how long the breaker stays open before it half-opens and tries again"),
		key("half_open_max_calls", &b.HalfOpenMaxCalls, countCodec, DefaultHalfOpenMaxCalls,
			"starts allowed while half-open; a success closes the breaker, a failure opens it again"),
	}
}

// Watchdog's StartGrace is 0 while a table is decoded and no layer set it;
// resolve then makes it Timeout.
func (w *Watchdog) settings() []setting {
	return []setting{
		key("heartbeat_file", &w.HeartbeatFile, pathCodec, "",
			"the file the program beats by writing, creating, renaming onto or touching").
			mandatory().restarts(),
		key("timeout", &w.Timeout, positiveDurationCodec, DefaultWatchdogTimeout,
			"the longest silence allowed between beats (`WATCHDOG_USEC` for a notify program)").restarts(),
		key("start_grace", &w.StartGrace, positiveDurationCodec, 0,
			"the time allowed from the start to the first beat").defaultIs("`timeout`"),
		key("action", &w.Action, actionCodec, WatchdogRestart,
			"what a missed beat does: kill and count a failure, stop the program, or only log"),
	}
}

func (s *TeardownStep) settings() []setting {
	return []setting{
		key("command", &s.Command, commandCodec, nil,
			"the command to run; an array is the argv, with no shell").mandatory(),
		key("priority", &s.Priority, priorityCodec, DefaultPriority,
			"the step's place in the teardown among program stops: lower runs first"),
		key("timeout", &s.Timeout, positiveDurationCodec, DefaultTeardownTimeout,
			"the command is killed when it runs longer"),
	}
}

func cond(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}
