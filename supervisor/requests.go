package supervisor

import (
	"fmt"
	"math"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/breaker"
)

// controlHandlers is the control server's dispatch: a handler for each
// remote command of control.Commands (Serve refuses to run without one
// for each). Every one of them goes through the event loop in Handle.
func (s *Supervisor) controlHandlers() control.Handlers {
	unary := control.Unary(s.Handle)
	return control.Handlers{
		control.CmdStatus:   unary,
		control.CmdStart:    unary,
		control.CmdStop:     unary,
		control.CmdRestart:  unary,
		control.CmdReset:    unary,
		control.CmdSignal:   unary,
		control.CmdReload:   unary,
		control.CmdShutdown: unary,
	}
}

// onRequest answers a control request. Commands that wait for processes
// (stop, restart) reply from a goroutine once the loop has released them.
func (s *Supervisor) onRequest(r request) {
	req := r.req
	switch req.Command {
	case control.CmdStatus, control.CmdShutdown:
	case control.CmdStart, control.CmdStop, control.CmdRestart, control.CmdReset, control.CmdSignal:
		if len(req.Names) == 0 {
			r.reply <- control.Response{Error: req.Command + " needs at least one program name"}
			return
		}
	default:
		r.reply <- control.Response{Error: fmt.Sprintf("unknown command %q", req.Command)}
		return
	}
	for _, n := range req.Names {
		if s.progs[n] == nil {
			r.reply <- control.Response{Error: fmt.Sprintf("no program named %q (programs: %s)", n, joinNames(s.order))}
			return
		}
	}
	switch req.Command {
	case control.CmdStatus:
		r.reply <- control.Response{OK: true, Programs: s.status(req.Names)}
		return
	case control.CmdShutdown:
		r.reply <- control.Response{OK: true, Message: "shutting down"}
		s.beginTeardown("shutdown requested", 0)
		return
	}
	if s.shutting {
		r.reply <- control.Response{Error: "the supervisor is shutting down"}
		return
	}
	resp := control.Response{OK: true}
	var waits []chan struct{}
	for _, name := range req.Names {
		p := s.progs[name]
		res := control.Result{Name: name, OK: true}
		switch req.Command {
		case control.CmdStart:
			res = s.reqStart(p)
		case control.CmdReset:
			now := s.clk.Now()
			p.br.Reset(now)
			p.consecutive = 0
			s.plog(p).Info("breaker reset by operator")
			if p.proc == nil {
				s.start(p, "reset requested")
			}
		case control.CmdStop:
			if p.proc == nil && (p.state == Stopped || p.state == Exited) {
				break
			}
			w := make(chan struct{})
			waits = append(waits, w)
			s.stop(p, intentStop, w)
		case control.CmdRestart:
			if p.proc == nil {
				if p.state == Open {
					res = control.Result{Name: name, Error: s.openRefusal(p)}
					break
				}
				p.consecutive = 0
				s.start(p, "restart requested")
				break
			}
			w := make(chan struct{})
			waits = append(waits, w)
			s.stop(p, intentRestart, w)
		case control.CmdSignal:
			sig, err := conf.ParseSignal(req.Param(control.ParamSignal))
			if err != nil {
				res = control.Result{Name: name, Error: err.Error()}
				break
			}
			if p.proc == nil {
				res = control.Result{Name: name, Error: fmt.Sprintf("not running (%s)", p.state)}
				break
			}
			if err := p.proc.Signal(sig); err != nil {
				res = control.Result{Name: name, Error: err.Error()}
				break
			}
			p.opSignal = sig
			s.plog(p).Info("signal sent by operator", zap.String("signal", conf.SignalName(sig)))
		default:
			r.reply <- control.Response{Error: fmt.Sprintf("unknown command %q", req.Command)}
			return
		}
		if !res.OK && res.Error == "" {
			res.OK = true
		}
		if res.Error != "" {
			res.OK = false
			resp.OK = false
		}
		resp.Results = append(resp.Results, res)
	}
	if len(waits) == 0 {
		resp.Programs = s.status(req.Names)
		r.reply <- resp
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
		st := make(chan control.Response, 1)
		s.box.push(request{req: control.Request{Command: control.CmdStatus, Names: req.Names}, reply: st})
		select {
		case got := <-st:
			resp.Programs = got.Programs
		case <-s.loopDone:
		}
		r.reply <- resp
	}()
}

func (s *Supervisor) reqStart(p *program) control.Result {
	res := control.Result{Name: p.name, OK: true}
	if p.proc != nil {
		return res
	}
	now := s.clk.Now()
	if p.br.State(now) == breaker.Open {
		p.br.Allow(now) // counts the refusal
		return control.Result{Name: p.name, Error: s.openRefusal(p)}
	}
	p.consecutive = 0
	s.start(p, "start requested")
	return res
}

func (s *Supervisor) openRefusal(p *program) string {
	rem := p.br.Remaining(s.clk.Now()).Seconds()
	return fmt.Sprintf("breaker open after %d failures: half-open in %ds (use `supervise reset %s` to start now)",
		p.br.Failures(), int(math.Ceil(rem)), p.name)
}

// status builds the rows of `supervise status`.
func (s *Supervisor) status(names []string) []control.ProgramStatus {
	now := s.clk.Now()
	out := []control.ProgramStatus{}
	for _, name := range s.sortedNames(names) {
		p := s.progs[name]
		if p == nil {
			continue
		}
		bst := p.br.State(now)
		st := control.ProgramStatus{
			Name:     p.name,
			State:    string(p.state),
			Restarts: restartsOf(p),
			Breaker: control.BreakerStatus{
				State:       bst.String(),
				Failures:    p.br.Failures(),
				MaxFailures: p.cfg.Breaker.MaxFailures,
			},
			LastExit:   p.lastExit,
			Ready:      p.ready,
			StatusText: p.statusText,
			Error:      p.errText,
			WaitingFor: p.waitingFor,
		}
		if bst == breaker.Open {
			st.Breaker.RemainingSeconds = round1(p.br.Remaining(now).Seconds())
		}
		bs := p.br.Stats()
		st.Stats = control.Stats{Starts: p.starts, Successes: p.successes, Failures: p.failures,
			Rejected: bs.Rejected, StateChanges: bs.StateChanges}
		if p.proc != nil {
			st.PID = p.proc.Pid()
			st.UptimeSeconds = round1(now.Sub(p.startedAt).Seconds())
		}
		if last, meta := s.heartbeatOf(p); !last.IsZero() {
			at := last.UTC()
			age := round1(now.Sub(last).Seconds())
			st.Heartbeat.LastBeatAt = &at
			st.Heartbeat.AgeSeconds = &age
			st.Heartbeat.Metadata = meta
		}
		out = append(out, st)
	}
	return out
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

// restartsOf is how often p was started again after its first start.
func restartsOf(p *program) int {
	if p.starts == 0 {
		return 0
	}
	return int(p.starts) - 1
}
