package watchdog

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// recorder counts timeouts and remembers the fake time of each.
type recorder struct {
	clk *clock.Fake
	mu  sync.Mutex
	at  []time.Duration
}

func (r *recorder) hook() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at = append(r.at, r.clk.Since(t0))
}

func (r *recorder) fired() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.at...)
}

func newFake(t *testing.T, timeout time.Duration, opts ...Option) (*Watchdog, *clock.Fake, *recorder) {
	t.Helper()
	clk := clock.NewFake(t0)
	r := &recorder{clk: clk}
	w := New(timeout, r.hook, append([]Option{WithClock(clk)}, opts...)...)
	return w, clk, r
}

func wantFired(t *testing.T, r *recorder, want ...time.Duration) {
	t.Helper()
	got := r.fired()
	if len(got) != len(want) {
		t.Fatalf("fired at %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("fired at %v, want %v", got, want)
		}
	}
}

func TestNotStartedNeverFires(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second)
	w.Ping()
	clk.Advance(time.Hour)
	wantFired(t, r)
	if w.Running() || clk.Pending() != 0 {
		t.Fatal("watchdog armed before Start")
	}
}

func TestStartGraceThenOneShot(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second, WithStartGrace(30*time.Second))
	w.Start()
	if d, ok := w.Deadline(); !ok || !d.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("deadline %v %v, want start + grace", d, ok)
	}
	clk.Advance(29 * time.Second)
	wantFired(t, r)
	clk.Advance(time.Second)
	wantFired(t, r, 30*time.Second)
	if w.Running() {
		t.Fatal("still running after a one-shot timeout")
	}
	if _, ok := w.Deadline(); ok {
		t.Fatal("expired watchdog reports a deadline")
	}
	clk.Advance(time.Hour)
	wantFired(t, r, 30*time.Second)
	if s := w.Stats(); s.Timeouts != 1 || s.Uptime != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPingsPostponeTimeoutWithoutNewTimers(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second)
	w.Start()
	for i := 0; i < 40; i++ {
		clk.Advance(5 * time.Second)
		w.Ping()
		if n := clk.Pending(); n != 1 {
			t.Fatalf("%d pending timers, want exactly 1", n)
		}
	}
	wantFired(t, r)
	// Last ping at 200s: the deadline is 210s.
	if d, ok := w.Deadline(); !ok || !d.Equal(t0.Add(210*time.Second)) {
		t.Fatalf("deadline %v, want 210s after start", d.Sub(t0))
	}
	clk.Advance(9*time.Second + 999*time.Millisecond)
	wantFired(t, r)
	clk.Advance(time.Millisecond)
	wantFired(t, r, 210*time.Second)
	if s := w.Stats(); s.Pings != 40 || s.Timeouts != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPingJustBeforeDeadline(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second)
	w.Start()
	clk.Advance(9 * time.Second)
	w.Ping()
	clk.Advance(time.Second) // original deadline: re-arms for 19s
	wantFired(t, r)
	clk.Advance(8 * time.Second)
	wantFired(t, r)
	clk.Advance(time.Second)
	wantFired(t, r, 19*time.Second)
}

func TestPingAtStartInstantCounts(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second, WithStartGrace(time.Minute))
	w.Start()
	w.Ping() // same fake instant as Start: the deadline becomes start+timeout
	clk.Advance(time.Minute)
	wantFired(t, r, 10*time.Second)
}

func TestPingBeforeStartDoesNotCount(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second, WithStartGrace(20*time.Second))
	w.Ping()
	clk.Advance(5 * time.Second)
	w.Start()
	clk.Advance(time.Minute)
	wantFired(t, r, 25*time.Second)
}

func TestStop(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second)
	w.Stop() // before Start: harmless
	w.Start()
	clk.Advance(5 * time.Second)
	w.Stop()
	w.Stop()
	clk.Advance(time.Hour)
	wantFired(t, r)
	if clk.Pending() != 0 || w.Running() {
		t.Fatal("timer left after Stop")
	}
	if s := w.Stats(); s.Uptime != 0 {
		t.Fatalf("uptime %v after Stop", s.Uptime)
	}
}

