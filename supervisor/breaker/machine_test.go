package breaker

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half_open", State(9): "State(9)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestSettingsDefaults(t *testing.T) {
	got := NewMachine(Settings{MaxFailures: -1}).Settings()
	want := Settings{MaxFailures: 5, ResetTimeout: 60 * time.Second, HalfOpenMaxCalls: 1}
	if got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	// Defaults take effect: five failures open the breaker, not four.
	m := NewMachine(Settings{})
	for i := 0; i < 4; i++ {
		m.Failure(t0)
	}
	if s := m.State(t0); s != Closed {
		t.Fatalf("after 4 failures state %v", s)
	}
	m.Failure(t0)
	if s := m.State(t0); s != Open {
		t.Fatalf("after 5 failures state %v", s)
	}
	if r := m.Remaining(t0.Add(59 * time.Second)); r != time.Second {
		t.Fatalf("remaining %v, want 1s", r)
	}
}

// TestMachineWalk drives one machine through every state and transition,
// step by step, checking the observable state after each step.
func TestMachineWalk(t *testing.T) {
	type step struct {
		name      string
		at        time.Duration // time since t0
		do        string        // allow, success, failure, release, reset, state
		wantErr   bool          // for allow
		wantState State
		wantFails int
		wantRem   time.Duration
	}
	steps := []step{
		{"closed admits", 0, "allow", false, Closed, 0, 0},
		{"first failure", 1 * time.Second, "failure", false, Closed, 1, 0},
		{"success clears the count", 2 * time.Second, "success", false, Closed, 0, 0},
		{"failure 1", 3 * time.Second, "failure", false, Closed, 1, 0},
		{"failure 2", 4 * time.Second, "failure", false, Closed, 2, 0},
		{"failure 3 opens", 5 * time.Second, "failure", false, Open, 3, 10 * time.Second},
		{"open refuses", 6 * time.Second, "allow", true, Open, 3, 9 * time.Second},
		{"still open just before timeout", 15*time.Second - 1, "state", false, Open, 3, 1},
		{"half-open at timeout", 15 * time.Second, "state", false, HalfOpen, 3, 0},
		{"trial 1 admitted", 15 * time.Second, "allow", false, HalfOpen, 3, 0},
		{"trial 2 admitted", 15 * time.Second, "allow", false, HalfOpen, 3, 0},
		{"third trial refused", 15 * time.Second, "allow", true, HalfOpen, 3, 0},
		{"release gives a slot back", 16 * time.Second, "release", false, HalfOpen, 3, 0},
		{"slot reused", 16 * time.Second, "allow", false, HalfOpen, 3, 0},
		{"trial failure reopens", 17 * time.Second, "failure", false, Open, 4, 10 * time.Second},
		{"timer restarted", 26 * time.Second, "allow", true, Open, 4, time.Second},
		{"half-open again", 27 * time.Second, "allow", false, HalfOpen, 4, 0},
		{"trial success closes", 28 * time.Second, "success", false, Closed, 0, 0},
		{"closed admits again", 28 * time.Second, "allow", false, Closed, 0, 0},
		{"failure 1 again", 29 * time.Second, "failure", false, Closed, 1, 0},
		{"failure 2 again", 29 * time.Second, "failure", false, Closed, 2, 0},
		{"failure 3 opens again", 29 * time.Second, "failure", false, Open, 3, 10 * time.Second},
		{"failure while open is only counted", 30 * time.Second, "failure", false, Open, 3, 9 * time.Second},
		{"success while open is only counted", 30 * time.Second, "success", false, Open, 3, 9 * time.Second},
		{"manual reset closes", 31 * time.Second, "reset", false, Closed, 0, 0},
		{"reset of a closed breaker", 32 * time.Second, "reset", false, Closed, 0, 0},
	}
	m := NewMachine(Settings{MaxFailures: 3, ResetTimeout: 10 * time.Second, HalfOpenMaxCalls: 2})
	var changes []string
	m.OnStateChange(func(from, to State, now time.Time) {
		changes = append(changes, from.String()+">"+to.String()+"@"+now.Sub(t0).String())
	})
	for _, s := range steps {
		now := t0.Add(s.at)
		switch s.do {
		case "allow":
			err := m.Allow(now)
			if (err != nil) != s.wantErr {
				t.Fatalf("%s: Allow = %v, want error %v", s.name, err, s.wantErr)
			}
			if err != nil {
				var oe *OpenError
				if !errors.As(err, &oe) || !errors.Is(err, ErrOpen) {
					t.Fatalf("%s: error %v is not an *OpenError matching ErrOpen", s.name, err)
				}
				if oe.Remaining != s.wantRem {
					t.Fatalf("%s: OpenError.Remaining %v, want %v", s.name, oe.Remaining, s.wantRem)
				}
			}
		case "success":
			m.Success(now)
		case "failure":
			m.Failure(now)
		case "release":
			m.Release(now)
		case "reset":
			m.Reset(now)
		case "state":
		}
		if got := m.State(now); got != s.wantState {
			t.Fatalf("%s: state %v, want %v", s.name, got, s.wantState)
		}
		if got := m.Failures(); got != s.wantFails {
			t.Fatalf("%s: failures %d, want %d", s.name, got, s.wantFails)
		}
		if got := m.Remaining(now); got != s.wantRem {
			t.Fatalf("%s: remaining %v, want %v", s.name, got, s.wantRem)
		}
	}
	want := []string{
		"closed>open@5s", "open>half_open@15s", "half_open>open@17s", "open>half_open@27s",
		"half_open>closed@28s", "closed>open@29s", "open>closed@31s",
	}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("change %d = %s, want %s (all: %v)", i, changes[i], want[i], changes)
		}
	}
	st := m.Stats()
	wantStats := Stats{Total: 6, Successes: 3, Failures: 9, Rejected: 3, StateChanges: 7}
	if st != wantStats {
		t.Fatalf("stats %+v, want %+v", st, wantStats)
	}
}

func TestOpenErrorText(t *testing.T) {
	e := &OpenError{Remaining: 3 * time.Second, State: Open}
	if got := e.Error(); got != "breaker: open, half-open in 3s" {
		t.Fatalf("Error() = %q", got)
	}
	e = &OpenError{State: HalfOpen}
	if got := e.Error(); got != "breaker: half_open, all trial calls in progress" {
		t.Fatalf("Error() = %q", got)
	}
	if errors.Is(e, errors.New("breaker: open")) {
		t.Fatal("OpenError matched an unrelated error with the same text")
	}
}
