package shutdown

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/supervise/supervise/clock"
)

type stepStatus int

const (
	waiting stepStatus = iota
	running
	finished  // the function returned
	abandoned // its timeout passed first
)

type stepRun struct {
	*registered
	status stepStatus
	ctx    *timeoutCtx
	timer  clock.Timer
}

type eventKind int

const (
	stepReturned eventKind = iota
	stepTimedOut
	totalTimedOut
	progressTick
)

type event struct {
	kind eventKind
	step *stepRun
	err  error
	ack  chan struct{} // closed once the loop has handled the event
}

// runner is one shutdown run. Its loop goroutine owns every field but the
// channels; start runs before the loop starts.
type runner struct {
	m      *Manager
	reason string
	began  time.Time
	steps  []*stepRun
	byName map[string]*stepRun
	root   *timeoutCtx

	events    chan event
	quit      chan struct{} // closed when the loop ends
	force     chan struct{}
	forceOnce sync.Once

	total    clock.Timer
	progress clock.Timer
	errs     map[string]error
}

// newRunner snapshots the steps; the caller holds m.mu.
func newRunner(m *Manager, reason string) *runner {
	r := &runner{
		m:      m,
		reason: reason,
		began:  m.clock.Now(),
		byName: make(map[string]*stepRun),
		events: make(chan event),
		quit:   make(chan struct{}),
		force:  make(chan struct{}),
		errs:   make(map[string]error),
	}
	for _, s := range m.sortedSteps() {
		cp := *s
		cp.After = append([]string(nil), s.After...)
		sr := &stepRun{registered: &cp}
		r.steps = append(r.steps, sr)
		r.byName[s.Name] = sr
	}
	r.root = newTimeoutCtx(context.Background(), nil)
	return r
}

// send delivers ev to the loop, or drops it once the loop has ended.
func (r *runner) send(ev event) {
	select {
	case r.events <- ev:
	case <-r.quit:
	}
}

// fire is send for timer callbacks: it also waits until the loop has
// handled the event, so that a fake clock's Advance returns only after the
// consequences (next steps started, their timers armed at the right time,
// or the run finished) have happened.
func (r *runner) fire(kind eventKind, s *stepRun) {
	ack := make(chan struct{})
	r.send(event{kind: kind, step: s, ack: ack})
	select {
	case <-ack:
	case <-r.quit:
	}
}

func (r *runner) start() {
	if r.m.timeout > 0 {
		r.total = r.m.clock.AfterFunc(r.m.timeout, func() { r.fire(totalTimedOut, nil) })
	}
	if r.m.progress != nil && r.m.progressEvery > 0 {
		r.progress = r.m.clock.AfterFunc(r.m.progressEvery, func() { r.fire(progressTick, nil) })
	}
	r.startReady()
}

// startReady starts every waiting step whose turn has come: all steps of
// lower priority and all its After steps are over.
func (r *runner) startReady() {
	lowest, found := 0, false
	for _, s := range r.steps {
		if s.status == waiting || s.status == running {
			lowest, found = s.Priority, true
			break // steps are sorted by priority
		}
	}
	if !found {
		return
	}
	for _, s := range r.steps {
		if s.Priority < lowest {
			continue // over already
		}
		if s.Priority > lowest {
			break
		}
		if s.status != waiting || !r.afterDone(s) {
			continue
		}
		s.status = running
		s.ctx = newTimeoutCtx(r.root, r.root)
		if s.Timeout > 0 {
			s.timer = r.m.clock.AfterFunc(s.Timeout, func() { r.fire(stepTimedOut, s) })
		}
		go func() {
			err := call(s.ctx, s.Fn)
			r.send(event{kind: stepReturned, step: s, err: err})
		}()
	}
}

func (r *runner) afterDone(s *stepRun) bool {
	for _, a := range s.After {
		if d, ok := r.byName[a]; ok && (d.status == waiting || d.status == running) {
			return false
		}
	}
	return true
}

func (r *runner) allOver() bool {
	for _, s := range r.steps {
		if s.status == waiting || s.status == running {
			return false
		}
	}
	return true
}

func (r *runner) loop() {
	timedOut, forced := false, false
	var ack chan struct{}
	for !r.allOver() {
		if ack != nil {
			close(ack)
			ack = nil
		}
		select {
		case ev := <-r.events:
			ack = ev.ack
			switch ev.kind {
			case stepReturned:
				if ev.step.status == running {
					ev.step.status = finished
					if ev.step.timer != nil {
						ev.step.timer.Stop()
					}
					ev.step.ctx.cancel(nil)
					if ev.err != nil {
						r.errs[ev.step.Name] = ev.err
					}
				}
			case stepTimedOut:
				if ev.step.status == running {
					ev.step.status = abandoned
					ev.step.ctx.expire()
					r.errs[ev.step.Name] = fmt.Errorf("%w after %v", ErrStepTimeout, ev.step.Timeout)
				}
			case totalTimedOut:
				timedOut = true
			case progressTick:
				r.reportProgress()
				r.progress.Reset(r.m.progressEvery)
			}
		case <-r.force:
			forced = true
		}
		if timedOut || forced {
			break
		}
		r.startReady()
	}
	r.finish(timedOut, forced)
}

func (r *runner) reportProgress() {
	var names []string
	for _, s := range r.steps {
		if s.status == running {
			names = append(names, s.Name)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		r.m.progress(names)
	}
}

func (r *runner) finish(timedOut, forced bool) {
	if r.total != nil {
		r.total.Stop()
	}
	if r.progress != nil {
		r.progress.Stop()
	}
	for _, s := range r.steps {
		if s.timer != nil {
			s.timer.Stop()
		}
	}
	switch {
	case forced:
		r.root.cancel(ErrForced)
	case timedOut:
		r.root.expire()
	default:
		r.root.cancel(nil)
	}
	res := Result{Reason: r.reason, Errors: r.errs, TimedOut: timedOut, Forced: forced}
	for _, s := range r.steps {
		if s.status != finished {
			res.Unfinished = append(res.Unfinished, s.Name)
		}
	}
	sort.Strings(res.Unfinished)
	if timedOut || forced {
		res.ExitCode = r.m.forceCode
	}
	res.Duration = r.m.clock.Since(r.began)
	r.m.mu.Lock()
	r.m.result = res
	r.m.mu.Unlock()
	close(r.quit)
	close(r.m.done)
}

// timeoutCtx is a cancellable context whose Err is
// context.DeadlineExceeded when it (or its timeoutCtx parent) timed out on
// the injected clock, where context.WithTimeout would use the real one.
type timeoutCtx struct {
	context.Context
	cancel   context.CancelCauseFunc
	parent   *timeoutCtx
	timedOut atomic.Bool
}

func newTimeoutCtx(base context.Context, parent *timeoutCtx) *timeoutCtx {
	ctx, cancel := context.WithCancelCause(base)
	return &timeoutCtx{Context: ctx, cancel: cancel, parent: parent}
}

// expire ends the context as timed out.
func (c *timeoutCtx) expire() {
	c.timedOut.Store(true)
	c.cancel(context.DeadlineExceeded)
}

// Err returns nil until the context is done; then DeadlineExceeded if it
// or its parent timed out, else Canceled.
func (c *timeoutCtx) Err() error {
	err := c.Context.Err()
	if err == nil {
		return nil
	}
	for p := c; p != nil; p = p.parent {
		if p.timedOut.Load() {
			return context.DeadlineExceeded
		}
	}
	return err
}
