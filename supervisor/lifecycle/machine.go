// Package lifecycle decides what happens to one supervised program: when
// it starts, when its runs succeed or fail, when it restarts, when its
// breaker opens, and how a stop ends. It is the pure core of the
// supervisor.
//
// A Machine is a plain value without goroutines, I/O or a clock of its own:
// Step takes an event and the current time and returns the actions to
// carry out (spawn, signal the process group, set or cancel a timer, start
// again, report what happened). The supervisor's event loop routes events
// to machines and executes their actions; table tests drive a machine
// through every state without processes or sleeps.
//
// The rules are those of SPEC §3, §4 and §6:
//
//   - a run fails when it ends with a code outside success_exit_codes, by a
//     signal the supervisor did not send to stop it, when it cannot be
//     spawned, when a health check kills it, when it is not ready within
//     ready_timeout, or (restart = "always") when it ends before min_uptime;
//   - a run succeeds when it lives min_uptime, or ends cleanly; readiness
//     alone is not a success;
//   - after a failure the program restarts after its backoff (doubling per
//     consecutive failure, capped), unless its breaker opens or its policy
//     says never; an open breaker half-opens after reset_timeout;
//   - a stop asked for by an operator, a reload or the teardown is never a
//     failure.
package lifecycle

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/supervisor/breaker"
)

// Machine is the lifecycle of one program. It is not safe for concurrent
// use: one owner (the event loop) steps it.
type Machine struct {
	cfg     *conf.Program
	pending *conf.Program // settings of a reload, taken when the run ends
	br      *breaker.Machine

	state      State
	reason     string // why it entered state
	waitingFor []string
	shutting   bool

	// The current run.
	run        uint64
	pid        int
	spawning   bool
	startedAt  time.Time
	gate       gate
	ready      bool
	succeeded  bool
	intent     Intent
	failReason string
	endPID     int // the run that just ended, while its end is handled
	endExit    *ExitStatus

	starts, successes, failures uint64
	last                        *Outcome

	now time.Time
	out []Action
	// stepping is set while Step runs; a breaker transition observed
	// outside it (a read at a later time half-opens an open breaker) is
	// kept in early and reported by the next Step.
	stepping bool
	early    []Action
}

// New returns the machine of a program with settings cfg, stopped.
func New(cfg *conf.Program) *Machine {
	m := &Machine{cfg: cfg, state: Stopped, reason: "not started"}
	m.takeSettings(cfg)
	return m
}

// takeSettings makes cfg the program's settings with a fresh breaker:
// changed settings (often the fix for what made it fail) deserve one, and
// an open breaker would refuse the restart a reload asks for.
func (m *Machine) takeSettings(cfg *conf.Program) {
	m.cfg = cfg
	m.pending = nil
	m.newBreaker(cfg)
	m.gate = newGate(Required(cfg))
}

// newBreaker gives the program a fresh breaker with cfg's settings.
func (m *Machine) newBreaker(cfg *conf.Program) {
	m.br = breaker.NewMachine(breaker.Settings{
		MaxFailures:      cfg.Breaker.MaxFailures,
		ResetTimeout:     cfg.Breaker.ResetTimeout,
		HalfOpenMaxCalls: cfg.Breaker.HalfOpenMaxCalls,
	})
	m.br.OnStateChange(func(from, to breaker.State, _ time.Time) {
		m.emit(BreakerChange{From: from, To: to, Failures: m.br.Failures()})
	})
}

