package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func parseArgs(t *testing.T, name string, args ...string) (*Invocation, error) {
	t.Helper()
	c := Commands.Lookup(name)
	if c == nil {
		t.Fatalf("no command %q", name)
	}
	return c.ParseArgs(args)
}

func TestParseArgsInterleavesFlagsAndStopsAtDashDash(t *testing.T) {
	inv, err := parseArgs(t, "status", "web", "--json", "-c", "a.toml", "db", "--socket=/s.sock")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inv.Names, []string{"web", "db"}) || !inv.Bool("json") || inv.Value("config") != "a.toml" || inv.Value("socket") != "/s.sock" {
		t.Fatalf("status: %+v", inv)
	}
	if req := inv.Request(); req.Version != ProtocolVersion || req.Command != CmdStatus || !reflect.DeepEqual(req.Names, []string{"web", "db"}) || req.Params != nil {
		t.Fatalf("status request %+v: local flags must not be sent", req)
	}

	inv, err = parseArgs(t, "run", "--log-level=debug", "-c", "a.toml", "--", "sh", "-c", "x", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Value("log-level") != "debug" || inv.Value("config") != "a.toml" || !reflect.DeepEqual(inv.Rest, []string{"sh", "-c", "x", "--help"}) {
		t.Fatalf("run: %+v", inv)
	}

	inv, err = parseArgs(t, "signal", "web", "SIGRTMIN+3")
	if err != nil {
		t.Fatal(err)
	}
	if req := inv.Request(); !reflect.DeepEqual(req.Names, []string{"web"}) || req.Param(ParamSignal) != "SIGRTMIN+3" {
		t.Fatalf("signal request %+v", req)
	}
	if _, err := ParseRequest(mustJSON(t, inv.Request())); err != nil {
		t.Errorf("the server refuses what the command line builds: %v", err)
	}

	inv, err = parseArgs(t, "scale", "web", "12")
	if err != nil {
		t.Fatal(err)
	}
	if req := inv.Request(); req.Command != CmdScale || !reflect.DeepEqual(req.Names, []string{"web"}) || req.Param(ParamCount) != "12" {
		t.Fatalf("scale request %+v", req)
	}
	if _, err := ParseRequest(mustJSON(t, inv.Request())); err != nil {
		t.Errorf("the server refuses what the command line builds: %v", err)
	}
	inv, err = parseArgs(t, "stop", "web:1", "db")
	if err != nil || !reflect.DeepEqual(inv.Names, []string{"web:1", "db"}) {
		t.Fatalf("stop web:1 db: %+v, %v", inv, err)
	}

	inv, err = parseArgs(t, "status", "--json=false")
	if err != nil || inv.Bool("json") || inv.Names != nil {
		t.Fatalf("--json=false: %+v, %v", inv, err)
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tt := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"status", []string{"--nope"}, "unknown flag --nope"},
		{"status", []string{"-c"}, "flag -c needs a value (FILE)"},
		{"status", []string{"--json=maybe"}, `flag --json=maybe takes true or false, not "maybe"`},
		{"status", []string{"---json"}, "unknown flag ---json"},
		{"status", []string{"--"}, "status takes no command after --"},
		{"status", []string{"a b"}, `status: invalid program name "a b" (want letters, digits, '_', '.', '-', and :N for one instance)`},
		{"start", nil, "start needs at least one program name"},
		{"signal", []string{"web"}, "signal needs a signal (SIGNAL)"},
		{"signal", nil, "signal needs a program name"},
		{"signal", []string{"web", "HUP", "more"}, `unexpected argument "more"`},
		{"signal", []string{"web", "H UP"}, `signal: invalid signal "H UP"`},
		{"reload", []string{"extra"}, `reload takes no arguments, got "extra"`},
		{"run", []string{"stray"}, `run takes no arguments, got "stray" (a command to run goes after --)`},
		{"run", []string{"--"}, "no command after --"},
		{"scale", []string{"web"}, "scale needs a number (N)"},
		{"scale", []string{"web", "x"}, `scale: invalid number "x" (want 0 to 1000000000)`},
		{"scale", []string{"web", "-1"}, "unknown flag -1"},
		{"scale", []string{"web", "1", "2"}, `unexpected argument "2"`},
		{"stop", []string{"web:01"}, `stop: invalid program name "web:01" (want letters, digits, '_', '.', '-', and :N for one instance)`},
		{"version", []string{"-s", "x"}, "unknown flag -s"},
	} {
		_, err := parseArgs(t, tt.cmd, tt.args...)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Msg != tt.want || ue.Command != Commands.Lookup(tt.cmd) {
			t.Errorf("%s %q: %v, want the usage error %q", tt.cmd, tt.args, err, tt.want)
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"web", "-help"}, {"--help=1"}} {
		if _, err := parseArgs(t, "status", args...); !errors.Is(err, ErrHelp) {
			t.Errorf("status %q: %v, want ErrHelp", args, err)
		}
	}
}

