package control

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/supervise/supervise/conf/typo"
)

// Kind is what an argument or a flag's value must look like. The command
// line checks it before sending and the server checks it again.
type Kind int

// Kinds of arguments and flag values.
const (
	// KindText is printable text of at most MaxTextSize bytes.
	KindText Kind = iota
	// KindProgram is a program name, or one instance's NAME:i (see
	// ValidName). The program argument of a command goes to
	// Request.Names.
	KindProgram
	// KindSignal is a signal name or number ("HUP", "SIGHUP", "9",
	// "SIGRTMIN+3"); whether it exists is for the supervisor to say.
	KindSignal
	// KindCount is a decimal integer from 0 to MaxCount.
	KindCount
	// KindBool is the value of a flag without a value: "true" or "false".
	KindBool
)

// Limits of argument values.
const (
	MaxTextSize = 4096
	MaxCount    = 1_000_000_000
)

// noun names a value of kind k in messages.
func (k Kind) noun() string {
	switch k {
	case KindProgram:
		return "program name"
	case KindSignal:
		return "signal"
	case KindCount:
		return "number"
	case KindBool:
		return "true or false"
	default:
		return "text"
	}
}

// check reports whether s is a valid value of kind k.
func (k Kind) check(s string) error {
	ok := false
	switch k {
	case KindProgram:
		if ok = ValidName(s); !ok {
			return fmt.Errorf("invalid program name %q (want letters, digits, '_', '.', '-', and :N for one instance)", s)
		}
	case KindSignal:
		if ok = validSignal(s); !ok {
			return fmt.Errorf("invalid signal %q", s)
		}
	case KindCount:
		n, err := strconv.Atoi(s)
		if ok = err == nil && n >= 0 && n <= MaxCount && s == strconv.Itoa(n); !ok {
			return fmt.Errorf("invalid number %q (want 0 to %d)", s, MaxCount)
		}
	case KindBool:
		if ok = s == "true" || s == "false"; !ok {
			return fmt.Errorf("invalid boolean %q (want true or false)", s)
		}
	default:
		if ok = validText(s); !ok {
			return fmt.Errorf("invalid text %.40q (want at most %d bytes of printable UTF-8)", s, MaxTextSize)
		}
	}
	return nil
}

