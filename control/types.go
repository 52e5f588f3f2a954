// Package control is the protocol between the supervise command line and a
// running supervisor, and the one registry of supervise's commands.
//
// # Commands
//
// Commands (a *Registry) lists every command of the command line once:
// its name, positional arguments, flags, summary and help, whether the CLI
// runs it itself (Local) or sends it to the supervisor, and whether its
// answer is a stream. The CLI parses a command line with
// (*Command).ParseArgs and prints help from the same entries; the server
// validates requests against them (ParseRequest) and refuses to serve
// without a handler for each remote command (Serve).
//
// # Wire protocol
//
// One connection carries one request. The client sends a Request as one
// line of JSON (at most MaxRequestSize bytes, within RequestTimeout). The
// server answers with a stream of Messages, one line of JSON each, every
// one carrying the protocol version: zero or more "reply" messages, then
// exactly one final message, "done" or "error". A unary command (status,
// start, ...) answers with one reply and "done". A streaming command keeps
// sending replies until the client closes its end of the connection or
// the server closes; such a stream may last indefinitely.
//
// The server (Listen, Serve) creates the socket mode 0600, checks each
// peer's uid with SO_PEERCRED (root and the server's own uid only),
// validates every request before a Handler sees it, survives malformed
// input by answering with an error message, and reports every refusal to
// its error handler as a *PeerError naming the peer. The client (Do, Call)
// checks the server's uid the same way before it sends anything.
//
// RuntimeDir, DefaultSocketPath, SocketPath and ScanSocket find the
// socket; WriteTable prints the status table of `supervise status`.
package control

import (
	"encoding/json"
	"time"

	"github.com/supervise/supervise/supervisor/events"
)

// ProtocolVersion is the version of the wire protocol this package
// speaks. Every Request and every Message carries it; a server refuses a
// request of another version and a client refuses a message of another
// version, each saying so.
const ProtocolVersion = 1

// Commands understood by the supervisor.
const (
	CmdStatus   = "status"
	CmdStart    = "start"
	CmdStop     = "stop"
	CmdRestart  = "restart"
	CmdReset    = "reset"
	CmdSignal   = "signal"
	CmdReload   = "reload"
	CmdShutdown = "shutdown"
	CmdScale    = "scale"
	CmdEvents   = "events"
)

// ParamSignal is the parameter of CmdSignal that holds the signal (a name
// such as "HUP" or "SIGHUP", or a number).
const ParamSignal = "signal"

// ParamCount is the parameter of CmdScale that holds the new number of
// instances.
const ParamCount = "n"

// ParamDryRun is the parameter of reload that asks for the difference a
// reload would apply, applying nothing ("true").
const ParamDryRun = "dry-run"

// Request is what a client sends: the protocol version, a command, the
// programs it names, and its other arguments and flags by name (Params).
// The registry entry of Command says which Names and Params it takes.
type Request struct {
	Version int               `json:"v"`
	Command string            `json:"command"`
	Names   []string          `json:"names,omitempty"`
	Params  map[string]string `json:"params,omitempty"`
}

// Param returns the parameter name of r, "" when it is absent.
func (r Request) Param(name string) string { return r.Params[name] }

// Message types.
const (
	// MsgReply carries one Response; a stream has any number of them.
	MsgReply = "reply"
	// MsgDone ends a stream that succeeded.
	MsgDone = "done"
	// MsgError ends a stream with an error, such as a refused request.
	MsgError = "error"
)

