package control

import (
	"encoding/json"
	"fmt"
	"io"
)

// Flags shared by several commands.
var (
	flagConfig = Flag{Name: "config", Short: "c", Value: "FILE",
		Help: "the configuration file (default: $SUPERVISE_CONFIG, else ./supervise.toml, else /etc/supervise/supervise.toml)"}
	// flagFind is -c on a control command, where it only locates the socket.
	flagFind = Flag{Name: "config", Short: "c", Value: "FILE", Common: true,
		Help: "read the socket from this configuration file's [supervisor] socket (the rest of the file may be broken)"}
	flagSocket = Flag{Name: "socket", Short: "s", Value: "SOCKET", Common: true,
		Help: "the control socket (default: $SUPERVISE_SOCKET, else the configuration's [supervisor] socket, else supervise.sock in the runtime directory)"}
)

// programsArg is the NAME... of the commands that act on programs.
var programsArg = Arg{Name: "NAME", Kind: KindProgram, Repeat: true,
	Help: "a program of the configuration (every instance of it), or NAME:i (one instance)"}

// remote returns a remote command with the flags that find the socket.
func remote(name, summary, help string, args ...Arg) *Command {
	return &Command{Name: name, Summary: summary, Help: help, Args: args, Flags: []Flag{flagFind, flagSocket}}
}

