package supervisor

import (
	"fmt"
	"syscall"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/breaker"
	"github.com/supervise/supervise/systemd"
	"github.com/supervise/supervise/watch/watchdog"
)

// State is a program's state as shown by `supervise status` (SPEC §6).
type State string

// Program states.
const (
	Starting State = "starting" // spawned, not yet ready (or waiting for dependencies)
	Running  State = "running"  // ready
	Backoff  State = "backoff"  // waiting to restart
	Stopping State = "stopping" // stop signal sent, waiting for the exit
	Stopped  State = "stopped"  // by an operator, or autostart = false
	Exited   State = "exited"   // ended, no restart due
	Open     State = "open"     // restart breaker open
)

// intent says why the supervisor itself is ending a run, so that the exit
// is not counted as a failure.
type intent int

const (
	intentNone     intent = iota
	intentStop            // operator stop: end in Stopped
	intentRestart         // operator restart: start again at once
	intentReplace         // reload changed the table: start again with pendingCfg
	intentRemove          // reload removed the program
	intentTeardown        // supervisor teardown
	intentWatchdog        // watchdog action "restart": a failure, then restart policy
	intentWDStop          // watchdog action "stop": end in Stopped
)

type timerKind int

const (
	timerBackoff   timerKind = iota // restart after backoff
	timerMinUptime                  // the run is long enough to count as a success
	timerStopKill                   // stop_timeout passed: SIGKILL the group
	timerHalfOpen                   // breaker reset_timeout passed: trial start
)

func (k timerKind) String() string {
	switch k {
	case timerBackoff:
		return "backoff"
	case timerMinUptime:
		return "min_uptime"
	case timerStopKill:
		return "stop_timeout"
	case timerHalfOpen:
		return "half_open"
	}
	return fmt.Sprintf("timer(%d)", int(k))
}

// program is the state of one supervised program. It is owned by the
// supervisor's event loop: nothing else reads or writes it.
type program struct {
	name string
	cfg  *conf.Program

	state     State
	proc      *procs.Process
	run       uint64 // increments with every spawn; events of older runs are ignored
	startedAt time.Time
	ready     bool
	succeeded bool // this run already counted as a success
	intent    intent

	br          *breaker.Machine
	consecutive int // failures since the last success, for the backoff
	starts      uint64
	successes   uint64
	failures    uint64
	lastExit    *control.ExitStatus
	lastFailed  bool
	lastCode    int
	errText     string
	statusText  string
	waitingFor  []string
	waitLogged  string
	pendingCfg  *conf.Program
	stopWaiters []chan struct{}
	timer       clock.Timer
	timerSeq    uint64
	timerKind   timerKind
	timerDue    time.Time
	lastBeat    time.Time
	beatMeta    map[string]any
	metaAt      time.Time // the beat whose file beatMeta was read from
	wd          *watchdog.FileWatchdog
	notifySock  *systemd.Listener
	limiter     *lineLimiter
	opSignal    syscall.Signal // last signal sent by `supervise signal` in this run
}

func newProgram(cfg *conf.Program) *program {
	return &program{
		name:  cfg.Name,
		cfg:   cfg,
		state: Stopped,
		br: breaker.NewMachine(breaker.Settings{
			MaxFailures:      cfg.Breaker.MaxFailures,
			ResetTimeout:     cfg.Breaker.ResetTimeout,
			HalfOpenMaxCalls: cfg.Breaker.HalfOpenMaxCalls,
		}),
	}
}

// backoffDelay is backoff_initial doubled per consecutive failure after
// the first, capped at backoff_max.
func backoffDelay(cfg *conf.Program, consecutive int) time.Duration {
	d := cfg.BackoffInitial
	for i := 1; i < consecutive && d < cfg.BackoffMax; i++ {
		d *= 2
	}
	if d > cfg.BackoffMax {
		d = cfg.BackoffMax
	}
	return d
}

// isSuccessCode reports whether code is one of success_exit_codes.
func isSuccessCode(cfg *conf.Program, code int) bool {
	for _, c := range cfg.SuccessExitCodes {
		if c == code {
			return true
		}
	}
	return false
}

// classify says whether a run that ended on its own is a failure (SPEC §3).
func classify(cfg *conf.Program, e procs.Exit, uptime time.Duration, watchdogKill bool) (failed bool, why string) {
	switch {
	case watchdogKill:
		return true, "watchdog timeout"
	case e.Signal() != 0:
		return true, "killed by " + conf.SignalName(e.Signal())
	case !isSuccessCode(cfg, e.Code()):
		return true, fmt.Sprintf("exit code %d", e.Code())
	case cfg.Restart == conf.RestartAlways && uptime < cfg.MinUptime:
		return true, fmt.Sprintf("ran %s, less than min_uptime %s", uptime.Round(time.Millisecond), cfg.MinUptime)
	}
	return false, ""
}