// Step feeds ev at now and returns the actions to carry out, in order.
// The returned slice belongs to the caller.
func (m *Machine) Step(ev Event, now time.Time) []Action {
	m.now = now
	m.out, m.early = m.early, nil
	m.stepping = true
	switch ev := ev.(type) {
	case Start:
		m.start(ev)
	case Spawned:
		m.spawned(ev)
	case SpawnFailed:
		m.spawnFailed(ev)
	case ProcessExited:
		m.exited(ev)
	case TimerFired:
		m.timer(ev.Kind)
	case Readiness:
		m.readiness(ev)
	case Unhealthy:
		m.unhealthy(ev)
	case Stop:
		m.stop(ev.Intent, ev.Signal)
	case Reconfigure:
		m.reconfigure(ev.Config, ev.InPlace)
	case Reset:
		m.reset()
	case Shutdown:
		m.shutdown()
	default:
		panic(fmt.Sprintf("lifecycle: unknown event %T", ev))
	}
	m.stepping = false
	return m.out
}

func (m *Machine) do(a Action) {
	if !m.stepping {
		m.early = append(m.early, a)
		return
	}
	m.out = append(m.out, a)
}
func (m *Machine) emit(r Record) { m.do(Emit{Record: r}) }

func (m *Machine) to(st State, why string) {
	if m.state == st {
		m.reason = why
		return
	}
	from := m.state
	m.state, m.reason = st, why
	t := Transition{From: from, To: st, Reason: why, PID: m.pid}
	if m.endExit != nil {
		t.PID, t.Exit = m.endPID, m.endExit
	}
	m.emit(t)
}

// alive reports whether the program has a process, or one is being spawned.
func (m *Machine) alive() bool { return m.pid != 0 || m.spawning }

func (m *Machine) start(ev Start) {
	if m.shutting || m.alive() || m.state == Stopping {
		return
	}
	if m.br.State(m.now) == breaker.Open && ev.Operator {
		m.br.Allow(m.now) // counts the refusal
		m.do(Refuse{Reason: m.OpenRefusal(m.now)})
		return
	}
	m.do(CancelTimer{Kind: TimerBackoff})
	m.do(CancelTimer{Kind: TimerHalfOpen})
	if len(ev.Unmet) > 0 {
		if !slices.Equal(ev.Unmet, m.waitingFor) {
			m.waitingFor = slices.Clone(ev.Unmet)
			m.emit(WaitingFor{Names: m.waitingFor})
		}
		m.to(Waiting, "waiting for "+strings.Join(ev.Unmet, ", "))
		return
	}
	if m.waitingFor != nil {
		m.waitingFor = nil
		m.emit(WaitingFor{})
	}
	if err := m.br.Allow(m.now); err != nil {
		m.toOpen("restart refused: breaker open")
		return
	}
	m.run++
	m.starts++
	m.spawning = true
	m.ready, m.succeeded, m.intent, m.failReason = false, false, IntentNone, ""
	m.gate.reset()
	m.do(Spawn{Run: m.run, Why: ev.Why})
}

func (m *Machine) spawned(ev Spawned) {
	if !m.spawning {
		return
	}
	m.spawning = false
	m.pid = ev.PID
	m.startedAt = m.now
	if len(m.gate.required) == 0 {
		m.ready = true
		m.to(Running, "spawned")
		m.emit(ReadyChange{Ready: true, Source: "spawn"})
	} else {
		m.to(Starting, "spawned, waiting for "+strings.Join(m.gate.required, " and "))
		if m.cfg.ReadyTimeout > 0 {
			m.do(SetTimer{Kind: TimerReady, After: m.cfg.ReadyTimeout})
		}
	}
	m.do(SetTimer{Kind: TimerMinUptime, After: m.cfg.MinUptime})
}

func (m *Machine) spawnFailed(ev SpawnFailed) {
	if !m.spawning {
		return
	}
	m.spawning = false
	code := ev.Code
	if code == 0 {
		code = 1
	}
	msg := ""
	if ev.Err != nil {
		msg = ev.Err.Error()
	}
	m.last = &Outcome{Error: msg, At: m.now, Failed: true, Code: code}
	m.applyPending()
	m.failure("spawn error: "+msg, true)
}

