package probe

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
)

// script is a Checker whose results a test sets; it records when each
// attempt was made and can take time on the fake clock.
type script struct {
	clk     *clock.Fake
	mu      sync.Mutex
	results []error       // consumed in order; nil when empty
	took    time.Duration // each attempt advances the clock by this much
	at      []time.Time   // start of every attempt
	ctxErr  []error       // the cause of ctx after each attempt
}

func (s *script) Check(ctx context.Context) error {
	s.mu.Lock()
	s.at = append(s.at, s.clk.Now())
	var err error
	if len(s.results) > 0 {
		err, s.results = s.results[0], s.results[1:]
	}
	took := s.took
	s.mu.Unlock()
	if took > 0 {
		s.clk.Advance(took) // fires the attempt's timeout, if it is shorter
	}
	s.mu.Lock()
	s.ctxErr = append(s.ctxErr, context.Cause(ctx))
	s.mu.Unlock()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func (s *script) attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}

type change struct {
	from, to State
	st       Status
}

type recorder struct {
	mu      sync.Mutex
	changes []change
}

func (r *recorder) hook(from, to State, st Status) {
	r.mu.Lock()
	r.changes = append(r.changes, change{from, to, st})
	r.mu.Unlock()
}

func (r *recorder) got() []change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]change(nil), r.changes...)
}

var errDown = errors.New("down")

func setup(t *testing.T, s Settings, results ...error) (*clock.Fake, *script, *recorder, *Runner) {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	sc := &script{clk: clk, results: results}
	rec := &recorder{}
	r := NewRunner(sc, s, clk, rec.hook)
	t.Cleanup(func() { r.Stop(); r.Wait() })
	return clk, sc, rec, r
}

var std = Settings{Interval: time.Second, Timeout: 500 * time.Millisecond, SuccessThreshold: 1, FailureThreshold: 3}

func TestNothingBeforeStart(t *testing.T) {
	clk, sc, _, r := setup(t, std)
	if clk.Pending() != 0 {
		t.Fatalf("%d timers before Start", clk.Pending())
	}
	clk.Advance(time.Hour)
	if sc.attempts() != 0 || r.Status().State != Unknown {
		t.Fatalf("attempts %d, state %s", sc.attempts(), r.Status().State)
	}
}

func TestInitialDelayAndInterval(t *testing.T) {
	clk, sc, _, r := setup(t, std)
	start := clk.Now()
	r.Start(5 * time.Second)
	r.Start(0) // a second Start changes nothing
	clk.Advance(4999 * time.Millisecond)
	if sc.attempts() != 0 {
		t.Fatal("an attempt before initial_delay")
	}
	clk.Advance(time.Millisecond)
	if sc.attempts() != 1 {
		t.Fatalf("%d attempts at initial_delay", sc.attempts())
	}
	clk.Advance(3 * time.Second)
	want := []time.Duration{5 * time.Second, 6 * time.Second, 7 * time.Second, 8 * time.Second}
	if len(sc.at) != len(want) {
		t.Fatalf("attempts at %v", sc.at)
	}
	for i, w := range want {
		if got := sc.at[i].Sub(start); got != w {
			t.Errorf("attempt %d at %v, want %v", i, got, w)
		}
	}
	// Idle between attempts: exactly one timer, the next attempt.
	if clk.Pending() != 1 {
		t.Fatalf("%d timers pending between attempts", clk.Pending())
	}
}

func TestThresholds(t *testing.T) {
	s := Settings{Interval: time.Second, Timeout: time.Second, SuccessThreshold: 2, FailureThreshold: 3}
	//              1    2    3       4        5        6    7    8        9        10       11
	clk, _, rec, r := setup(t, s, nil, nil, errDown, errDown, errDown, nil, nil, errDown, errDown, nil, errDown)
	r.Start(0)
	step := func(wantState State, wantChanges int) {
		t.Helper()
		clk.Advance(time.Second)
		if st := r.Status(); st.State != wantState || len(rec.got()) != wantChanges {
			t.Fatalf("after attempt %d: state %s, %d changes (%v); want %s, %d",
				st.Attempts, st.State, len(rec.got()), rec.got(), wantState, wantChanges)
		}
	}
	clk.Advance(0)
	if r.Status().State != Unknown { // one pass of two
		t.Fatal(r.Status())
	}
	step(Passing, 1) // 2
	step(Passing, 1) // 3: one failure of three
	step(Passing, 1) // 4
	step(Failing, 2) // 5
	step(Failing, 2) // 6: one pass of two
	step(Passing, 3) // 7
	step(Passing, 3) // 8
	step(Passing, 3) // 9
	step(Passing, 3) // 10: the pass resets the count of failures
	step(Passing, 3) // 11
	ch := rec.got()
	if ch[0].from != Unknown || ch[0].to != Passing || ch[1].from != Passing || ch[1].to != Failing ||
		ch[2].from != Failing || ch[2].to != Passing {
		t.Fatalf("changes %v", ch)
	}
	if ch[1].st.ConsecutiveFailures != 3 || ch[1].st.LastError != "down" {
		t.Fatalf("status with the change to failing: %+v", ch[1].st)
	}
	st := r.Status()
	if st.Attempts != 11 || st.Failures != 6 || st.ConsecutiveFailures != 1 || st.LastError != "down" {
		t.Fatalf("final status %+v", st)
	}
}

