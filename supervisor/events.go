package supervisor

import (
	"os"
	"syscall"
	"time"

	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/lifecycle"
	"github.com/supervise/supervise/supervisor/shutdown"
	"github.com/supervise/supervise/systemd"
)

// event is anything the event loop reacts to. Every event is handled in
// the loop goroutine, the single owner of all program state.
type event interface{ isEvent() }

// exited: the reaper collected the status of a program's process.
type exited struct {
	name string
	run  uint64
	exit procs.Exit
}

// timerFired: a program timer fell due. seq discards timers that were
// cancelled or replaced.
type timerFired struct {
	name string
	kind lifecycle.TimerKind
	seq  uint64
}

// beat: a heartbeat of a program's watchdog file.
type beat struct {
	name string
	run  uint64
	at   time.Time
}

// unhealthy: a health check of a program's run failed (its heartbeat went
// silent for too long).
type unhealthy struct {
	name   string
	run    uint64
	source string
}

// notified: a datagram on a program's notify socket.
type notified struct {
	name string
	run  uint64
	msg  systemd.Message
}

// request: a control request waiting for its response.
type request struct {
	req   control.Request
	reply chan answer // buffered: the loop never waits for the asker
}

// answer is the loop's reply to a request: the response, and the rows
// whose heartbeat metadata the asker reads, off the loop.
type answer struct {
	resp control.Response
	meta map[int]string
}

func (r request) answer(resp control.Response) { r.reply <- answer{resp: resp} }

// stopFor: the teardown asks for a program to stop; done is closed once it
// has no process left.
type stopFor struct {
	name string
	done chan struct{}
	// signal, when set, replaces the program's stop_signal: in
	// single-command mode the command gets the signal the supervisor got.
	signal syscall.Signal
}

// killAll: SIGKILL every program's process group (teardown budget spent).
type killAll struct{}

// signalled: the supervisor itself received a signal.
type signalled struct{ sig os.Signal }

// reloadAsked: re-read the configuration file (SIGHUP, edit, control).
type reloadAsked struct {
	why   string
	reply chan answer // nil when nobody waits
}

// reloadDebounced: the config directory was quiet long enough after edits.
type reloadDebounced struct{ seq uint64 }

// shutdownAsked: start the teardown with this exit code.
type shutdownAsked struct {
	reason string
	code   int
}

// teardownDone: the teardown finished; the loop may end.
type teardownDone struct{ result shutdown.Result }

// selfBeat: time to write the supervisor's own heartbeat.
type selfBeat struct{}

// sdWatchdog: time to ping systemd's watchdog.
type sdWatchdog struct{}

func (exited) isEvent()          {}
func (timerFired) isEvent()      {}
func (beat) isEvent()            {}
func (unhealthy) isEvent()       {}
func (notified) isEvent()        {}
func (request) isEvent()         {}
func (stopFor) isEvent()         {}
func (killAll) isEvent()         {}
func (signalled) isEvent()       {}
func (reloadAsked) isEvent()     {}
func (reloadDebounced) isEvent() {}
func (shutdownAsked) isEvent()   {}
func (teardownDone) isEvent()    {}
func (selfBeat) isEvent()        {}
func (sdWatchdog) isEvent()      {}

func answerOf(resp control.Response) answer { return answer{resp: resp} }