func (m *Machine) exited(ev ProcessExited) {
	if m.pid == 0 {
		return
	}
	pid := m.pid
	uptime := m.now.Sub(m.startedAt)
	m.pid = 0
	m.ready = false
	for _, k := range []TimerKind{TimerMinUptime, TimerStopKill, TimerReady} {
		m.do(CancelTimer{Kind: k})
	}
	st := ev.Status
	in, failReason := m.intent, m.failReason
	m.intent, m.failReason = IntentNone, ""
	if in != IntentRemove {
		// A reload changed it while it ran or stopped: whatever ended
		// this run, the next one uses the new settings.
		m.applyPending()
	}
	if in != IntentNone && in != IntentFail && !m.succeeded {
		// Ended by us before it could prove itself: neither a success nor
		// a failure, so a half-open trial slot is given back.
		m.br.Release(m.now)
	}
	ended := func(to State, why string, failed bool, code int) {
		m.last = &Outcome{Exit: &st, At: m.now, Failed: failed, Code: code}
		from := m.state
		m.state, m.reason = to, why
		if from != to {
			m.emit(Transition{From: from, To: to, Reason: why, PID: pid, Exit: &st})
		}
	}
	switch in {
	case IntentStop, IntentTeardown, IntentHealthStop:
		ended(Stopped, "stopped", false, st.ShellCode())
		return
	case IntentRestart:
		ended(Stopped, "stopped for restart", false, st.ShellCode())
		m.do(WantStart{Why: "restart requested"})
		return
	case IntentReplace:
		ended(Stopped, "stopped to apply new settings", false, st.ShellCode())
		if m.cfg.Autostart {
			m.do(WantStart{Why: "configuration changed"})
		} else {
			m.reason = "autostart = false"
		}
		return
	case IntentRemove:
		ended(Stopped, "removed from the configuration", false, st.ShellCode())
		m.do(Remove{})
		return
	}

	failed, why := m.classify(st, uptime, failReason)
	if m.shutting {
		ended(Stopped, "ended during teardown", failed, failCode(st, failed))
		return
	}
	if failed {
		m.last = &Outcome{Exit: &st, At: m.now, Failed: true, Code: failCode(st, true)}
		m.failureAfterRun(why, pid, &st)
		return
	}
	if !m.succeeded {
		m.success("ended cleanly")
	}
	switch {
	case m.cfg.Critical && m.cfg.Restart == conf.RestartNever:
		ended(Exited, "exited", false, st.ShellCode())
		m.do(Critical{Code: st.ShellCode(), Reason: fmt.Sprintf("critical program %s ended (%s)", m.cfg.Name, st)})
	case m.cfg.Restart == conf.RestartAlways:
		ended(Backoff, "exited, restart = always", false, st.ShellCode())
		m.do(WantStart{Why: "restart = always"})
	default:
		ended(Exited, "exited", false, st.ShellCode())
	}
}

// failCode is the code a run hands on: its own, 128+N for a signal, and 1
// for a failure that had none.
func failCode(st ExitStatus, failed bool) int {
	if c := st.ShellCode(); c != 0 || !failed {
		return c
	}
	return 1
}

// classify says whether a run that ended on its own is a failure (SPEC §3).
func (m *Machine) classify(st ExitStatus, uptime time.Duration, failReason string) (bool, string) {
	switch {
	case failReason != "":
		return true, failReason
	case st.Signal != 0:
		return true, "killed by " + conf.SignalName(st.Signal)
	case !slices.Contains(m.cfg.SuccessExitCodes, st.Code):
		return true, fmt.Sprintf("exit code %d", st.Code)
	case m.cfg.Restart == conf.RestartAlways && uptime < m.cfg.MinUptime:
		return true, fmt.Sprintf("ran %s, less than min_uptime %s", uptime.Round(time.Millisecond), m.cfg.MinUptime)
	}
	return false, ""
}