func TestStopAfterTimerWentOffIsHonoured(t *testing.T) {
	// A timer callback of an older generation must not call the hook.
	w, clk, r := newFake(t, 10*time.Second)
	w.Start()
	gen := w.gen
	w.Stop()
	w.fire(gen)
	clk.Advance(time.Minute)
	wantFired(t, r)
}

func TestStartWhileRunningIsNoOp(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second)
	w.Start()
	clk.Advance(8 * time.Second)
	w.Start()
	clk.Advance(2 * time.Second)
	wantFired(t, r, 10*time.Second)
}

func TestResetRestartsGrace(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second, WithStartGrace(20*time.Second))
	w.Start()
	clk.Advance(15 * time.Second)
	w.Reset()
	clk.Advance(19 * time.Second)
	wantFired(t, r)
	clk.Advance(time.Second)
	wantFired(t, r, 35*time.Second)
	// Reset after expiry re-arms too.
	w.Reset()
	clk.Advance(20 * time.Second)
	wantFired(t, r, 35*time.Second, 55*time.Second)
	if clk.Pending() != 0 {
		t.Fatalf("%d timers pending", clk.Pending())
	}
}

func TestHookMayReArm(t *testing.T) {
	clk := clock.NewFake(t0)
	var w *Watchdog
	var at []time.Duration
	w = New(10*time.Second, func() {
		at = append(at, clk.Since(t0))
		if len(at) < 3 {
			w.Reset() // the owner decides to watch another period
		} else {
			w.Stop()
		}
	}, WithClock(clk))
	w.Start()
	clk.Advance(time.Hour)
	if len(at) != 3 || at[0] != 10*time.Second || at[1] != 20*time.Second || at[2] != 30*time.Second {
		t.Fatalf("fired at %v", at)
	}
	if w.Stats().Timeouts != 3 {
		t.Fatalf("stats %+v", w.Stats())
	}
}

func TestRepeat(t *testing.T) {
	w, clk, r := newFake(t, 10*time.Second, WithRepeat())
	w.Start()
	clk.Advance(35 * time.Second)
	wantFired(t, r, 10*time.Second, 20*time.Second, 30*time.Second)
	w.Ping() // at 35s: next deadline 45s
	clk.Advance(9 * time.Second)
	wantFired(t, r, 10*time.Second, 20*time.Second, 30*time.Second)
	clk.Advance(time.Second)
	wantFired(t, r, 10*time.Second, 20*time.Second, 30*time.Second, 45*time.Second)
	if !w.Running() {
		t.Fatal("repeating watchdog stopped itself")
	}
	w.Stop()
	clk.Advance(time.Hour)
	if n := len(r.fired()); n != 4 {
		t.Fatalf("fired %d times after Stop", n)
	}
}