func TestHelp(t *testing.T) {
	var b bytes.Buffer
	if err := Commands.Lookup("signal").WriteHelp(&b); err != nil {
		t.Fatal(err)
	}
	want := `usage: supervise signal NAME SIGNAL [-c FILE] [-s SOCKET]

Send a signal to a program's process.

The signal is a name (HUP, SIGHUP) or a number. An exit it causes is judged like any other.

Arguments:
  NAME                 the program (every instance of it), or NAME:i
  SIGNAL               HUP, SIGUSR1, 9, ...

Flags:
  -c, --config FILE    read the socket from this configuration file's [supervisor] socket (the rest of the file may be broken)
  -s, --socket SOCKET  the control socket (default: $SUPERVISE_SOCKET, else the configuration's [supervisor] socket, else supervise.sock in the runtime directory)
  -h, --help           print this help
`
	if b.String() != want {
		t.Errorf("help of signal:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	Commands.WriteUsage(&b)
	for _, line := range []string{
		"  supervise [run] [-c FILE] [-s SOCKET] [--log-level L] [--log-format console|json] [-- CMD [ARG...]]\n",
		"  supervise validate [-c FILE] [--strict] [--diff] [--json]\n",
		"  supervise status [NAME...] [--json] [--watch]\n",
		"  supervise events [NAME...] [--json]\n",
		"  supervise start NAME...\n",
		"  supervise signal NAME SIGNAL\n",
		"  supervise check [-c FILE] [--ready] [--json] [--heartbeat FILE] [--max-age DURATION]\n",
		"  supervise help [COMMAND]\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("overview lacks %q:\n%s", line, b.String())
		}
	}
	for _, c := range Commands.All() {
		if !strings.Contains(b.String(), c.Summary) {
			t.Errorf("overview lacks the summary of %s", c.Name)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	all := "; commands: run, validate, status, start, stop, restart, reset, signal, scale, reload, shutdown, logs, reopen-logs, events, check, import, version, help"
	for name, want := range map[string]string{
		"statuss": `unknown command "statuss" (did you mean "status"?)`,
		"stat":    `unknown command "stat" (did you mean "start"?)`,
		"shut":    `unknown command "shut" (did you mean "shutdown"?)`,
		"sleep":   `unknown command "sleep"`,
		"x":       `unknown command "x"`,
	} {
		if err := Commands.UnknownCommandError(name); err.Error() != want+all {
			t.Errorf("%s: %q, want %q", name, err, want+all)
		}
	}
}

func TestNewRegistryChecks(t *testing.T) {
	ok := func() *Command { return &Command{Name: "x", Summary: "s"} }
	for _, tt := range []struct {
		want string
		mod  func(c *Command)
	}{
		{"name must be", func(c *Command) { c.Name = "X" }},
		{"no summary", func(c *Command) { c.Summary = "" }},
		{"cannot stream", func(c *Command) { c.Local, c.Stream = true, true }},
		{"must be upper case", func(c *Command) { c.Args = []Arg{{Name: "name"}} }},
		{"a required argument after an optional one", func(c *Command) {
			c.Args = []Arg{{Name: "A", Optional: true}, {Name: "B"}}
		}},
		{"only a last program argument may repeat", func(c *Command) { c.Args = []Arg{{Name: "A", Repeat: true}} }},
		{"only a last program argument may repeat", func(c *Command) {
			c.Args = []Arg{{Name: "A", Kind: KindProgram, Repeat: true}, {Name: "B", Optional: true}}
		}},
		{"more than one program argument", func(c *Command) {
			c.Args = []Arg{{Name: "A", Kind: KindProgram}, {Name: "B", Kind: KindProgram}}
		}},
		{"only flags are boolean", func(c *Command) { c.Args = []Arg{{Name: "A", Kind: KindBool}} }},
		{"reserved", func(c *Command) { c.Flags = []Flag{{Name: "help"}} }},
		{"reserved", func(c *Command) { c.Flags = []Flag{{Name: "x", Short: "h", Kind: KindBool}} }},
		{"named like an argument", func(c *Command) {
			c.Args = []Arg{{Name: "N"}}
			c.Flags = []Flag{{Name: "n", Short: "x", Value: "N"}}
		}},
		{"boolean exactly when", func(c *Command) { c.Flags = []Flag{{Name: "json"}} }},
		{"no remote flags", func(c *Command) {
			c.Local = true
			c.Flags = []Flag{{Name: "json", Kind: KindBool, Remote: true}}
		}},
	} {
		c := ok()
		tt.mod(c)
		if _, err := NewRegistry(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error containing %q", c, err, tt.want)
		}
	}
	if _, err := NewRegistry(ok(), ok()); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("duplicate: %v", err)
	}
	a, b := ok(), ok()
	b.Name = "y"
	a.Implicit, b.Implicit = true, true
	if _, err := NewRegistry(a, b); err == nil || !strings.Contains(err.Error(), "both implicit") {
		t.Errorf("two implicit: %v", err)
	}
}

// Every command of the registry parses its own synopsis's simplest form
// and answers --help.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, c := range Commands.All() {
		if _, err := c.ParseArgs([]string{"--help"}); !errors.Is(err, ErrHelp) {
			t.Errorf("%s --help: %v", c.Name, err)
		}
		var b bytes.Buffer
		if err := c.WriteHelp(&b); err != nil || !strings.HasPrefix(b.String(), "usage: supervise ") || !strings.Contains(b.String(), c.Summary) {
			t.Errorf("%s: help %q, %v", c.Name, b.String(), err)
		}
	}
}

func TestPrintResponse(t *testing.T) {
	var b bytes.Buffer
	inv := &Invocation{Command: Commands.Lookup(CmdStart), Values: map[string]string{}}
	PrintResponse(&b, inv, Response{OK: true, Message: "shutting down"})
	PrintResponse(&b, inv, Response{OK: true, Programs: []ProgramStatus{{Name: "web", State: "running", PID: 7, Breaker: BreakerStatus{State: "closed"}}}})
	PrintResponse(&b, inv, Response{Results: []Result{{Name: "x", Error: "no"}}, Programs: []ProgramStatus{{Name: "hidden"}}})
	if got := b.String(); !strings.HasPrefix(got, "shutting down\nNAME") || !strings.Contains(got, "web ") || strings.Contains(got, "hidden") {
		t.Errorf("printed %q", got)
	}
	b.Reset()
	status := Commands.Lookup(CmdStatus)
	status.Print(&b, &Invocation{Command: status, Values: map[string]string{"json": "true"}}, Response{OK: true})
	if b.String() != "{\n  \"programs\": []\n}\n" {
		t.Errorf("status --json of nothing: %q", b.String())
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