// Commands is the registry of every command of `supervise`: the command
// line is parsed and documented from it, and the server validates
// requests against it. A new command is one entry here, plus its Handler
// in the supervisor (remote commands) or its runner in the command line
// (local ones).
var Commands = MustRegistry(
	&Command{
		Name:     "run",
		Summary:  "Run the supervisor in the foreground (the command when none is given).",
		Implicit: true, Local: true, Rest: true,
		Help: `With -- CMD and no configuration file, supervise that one command like tini and
exit with its code (128+N when a signal N killed it). With -- CMD and a
configuration file (-c or $SUPERVISE_CONFIG), add it to the file's programs as
"main", with critical = true.

Exit codes: 0 after a requested clean shutdown, 2 for a usage or configuration
error, force_exit_code when the teardown overran, a critical program's own code
when it ended the run.`,
		Flags: []Flag{
			flagConfig,
			{Name: "socket", Short: "s", Value: "SOCKET", Help: "listen on this control socket (\"off\" disables it; default: $SUPERVISE_SOCKET, else the configuration's socket)"},
			{Name: "log-level", Value: "L", Help: "debug, info, warn or error (overrides the configuration)"},
			{Name: "log-format", Value: "console|json", Help: "the log format (overrides the configuration)"},
		},
	},
	&Command{
		Name:    "validate",
		Summary: "Check a configuration file exactly as run would; exit 2 on errors.",
		Help: "Prints a line per program and teardown step with the file and line it comes from, then\n" +
			"warnings about what will fail at run time but may be fixed before (an unknown user, a missing\n" +
			"command or directory). With --strict, warnings make the exit code 1. With --diff, it then asks\n" +
			"the running supervisor what a reload would change (as reload --dry-run).",
		Local: true,
		Flags: []Flag{flagConfig, {Name: "strict", Kind: KindBool, Help: "exit 1 when there are warnings"},
			{Name: "diff", Kind: KindBool, Help: "also print the difference a reload of the running supervisor would apply"},
			{Name: "json", Kind: KindBool, Help: "with --diff: print the difference as JSON"},
			flagSocket},
	},
	&Command{
		Name:    CmdStatus,
		Summary: "Show the programs: a table, or {\"programs\": [...]} with --json.",
		Args: []Arg{{Name: "NAME", Kind: KindProgram, Optional: true, Repeat: true,
			Help: "show only these programs (a program with replicas: its instances), or NAME:i"}},
		Help: `With --watch, the table is drawn again whenever an event changes it (see
'supervise help events'), until Ctrl-C; when the output is not a terminal,
each change is printed as one line instead.`,
		Flags: []Flag{
			{Name: "json", Kind: KindBool, Help: "print JSON instead of the table"},
			{Name: "watch", Kind: KindBool, Help: "keep the table up to date as events happen, until interrupted"},
			flagFind, flagSocket,
		},
		Print: printStatus,
	},
	remote(CmdStart, "Start stopped programs.", "", programsArg),
	remote(CmdStop, "Stop programs and wait until they have stopped.", "", programsArg),
	remote(CmdRestart, "Stop programs and start them again.", "", programsArg),
	remote(CmdReset, "Close programs' circuit breakers and start them.", "", programsArg),
	remote(CmdSignal, "Send a signal to a program's process.",
		"The signal is a name (HUP, SIGHUP) or a number. An exit it causes is judged like any other.",
		Arg{Name: "NAME", Kind: KindProgram, Help: "the program (every instance of it), or NAME:i"},
		Arg{Name: "SIGNAL", Kind: KindSignal, Help: "HUP, SIGUSR1, 9, ..."}),
	remote(CmdScale, "Run N instances of a program with replicas: start or stop the difference.",
		"New instances take the next indices; the highest ones stop, as `stop` stops them, and are\n"+
			"removed. The answer gives the new count. A reload applies the file's replicas again.",
		Arg{Name: "NAME", Kind: KindProgram, Help: "the program (its table's name, not one instance)"},
		Arg{Name: "N", Kind: KindCount, Help: "the number of instances, from 0"}),
	&Command{
		Name:    CmdReload,
		Summary: "Re-read the configuration file and apply the difference.",
		Help: "An invalid file is reported and changes nothing. With --dry-run, print the difference a\n" +
			"reload would apply (added, removed, changed with the changed keys, unchanged) and apply nothing.",
		Flags: []Flag{flagFind, flagSocket,
			{Name: ParamDryRun, Kind: KindBool, Remote: true, Help: "print the difference, apply nothing"},
			{Name: "json", Kind: KindBool, Help: "with --dry-run: print the difference as JSON"},
		},
		Print: printReload,
	},
	remote(CmdShutdown, "Tear down the programs and end the supervisor.", ""),
	&Command{
		Name:    CmdLogs,
		Summary: "Print the programs' last output lines, merged by time; -f follows new ones.",
		Help: `Prints what the supervisor kept of the output programs send to its log
(stdout/stderr = "log"): each program's last log_buffer lines (1000 by default,
at most 1 MiB), merged by time across the programs named (default: all), as
"TIME NAME | LINE", with "!" instead of "|" for stderr. With -f it then prints
new lines as they come, until interrupted or until the supervisor exits. A
reader too slow to keep up loses lines, marked "N lines skipped"; the programs
never wait for it. Output that goes to files is not kept: read the files.`,
		Args: []Arg{{Name: "NAME", Kind: KindProgram, Optional: true, Repeat: true,
			Help: "only these programs (a program with replicas: every instance of it), or NAME:i"}},
		Flags: []Flag{
			{Name: ParamLines, Short: "n", Value: "N", Kind: KindCount, Remote: true,
				Help: "print only the last N kept lines (of all the programs together)"},
			{Name: ParamFollow, Short: "f", Kind: KindBool, Remote: true, Help: "then print new lines as they come"},
			{Name: ParamSince, Value: "DURATION", Remote: true,
				Help: `only lines of the last DURATION ("10m", "90"), or since an RFC 3339 time`},
			{Name: "json", Kind: KindBool, Help: "print one JSON object per line: ts, program, stream, line (and partial)"},
			flagFind, flagSocket,
		},
		Stream: true,
		Print:  printLogs,
	},
	remote(CmdReopenLogs, "Reopen the log files the supervisor writes (after an external logrotate).",
		"These are the stdout/stderr files of programs with log_max_size set; SIGUSR1 to the\n"+
			"supervisor does the same. A file a program writes itself (no log_max_size) stays\n"+
			"open in the program: rotate it with logrotate's copytruncate."),
	&Command{
		Name:    CmdEvents,
		Summary: "Stream the supervisor's events, one per line, until interrupted.",
		Help: `Kinds: state (from, to, reason, pid, exit code or signal), ready, not_ready,
failed, breaker_open, breaker_half_open, breaker_closed, watchdog, probe,
reload (with the diff), teardown, teardown_step and critical_exit. Each event
has at, seq (1, 2, 3, ... in one supervisor run), kind and program ("" for
the supervisor's own). A reader too slow for the events gets a "lost" line
saying how many it missed. With NAME, only the events of those programs
(and of their instances, NAME:i).`,
		Stream: true,
		Args: []Arg{{Name: "NAME", Kind: KindProgram, Optional: true, Repeat: true,
			Help: "only the events of these programs (a program with replicas: all its instances), or NAME:i"}},
		Flags: []Flag{
			{Name: "json", Kind: KindBool, Help: "print each event as one line of JSON"},
			flagFind, flagSocket,
		},
		Print: printEvent,
	},
	&Command{
		Name:    "check",
		Summary: "Exit 0 if the supervisor's heartbeat file is fresh, else 1: for HEALTHCHECK and exec probes.",
		Help: "Without --ready: the liveness of the supervisor itself (its event loop writes the heartbeat file).\n" +
			"With --ready: exit 0 only while every autostart program is ready (a completed one-shot task\n" +
			"counts as ready), asking the running supervisor: a Kubernetes readiness probe.",
		Local: true,
		Flags: []Flag{
			flagConfig, flagSocket,
			{Name: "ready", Kind: KindBool, Help: "check that every autostart program is ready instead"},
			{Name: "json", Kind: KindBool, Help: "print the verdict and its reasons as JSON"},
			{Name: "heartbeat", Value: "FILE", Help: "the heartbeat file (default: the configuration's [supervisor] heartbeat_file)"},
			{Name: "max-age", Value: "DURATION", Help: "the oldest beat that counts as fresh (default: 3 × heartbeat_interval)"},
		},
	},
	&Command{
		Name:    "import",
		Summary: "Print a supervise configuration converted from supervisord, a Procfile or process-compose.",
		Help: "Reads a supervisord file (with the files of its [include]), a Procfile, or a process-compose\n" +
			"YAML file, telling which from its content, and prints the equivalent TOML on stdout: each\n" +
			"program says where it came from, and [defaults] keeps the source's defaults where they differ.\n" +
			"Every setting that cannot be converted exactly is listed on stderr with its file, line and why;\n" +
			"the exit code is still 0. A file that cannot be parsed exits 2.\n\n" +
			"  supervise import /etc/supervisor/supervisord.conf > supervise.toml\n" +
			"  supervise validate -c supervise.toml",
		Local: true,
		Args:  []Arg{{Name: "FILE", Kind: KindText, Help: "the file to convert"}},
		Flags: []Flag{{Name: "format", Value: "supervisord|procfile|process-compose",
			Help: "the format of FILE (default: told from its content)"}},
	},
	&Command{Name: "version", Summary: "Print the version.", Local: true},
	&Command{
		Name:    "help",
		Summary: "Print the commands, or one command's usage (also COMMAND --help).",
		Local:   true,
		Args:    []Arg{{Name: "COMMAND", Kind: KindText, Optional: true, Help: "the command to describe"}},
	},
)