// failureAfterRun counts the failure of a run that ended: the
// transition it leads to carries the run's pid and exit status.
func (m *Machine) failureAfterRun(why string, pid int, st *ExitStatus) {
	m.endPID, m.endExit = pid, st
	m.failure(why, false)
	m.endPID, m.endExit = 0, nil
}

// failure counts a failure and decides between a restart after the
// backoff, an open breaker, and exited. spawnErr marks a run that never
// began, which always waits for its timer (so a missing binary cannot
// loop start -> spawn -> failure without pause).
func (m *Machine) failure(why string, spawnErr bool) {
	m.failures++
	m.succeeded = false
	m.br.Failure(m.now)
	n := m.br.Failures()
	m.emit(Failed{Reason: why, Consecutive: n})
	if m.cfg.Restart == conf.RestartNever {
		m.to(Exited, why)
		if m.cfg.Critical {
			m.do(Critical{Code: m.lastCode(), Reason: fmt.Sprintf("critical program %s failed (%s)", m.cfg.Name, why)})
		}
		return
	}
	if m.br.State(m.now) == breaker.Open {
		m.toOpen(why)
		return
	}
	delay := BackoffDelay(m.cfg, n)
	m.to(Backoff, why)
	if delay <= 0 && !spawnErr {
		m.do(WantStart{Why: "restart (backoff 0)"})
		return
	}
	m.emit(Restarting{Delay: delay, Consecutive: n})
	m.do(SetTimer{Kind: TimerBackoff, After: delay})
}

func (m *Machine) lastCode() int {
	if m.last == nil || m.last.Code == 0 {
		return 1
	}
	return m.last.Code
}

// toOpen parks the program with its breaker open until the half-open trial.
func (m *Machine) toOpen(why string) {
	m.to(Open, why)
	if m.cfg.Critical {
		m.do(Critical{Code: m.lastCode(), Reason: fmt.Sprintf("critical program %s: breaker open (%s)", m.cfg.Name, why)})
		return
	}
	m.do(SetTimer{Kind: TimerHalfOpen, After: m.br.Remaining(m.now)})
}

func (m *Machine) success(why string) {
	m.succeeded = true
	m.successes++
	m.br.Success(m.now)
	m.emit(Succeeded{Reason: why})
}

func (m *Machine) timer(k TimerKind) {
	switch k {
	case TimerBackoff:
		if m.state == Backoff {
			m.do(WantStart{Why: "backoff elapsed"})
		}
	case TimerHalfOpen:
		if m.state == Open {
			m.do(WantStart{Why: "breaker reset_timeout elapsed"})
		}
	case TimerMinUptime:
		if m.pid != 0 && !m.succeeded && m.intent != IntentFail {
			m.success("min_uptime reached")
		}
	case TimerStopKill:
		if m.pid != 0 {
			m.emit(Killing{After: m.cfg.StopTimeout})
			m.do(SignalGroup{Signal: syscall.SIGKILL})
		}
	case TimerReady:
		if m.pid != 0 && !m.ready && m.intent == IntentNone {
			m.kill(fmt.Sprintf("not ready within ready_timeout %s", m.cfg.ReadyTimeout))
		}
	}
}

func (m *Machine) readiness(ev Readiness) {
	if m.pid == 0 || !m.gate.set(ev.Source, ev.OK) {
		return
	}
	now := m.gate.ready()
	switch {
	case now && !m.ready:
		m.ready = true
		m.do(CancelTimer{Kind: TimerReady})
		m.emit(ReadyChange{Ready: true, Source: ev.Source, Detail: ev.Detail})
		if m.intent == IntentNone {
			m.to(Running, "ready ("+ev.Source+")")
		}
	case !now && m.ready:
		m.ready = false
		m.emit(ReadyChange{Ready: false, Source: ev.Source, Detail: ev.Detail})
		if m.intent == IntentNone {
			m.to(Starting, "not ready: "+ev.Source+" failing")
		}
	}
}