func TestSinceLastPingAndUptime(t *testing.T) {
	w, clk, _ := newFake(t, 10*time.Second)
	clk.Advance(3 * time.Second)
	if d := w.SinceLastPing(); d != 3*time.Second {
		t.Fatalf("SinceLastPing before any ping = %v, want time since New", d)
	}
	w.Start()
	clk.Advance(2 * time.Second)
	w.Ping()
	clk.Advance(1500 * time.Millisecond)
	if d := w.SinceLastPing(); d != 1500*time.Millisecond {
		t.Fatalf("SinceLastPing = %v", d)
	}
	if s := w.Stats(); s.Uptime != 3500*time.Millisecond || s.Pings != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNewPanicsOnBadArguments(t *testing.T) {
	for name, f := range map[string]func(){
		"zero timeout": func() { New(0, func() {}) },
		"nil hook":     func() { New(time.Second, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// TestConcurrentPings pings from 100 goroutines while the clock advances
// and the watchdog is reset, for the race detector, and checks the count.
func TestConcurrentPings(t *testing.T) {
	w, clk, _ := newFake(t, 10*time.Second, WithRepeat())
	w.Start()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			clk.Advance(time.Second)
			_ = w.Stats()
			_ = w.SinceLastPing()
			_, _ = w.Deadline()
		}
	}()
	var pingers sync.WaitGroup
	for i := 0; i < 100; i++ {
		pingers.Add(1)
		go func() {
			defer pingers.Done()
			for j := 0; j < 1000; j++ {
				w.Ping()
				if j%250 == 0 {
					w.Reset()
				}
			}
		}()
	}
	pingers.Wait()
	close(stop)
	wg.Wait()
	w.Stop()
	if s := w.Stats(); s.Pings != 100_000 {
		t.Fatalf("counted %d pings, want 100000", s.Pings)
	}
}

// TestConcurrentRealClock races real timers that fire every microsecond
// against Stop, Start, Reset and Ping from 100 goroutines, for the race
// detector. (That no hook call begins after Stop is checked with the fake
// clock in TestStop and TestStopAfterTimerWentOffIsHonoured.)
func TestConcurrentRealClock(t *testing.T) {
	var calls atomic.Int64
	first := make(chan struct{})
	var once sync.Once
	w := New(time.Microsecond, func() {
		calls.Add(1)
		once.Do(func() { close(first) })
	}, WithRepeat())
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				w.Ping()
				switch (i + j) % 50 {
				case 0:
					w.Reset()
				case 1:
					w.Stop()
				case 2:
					w.Start()
				}
			}
		}(i)
	}
	wg.Wait()
	w.Start()
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("a 1µs watchdog never fired")
	}
	w.Stop()
	if w.Running() || w.Stats().Uptime != 0 {
		t.Fatal("running after Stop")
	}
	if s := w.Stats(); s.Pings != 20_000 || s.Timeouts < uint64(calls.Load()) {
		t.Fatalf("stats %+v, hook calls %d", s, calls.Load())
	}
}

func BenchmarkPing(b *testing.B) {
	w := New(time.Hour, func() {})
	w.Start()
	defer w.Stop()
	b.ReportAllocs()
	for b.Loop() {
		w.Ping()
	}
}

// BenchmarkClockSince measures the clock read alone, the floor of Ping.
func BenchmarkClockSince(b *testing.B) {
	epoch := time.Now()
	var sink time.Duration
	for b.Loop() {
		sink += time.Since(epoch)
	}
	_ = sink
}

func BenchmarkPingParallel(b *testing.B) {
	w := New(time.Hour, func() {})
	w.Start()
	defer w.Stop()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Ping()
		}
	})
}

func TestPingAtNeverMovesBack(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	fired := 0
	w := New(10*time.Second, func() { fired++ }, WithClock(clk))
	w.Start()
	clk.Advance(5 * time.Second)
	w.PingAt(clk.Now().Add(-2 * time.Second)) // deadline: 3s + 10s = 13s
	clk.Advance(7*time.Second + 999*time.Millisecond)
	if fired != 0 {
		t.Fatal("fired before the deadline of a back-dated ping")
	}
	w.PingAt(clk.Now().Add(-time.Hour)) // older than the last ping: ignored
	clk.Advance(time.Millisecond)
	if fired != 1 {
		t.Fatalf("fired %d times at the back-dated deadline, want 1", fired)
	}
}

func TestBeatTime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	for _, c := range []struct {
		exists bool
		mtime  time.Time
		want   time.Time
	}{
		{true, now.Add(-5 * time.Millisecond), now.Add(-5 * time.Millisecond)}, // queued event: the write's time
		{true, now.Add(-time.Hour), now},                                       // old file renamed onto the name
		{true, now.Add(time.Second), now},                                      // another clock
		{false, now.Add(-5 * time.Millisecond), now},
	} {
		if got := beatTime(now, c.exists, c.mtime); !got.Equal(c.want) {
			t.Errorf("beatTime(%v, %v) = %v, want %v", c.exists, c.mtime, got, c.want)
		}
	}
}
