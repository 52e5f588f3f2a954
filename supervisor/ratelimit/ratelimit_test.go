package ratelimit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/supervise/supervise/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitPending spins (no sleep) until the fake clock holds n timers, i.e.
// until n waiters have armed their wake-up.
func waitPending(t testing.TB, clk *clock.Fake, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for clk.Pending() < n {
		if time.Now().After(deadline) {
			t.Fatalf("pending timers %d, want %d", clk.Pending(), n)
		}
		runtime.Gosched()
	}
}

func newFake(t testing.TB, r int, period time.Duration, burst int) (*Limiter, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	l, err := New(r, period, burst, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

func TestNewInvalid(t *testing.T) {
	for _, c := range []struct {
		r int
		p time.Duration
	}{{0, time.Second}, {-1, time.Second}, {1, 0}, {1, -time.Second}} {
		if _, err := New(c.r, c.p, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%d, %v) error %v, want ErrInvalid", c.r, c.p, err)
		}
	}
	l, err := New(7, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r, p, b := l.Rate(); r != 7 || p != time.Minute || b != 7 {
		t.Fatalf("Rate() = %d %v %d; burst 0 should mean burst = rate", r, p, b)
	}
}

func TestTryAcquireBurstAndRefill(t *testing.T) {
	l, clk := newFake(t, 10, time.Second, 20)
	if l.Tokens() != 20 || l.NextIn() != 0 {
		t.Fatalf("new bucket: tokens %v next %v", l.Tokens(), l.NextIn())
	}
	for i := 0; i < 20; i++ {
		if !l.TryAcquire() {
			t.Fatalf("token %d refused within burst", i)
		}
	}
	if l.TryAcquire() {
		t.Fatal("21st token granted")
	}
	if got := l.NextIn(); got != 100*time.Millisecond {
		t.Fatalf("NextIn %v, want 100ms", got)
	}
	clk.Advance(50 * time.Millisecond)
	if got := l.Tokens(); got != 0.5 {
		t.Fatalf("tokens %v after 50ms, want 0.5", got)
	}
	if got := l.NextIn(); got != 50*time.Millisecond {
		t.Fatalf("NextIn %v, want 50ms", got)
	}
	clk.Advance(50 * time.Millisecond)
	if !l.TryAcquire() || l.TryAcquire() {
		t.Fatal("want exactly one token after 100ms")
	}
	clk.Advance(time.Hour)
	if l.Tokens() != 20 {
		t.Fatalf("bucket overfilled: %v", l.Tokens())
	}
	if !l.TryAcquireN(20) || l.TryAcquireN(1) || l.TryAcquireN(21) {
		t.Fatal("TryAcquireN")
	}
	if !l.TryAcquireN(0) {
		t.Fatal("TryAcquireN(0) refused")
	}
	want := Stats{Acquired: 41, Rejected: 2 + 1 + 21}
	if got := l.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

// TestNextInRoundsUp: at 3 per second a token takes 333333333.3ns; after
// NextIn the token must really be there.
func TestNextInRoundsUp(t *testing.T) {
	l, clk := newFake(t, 3, time.Second, 1)
	for i := 0; i < 50; i++ {
		l.TryAcquire()
		d := l.NextIn()
		if d <= 0 {
			t.Fatalf("round %d: NextIn %v on an empty bucket", i, d)
		}
		clk.Advance(d)
		if l.Tokens() < 1 {
			t.Fatalf("round %d: %v tokens after NextIn %v", i, l.Tokens(), d)
		}
		if !l.TryAcquire() {
			t.Fatalf("round %d: no token after NextIn %v (tokens %v)", i, d, l.Tokens())
		}
	}
}

func TestWaitBlocksUntilClockAdvances(t *testing.T) {
	l, clk := newFake(t, 10, time.Second, 1)
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background()) }()
	waitPending(t, clk, 1)
	clk.Advance(99 * time.Millisecond)
	if clk.Pending() != 1 {
		t.Fatal("woken before the token was due")
	}
	clk.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := Stats{Acquired: 2, Waited: 100 * time.Millisecond}
	if got := l.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

// TestWaitFirstComeFirstServed: a second waiter is given the token after
// the first one's.
func TestWaitFirstComeFirstServed(t *testing.T) {
	l, clk := newFake(t, 10, time.Second, 1)
	l.TryAcquire()
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- l.Wait(context.Background()) }()
	waitPending(t, clk, 1)
	go func() { second <- l.Wait(context.Background()) }()
	waitPending(t, clk, 2)
	if l.TryAcquire() {
		t.Fatal("TryAcquire overtook the waiters")
	}
	clk.Advance(100 * time.Millisecond)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if clk.Pending() != 1 {
		t.Fatal("second waiter released with the first")
	}
	clk.Advance(100 * time.Millisecond)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := l.Stats().Waited; got != 300*time.Millisecond {
		t.Fatalf("waited %v, want 100ms+200ms", got)
	}
}

func TestWaitCancelReturnsToken(t *testing.T) {
	l, clk := newFake(t, 10, time.Second, 1)
	l.TryAcquire()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx) }()
	waitPending(t, clk, 1)
	if l.Tokens() != -1 {
		t.Fatalf("tokens %v while a wait holds a reservation, want -1", l.Tokens())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if clk.Pending() != 0 {
		t.Fatal("timer left behind")
	}
	clk.Advance(100 * time.Millisecond)
	if !l.TryAcquire() {
		t.Fatal("cancelled wait did not return its token")
	}
	if st := l.Stats(); st.Acquired != 2 || st.Rejected != 0 || st.Waited != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a done context = %v", err)
	}
}

