package clock

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFakeRunsTimersInDeadlineOrder(t *testing.T) {
	c := NewFake(time.Time{})
	start := c.Now()
	var got []string
	var at []time.Duration
	c.AfterFunc(3*time.Second, func() { got = append(got, "c"); at = append(at, c.Since(start)) })
	c.AfterFunc(1*time.Second, func() { got = append(got, "a"); at = append(at, c.Since(start)) })
	b := c.AfterFunc(2*time.Second, func() { got = append(got, "b") })
	c.AfterFunc(1*time.Second, func() { got = append(got, "a2"); at = append(at, c.Since(start)) })
	if !b.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	if b.Stop() {
		t.Fatal("second Stop reported true")
	}
	c.Advance(2500 * time.Millisecond)
	if want := []string{"a", "a2"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("after 2.5s fired %v, want %v", got, want)
	}
	if at[0] != time.Second {
		t.Fatalf("timer saw clock at %v, want 1s", at[0])
	}
	if c.Since(start) != 2500*time.Millisecond {
		t.Fatalf("clock at %v", c.Since(start))
	}
	c.Advance(time.Second)
	if len(got) != 3 || got[2] != "c" || at[2] != 3*time.Second {
		t.Fatalf("got %v at %v", got, at)
	}
	if c.Pending() != 0 {
		t.Fatalf("pending %d", c.Pending())
	}
}

func TestFakeTimerRescheduledFromCallback(t *testing.T) {
	c := NewFake(time.Time{})
	n := 0
	var tm Timer
	tm = c.AfterFunc(time.Second, func() {
		n++
		if n < 3 {
			tm.Reset(time.Second)
		}
	})
	c.Advance(10 * time.Second)
	if n != 3 {
		t.Fatalf("fired %d times, want 3", n)
	}
}

func TestFakeReset(t *testing.T) {
	c := NewFake(time.Time{})
	fired := false
	tm := c.AfterFunc(time.Second, func() { fired = true })
	c.Advance(900 * time.Millisecond)
	if !tm.Reset(time.Second) {
		t.Fatal("Reset of pending timer reported false")
	}
	c.Advance(900 * time.Millisecond)
	if fired {
		t.Fatal("fired before reset deadline")
	}
	c.Advance(100 * time.Millisecond)
	if !fired {
		t.Fatal("did not fire at reset deadline")
	}
	if d, ok := c.NextDeadline(); ok {
		t.Fatalf("unexpected pending deadline %v", d)
	}
}

func TestRealAfterFunc(t *testing.T) {
	done := make(chan struct{})
	Real().AfterFunc(time.Millisecond, func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("real timer did not fire")
	}
}
