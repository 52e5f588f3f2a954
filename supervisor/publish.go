package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/breaker"
	"github.com/supervise/supervise/supervisor/events"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// Events (SPEC §15) are made from what the loop already knows: the
// records of the programs' machines (see recordKind), and the
// supervisor's own happenings — reloads, the teardown and its steps, a
// critical exit. Every event is stamped with the run's next sequence
// number and counted by kind; it is built and handed out only when a
// subscriber or a hook may want it, so that with neither an event costs
// a counter increment.

// Limits of one `supervise events` stream (variables for tests).
var (
	// subscriberBuffer is how many events a reader may fall behind
	// before it loses some (and is told how many).
	subscriberBuffer = 4096
	// streamAhead is how many bytes of events are handed to the
	// connection ahead of what the client has read.
	streamAhead = 256 << 10
	// streamPace is the least time between two batches of a stream: the
	// first event after a quiet spell goes out at once, the events of a
	// burst together, so that a stream wakes (itself, its connection and
	// its client) at most so often however fast events come.
	streamPace = 10 * time.Millisecond
)

// recordKind is the kind of event a record of a program's machine makes,
// KindNone for records that make none. It does not allocate.
//
// A readiness or health source other than the built-in ones is a probe:
// its Health records are Probe events, its ReadyChange records Ready and
// NotReady events with the probe as their source.
func recordKind(r lifecycle.Record) events.Kind {
	switch r := r.(type) {
	case lifecycle.Transition:
		return events.State
	case lifecycle.ReadyChange:
		if r.Ready {
			return events.Ready
		}
		return events.NotReady
	case lifecycle.Failed:
		return events.Failed
	case lifecycle.BreakerChange:
		switch r.To {
		case breaker.Open:
			return events.BreakerOpen
		case breaker.HalfOpen:
			return events.BreakerHalfOpen
		default:
			return events.BreakerClosed
		}
	case lifecycle.Health:
		if r.Source == sourceWatchdog {
			return events.Watchdog
		}
		return events.Probe
	}
	return events.KindNone
}

// sourceWatchdog is the health source of the heartbeat watchdog.
const sourceWatchdog = "watchdog"

// publishRecord stamps the event of a record of p's machine, and hands it
// out when anyone may want it.
func (s *Supervisor) publishRecord(p *program, r lifecycle.Record) {
	k := recordKind(r)
	if k == events.KindNone {
		return
	}
	seq := s.bus.Stamp(k)
	if !s.wanted(k, p.name) {
		return
	}
	ev := &events.Event{Seq: seq, At: s.clk.Now(), Kind: k, Program: p.name}
	switch r := r.(type) {
	case lifecycle.Transition:
		ev.From, ev.To, ev.Reason, ev.PID = string(r.From), string(r.To), r.Reason, r.PID
		if r.Exit != nil {
			setExit(ev, *r.Exit)
		}
	case lifecycle.ReadyChange:
		ev.Source, ev.Detail = r.Source, r.Detail
	case lifecycle.Failed:
		ev.Reason, ev.Failures = r.Reason, r.Consecutive
		if last := p.m.Last(); last != nil {
			if last.Exit != nil {
				setExit(ev, *last.Exit)
			}
			if last.Error != "" {
				ev.Error = last.Error
			}
		}
	case lifecycle.BreakerChange:
		ev.From, ev.To, ev.Failures = r.From.String(), r.To.String(), r.Failures
	case lifecycle.Health:
		ev.Source, ev.Detail, ev.Action = r.Source, r.Detail, string(r.Action)
		if r.Source == sourceWatchdog && ev.Detail == "" {
			ev.Detail = "heartbeat overdue"
			if w := p.cfg().Watchdog; w != nil {
				ev.Detail = fmt.Sprintf("no heartbeat of %s for %s", w.HeartbeatFile, conf.FormatDuration(w.Timeout))
			}
		}
		if r.Ignored {
			ev.Action, ev.Reason = "none", "the program is already stopping"
		}
	}
	s.hand(ev)
}

// publishProbe publishes a change of state of one of p's probes (From
// and To are the probe's states, "passing" or "failing"; Source names
// the probe): the transitions a probe goes through besides the readiness
// changes and health failures its records already publish.
func (s *Supervisor) publishProbe(p *program, probe, from, to, detail string) {
	s.publish(events.Probe, p.name, func(ev *events.Event) {
		ev.Source, ev.From, ev.To, ev.Detail = probe, from, to, detail
	})
}

