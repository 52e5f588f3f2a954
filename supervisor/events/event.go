// Package events is the supervisor's stream of happenings: the Event
// values that `supervise events` prints and `[hooks.NAME]` commands
// receive, their kinds, their one-line text form, and the per-reader
// buffers through which an event loop hands them out without ever
// waiting for a reader.
//
// The package promises:
//
//   - an Event is immutable once published: readers share one value;
//   - a Bus numbers the events of one supervisor run 1, 2, 3, ... with no
//     gap, whether or not anyone reads them, and counts them per Kind;
//   - Publish never blocks and never allocates per reader: a reader whose
//     buffer is full loses the event, and the next batch it reads says how
//     many it lost;
//   - with no reader, a Bus costs one counter increment per event.
package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is what an event reports. Its text form ("state", "breaker_open",
// ...) is the name used in JSON, in `[hooks.NAME] events` and in the
// metrics.
type Kind uint8

// The kinds of events.
const (
	// KindNone is the zero Kind; no event has it.
	KindNone Kind = iota
	// State is a change of a program's state (From, To, Reason; PID,
	// ExitCode or Signal when the change follows the end of a run).
	State
	// Ready is a program's run becoming ready (Source says which signal).
	Ready
	// NotReady is a ready run ceasing to be (a readiness probe failing).
	NotReady
	// Failed is a failure counted against a program (Reason, Failures:
	// the consecutive failures so far).
	Failed
	// BreakerOpen, BreakerHalfOpen and BreakerClosed are transitions of a
	// program's restart breaker (From, To, Failures).
	BreakerOpen
	BreakerHalfOpen
	BreakerClosed
	// Watchdog is a heartbeat watchdog firing (Action, Detail).
	Watchdog
	// Probe is a health probe failing (Source names it; Action, Detail),
	// or a probe's change of state (From, To: "passing", "failing").
	Probe
	// Reload is a re-read configuration applied (Diff), or refused (Error).
	Reload
	// Teardown is the supervisor's teardown beginning (Phase "begin",
	// Reason, ExitCode) and ending (Phase "end", ExitCode).
	Teardown
	// TeardownStep is a step of the teardown starting (Phase "start") or
	// ending (Phase "end", Error when it failed): a program's stop (Program
	// set) or a [teardown.NAME] command.
	TeardownStep
	// CriticalExit is a critical program failing for good: the supervisor
	// tears down and exits with ExitCode.
	CriticalExit
	// Lost is no event of the supervisor's but a reader's marker: Lost
	// events were dropped before the next one because the reader did not
	// keep up.
	Lost

	numKinds
)

var kindNames = [numKinds]string{"", "state", "ready", "not_ready", "failed", "breaker_open", "breaker_half_open",
	"breaker_closed", "watchdog", "probe", "reload", "teardown", "teardown_step", "critical_exit", "lost"}

// Kinds lists every kind the supervisor publishes, in a fixed order (Lost,
// a reader's marker, is not among them).
var Kinds = []Kind{State, Ready, NotReady, Failed, BreakerOpen, BreakerHalfOpen, BreakerClosed,
	Watchdog, Probe, Reload, Teardown, TeardownStep, CriticalExit}

// KindNames returns the names of Kinds, in order.
func KindNames() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = k.String()
	}
	return out
}

// String returns the kind's name, such as "breaker_open".
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind returns the kind named s; Lost and unknown names are refused.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return KindNone, fmt.Errorf("unknown event kind %q", s)
}

