package lifecycle

import (
	"strconv"
	"syscall"
	"time"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/supervisor/breaker"
)

// State is a program's state as shown by `supervise status` (SPEC §6).
type State string

// Program states.
const (
	Waiting  State = "waiting"  // not spawned: its dependencies are not met
	Starting State = "starting" // spawned, not yet ready
	Running  State = "running"  // ready
	Backoff  State = "backoff"  // waiting to restart
	Stopping State = "stopping" // stop signal sent, waiting for the exit
	Stopped  State = "stopped"  // by an operator, or autostart = false
	Exited   State = "exited"   // ended, no restart due
	Open     State = "open"     // restart breaker open
)

// States lists every state in the order status summaries name them.
var States = []State{Running, Starting, Waiting, Backoff, Open, Stopping, Stopped, Exited}

// Intent says why the supervisor itself is ending a run, which decides
// what the run's end means.
type Intent int

// The intents. Only IntentFail makes the end of the run a failure.
const (
	IntentNone       Intent = iota
	IntentStop              // operator stop: end in Stopped
	IntentRestart           // operator restart: start again at once
	IntentReplace           // reload changed the settings: start again with them
	IntentRemove            // reload removed the program
	IntentTeardown          // the supervisor's teardown
	IntentHealthStop        // a watchdog or probe with action "stop": end in Stopped
	IntentFail              // killed as unhealthy (action "restart", ready_timeout): a failure
)

var intentNames = [...]string{"none", "stop", "restart", "replace", "remove", "teardown", "health-stop", "fail"}

// String names the intent.
func (i Intent) String() string {
	if int(i) < len(intentNames) {
		return intentNames[i]
	}
	return "intent?"
}

// TimerKind names one of a program's timers. A program has at most one
// pending timer of each kind.
type TimerKind int

// The timers.
const (
	TimerBackoff   TimerKind = iota // restart after the backoff delay
	TimerHalfOpen                   // the breaker's reset_timeout passed: trial start
	TimerMinUptime                  // the run is long enough to count as a success
	TimerStopKill                   // stop_timeout passed: SIGKILL the group
	TimerReady                      // ready_timeout passed without readiness
	NumTimers                       // the number of timer kinds
)

var timerNames = [...]string{"backoff", "half_open", "min_uptime", "stop_timeout", "ready_timeout"}

// String names the timer as its setting does.
func (k TimerKind) String() string {
	if int(k) < len(timerNames) {
		return timerNames[k]
	}
	return "timer?"
}

// ExitStatus is how a process ended: its exit code, or the signal that
// killed it (Code is then -1).
type ExitStatus struct {
	Code   int
	Signal syscall.Signal
}

// ShellCode is the status a shell would report: the code, or 128+N for
// signal N.
func (e ExitStatus) ShellCode() int {
	if e.Signal != 0 {
		return 128 + int(e.Signal)
	}
	return e.Code
}

// String describes the status ("exit 1", "signal SIGKILL").
func (e ExitStatus) String() string {
	if e.Signal != 0 {
		return "signal " + conf.SignalName(e.Signal)
	}
	return "exit " + strconv.Itoa(e.Code)
}

// Outcome is how the last run ended, as status reports it.
type Outcome struct {
	Exit   *ExitStatus // nil when the run never began
	Error  string      // why the run could not begin (spawn error)
	At     time.Time
	Failed bool // judged a failure (SPEC §3)
	Code   int  // the code it hands on: ShellCode, 1 for a failure without one
}

// Event is an input of a Machine.
type Event interface{ isEvent() }

// Start asks for a run. Unmet lists the dependencies whose conditions do
// not hold (the caller evaluates them); with any, the program waits.
// Operator marks a request of an operator, which an open breaker refuses
// with an answer rather than silently.
type Start struct {
	Why      string
	Unmet    []string
	Operator bool
}

// Spawned reports that the process of the run asked for by Spawn exists.
type Spawned struct{ PID int }

// SpawnFailed reports that the run asked for by Spawn could not begin.
// Code is what the run hands on (127 not found, 126 not executable, 1).
type SpawnFailed struct {
	Err  error
	Code int
}

// ProcessExited reports that the process of the current run ended.
type ProcessExited struct{ Status ExitStatus }

// TimerFired reports that the timer of Kind set by SetTimer fell due. The
// caller drops timers that were cancelled or replaced since.
type TimerFired struct{ Kind TimerKind }

// Readiness reports the state of one readiness source of the current run
// (SPEC §4): OK true when its signal was seen or its probe passes, false
// when a probe that passed fails again.
type Readiness struct {
	Source string
	OK     bool
	Detail string
}