// diffJSON encodes a reload's diff for its event.
func (s *Supervisor) diffJSON(d *conf.ConfigDiff) events.Diff {
	js, err := json.Marshal(d)
	if err != nil {
		s.log.Warn("reload event without its diff", zap.Error(fmt.Errorf("encoding the diff: %w", err)))
		return nil
	}
	return js
}

func setExit(ev *events.Event, e lifecycle.ExitStatus) {
	if e.Signal != 0 {
		ev.Signal = conf.SignalName(e.Signal)
		return
	}
	code := e.Code
	ev.ExitCode = &code
}

// publish stamps an event of the supervisor's own of kind k about program
// ("" for none) and, when anyone may want it, builds it with fill and
// hands it out.
func (s *Supervisor) publish(k events.Kind, program string, fill func(ev *events.Event)) {
	seq := s.bus.Stamp(k)
	if !s.wanted(k, program) {
		return
	}
	ev := &events.Event{Seq: seq, At: s.clk.Now(), Kind: k, Program: program}
	if fill != nil {
		fill(ev)
	}
	s.hand(ev)
}

// wanted reports whether a subscriber or a hook may want an event.
func (s *Supervisor) wanted(k events.Kind, program string) bool {
	return s.bus.Active() || s.hooks.wants(k, program)
}

// hand gives a built event to the subscribers and the hooks.
func (s *Supervisor) hand(ev *events.Event) {
	s.bus.Publish(ev)
	s.hooks.offer(ev)
}

func intp(n int) *int { return &n }

// subscribe: a `supervise events` stream asks for the events of names.
type subscribe struct {
	sub   *events.Subscriber
	names []string
	reply chan string // "" once subscribed, else why not
}

func (subscribe) isEvent() {}

func (s *Supervisor) onSubscribe(ev subscribe) {
	// The names are those of the other commands: a program (with
	// replicas: every instance, those a scale adds later too), or one
	// instance NAME:i. The subscriber matches them as events.MatchProgram
	// does.
	if _, refusal := s.resolve(ev.names); refusal != "" {
		ev.reply <- refusal
		return
	}
	s.bus.Subscribe(ev.sub)
	ev.reply <- ""
}

// streamEvents is the handler of `supervise events`: it subscribes
// through the loop, says so with a first reply without an event, then
// sends every event as it comes, paced on the client. What the client
// cannot take in time is lost (the Subscriber's buffer is bounded) and
// reported by a Lost event where the events are missing. The loop never waits for
// it. The stream ends when the client leaves or the supervisor ends.
func (s *Supervisor) streamEvents(ctx context.Context, req control.Request, out *control.Sender) error {
	sub := events.NewSubscriber(req.Names, subscriberBuffer)
	defer sub.Close()
	reply := make(chan string, 1)
	s.box.push(subscribe{sub: sub, names: req.Names, reply: reply})
	select {
	case msg := <-reply:
		if msg != "" {
			return errors.New(msg)
		}
	case <-s.loopDone:
		return errors.New("the supervisor has stopped")
	case <-ctx.Done():
		return nil
	}
	// Paced on the client, the stream holds a bounded backlog: a reader
	// that pauses (a terminal scrolled back, a pager) is not cut off.
	out.SetWriteTimeout(0)
	if err := out.Send(control.Response{OK: true}); err != nil {
		return nil
	}
	send := func(ev *events.Event) bool {
		return out.WaitUnsent(ctx, streamAhead) == nil && out.SendEvent(ev) == nil
	}
	var batch []*events.Event
	for {
		var lost uint64
		var err error
		batch, lost, err = sub.Next(ctx, batch)
		for _, ev := range batch {
			if !send(ev) {
				return nil
			}
		}
		if lost > 0 && !send(&events.Event{Kind: events.Lost, At: s.clk.Now(), Lost: lost}) {
			return nil
		}
		if err == nil {
			pace := time.NewTimer(streamPace)
			select {
			case <-pace.C:
			case <-ctx.Done():
				pace.Stop()
			}
		}
		if err != nil {
			// The supervisor ended (its last events are sent) or the
			// client left.
			return nil
		}
	}
}