func TestWaitTimeout(t *testing.T) {
	l, clk := newFake(t, 10, time.Second, 1)
	if err := l.WaitTimeout(0); err != nil {
		t.Fatal(err)
	}
	err := l.WaitTimeout(50 * time.Millisecond)
	var ee *ExceededError
	if !errors.As(err, &ee) || !errors.Is(err, ErrExceeded) || ee.RetryAfter != 100*time.Millisecond {
		t.Fatalf("WaitTimeout = %v, want ExceededError retry after 100ms", err)
	}
	if err.Error() != "ratelimit: rate exceeded, retry after 100ms" {
		t.Fatalf("text %q", err)
	}
	if l.Tokens() != 0 {
		t.Fatalf("refused wait kept its reservation: tokens %v", l.Tokens())
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitTimeout(100 * time.Millisecond) }()
	waitPending(t, clk, 1)
	clk.Advance(100 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Acquired != 2 || st.Rejected != 1 || st.Waited != 100*time.Millisecond {
		t.Fatalf("stats %+v", st)
	}
}

func TestWaitContextDeadlineTooSoon(t *testing.T) {
	l, _ := newFake(t, 1, time.Hour, 1)
	l.TryAcquire()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := l.Wait(ctx)
	var ee *ExceededError
	if !errors.As(err, &ee) || ee.RetryAfter != time.Hour {
		t.Fatalf("Wait = %v, want an immediate ExceededError", err)
	}
}

func TestWaitNBeyondBurst(t *testing.T) {
	l, _ := newFake(t, 10, time.Second, 5)
	if err := l.WaitN(context.Background(), 6); !errors.Is(err, ErrInvalid) {
		t.Fatalf("WaitN(6) with burst 5 = %v", err)
	}
	if err := l.WaitN(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitN(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

func TestReset(t *testing.T) {
	l, _ := newFake(t, 1, time.Minute, 3)
	l.TryAcquireN(3)
	l.Reset()
	if l.Tokens() != 3 || !l.TryAcquireN(3) {
		t.Fatalf("Reset did not refill: %v", l.Tokens())
	}
	if l.Stats().Acquired != 6 {
		t.Fatalf("Reset cleared the stats: %+v", l.Stats())
	}
}

func TestRealClockWait(t *testing.T) {
	l, err := New(1000, time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Stats(); st.Acquired != 3 || st.Waited <= 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestConcurrentTryAcquire: 100 goroutines, with the clock moving under
// them, never get more tokens than burst plus what the rate refilled.
func TestConcurrentTryAcquire(t *testing.T) {
	l, clk := newFake(t, 100, time.Second, 10)
	start := clk.Now()
	var got atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if l.TryAcquire() {
					got.Add(1)
				}
				if i%10 == 0 {
					clk.Advance(time.Millisecond)
				}
				_ = l.Tokens()
				_ = l.NextIn()
			}
		}()
	}
	wg.Wait()
	elapsed := clk.Since(start)
	limit := int64(10 + 100*elapsed.Seconds() + 1e-9)
	if got.Load() > limit || got.Load() < 10 {
		t.Fatalf("acquired %d in %v, limit %d", got.Load(), elapsed, limit)
	}
	st := l.Stats()
	if int64(st.Acquired) != got.Load() || st.Acquired+st.Rejected != 100*100 {
		t.Fatalf("stats %+v, acquired %d", st, got.Load())
	}
}

// TestConcurrentWait: 100 goroutines Wait on a 10/s bucket of 10; all get
// their token, and not before the rate allows.
func TestConcurrentWait(t *testing.T) {
	l, clk := newFake(t, 10, time.Second, 10)
	start := clk.Now()
	var done atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			done.Add(1)
		}()
	}
	for done.Load() < 100 {
		clk.Advance(10 * time.Millisecond)
		runtime.Gosched()
	}
	wg.Wait()
	if st := l.Stats(); st.Acquired != 100 {
		t.Fatalf("stats %+v", st)
	}
	// 90 tokens beyond the burst at 100ms each: at least 9s must pass.
	if el := clk.Since(start); el < 9*time.Second {
		t.Fatalf("100 tokens granted after %v", el)
	}
}

func BenchmarkTryAcquire(b *testing.B) {
	l, err := New(1_000_000_000, time.Second, 1_000_000_000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		l.TryAcquire()
	}
}

func BenchmarkXRateAllow(b *testing.B) {
	l := rate.NewLimiter(rate.Limit(1_000_000_000), 1_000_000_000)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow()
	}
}

func BenchmarkTryAcquireFakeClock(b *testing.B) {
	l, _ := newFake(b, 1_000_000_000, time.Second, 1_000_000_000)
	b.ReportAllocs()
	for b.Loop() {
		l.TryAcquire()
	}
}

func BenchmarkTryAcquireParallel(b *testing.B) {
	l, err := New(1_000_000_000, time.Second, 1_000_000_000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.TryAcquire()
		}
	})
}

func BenchmarkXRateAllowParallel(b *testing.B) {
	l := rate.NewLimiter(rate.Limit(1_000_000_000), 1_000_000_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}
