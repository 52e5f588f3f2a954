// Package control is the protocol between the supervise command line and a
// running supervisor: one JSON request and one JSON response per connection
// over a Unix stream socket that only root and the supervisor's own user may
// use.
//
// On the wire a request is one JSON object (Request) ended by a newline or
// by the client closing its side, at most MaxRequestSize bytes, sent within
// RequestTimeout; the answer is one JSON object (Response) and a newline.
// The server (Listen, Serve) creates the socket mode 0600, checks each
// peer's uid with SO_PEERCRED, validates every request with ParseRequest
// before its Handler sees it, and survives malformed input by answering
// with an error. Call is the client side; WriteTable prints the status
// table of `supervise status`.
package control

import "time"

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
)

// Request is what a client sends: a command, the programs it names, and for
// CmdSignal the signal (a name such as "HUP" or "SIGHUP", or a number).
type Request struct {
	Command string   `json:"command"`
	Names   []string `json:"names,omitempty"`
	Signal  string   `json:"signal,omitempty"`
}

// Response is the supervisor's answer. OK is false when the request as a
// whole was refused (Error says why) or when any per-program Result failed.
type Response struct {
	OK       bool            `json:"ok"`
	Error    string          `json:"error,omitempty"`
	Message  string          `json:"message,omitempty"`
	Results  []Result        `json:"results,omitempty"`
	Programs []ProgramStatus `json:"programs,omitempty"`
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
	// WaitingFor lists dependencies whose conditions do not hold yet.
	WaitingFor []string `json:"waiting_for,omitempty"`
	// Probes are the program's readiness and liveness probes (SPEC
	// section 11); nil when it has neither.
	Probes *ProbesStatus `json:"probes,omitempty"`
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
}

// HeartbeatStatus is the last beat seen of a program's heartbeat file.
type HeartbeatStatus struct {
	LastBeatAt *time.Time     `json:"last_beat_at"`
	AgeSeconds *float64       `json:"age_seconds"`
	Metadata   map[string]any `json:"metadata"`
}