// MarshalText writes the kind's name.
func (k Kind) MarshalText() ([]byte, error) {
	if k == KindNone || k >= numKinds {
		return nil, fmt.Errorf("events: no name for kind %d", int(k))
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText reads a kind's name, Lost included.
func (k *Kind) UnmarshalText(b []byte) error {
	if string(b) == kindNames[Lost] {
		*k = Lost
		return nil
	}
	got, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = got
	return nil
}

// Event is one happening of the supervisor, as `supervise events --json`
// prints it and a hook receives it. Seq, At, Kind and Program are always
// there (Program is "" for the supervisor's own events); the other fields
// are set by the kinds that have them.
type Event struct {
	// Seq numbers the events of one supervisor run from 1, with no gap.
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	Kind    Kind      `json:"kind"`
	Program string    `json:"program"`

	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
	PID    int    `json:"pid,omitempty"`
	// ExitCode is the exit code of the run that ended (Signal is then
	// ""), or the supervisor's exit code (Teardown, CriticalExit).
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	// Failures is the count of consecutive failures.
	Failures int `json:"failures,omitempty"`
	// Source is the readiness source (Ready, NotReady) or the check that
	// fired (Watchdog, Probe).
	Source string `json:"source,omitempty"`
	// Action is what is done about a check that fired: "restart", "stop",
	// "log", or "none" when the run was already stopping.
	Action string `json:"action,omitempty"`
	Detail string `json:"detail,omitempty"`
	Diff   Diff   `json:"diff,omitempty"`
	Step   string `json:"step,omitempty"`
	Phase  string `json:"phase,omitempty"`
	Error  string `json:"error,omitempty"`

	// Lost is the number of events a reader lost (Kind Lost).
	Lost uint64 `json:"lost,omitempty"`
	// Coalesced, in a hook's copy, is the number of earlier events that
	// arrived while the hook's previous run went on and that this run
	// stands for: they were not delivered on their own.
	Coalesced uint64 `json:"coalesced,omitempty"`

	// enc, set by Publish, holds the JSON encoding, made once for all
	// the readers of the event.
	enc *encoding
}

type encoding struct {
	once sync.Once
	b    []byte
	err  error
}

// fields is Event without its methods, for encoding.
type fields Event

// MarshalJSON encodes the event; a published event is encoded once, for
// every reader.
func (e *Event) MarshalJSON() ([]byte, error) {
	if e.enc == nil {
		return json.Marshal((*fields)(e))
	}
	e.enc.once.Do(func() { e.enc.b, e.enc.err = json.Marshal((*fields)(e)) })
	return e.enc.b, e.enc.err
}

// Clone returns a copy of the event that may be changed, as a hook's copy
// with Coalesced set.
func (e *Event) Clone() *Event {
	c := *e
	c.enc = nil
	return &c
}

// Diff is what a reload changed, as JSON: the encoding of the
// supervisor's conf.ConfigDiff, which `supervise reload --dry-run --json`
// prints too (programs added, removed, changed with their keys and
// whether they restart, and unchanged; the same for the teardown steps
// and the hooks; the changed [supervisor] keys). It is kept encoded, so
// that this package need not know the configuration's types; String
// reads the names it needs.
type Diff []byte

// MarshalJSON returns d as it is, or null when it is empty.
func (d Diff) MarshalJSON() ([]byte, error) {
	if len(d) == 0 {
		return []byte("null"), nil
	}
	return d, nil
}

// UnmarshalJSON keeps a copy of data.
func (d *Diff) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*d = nil
		return nil
	}
	*d = append((*d)[:0], data...)
	return nil
}

// diffNames is the part of a Diff's JSON that String reads.
type diffNames struct {
	Added, Removed  []named
	Changed         []namedKeys
	Teardown, Hooks struct {
		Added, Removed []named
		Changed        []namedKeys
	}
	Supervisor []string
}

type named struct{ Name string }

type namedKeys struct {
	Name string
	Keys []string
}

// String describes the diff in one line: "added api; removed old;
// changed web (command); hooks added page; supervisor changed
// log_level"; "nothing changed" when it lists no change.
func (d Diff) String() string {
	var n diffNames
	if len(d) == 0 || json.Unmarshal(d, &n) != nil {
		return "nothing changed"
	}
	var parts []string
	list := func(what string, names []string) {
		if len(names) > 0 {
			parts = append(parts, what+" "+strings.Join(names, ", "))
		}
	}
	names := func(es []named) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Name
		}
		return out
	}
	withKeys := func(cs []namedKeys) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.Name
			if len(c.Keys) > 0 {
				out[i] += " (" + strings.Join(c.Keys, ", ") + ")"
			}
		}
		return out
	}
	list("added", names(n.Added))
	list("removed", names(n.Removed))
	list("changed", withKeys(n.Changed))
	list("teardown added", names(n.Teardown.Added))
	list("teardown removed", names(n.Teardown.Removed))
	list("teardown changed", withKeys(n.Teardown.Changed))
	list("hooks added", names(n.Hooks.Added))
	list("hooks removed", names(n.Hooks.Removed))
	list("hooks changed", withKeys(n.Hooks.Changed))
	list("supervisor changed", n.Supervisor)
	if len(parts) == 0 {
		return "nothing changed"
	}
	return strings.Join(parts, "; ")
}