// Unhealthy reports that a health check of the current run failed: a
// watchdog timeout, a failing liveness probe, WATCHDOG=trigger. Action
// says what the check's configuration asks for.
type Unhealthy struct {
	Source string // "watchdog", "liveness", ...
	Action conf.WatchdogAction
	Detail string
}

// Stop asks to end the current run (or cancel a pending restart) with an
// intent: IntentStop, IntentRestart, IntentRemove or IntentTeardown.
// Signal, when set, is sent instead of the program's stop_signal.
type Stop struct {
	Intent Intent
	Signal syscall.Signal
}

// Reconfigure gives the program the settings of a reloaded file whose table
// for it differs (SPEC §7): it restarts with them, or takes them at once
// when it has no process. InPlace says that no changed setting needs a
// restart (conf.NeedsRestart): the running process keeps running under the
// new settings.
type Reconfigure struct {
	Config  *conf.Program
	InPlace bool
}

// Reset is an operator's reset: close the breaker and start (SPEC §3).
type Reset struct{}

// Shutdown says the teardown began: no more restarts, pending ones are
// cancelled.
type Shutdown struct{}

func (Start) isEvent()         {}
func (Spawned) isEvent()       {}
func (SpawnFailed) isEvent()   {}
func (ProcessExited) isEvent() {}
func (TimerFired) isEvent()    {}
func (Readiness) isEvent()     {}
func (Unhealthy) isEvent()     {}
func (Stop) isEvent()          {}
func (Reconfigure) isEvent()   {}
func (Reset) isEvent()         {}
func (Shutdown) isEvent()      {}

// Action is an output of a Machine, for the caller to carry out in order.
type Action interface{ isAction() }

// Spawn asks for the process of run Run. The caller answers with Spawned
// or SpawnFailed before anything else.
type Spawn struct {
	Run uint64
	Why string
}

// SignalGroup asks to send Signal to the run's process group.
type SignalGroup struct{ Signal syscall.Signal }

// SetTimer asks to (re)arm the timer of Kind to fire After from now.
type SetTimer struct {
	Kind  TimerKind
	After time.Duration
}

// CancelTimer asks to disarm the timer of Kind, if pending.
type CancelTimer struct{ Kind TimerKind }

// WantStart asks the caller to evaluate the dependencies and send Start.
type WantStart struct{ Why string }

// Refuse answers an operator's request that the machine refused.
type Refuse struct{ Reason string }

// Remove says the program, removed by a reload, has stopped and may be
// forgotten.
type Remove struct{}

// Critical says a critical program failed for good (or ended under
// restart = "never"): the supervisor tears down and exits with Code.
type Critical struct {
	Code   int
	Reason string
}

// Emit reports something that happened, for logs, events and dependents.
type Emit struct{ Record Record }

func (Spawn) isAction()       {}
func (SignalGroup) isAction() {}
func (SetTimer) isAction()    {}
func (CancelTimer) isAction() {}
func (WantStart) isAction()   {}
func (Refuse) isAction()      {}
func (Remove) isAction()      {}
func (Critical) isAction()    {}
func (Emit) isAction()        {}

// Record is an observable happening of a program's lifecycle.
type Record interface{ isRecord() }

// Transition is a change of state.
type Transition struct {
	From, To State
	Reason   string
	PID      int         // the process concerned, 0 if none
	Exit     *ExitStatus // set when the change follows the end of a run
}

// BreakerChange is a transition of the restart breaker.
type BreakerChange struct {
	From, To breaker.State
	Failures int
}

// ReadyChange is a change of readiness of the current run.
type ReadyChange struct {
	Ready  bool
	Source string
	Detail string
}

// Failed is a failure counted against the program (SPEC §3).
type Failed struct {
	Reason      string
	Consecutive int
}

// Succeeded is a run counted as a success.
type Succeeded struct{ Reason string }

// Restarting is a restart scheduled after Delay.
type Restarting struct {
	Delay       time.Duration
	Consecutive int
}

// WaitingFor is a change of the dependencies a program waits for.
type WaitingFor struct{ Names []string }

// Health is a failed health check, with what is done about it.
type Health struct {
	Source string
	Action conf.WatchdogAction
	Detail string
	// Ignored is set when the run was already being stopped: that stop
	// decides how the run ends.
	Ignored bool
}

// Killing is a SIGKILL sent to the group because stop_timeout passed.
type Killing struct{ After time.Duration }

func (Transition) isRecord()    {}
func (BreakerChange) isRecord() {}
func (ReadyChange) isRecord()   {}
func (Failed) isRecord()        {}
func (Succeeded) isRecord()     {}
func (Restarting) isRecord()    {}
func (WaitingFor) isRecord()    {}
func (Health) isRecord()        {}
func (Killing) isRecord()       {}
