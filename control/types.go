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
	"time"

	"github.com/supervise/supervise/events"
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
	CmdEvents   = "events"
)

// ParamSignal is the parameter of CmdSignal that holds the signal (a name
// such as "HUP" or "SIGHUP", or a number).
const ParamSignal = "signal"

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
	// Event is one event of the events stream (SPEC section 15).
	Event *events.Event `json:"event,omitempty"`
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
	Name          string          `json:"name"`
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
	// WaitingFor lists dependencies that are not ready yet.
	WaitingFor []string `json:"waiting_for,omitempty"`
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
}

// HeartbeatStatus is the last beat seen of a program's heartbeat file.
type HeartbeatStatus struct {
	LastBeatAt *time.Time     `json:"last_beat_at"`
	AgeSeconds *float64       `json:"age_seconds"`
	Metadata   map[string]any `json:"metadata"`
}