// JSON returns the event as one line of JSON, without a newline.
func (e *Event) JSON() []byte {
	b, err := e.MarshalJSON()
	if err != nil {
		// Every field has a JSON form; a Kind without a name is the only
		// way here, and it is a bug of the publisher.
		return []byte(`{"error":` + strconv.Quote(err.Error()) + `}`)
	}
	return b
}

// TimeLayout is the time format of the text form.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Text returns the event as one line for people, without a newline:
//
//	2025-01-02T10:00:01.123Z #42 web state: running -> backoff: exit code 1 (pid 4123, exit 1)
//	2025-01-02T10:00:01.124Z #43 web breaker_open: closed -> open after 5 failures
//	2025-01-02T10:00:09.000Z #44 supervisor reload: added api; changed web (command)
func (e *Event) Text() string {
	var b strings.Builder
	b.WriteString(e.At.Format(TimeLayout))
	switch {
	case e.Kind == Lost:
		// A reader's marker: no number, no program.
		b.WriteByte(' ')
	case e.Program != "":
		fmt.Fprintf(&b, " #%d %s ", e.Seq, e.Program)
	default:
		fmt.Fprintf(&b, " #%d supervisor ", e.Seq)
	}
	b.WriteString(e.Kind.String())
	if d := e.details(); d != "" {
		b.WriteString(": ")
		b.WriteString(d)
	}
	if e.Coalesced > 0 {
		fmt.Fprintf(&b, " [%d earlier coalesced]", e.Coalesced)
	}
	return sanitize(b.String())
}

// details is the kind-specific part of Text.
func (e *Event) details() string {
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	switch e.Kind {
	case State:
		s := e.From + " -> " + e.To
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		var run []string
		if e.PID != 0 {
			run = append(run, "pid "+strconv.Itoa(e.PID))
		}
		if x := e.exit(); x != "" {
			run = append(run, x)
		}
		if len(run) > 0 {
			s += " (" + strings.Join(run, ", ") + ")"
		}
		add(s)
	case Ready, NotReady:
		add(e.Source)
		add(e.Detail)
	case Failed:
		add(e.Reason)
		if e.Failures > 0 {
			add(fmt.Sprintf("%d consecutive", e.Failures))
		}
	case BreakerOpen, BreakerHalfOpen, BreakerClosed:
		s := e.From + " -> " + e.To
		if e.Kind == BreakerOpen {
			s += fmt.Sprintf(" after %d failures", e.Failures)
		}
		add(s)
	case Watchdog, Probe:
		switch {
		case e.Kind == Probe && e.To != "":
			add(e.Source + " " + e.From + " -> " + e.To)
		case e.Kind == Probe:
			add(e.Source + " failed")
		}
		add(e.Detail)
		if e.Action != "" {
			add("action " + e.Action)
		}
		add(e.Reason)
	case Reload:
		if e.Error != "" {
			add("refused: " + e.Error)
		} else {
			add(e.Diff.String())
		}
		if e.Reason != "" {
			add("(" + e.Reason + ")")
		}
	case Teardown:
		add(e.Phase)
		add(e.Reason)
		add(e.exit())
	case TeardownStep:
		add(e.Step)
		add(e.Phase)
		if e.Error != "" {
			add("failed: " + e.Error)
		}
	case CriticalExit:
		add(e.Reason)
		add(e.exit())
	case Lost:
		add(fmt.Sprintf("%d events missing here: the reader did not keep up", e.Lost))
	}
	return strings.Join(parts, " ")
}

// exit is "exit 1" or "signal SIGKILL", or "".
func (e *Event) exit() string {
	switch {
	case e.Signal != "":
		return "signal " + e.Signal
	case e.ExitCode != nil:
		return "exit " + strconv.Itoa(*e.ExitCode)
	}
	return ""
}

// sanitize keeps the line one line: control characters (a newline in a
// reason or a probe's output) are written escaped.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