// Message is one line of the server's answer: a reply, or the final done
// or error. Version is ProtocolVersion.
type Message struct {
	Version int       `json:"v"`
	Type    string    `json:"type"`
	Reply   *Response `json:"reply,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// Response is one reply of the supervisor. OK is false when any
// per-program Result failed. Error, when set, refuses the request as a
// whole: Unary turns such a Response into the stream's error message, and
// a client treats a reply that carries one like an error message.
type Response struct {
	OK       bool            `json:"ok"`
	Error    string          `json:"error,omitempty"`
	Message  string          `json:"message,omitempty"`
	Results  []Result        `json:"results,omitempty"`
	Programs []ProgramStatus `json:"programs,omitempty"`
	// Logs is a reply of CmdLogs.
	Logs *LogChunk `json:"logs,omitempty"`
	// Event is one event of the events stream (SPEC section 15).
	Event *events.Event `json:"event,omitempty"`
	// Diff is the difference a reload would apply (reload --dry-run), as
	// JSON: added, removed, changed (with keys), unchanged.
	Diff json.RawMessage `json:"diff,omitempty"`
}

// Result is the outcome of a command for one program.
type Result struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// ProgramStatus is one program's row of `supervise status --json`
// (SPEC section 6). Field names are part of the public interface.
type ProgramStatus struct {
	Name string `json:"name"` // the instance: "web:0", or "web" for a program without replicas
	// Program is the [programs.NAME] table the instance comes from, and
	// Replica its index (0 for a program without replicas).
	Program       string          `json:"program"`
	Replica       int             `json:"replica"`
	State         string          `json:"state"`
	PID           int             `json:"pid"`
	UptimeSeconds float64         `json:"uptime_seconds"`
	Restarts      int             `json:"restarts"`
	Breaker       BreakerStatus   `json:"breaker"`
	Stats         Stats           `json:"stats"`
	LastExit      *ExitStatus     `json:"last_exit"`
	Heartbeat     HeartbeatStatus `json:"heartbeat"`
	Ready         bool            `json:"ready"`
	StatusText    string          `json:"status_text"`
	// Error is the last spawn error or the reason the program is held
	// (for example a dependency that will not become ready).
	Error string `json:"error,omitempty"`
	// WaitingFor lists dependencies whose conditions do not hold yet.
	WaitingFor []string `json:"waiting_for,omitempty"`
	// Autostart is the program's autostart setting: `check --ready`
	// requires every autostart program to be ready.
	Autostart bool `json:"autostart"`
	// Probes are the program's readiness and liveness probes (SPEC
	// section 11); nil when it has neither.
	Probes *ProbesStatus `json:"probes,omitempty"`
	// Output counts what was lost of the program's output, since the
	// supervisor started.
	Output *OutputStatus `json:"output,omitempty"`
}

// OutputStatus counts the output of a program that reached none of its
// destinations.
type OutputStatus struct {
	// DroppedLines were above log_rate.
	DroppedLines uint64 `json:"dropped_lines"`
	// DroppedBytes could not be written to the program's log file (a
	// full disk, an unwritable file).
	DroppedBytes uint64 `json:"dropped_bytes"`
	// FileError is why, while the file still cannot be written.
	FileError string `json:"file_error,omitempty"`
}

// ProbesStatus holds a program's probes; a probe not configured is nil.
type ProbesStatus struct {
	Readiness *ProbeStatus `json:"readiness,omitempty"`
	Liveness  *ProbeStatus `json:"liveness,omitempty"`
}

// ProbeStatus is one probe of a program. State, ConsecutiveFailures and
// LastDurationSeconds are of the current run ("unknown" without one);
// LastError is the latest failed attempt's error, of this run or an
// earlier one; Attempts, Failures and DurationSecondsTotal count every
// run since the supervisor started.
type ProbeStatus struct {
	Kind                 string     `json:"kind"`  // exec | http | tcp | log_line
	State                string     `json:"state"` // passing | failing | unknown
	ConsecutiveFailures  int        `json:"consecutive_failures"`
	LastError            string     `json:"last_error"`
	LastFailureAt        *time.Time `json:"last_failure_at,omitempty"`
	LastDurationSeconds  float64    `json:"last_duration_seconds"`
	LastAt               *time.Time `json:"last_at,omitempty"`
	Attempts             uint64     `json:"attempts"`
	Failures             uint64     `json:"failures"`
	DurationSecondsTotal float64    `json:"duration_seconds_total"`
}

// BreakerStatus is the restart circuit breaker of a program.
type BreakerStatus struct {
	State            string  `json:"state"` // closed | open | half_open
	Failures         int     `json:"failures"`
	MaxFailures      int     `json:"max_failures"`
	RemainingSeconds float64 `json:"remaining_seconds"`
}

// Stats counts a program's runs since the supervisor started.
type Stats struct {
	Starts       uint64 `json:"starts"`
	Successes    uint64 `json:"successes"`
	Failures     uint64 `json:"failures"`
	Rejected     uint64 `json:"rejected"`
	StateChanges uint64 `json:"state_changes"`
}

// ExitStatus is how a program's last run ended. Code is -1 when a signal
// ended it; Signal is then its name (for example "SIGKILL").
type ExitStatus struct {
	Code   int       `json:"code"`
	Signal string    `json:"signal"`
	At     time.Time `json:"at"`
	// Error is set when the run never began (spawn failure).
	Error string `json:"error,omitempty"`
	// Failed says whether the run was judged a failure (SPEC §3).
	Failed bool `json:"failed"`
}

// HeartbeatStatus is the last beat seen of a program's heartbeat file.
type HeartbeatStatus struct {
	LastBeatAt *time.Time     `json:"last_beat_at"`
	AgeSeconds *float64       `json:"age_seconds"`
	Metadata   map[string]any `json:"metadata"`
}