// A probe that never passes becomes failing (a liveness probe that never
// answers must restart the program).
func TestFailingFromUnknown(t *testing.T) {
	clk, _, rec, r := setup(t, std, errDown, errDown, errDown)
	r.Start(0)
	clk.Advance(0)
	clk.Advance(2 * time.Second)
	if ch := rec.got(); len(ch) != 1 || ch[0].from != Unknown || ch[0].to != Failing {
		t.Fatalf("changes %v", ch)
	}
}

func TestTimeout(t *testing.T) {
	clk, sc, rec, r := setup(t, Settings{Interval: time.Second, Timeout: 300 * time.Millisecond,
		SuccessThreshold: 1, FailureThreshold: 1})
	sc.took = 2 * time.Second
	start := clk.Now()
	r.Start(0)
	clk.Advance(0)
	st := r.Status()
	var te *TimeoutError
	if !errors.As(sc.ctxErr[0], &te) || te.After != 300*time.Millisecond {
		t.Fatalf("the attempt's context ended with %v", sc.ctxErr[0])
	}
	if st.State != Failing || st.LastError != "timed out after 300ms" || len(rec.got()) != 1 {
		t.Fatalf("status %+v", st)
	}
	if st.LastDuration != 2*time.Second {
		t.Fatalf("duration %v", st.LastDuration)
	}
	// The attempt took longer than the interval: the next starts at once,
	// never alongside it.
	clk.Advance(0)
	if len(sc.at) != 2 || sc.at[1].Sub(start) != 2*time.Second {
		t.Fatalf("attempts at %v", sc.at)
	}
}

func TestDurations(t *testing.T) {
	clk, sc, _, r := setup(t, std, nil, errDown)
	sc.took = 40 * time.Millisecond
	r.Start(0)
	clk.Advance(0)
	clk.Advance(time.Second)
	st := r.Status()
	if st.LastDuration != 40*time.Millisecond || st.TotalDuration != 80*time.Millisecond || st.Attempts != 2 {
		t.Fatalf("status %+v", st)
	}
	if !st.LastFailureAt.Equal(st.LastAt) || st.LastAt.IsZero() {
		t.Fatalf("times %+v", st)
	}
	// Interval is from start to start: 960ms after the first ended.
	if d := sc.at[1].Sub(sc.at[0]); d != time.Second {
		t.Fatalf("attempts %v apart", d)
	}
}

func TestStop(t *testing.T) {
	clk, sc, rec, r := setup(t, Settings{Interval: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1})
	r.Start(0)
	clk.Advance(0)
	if len(rec.got()) != 1 {
		t.Fatal(rec.got())
	}
	r.Stop()
	r.Stop()
	if clk.Pending() != 0 {
		t.Fatalf("%d timers after Stop", clk.Pending())
	}
	clk.Advance(time.Hour)
	if sc.attempts() != 1 {
		t.Fatalf("%d attempts after Stop", sc.attempts())
	}
	r.Start(0)
	clk.Advance(time.Hour)
	if sc.attempts() != 1 {
		t.Fatal("Start after Stop made attempts")
	}
}

// Stop during an attempt cancels it; its result is not counted or reported.
func TestStopDuringAttempt(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	rec := &recorder{}
	entered := make(chan struct{})
	var cause error
	var r *Runner
	r = NewRunner(CheckFunc(func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		cause = context.Cause(ctx)
		return errDown
	}), Settings{Interval: time.Second, Timeout: time.Hour, FailureThreshold: 1}, clk, rec.hook)
	r.Start(0)
	go clk.Advance(0)
	<-entered
	r.Stop()
	r.Wait()
	if cause != errStopped {
		t.Fatalf("cause %v", cause)
	}
	if st := r.Status(); st.Attempts != 0 || len(rec.got()) != 0 {
		t.Fatalf("a cancelled attempt counted: %+v %v", st, rec.got())
	}
}

func TestRealClock(t *testing.T) {
	passed := make(chan Status, 1)
	r := NewRunner(CheckFunc(func(context.Context) error { return nil }),
		Settings{Interval: time.Hour, Timeout: time.Second}, nil, func(_, to State, st Status) { passed <- st })
	r.Start(0)
	select {
	case st := <-passed:
		if st.State != Passing || st.Attempts != 1 {
			t.Fatalf("%+v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt")
	}
	r.Stop()
	r.Wait()
}
