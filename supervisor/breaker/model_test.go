package breaker

import (
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// model is a deliberately naive breaker: string states, the open deadline
// stored instead of the opening time, and no generations.
type model struct {
	max, half   int
	reset       time.Duration
	state       string
	fails       int
	openUntil   time.Time
	slots       int
	total, succ uint64
	fail, rej   uint64
	changes     uint64
}

func (md *model) set(s string) {
	md.state = s
	md.slots = 0
	md.changes++
}

func (md *model) tick(now time.Time) {
	if md.state == "open" && !now.Before(md.openUntil) {
		md.set("half_open")
	}
}

func (md *model) allow(now time.Time) (bool, time.Duration) {
	md.tick(now)
	if md.state == "open" {
		md.rej++
		return false, md.openUntil.Sub(now)
	}
	if md.state == "half_open" {
		if md.slots == md.half {
			md.rej++
			return false, 0
		}
		md.slots++
	}
	md.total++
	return true, 0
}

func (md *model) success(now time.Time) {
	md.tick(now)
	md.succ++
	if md.state == "closed" {
		md.fails = 0
	} else if md.state == "half_open" {
		md.fails = 0
		md.set("closed")
	}
}

func (md *model) failure(now time.Time) {
	md.tick(now)
	md.fail++
	if md.state == "open" {
		return
	}
	md.fails++
	if md.state == "half_open" || md.fails >= md.max {
		md.openUntil = now.Add(md.reset)
		md.set("open")
	}
}

func (md *model) release(now time.Time) {
	md.tick(now)
	if md.state == "half_open" && md.slots > 0 {
		md.slots--
	}
}

func (md *model) doReset() {
	md.fails = 0
	md.slots = 0
	if md.state != "closed" {
		md.set("closed")
	}
}

func (md *model) remaining(now time.Time) time.Duration {
	md.tick(now)
	if md.state != "open" {
		return 0
	}
	return md.openUntil.Sub(now)
}

func TestMachineMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := Settings{
			MaxFailures:      rapid.IntRange(1, 4).Draw(t, "max"),
			ResetTimeout:     time.Duration(rapid.IntRange(1, 5).Draw(t, "reset")) * time.Second,
			HalfOpenMaxCalls: rapid.IntRange(1, 3).Draw(t, "half"),
		}
		m := NewMachine(s)
		md := &model{max: s.MaxFailures, half: s.HalfOpenMaxCalls, reset: s.ResetTimeout, state: "closed"}
		var hookCalls uint64
		last := Closed
		m.OnStateChange(func(from, to State, _ time.Time) {
			if from != last || from == to {
				t.Fatalf("hook %v>%v after reaching %v", from, to, last)
			}
			last = to
			hookCalls++
		})
		now := t0
		steps := rapid.IntRange(20, 200).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			switch op := rapid.SampledFrom([]string{"allow", "success", "failure", "advance", "reset", "release"}).Draw(t, "op"); op {
			case "allow":
				err := m.Allow(now)
				ok, rem := md.allow(now)
				if (err == nil) != ok {
					t.Fatalf("Allow = %v, model admits %v", err, ok)
				}
				if err != nil {
					var oe *OpenError
					if !errors.As(err, &oe) || oe.Remaining != rem {
						t.Fatalf("Allow error %v, model remaining %v", err, rem)
					}
				}
			case "success":
				m.Success(now)
				md.success(now)
			case "failure":
				m.Failure(now)
				md.failure(now)
			case "advance":
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(3*s.ResetTimeout)).Draw(t, "d")))
			case "reset":
				m.Reset(now)
				md.doReset()
			case "release":
				m.Release(now)
				md.release(now)
			}
			if got, want := m.Remaining(now), md.remaining(now); got != want {
				t.Fatalf("remaining %v, model %v", got, want)
			}
			if got, want := m.State(now).String(), md.state; got != want {
				t.Fatalf("state %s, model %s", got, want)
			}
			if got, want := m.Failures(), md.fails; got != want {
				t.Fatalf("failures %d, model %d", got, want)
			}
			want := Stats{Total: md.total, Successes: md.succ, Failures: md.fail, Rejected: md.rej, StateChanges: md.changes}
			if got := m.Stats(); got != want {
				t.Fatalf("stats %+v, model %+v", got, want)
			}
			if hookCalls != md.changes {
				t.Fatalf("hook called %d times, model changed state %d times", hookCalls, md.changes)
			}
		}
	})
}