func (m *Machine) unhealthy(ev Unhealthy) {
	if m.pid == 0 {
		return
	}
	if m.intent != IntentNone {
		m.emit(Health{Source: ev.Source, Action: ev.Action, Detail: ev.Detail, Ignored: true})
		return
	}
	m.emit(Health{Source: ev.Source, Action: ev.Action, Detail: ev.Detail})
	why := ev.Source + " failed"
	if ev.Detail != "" {
		why += ": " + ev.Detail
	}
	switch ev.Action {
	case conf.WatchdogLog:
	case conf.WatchdogStop:
		m.stopRun(IntentHealthStop, 0, why+": stopping")
	default:
		m.kill(why)
	}
}

// kill ends the run as a failure: SIGKILL to the group at once.
func (m *Machine) kill(why string) {
	m.intent, m.failReason = IntentFail, why
	m.to(Stopping, why)
	m.do(SignalGroup{Signal: syscall.SIGKILL})
}

// stopRun sends the stop signal (sig, else stop_signal) and arms the stop
// timeout.
func (m *Machine) stopRun(in Intent, sig syscall.Signal, why string) {
	if sig == 0 {
		sig = m.cfg.StopSignal
	}
	m.intent, m.failReason = in, ""
	m.to(Stopping, why)
	m.do(SignalGroup{Signal: sig})
	m.do(SetTimer{Kind: TimerStopKill, After: m.cfg.StopTimeout})
}

func (m *Machine) stop(in Intent, sig syscall.Signal) {
	if !m.alive() {
		m.do(CancelTimer{Kind: TimerBackoff})
		m.do(CancelTimer{Kind: TimerHalfOpen})
		if m.waitingFor != nil {
			m.waitingFor = nil
			m.emit(WaitingFor{})
		}
		switch in {
		case IntentRemove:
			m.to(Stopped, "removed from the configuration")
			m.do(Remove{})
		case IntentRestart:
			if m.state == Open {
				m.br.Allow(m.now) // counts the refusal
				m.do(Refuse{Reason: m.OpenRefusal(m.now)})
				m.do(SetTimer{Kind: TimerHalfOpen, After: m.br.Remaining(m.now)})
				return
			}
			m.do(WantStart{Why: "restart requested"})
		case IntentTeardown:
			if m.state != Exited {
				m.to(Stopped, "teardown")
			}
		default:
			if m.state != Exited {
				m.to(Stopped, "stopped by operator")
			}
		}
		return
	}
	if m.spawning {
		return // Spawned or SpawnFailed comes next in the same turn
	}
	if m.state == Stopping && m.intent != IntentNone && m.intent != IntentFail {
		// Already stopping: a teardown, removal or stop outranks a restart
		// or a replacement; the stop already under way goes on.
		if in == IntentTeardown || in == IntentRemove || in == IntentStop {
			m.intent = in
		}
		return
	}
	m.stopRun(in, sig, "stop requested ("+in.String()+")")
}

func (m *Machine) reconfigure(cfg *conf.Program, inPlace bool) {
	if m.intent == IntentRemove {
		// Removed by an earlier reload and still stopping: it is back, so
		// it starts again, with these settings, once it has stopped.
		m.pending = cfg
		m.intent = IntentReplace
		return
	}
	if m.cfg.Equal(cfg) {
		m.pending = nil // unchanged, or changed back before it applied
		return
	}
	if inPlace && m.pending == nil {
		old := m.cfg
		m.cfg = cfg
		if old.Breaker != cfg.Breaker {
			m.newBreaker(cfg)
		}
		if cfg.Autostart && !old.Autostart && !m.alive() && m.state == Stopped {
			m.do(WantStart{Why: "autostart = true"})
		}
		return
	}
	m.pending = cfg
	if m.alive() {
		m.stop(IntentReplace, 0)
		return
	}
	// A program that ended for good after a failure takes the new settings
	// as the fix they often are, and runs again (a one-shot task whose
	// dependents wait for it to complete, SPEC §12); one that stopped, or
	// completed, stays as it is.
	failedForGood := m.state == Exited && m.last != nil && m.last.Failed
	wasStopped := (m.state == Stopped || m.state == Exited) && !failedForGood
	m.do(CancelTimer{Kind: TimerBackoff})
	m.do(CancelTimer{Kind: TimerHalfOpen})
	m.applyPending()
	switch {
	case m.cfg.Autostart && !wasStopped:
		m.do(WantStart{Why: "configuration changed"})
	case m.state == Open || m.state == Backoff:
		m.to(Stopped, "configuration changed, autostart = false")
	}
}

