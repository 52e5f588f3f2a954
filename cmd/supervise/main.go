// Command supervise is a process supervisor: it runs the programs of a TOML
// file, restarts them through per-program circuit breakers, watches their
// heartbeat files, and tears everything down in priority order. It is built
// to be PID 1 in a container, a systemd unit, or a foreground process.
//
// See README.md for the command line; `supervise help` prints a summary.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/supervise/supervise/procs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	procs.CloseOnExecFrom(3) // no child inherits what this process inherited (SPEC §9)
	// One event loop owns all state, so a second P mostly buys runtime
	// handoffs between threads: with one, a steady heartbeat costs about a
	// quarter fewer context switches and a restart is slightly quicker,
	// and the supervisor never competes with its programs for more than
	// one core. $GOMAXPROCS still wins when set.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage:
  supervise [run] [-c FILE] [-s SOCKET] [--log-level L] [--log-format console|json] [-- CMD [ARG...]]
  supervise validate [-c FILE]
  supervise status [NAME...] [--json]
  supervise start|stop|restart|reset NAME...
  supervise signal NAME SIGNAL
  supervise reload
  supervise shutdown
  supervise check [-c FILE] [--heartbeat FILE] [--max-age DURATION]
  supervise version

Config file: -c FILE, else $SUPERVISE_CONFIG, else ./supervise.toml, else /etc/supervise/supervise.toml.
Control socket: -s PATH, else $SUPERVISE_SOCKET, else the config's socket.
`

// run is main without os.Exit, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		switch args[0] {
		case "run", "validate", "status", "start", "stop", "restart", "reset", "signal", "reload",
			"shutdown", "check", "version":
			cmd, args = args[0], args[1:]
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		case "--version":
			cmd, args = "version", args[1:]
		}
	}
	var code int
	var err error
	switch cmd {
	case "run":
		code, err = cmdRun(args, stderr)
	case "validate":
		code, err = cmdValidate(args, stdout, stderr)
	case "check":
		code, err = cmdCheck(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "supervise %s\n", version)
		return 0
	default:
		code, err = cmdControl(cmd, args, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "supervise: %v\n", err)
		if _, ok := err.(usageError); ok {
			fmt.Fprint(stderr, "\n"+usage)
			return 2
		}
	}
	return code
}
