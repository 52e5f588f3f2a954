package supervisor

import (
	"fmt"
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/breaker"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// loopCommand is what a remote command does in the event loop. It answers
// r itself, at once or (for commands that wait for processes) from a
// goroutine once the loop has released them.
type loopCommand func(s *Supervisor, r request)

// loopCommands is the supervisor's side of every unary remote command of
// control.Commands: one entry per command. (reload is answered by the
// reload path, which the file watcher and SIGHUP share.)
var loopCommands = map[string]loopCommand{
	control.CmdStatus:   (*Supervisor).cmdStatus,
	control.CmdShutdown: (*Supervisor).cmdShutdown,
	control.CmdStart:    perProgram((*Supervisor).cmdStart),
	control.CmdStop:     perProgram((*Supervisor).cmdStop),
	control.CmdRestart:  perProgram((*Supervisor).cmdRestart),
	control.CmdReset:    perProgram((*Supervisor).cmdReset),
	control.CmdSignal:   perProgram((*Supervisor).cmdSignal),
	control.CmdScale:    (*Supervisor).cmdScale,
	control.CmdReload:   nil, // see Handle
}

// controlHandlers is the control server's dispatch: a handler for each
// remote command of control.Commands (Serve refuses to run without one
// for each). Unary commands go through the event loop in Handle; the
// events stream has its own handler, streamEvents.
func (s *Supervisor) controlHandlers() control.Handlers {
	unary := control.Unary(s.Handle)
	hs := control.Handlers{}
	for name := range loopCommands {
		hs[name] = unary
	}
	hs[control.CmdLogs] = s.cmdLogs
	hs[control.CmdReopenLogs] = control.Unary(s.cmdReopenLogs)
	hs[control.CmdEvents] = s.streamEvents
	return hs
}

// onRequest answers a control request in the loop.
func (s *Supervisor) onRequest(r request) {
	cmd, ok := loopCommands[r.req.Command]
	if !ok || cmd == nil {
		r.answer(control.Response{Error: fmt.Sprintf("unknown command %q", r.req.Command)})
		return
	}
	cmd(s, r)
}

func (s *Supervisor) cmdStatus(r request) {
	if _, bad := s.resolve(r.req.Names); bad != "" {
		r.answer(control.Response{Error: bad})
		return
	}
	progs, meta := s.statusOf(r.req.Names)
	r.reply <- answer{resp: control.Response{OK: true, Programs: progs}, meta: meta}
}

// statusOf is the status of the programs names stands for (see resolve;
// names that no longer exist are left out), or of every program when
// names is empty.
func (s *Supervisor) statusOf(names []string) ([]control.ProgramStatus, map[int]string) {
	if len(names) == 0 {
		return s.status(nil)
	}
	var resolved []string
	seen := map[string]bool{}
	for _, n := range names {
		if r, bad := s.resolve([]string{n}); bad == "" {
			for _, m := range r {
				if !seen[m] {
					seen[m] = true
					resolved = append(resolved, m)
				}
			}
		}
	}
	if len(resolved) == 0 {
		return []control.ProgramStatus{}, map[int]string{}
	}
	return s.status(resolved)
}

func (s *Supervisor) cmdShutdown(r request) {
	r.answer(control.Response{OK: true, Message: "shutting down"})
	s.beginTeardown("shutdown requested", 0)
}

// programCommand acts on one named program; it returns the error of its
// result ("" for success) and, when the answer must wait until the
// program has settled, a channel closed then.
type programCommand func(s *Supervisor, p *program, req control.Request) (errText string, wait chan struct{})

// perProgram runs c for every named program (every instance of a program
// with replicas) and answers with a result per instance and their status,
// once every stop they asked for has ended.
func perProgram(c programCommand) loopCommand {
	return func(s *Supervisor, r request) {
		req := r.req
		if len(req.Names) == 0 {
			r.answer(control.Response{Error: req.Command + " needs at least one program name"})
			return
		}
		if s.shutting {
			r.answer(control.Response{Error: "the supervisor is shutting down"})
			return
		}
		names, bad := s.resolve(req.Names)
		if bad != "" {
			r.answer(control.Response{Error: bad})
			return
		}
		if len(names) == 0 {
			r.answer(control.Response{Error: fmt.Sprintf("%s: no instance to act on (replicas = 0; see supervise scale)", joinNames(req.Names))})
			return
		}
		resp := control.Response{OK: true}
		var waits []chan struct{}
		for _, name := range names {
			errText, w := c(s, s.progs[name], req)
			if w != nil {
				waits = append(waits, w)
			}
			res := control.Result{Name: name, OK: errText == "", Error: errText}
			resp.OK = resp.OK && res.OK
			resp.Results = append(resp.Results, res)
		}
		s.answerAfter(r, resp, waits)
	}
}

// answerAfter answers r with resp and a fresh status of the named
// programs once waits are closed. The loop must not block: it waits in a
// goroutine, then fetches the status through the loop.
func (s *Supervisor) answerAfter(r request, resp control.Response, waits []chan struct{}) {
	if len(waits) == 0 {
		progs, meta := s.statusOf(r.req.Names)
		resp.Programs = progs
		r.reply <- answer{resp: resp, meta: meta}
		return
	}
	go func() {
		for _, w := range waits {
			select {
			case <-w:
			case <-s.loopDone:
			}
		}
		st := make(chan answer, 1)
		s.box.push(request{req: control.Request{Command: control.CmdStatus, Names: r.req.Names}, reply: st})
		var meta map[int]string
		select {
		case got := <-st:
			resp.Programs, meta = got.resp.Programs, got.meta
		case <-s.loopDone:
		}
		r.reply <- answer{resp: resp, meta: meta}
	}()
}

func (s *Supervisor) cmdStart(p *program, _ control.Request) (string, chan struct{}) {
	if p.m.Alive() {
		return "", nil
	}
	return s.start(p, "start requested", true), nil
}

func (s *Supervisor) cmdReset(p *program, _ control.Request) (string, chan struct{}) {
	p.log.Info("breaker reset by operator")
	s.step(p, lifecycle.Reset{})
	return "", nil
}

func (s *Supervisor) cmdStop(p *program, _ control.Request) (string, chan struct{}) {
	return s.stopFor(p, lifecycle.IntentStop)
}

func (s *Supervisor) cmdRestart(p *program, _ control.Request) (string, chan struct{}) {
	return s.stopFor(p, lifecycle.IntentRestart)
}

// stopFor steps p with a stop of intent and returns the refusal, if any,
// and a channel closed once p has settled.
func (s *Supervisor) stopFor(p *program, intent lifecycle.Intent) (string, chan struct{}) {
	w := make(chan struct{})
	s.wait(p, w)
	p.refusal = ""
	s.step(p, lifecycle.Stop{Intent: intent})
	refusal := p.refusal
	p.refusal = ""
	return refusal, w
}

func (s *Supervisor) cmdSignal(p *program, req control.Request) (string, chan struct{}) {
	sig, err := conf.ParseSignal(req.Param(control.ParamSignal))
	if err != nil {
		return err.Error(), nil
	}
	if p.run == nil {
		return fmt.Sprintf("not running (%s)", p.m.State()), nil
	}
	// An exit it causes is judged like any other (SPEC §3).
	if err := p.run.proc.Signal(sig); err != nil {
		return err.Error(), nil
	}
	p.log.Info("signal sent by operator", zap.String("signal", conf.SignalName(sig)))
	return "", nil
}

// status builds the rows of `supervise status`.
//
// The metadata of heartbeat files is not read here, in the loop: a
// program controls its file (it could be a FIFO that blocks an open);
// metaFiles maps rows to the files fillMetadata reads off the loop.
func (s *Supervisor) status(names []string) (out []control.ProgramStatus, metaFiles map[int]string) {
	now := s.clk.Now()
	out = []control.ProgramStatus{}
	metaFiles = map[int]string{}
	for _, name := range s.sortedNames(names) {
		p := s.progs[name]
		if p == nil {
			continue
		}
		br := p.m.Breaker()
		bst := br.State(now)
		cfg := p.cfg()
		st := control.ProgramStatus{
			Name:     p.name,
			Program:  cfg.Base,
			Replica:  cfg.Replica,
			State:    string(p.m.State()),
			Restarts: p.m.Restarts(),
			Breaker: control.BreakerStatus{
				State:       bst.String(),
				Failures:    br.Failures(),
				MaxFailures: cfg.Breaker.MaxFailures,
			},
			LastExit:   lastExitOf(p.m.Last()),
			Ready:      p.m.Ready(),
			StatusText: p.statusText,
			WaitingFor: p.m.WaitingFor(),
			Autostart:  cfg.Autostart,
			Probes:     p.probesStatus(),
		}
		st.Output = s.out.logs.outputStatus(p.name)
		if why := s.waitReason(p); why != "" {
			st.Error = why
		} else if l := p.m.Last(); l != nil && l.Error != "" && !p.m.Alive() {
			st.Error = l.Error
		}
		if bst == breaker.Open {
			st.Breaker.RemainingSeconds = round1(br.Remaining(now).Seconds())
		}
		bs, ms := br.Stats(), p.m.Stats()
		st.Stats = control.Stats{Starts: ms.Starts, Successes: ms.Successes, Failures: ms.Failures,
			Rejected: bs.Rejected, StateChanges: bs.StateChanges}
		if p.run != nil {
			st.PID = p.run.proc.Pid()
			st.UptimeSeconds = round1(now.Sub(p.m.StartedAt()).Seconds())
		}
		if last := p.lastBeatAt(); !last.IsZero() {
			at := last.UTC()
			age := round1(now.Sub(last).Seconds())
			st.Heartbeat.LastBeatAt = &at
			st.Heartbeat.AgeSeconds = &age
			if cfg.Watchdog != nil {
				metaFiles[len(out)] = cfg.Watchdog.HeartbeatFile
			}
		}
		out = append(out, st)
	}
	return out, metaFiles
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func joinNames(ns []string) string {
	out := ""
	for i, n := range ns {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

// lastExitOf converts the last run's outcome for status.
func lastExitOf(o *lifecycle.Outcome) *control.ExitStatus {
	if o == nil {
		return nil
	}
	e := &control.ExitStatus{Code: -1, At: o.At, Error: o.Error, Failed: o.Failed}
	if o.Exit != nil {
		e.Code = o.Exit.Code
		if o.Exit.Signal != 0 {
			e.Signal = conf.SignalName(o.Exit.Signal)
		}
	}
	return e
}

// lastBeatAt is p's last beat: of its heartbeat file, or WATCHDOG=1.
func (p *program) lastBeatAt() time.Time {
	last := p.lastBeat
	if p.run != nil && p.run.wd != nil {
		if b, ok := p.run.wd.LastBeat(); ok && b.At.After(last) {
			last = b.At
		}
	}
	return last
}