func (m *Machine) applyPending() {
	if m.pending != nil {
		m.takeSettings(m.pending)
	}
}

func (m *Machine) reset() {
	m.br.Reset(m.now)
	if !m.alive() && m.state != Stopping {
		m.do(WantStart{Why: "reset requested"})
	}
}

func (m *Machine) shutdown() {
	m.shutting = true
	if m.alive() {
		return
	}
	m.do(CancelTimer{Kind: TimerBackoff})
	m.do(CancelTimer{Kind: TimerHalfOpen})
	m.waitingFor = nil
	switch m.state {
	case Backoff, Open, Starting, Waiting:
		m.to(Stopped, "teardown")
	}
}

// BackoffDelay is the delay before the restart that follows the n-th
// consecutive failure: backoff_initial doubled per failure after the
// first, capped at backoff_max.
func BackoffDelay(cfg *conf.Program, n int) time.Duration {
	d := cfg.BackoffInitial
	for i := 1; i < n && d < cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, cfg.BackoffMax)
}

// OpenRefusal is the answer to a start refused by the open breaker.
func (m *Machine) OpenRefusal(now time.Time) string {
	rem := m.br.Remaining(now).Seconds()
	return fmt.Sprintf("breaker open after %d failures: half-open in %ds (use `supervise reset %s` to start now)",
		m.br.Failures(), int(math.Ceil(rem)), m.cfg.Name)
}

// Config returns the settings in effect.
func (m *Machine) Config() *conf.Program { return m.cfg }

// Pending returns the settings a reload gave that the next run takes, or nil.
func (m *Machine) Pending() *conf.Program { return m.pending }

// State returns the state.
func (m *Machine) State() State { return m.state }

// Reason returns why the program entered its state.
func (m *Machine) Reason() string { return m.reason }

// Run numbers the runs: it increments with every spawn.
func (m *Machine) Run() uint64 { return m.run }

// PID returns the pid of the current run's process, 0 when there is none.
func (m *Machine) PID() int { return m.pid }

// Alive reports whether the program has a process.
func (m *Machine) Alive() bool { return m.alive() }

// StartedAt returns when the current run's process was spawned.
func (m *Machine) StartedAt() time.Time { return m.startedAt }

// Ready reports whether the current run is ready (SPEC §4).
func (m *Machine) Ready() bool { return m.ready }

// Intent returns why the supervisor is ending the current run, if it is.
func (m *Machine) Intent() Intent { return m.intent }

// WaitingFor lists the dependencies the program waits for.
func (m *Machine) WaitingFor() []string { return m.waitingFor }

// Last returns how the last run ended, nil before the first one.
func (m *Machine) Last() *Outcome { return m.last }

// Breaker returns the restart breaker, for reading. Callers must not step it.
func (m *Machine) Breaker() *breaker.Machine { return m.br }

// Stats counts the program's runs (SPEC §3).
type Stats struct {
	Starts, Successes, Failures uint64
}

// Stats returns the counters of the program's runs.
func (m *Machine) Stats() Stats {
	return Stats{Starts: m.starts, Successes: m.successes, Failures: m.failures}
}

// Restarts is how often the program was started again after its first start.
func (m *Machine) Restarts() int {
	if m.starts == 0 {
		return 0
	}
	return int(m.starts - 1)
}