// PrintResponse is the default printer of a reply: its message, or else
// the status table of the programs it carries when every result succeeded.
func PrintResponse(w io.Writer, _ *Invocation, r Response) error {
	if r.Message != "" {
		_, err := fmt.Fprintln(w, r.Message)
		return err
	}
	for _, res := range r.Results {
		if !res.OK {
			return nil
		}
	}
	if len(r.Programs) > 0 {
		return WriteTable(w, r.Programs)
	}
	return nil
}

// printEvent prints one event of `supervise events`: its text line, or
// with --json its JSON. Replies without an event (the stream's opening
// one) print nothing.
func printEvent(w io.Writer, inv *Invocation, r Response) error {
	if r.Event == nil {
		return nil
	}
	var line []byte
	if inv.Bool("json") {
		line = r.Event.JSON()
	} else {
		line = []byte(r.Event.Text())
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("writing events: %w", err)
	}
	return nil
}

// printReload prints a reload's answer; with --dry-run --json, the
// difference as JSON.
func printReload(w io.Writer, inv *Invocation, r Response) error {
	if inv.Bool("json") && len(r.Diff) > 0 {
		_, err := fmt.Fprintf(w, "%s\n", r.Diff)
		return err
	}
	return PrintResponse(w, inv, r)
}

// printStatus prints the table of `supervise status`, or with --json
// {"programs": [...]}.
func printStatus(w io.Writer, inv *Invocation, r Response) error {
	if !inv.Bool("json") {
		if err := WriteTable(w, r.Programs); err != nil {
			return err
		}
		return writeOutputLosses(w, r.Programs)
	}
	progs := r.Programs
	if progs == nil {
		progs = []ProgramStatus{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"programs": progs}); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	return nil
}