// validText accepts printable UTF-8 of at most MaxTextSize bytes.
func validText(s string) bool {
	if len(s) > MaxTextSize || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Arg is a positional argument of a command.
type Arg struct {
	// Name is its placeholder in usage, upper case ("NAME", "SIGNAL").
	// Lower-cased, it is the argument's key in Request.Params, except
	// for the program argument, whose values go to Request.Names.
	Name string
	Kind Kind
	// Optional arguments may be left out; only trailing ones may be.
	Optional bool
	// Repeat takes any number of values (at least one unless
	// Optional). Only the last argument, of kind KindProgram, repeats.
	Repeat bool
	// Help describes it in the command's help.
	Help string
}

func (a Arg) param() string { return strings.ToLower(a.Name) }

// placeholder is how the usage line shows a.
func (a Arg) placeholder() string {
	s := a.Name
	if a.Repeat {
		s += "..."
	}
	if a.Optional {
		s = "[" + s + "]"
	}
	return s
}

// describe says what a missing a is.
func (a Arg) describe() string {
	switch {
	case a.Kind == KindProgram && a.Repeat:
		return "at least one program name"
	case a.Kind == KindProgram:
		return "a program name"
	default:
		return "a " + a.Kind.noun() + " (" + a.Name + ")"
	}
}

// Flag is a flag of a command. It is written --Name or -Short (or with
// either number of dashes), its value after a space or '='.
type Flag struct {
	// Name is its long name ("config") and its key in Request.Params
	// and Invocation.Values.
	Name string
	// Short is its one-letter name ("c"), or "".
	Short string
	// Value is the placeholder of its value ("FILE"); "" makes a
	// boolean flag, given without a value.
	Value string
	// Kind is what its value must look like; boolean flags are KindBool.
	Kind Kind
	// Help describes it in the command's help.
	Help string
	// Remote flags are sent to the supervisor in Request.Params; the
	// others are for the command line only.
	Remote bool
	// Common flags are left out of the summary of `supervise help`.
	Common bool
}

func (f Flag) isBool() bool { return f.Value == "" }

// spelling is how usage shows f: "-c FILE" or "--json".
func (f Flag) spelling() string {
	s := "--" + f.Name
	if f.Short != "" {
		s = "-" + f.Short
	}
	if !f.isBool() {
		s += " " + f.Value
	}
	return s
}

// Command is one entry of the registry: everything the command line, the
// help and the server need to know about a command.
type Command struct {
	// Name is what the user types: lower-case letters and '-'.
	Name string
	// Summary is one line for `supervise help`.
	Summary string
	// Help is more text for `supervise help NAME`, or "".
	Help  string
	Args  []Arg
	Flags []Flag
	// Rest makes the command take a command line after "--".
	Rest bool
	// Implicit marks the command run when none is named.
	Implicit bool
	// Local commands are run by the command line itself and are never
	// sent; the others go to the supervisor, which needs a Handler for
	// each.
	Local bool
	// Stream marks a remote command whose answer is a stream of
	// replies that lasts until the client goes away or the server
	// closes. Other remote commands answer with at most one reply.
	Stream bool
	// Print writes one reply for people; nil means PrintResponse. The
	// command line prints each failed Result on its own beforehand.
	Print func(w io.Writer, inv *Invocation, r Response) error
}

// programArg returns the index of c's program argument, or -1.
func (c *Command) programArg() int {
	return slices.IndexFunc(c.Args, func(a Arg) bool { return a.Kind == KindProgram })
}

// flag finds a flag by its long or short name.
func (c *Command) flag(name string) (Flag, bool) {
	for _, f := range c.Flags {
		if f.Name == name || (f.Short != "" && f.Short == name) {
			return f, true
		}
	}
	return Flag{}, false
}

// Synopsis is the usage line of c, such as
// "supervise status [NAME...] [--json]"; all includes the Common flags.
func (c *Command) Synopsis(all bool) string {
	parts := []string{"supervise"}
	if c.Implicit {
		parts = append(parts, "["+c.Name+"]")
	} else {
		parts = append(parts, c.Name)
	}
	for _, a := range c.Args {
		parts = append(parts, a.placeholder())
	}
	for _, f := range c.Flags {
		if all || !f.Common {
			parts = append(parts, "["+f.spelling()+"]")
		}
	}
	if c.Rest {
		parts = append(parts, "[-- CMD [ARG...]]")
	}
	return strings.Join(parts, " ")
}

// WriteHelp writes c's usage, summary, help and flags: the answer of
// `supervise help NAME` and `supervise NAME --help`.
func (c *Command) WriteHelp(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\n%s\n", c.Synopsis(true), c.Summary)
	if c.Help != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(c.Help, "\n"))
	}
	type row struct{ left, right string }
	var args, flags []row
	for _, a := range c.Args {
		if a.Help != "" {
			args = append(args, row{a.placeholder(), a.Help})
		}
	}
	for _, f := range c.Flags {
		left := "--" + f.Name
		if f.Short != "" {
			left = "-" + f.Short + ", " + left
		}
		if !f.isBool() {
			left += " " + f.Value
		}
		flags = append(flags, row{left, f.Help})
	}
	flags = append(flags, row{"-h, --help", "print this help"})
	width := 0
	for _, r := range append(slices.Clone(args), flags...) {
		width = max(width, len(r.left))
	}
	for _, sec := range []struct {
		title string
		rows  []row
	}{{"Arguments", args}, {"Flags", flags}} {
		if len(sec.rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", sec.title)
		for _, r := range sec.rows {
			fmt.Fprintf(&b, "  %-*s  %s\n", width, r.left, r.right)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Registry is a validated list of commands. Its methods are safe for
// concurrent use; it is not changed after NewRegistry.
type Registry struct {
	list   []*Command
	byName map[string]*Command
}

// NewRegistry checks cmds and returns them as a registry, in the order
// given (the order of help and error messages). Names must be unique and
// spelled with lower-case letters and '-'; only trailing arguments may be
// optional; a command has at most one program argument, and only it, as
// the last argument, may repeat; flag names are unique, and -h and --help
// are reserved; local commands neither stream nor have remote flags; one
// command at most is Implicit.
func NewRegistry(cmds ...*Command) (*Registry, error) {
	r := &Registry{byName: map[string]*Command{}}
	implicit := ""
	for _, c := range cmds {
		if err := checkCommand(c); err != nil {
			return nil, fmt.Errorf("control: command %q: %w", c.Name, err)
		}
		if r.byName[c.Name] != nil {
			return nil, fmt.Errorf("control: command %q defined twice", c.Name)
		}
		if c.Implicit {
			if implicit != "" {
				return nil, fmt.Errorf("control: commands %q and %q are both implicit", implicit, c.Name)
			}
			implicit = c.Name
		}
		r.byName[c.Name] = c
		r.list = append(r.list, c)
	}
	return r, nil
}

func checkCommand(c *Command) error {
	if c.Name == "" || strings.Trim(c.Name, "abcdefghijklmnopqrstuvwxyz-") != "" || c.Name[0] == '-' {
		return errors.New("name must be lower-case letters and '-'")
	}
	if c.Summary == "" {
		return errors.New("no summary")
	}
	if c.Local && c.Stream {
		return errors.New("a local command cannot stream")
	}
	optional, programs := false, 0
	params := map[string]bool{}
	for i, a := range c.Args {
		if a.Name == "" || a.Name != strings.ToUpper(a.Name) {
			return fmt.Errorf("argument %d: name %q must be upper case", i, a.Name)
		}
		if optional && !a.Optional {
			return fmt.Errorf("argument %s: a required argument after an optional one", a.Name)
		}
		optional = optional || a.Optional
		if a.Kind == KindProgram {
			programs++
		} else if params[a.param()] {
			return fmt.Errorf("argument %s defined twice", a.Name)
		} else {
			params[a.param()] = true
		}
		if a.Kind == KindBool {
			return fmt.Errorf("argument %s: only flags are boolean", a.Name)
		}
		if a.Repeat && (a.Kind != KindProgram || i != len(c.Args)-1) {
			return fmt.Errorf("argument %s: only a last program argument may repeat", a.Name)
		}
	}
	if programs > 1 {
		return errors.New("more than one program argument")
	}
	short := map[string]bool{}
	for _, f := range c.Flags {
		if f.Name == "" || f.Name == "help" || f.Name == "h" || (len(f.Name) == 1 && f.Short == "") {
			return fmt.Errorf("flag %q: bad or reserved name", f.Name)
		}
		if params[f.Name] {
			return fmt.Errorf("flag %q defined twice or named like an argument", f.Name)
		}
		params[f.Name] = true
		if f.Short != "" {
			if len(f.Short) != 1 || f.Short == "h" || short[f.Short] || params[f.Short] {
				return fmt.Errorf("flag %q: bad, reserved or repeated short name %q", f.Name, f.Short)
			}
			short[f.Short] = true
		}
		if f.isBool() != (f.Kind == KindBool) {
			return fmt.Errorf("flag %q: a flag is boolean exactly when it has no value placeholder", f.Name)
		}
		if f.Remote && c.Local {
			return fmt.Errorf("flag %q: a local command has no remote flags", f.Name)
		}
	}
	return nil
}

// MustRegistry is NewRegistry for registries fixed in the source: it
// panics on an invalid command.
func MustRegistry(cmds ...*Command) *Registry {
	r, err := NewRegistry(cmds...)
	if err != nil {
		panic(err)
	}
	return r
}

// Lookup returns the command called name, or nil.
func (r *Registry) Lookup(name string) *Command { return r.byName[name] }

// All returns the commands in order.
func (r *Registry) All() []*Command { return slices.Clone(r.list) }

// Implicit returns the command run when none is named, or nil.
func (r *Registry) Implicit() *Command {
	for _, c := range r.list {
		if c.Implicit {
			return c
		}
	}
	return nil
}

// Names returns the names of the commands in order; remote restricts
// them to the commands sent to the supervisor.
func (r *Registry) Names(remote bool) []string {
	var out []string
	for _, c := range r.list {
		if !remote || !c.Local {
			out = append(out, c.Name)
		}
	}
	return out
}

// Suggest returns the command name closest to a mistyped name, or "" when
// none is close (at most two edits, or a prefix of at least three letters).
func (r *Registry) Suggest(name string) string {
	best, bestD := "", 3
	for _, c := range r.list {
		if d := typo.Distance(name, c.Name); d < bestD {
			best, bestD = c.Name, d
		}
	}
	if best == "" && len(name) >= 3 {
		for _, c := range r.list {
			if strings.HasPrefix(c.Name, name) {
				return c.Name
			}
		}
	}
	return best
}

// UnknownCommandError is the error for a command name that r does not
// know: "unknown command "statuss" (did you mean "status"?); commands: ...".
func (r *Registry) UnknownCommandError(name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	if s := r.Suggest(name); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return &UsageError{Msg: msg + "; commands: " + strings.Join(r.Names(false), ", ")}
}

// WriteUsage writes the overview of `supervise help`: each command's
// synopsis and summary.
func (r *Registry) WriteUsage(w io.Writer) error {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range r.list {
		fmt.Fprintf(&b, "  %s\n      %s\n", c.Synopsis(false), c.Summary)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// UsageError is a mistake on the command line; Command is the command it
// concerns, nil when no command was recognised.
type UsageError struct {
	Command *Command
	Msg     string
}

func (e *UsageError) Error() string { return e.Msg }

// ErrHelp is returned by ParseArgs when the arguments ask for help (-h or
// --help before any "--").
var ErrHelp = errors.New("help requested")

// Invocation is a parsed command line of one command.
type Invocation struct {
	Command *Command
	// Names holds the values of the command's program argument.
	Names []string
	// Values holds the other arguments by lower-case name and the flags
	// given by long name; boolean flags are "true" or "false".
	Values map[string]string
	// Rest is the command line after "--" (commands with Rest only).
	Rest []string
}

// Value returns the argument or flag called name, "" when not given.
func (inv *Invocation) Value(name string) string { return inv.Values[name] }

// Bool reports whether the boolean flag called name was given true.
func (inv *Invocation) Bool(name string) bool { return inv.Values[name] == "true" }

// Request builds the request of a remote command: its program names, its
// other arguments and its remote flags.
func (inv *Invocation) Request() Request {
	req := Request{Version: ProtocolVersion, Command: inv.Command.Name, Names: inv.Names}
	add := func(k, v string) {
		if req.Params == nil {
			req.Params = map[string]string{}
		}
		req.Params[k] = v
	}
	for _, a := range inv.Command.Args {
		if v, ok := inv.Values[a.param()]; ok && a.Kind != KindProgram {
			add(a.param(), v)
		}
	}
	for _, f := range inv.Command.Flags {
		if v, ok := inv.Values[f.Name]; ok && f.Remote {
			add(f.Name, v)
		}
	}
	return req
}

// ParseArgs parses the arguments that follow c's name: flags anywhere
// before "--" (-x, --x, -x VALUE, --x=VALUE; boolean flags alone or with
// =true/=false), positional arguments checked against c.Args, and for
// commands with Rest the command line after "--". It returns ErrHelp for
// -h or --help and a *UsageError for anything else wrong.
func (c *Command) ParseArgs(args []string) (*Invocation, error) {
	inv := &Invocation{Command: c, Values: map[string]string{}}
	usage := func(format string, a ...any) error {
		return &UsageError{Command: c, Msg: fmt.Sprintf(format, a...)}
	}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if !c.Rest {
				return nil, usage("%s takes no command after --", c.Name)
			}
			inv.Rest = args[i+1:]
			if len(inv.Rest) == 0 {
				return nil, usage("no command after --")
			}
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = k, v, true
		}
		if name == "h" || name == "help" {
			return nil, ErrHelp
		}
		f, ok := c.flag(name)
		if !ok || name == "" || strings.HasPrefix(name, "-") {
			return nil, usage("unknown flag %s", a)
		}
		if f.isBool() {
			switch {
			case !hasVal, val == "true", val == "1":
				val = "true"
			case val == "false", val == "0":
				val = "false"
			default:
				return nil, usage("flag %s takes true or false, not %q", a, val)
			}
		} else if !hasVal {
			if i+1 >= len(args) {
				return nil, usage("flag %s needs a value (%s)", a, f.Value)
			}
			i++
			val = args[i]
		}
		if f.Remote || f.Kind != KindText {
			if err := f.Kind.check(val); err != nil {
				return nil, usage("flag %s: %v", a, err)
			}
		}
		inv.Values[f.Name] = val
	}
	for i, spec := range c.Args {
		if len(pos) == 0 {
			if !spec.Optional {
				return nil, usage("%s needs %s", c.Name, spec.describe())
			}
			break
		}
		take := pos[:1]
		if spec.Repeat {
			take = pos
		}
		pos = pos[len(take):]
		for _, v := range take {
			if err := spec.Kind.check(v); err != nil {
				return nil, usage("%s: %v", c.Name, err)
			}
		}
		if spec.Kind == KindProgram {
			inv.Names = take
		} else {
			inv.Values[c.Args[i].param()] = take[0]
		}
	}
	if len(pos) > 0 {
		hint := ""
		if c.Rest {
			hint = " (a command to run goes after --)"
		}
		if len(c.Args) == 0 {
			return nil, usage("%s takes no arguments, got %q%s", c.Name, pos[0], hint)
		}
		return nil, usage("unexpected argument %q%s", pos[0], hint)
	}
	return inv, nil
}
