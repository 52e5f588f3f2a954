// Command supervise is a process supervisor: it runs the programs of a TOML
// file, restarts them through per-program circuit breakers, watches their
// heartbeat files, and tears everything down in priority order. It is built
// to be PID 1 in a container, a systemd unit, or a foreground process.
//
// The commands, their arguments and their help come from the registry
// control.Commands; `supervise help` prints them.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	procs.CloseOnExecFrom(3) // no child inherits what this process inherited (SPEC §9)
	// One event loop owns all state, so a second P buys little: it
	// narrows the watchdog's detection tail on a busy machine by about a
	// third, at the same cost per heartbeat, and a restart storm was no
	// faster with it (BENCHMARKS.md, "One P or two"). With one, the
	// supervisor never competes with its programs for more than one core.
	// $GOMAXPROCS still wins when set.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a command-line mistake found by a command's runner:
// exit code 2, with the command's usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// runner runs a local command.
type runner func(inv *control.Invocation, stdout, stderr io.Writer) (int, error)

// local maps each local command of the registry to its runner; every
// other command is sent to the supervisor by cmdControl.
var local = map[string]runner{
	"run":      cmdRun,
	"validate": cmdValidate,
	"check":    cmdCheck,
	"import":   cmdImport,
	"version":  cmdVersion,
	"help":     cmdHelp,
}

// footer follows the command overview of `supervise help`.
const footer = `
Config file: -c FILE, else $SUPERVISE_CONFIG, else ./supervise.toml, else /etc/supervise/supervise.toml.
Control socket: -s PATH, else $SUPERVISE_SOCKET, else the config's [supervisor] socket, else
supervise.sock in $XDG_RUNTIME_DIR, /run (root) or a private /tmp/supervise-UID directory.
Control commands take -c FILE and -s SOCKET. 'supervise help COMMAND' describes a command.
`

// run is main without os.Exit, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	inv, err := parse(args)
	code := 2
	if err == nil {
		if r := local[inv.Command.Name]; r != nil {
			code, err = r(inv, stdout, stderr)
		} else {
			code, err = cmdControl(inv, stdout, stderr)
		}
		if err == nil {
			return code
		}
		var ue usageError
		if errors.As(err, &ue) {
			err = &control.UsageError{Command: inv.Command, Msg: ue.msg}
		}
	}
	var ue *control.UsageError
	switch {
	case errors.Is(err, control.ErrHelp):
		if inv != nil && inv.Command != nil {
			inv.Command.WriteHelp(stdout)
		} else {
			writeOverview(stdout)
		}
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "supervise: %s\n\n", ue.Msg)
		if ue.Command != nil {
			fmt.Fprintf(stderr, "usage: %s\nRun 'supervise help %s' for more.\n", ue.Command.Synopsis(true), ue.Command.Name)
		} else {
			fmt.Fprint(stderr, "Run 'supervise help' for the commands.\n")
		}
		return 2
	default:
		fmt.Fprintf(stderr, "supervise: %v\n", err)
		return code
	}
}

// parse finds the command and parses its arguments. No command means
// run, and so do arguments that begin with a flag (`supervise -c FILE`,
// `supervise -- CMD`). On ErrHelp, the returned Invocation names the
// command whose help was asked for (nil for the overview).
func parse(args []string) (*control.Invocation, error) {
	cmd := control.Commands.Implicit()
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "--help" || a == "-help":
			return nil, control.ErrHelp
		case a == "--version" || a == "-version":
			cmd, args = control.Commands.Lookup("version"), args[1:]
		case strings.HasPrefix(a, "-"):
		default:
			cmd = control.Commands.Lookup(a)
			if cmd == nil {
				return nil, unknownCommand(a)
			}
			args = args[1:]
		}
	}
	inv, err := cmd.ParseArgs(args)
	if errors.Is(err, control.ErrHelp) {
		return &control.Invocation{Command: cmd}, err
	}
	return inv, err
}

// unknownCommand is the error for `supervise NAME` when NAME is no command.
func unknownCommand(name string) error {
	err := control.Commands.UnknownCommandError(name)
	var ue *control.UsageError
	if errors.As(err, &ue) && control.Commands.Suggest(name) == "" {
		ue.Msg += fmt.Sprintf("\n(to supervise a command, put it after --: supervise -- %s ...)", name)
	}
	return err
}

func writeOverview(w io.Writer) {
	control.Commands.WriteUsage(w)
	io.WriteString(w, footer)
}

// cmdVersion prints the version.
func cmdVersion(_ *control.Invocation, stdout, _ io.Writer) (int, error) {
	fmt.Fprintf(stdout, "supervise %s\n", version)
	return 0, nil
}

// cmdHelp prints the overview, or one command's help.
func cmdHelp(inv *control.Invocation, stdout, _ io.Writer) (int, error) {
	name := inv.Value("command")
	if name == "" {
		writeOverview(stdout)
		return 0, nil
	}
	c := control.Commands.Lookup(name)
	if c == nil {
		return 2, unknownCommand(name)
	}
	if err := c.WriteHelp(stdout); err != nil {
		return 1, err
	}
	return 0, nil
}
