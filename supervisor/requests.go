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

// onRequest answers a control request. Commands that wait for processes
// (stop, restart) reply from a goroutine once the loop has released them.
func (s *Supervisor) onRequest(r request) {
	req := r.req
	switch req.Command {
	case control.CmdStatus, control.CmdShutdown:
	case control.CmdStart, control.CmdStop, control.CmdRestart, control.CmdReset, control.CmdSignal:
		if len(req.Names) == 0 {
			r.answer(control.Response{Error: req.Command + " needs at least one program name"})
			return
		}
	default:
		r.answer(control.Response{Error: fmt.Sprintf("unknown command %q", req.Command)})
		return
	}
	for _, n := range req.Names {
		if s.progs[n] == nil {
			r.answer(control.Response{Error: fmt.Sprintf("no program named %q (programs: %s)", n, joinNames(s.order))})
			return
		}
	}
	switch req.Command {
	case control.CmdStatus:
		progs, meta := s.status(req.Names)
		r.reply <- answer{resp: control.Response{OK: true, Programs: progs}, meta: meta}
		return
	case control.CmdShutdown:
		r.answer(control.Response{OK: true, Message: "shutting down"})
		s.beginTeardown("shutdown requested", 0)
		return
	}
	if s.shutting {
		r.answer(control.Response{Error: "the supervisor is shutting down"})
		return
	}
	resp := control.Response{OK: true}
	var waits []chan struct{}
	for _, name := range req.Names {
		p := s.progs[name]
		res := control.Result{Name: name, OK: true}
		switch req.Command {
		case control.CmdStart:
			if !p.m.Alive() {
				if r := s.start(p, "start requested", true); r != "" {
					res = control.Result{Name: name, Error: r}
				}
			}
		case control.CmdReset:
			p.log.Info("breaker reset by operator")
			s.step(p, lifecycle.Reset{})
		case control.CmdStop, control.CmdRestart:
			intent := lifecycle.IntentStop
			if req.Command == control.CmdRestart {
				intent = lifecycle.IntentRestart
			}
			w := make(chan struct{})
			waits = append(waits, w)
			s.wait(p, w)
			p.refusal = ""
			s.step(p, lifecycle.Stop{Intent: intent})
			if p.refusal != "" {
				res = control.Result{Name: name, Error: p.refusal}
				p.refusal = ""
			}
		case control.CmdSignal:
			sig, err := conf.ParseSignal(req.Signal)
			if err != nil {
				res = control.Result{Name: name, Error: err.Error()}
				break
			}
			if p.run == nil {
				res = control.Result{Name: name, Error: fmt.Sprintf("not running (%s)", p.m.State())}
				break
			}
			// An exit it causes is judged like any other (SPEC §3).
			if err := p.run.proc.Signal(sig); err != nil {
				res = control.Result{Name: name, Error: err.Error()}
				break
			}
			p.log.Info("signal sent by operator", zap.String("signal", conf.SignalName(sig)))
		default:
			r.answer(control.Response{Error: fmt.Sprintf("unknown command %q", req.Command)})
			return
		}
		if res.Error != "" {
			res.OK = false
			resp.OK = false
		}
		resp.Results = append(resp.Results, res)
	}
	if len(waits) == 0 {
		progs, meta := s.status(req.Names)
		resp.Programs = progs
		r.reply <- answer{resp: resp, meta: meta}
		return
	}
	// The loop must not block: wait for the stops in a goroutine, then
	// fetch a fresh status through the loop.
	go func() {
		for _, w := range waits {
			select {
			case <-w:
			case <-s.loopDone:
			}
		}
		st := make(chan answer, 1)
		s.box.push(request{req: control.Request{Command: control.CmdStatus, Names: req.Names}, reply: st})
		var meta map[int]string
		select {
		case got := <-st:
			resp.Programs, meta = got.resp.Programs, got.meta
		case <-s.loopDone:
		}
		r.reply <- answer{resp: resp, meta: meta}
	}()
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
			Probes:     p.probesStatus(),
		}
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
	e := &control.ExitStatus{Code: -1, At: o.At, Error: o.Error}
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
