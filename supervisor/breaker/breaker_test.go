package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
)

var errBoom = errors.New("boom")

func fail(context.Context) error { return errBoom }
func ok(context.Context) error   { return nil }

func TestBreakerOpensAndRecovers(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	var mu sync.Mutex
	var changes []string
	b := New(Settings{MaxFailures: 2, ResetTimeout: 5 * time.Second}, WithClock(clk),
		WithOnStateChange(func(from, to State, now time.Time) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, fmt.Sprintf("%v>%v", from, to))
		}))
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := b.Call(ctx, fail); !errors.Is(err, errBoom) {
			t.Fatalf("call %d returned %v, want fn's error", i, err)
		}
	}
	if b.State() != Open || b.Failures() != 2 {
		t.Fatalf("state %v failures %d, want open 2", b.State(), b.Failures())
	}
	called := false
	clk.Advance(2 * time.Second)
	err := b.Call(ctx, func(context.Context) error { called = true; return nil })
	var oe *OpenError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOpen) || oe.Remaining != 3*time.Second || called {
		t.Fatalf("open breaker: err %v called %v", err, called)
	}
	if b.Remaining() != 3*time.Second {
		t.Fatalf("Remaining %v", b.Remaining())
	}
	clk.Advance(3 * time.Second)
	if b.State() != HalfOpen {
		t.Fatalf("state %v after reset timeout", b.State())
	}
	if err := b.Call(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if b.State() != Closed || b.Failures() != 0 {
		t.Fatalf("state %v failures %d after trial success", b.State(), b.Failures())
	}
	want := Stats{Total: 3, Successes: 1, Failures: 2, Rejected: 1, StateChanges: 3}
	if got := b.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(changes) != "[closed>open open>half_open half_open>closed]" {
		t.Fatalf("hook saw %v", changes)
	}
}

func TestBreakerExcludedAndIsFailure(t *testing.T) {
	errNotFound := errors.New("not found")
	b := New(Settings{MaxFailures: 1}, WithExcluded(errNotFound))
	if err := b.Call(context.Background(), func(context.Context) error {
		return fmt.Errorf("get x: %w", errNotFound)
	}); !errors.Is(err, errNotFound) {
		t.Fatalf("got %v", err)
	}
	if b.State() != Closed || b.Stats().Successes != 1 {
		t.Fatalf("excluded error: state %v stats %+v", b.State(), b.Stats())
	}
	b.Call(context.Background(), fail)
	if b.State() != Open {
		t.Fatalf("other error did not open: %v", b.State())
	}

	b = New(Settings{MaxFailures: 1}, WithIsFailure(func(err error) bool { return !errors.Is(err, errBoom) }))
	b.Call(context.Background(), fail)
	if b.State() != Closed {
		t.Fatalf("IsFailure=false error opened the breaker")
	}
	b.Call(context.Background(), func(context.Context) error { return errNotFound })
	if b.State() != Open {
		t.Fatalf("IsFailure=true error did not open the breaker")
	}
}

func TestBreakerCallerCancellationIsNotAFailure(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	b := New(Settings{MaxFailures: 1, ResetTimeout: time.Second}, WithClock(clk))
	ctx, cancel := context.WithCancel(context.Background())
	err := b.Call(ctx, func(ctx context.Context) error {
		cancel()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) || b.State() != Closed || b.Failures() != 0 {
		t.Fatalf("err %v state %v failures %d", err, b.State(), b.Failures())
	}
	// An already-done context: fn is not called, nothing counted.
	err = b.Call(ctx, func(context.Context) error { t.Fatal("fn called"); return nil })
	if !errors.Is(err, context.Canceled) || b.Stats().Total != 1 {
		t.Fatalf("err %v stats %+v", err, b.Stats())
	}
	// A context error of fn's own while the caller's ctx is fine is a failure.
	b.Call(context.Background(), func(context.Context) error { return context.DeadlineExceeded })
	if b.State() != Open {
		t.Fatalf("fn's own deadline error did not count")
	}
	// In half-open, a cancelled trial gives its slot back.
	clk.Advance(time.Second)
	ctx, cancel = context.WithCancel(context.Background())
	b.Call(ctx, func(ctx context.Context) error { cancel(); return ctx.Err() })
	if b.State() != HalfOpen {
		t.Fatalf("state %v", b.State())
	}
	if err := b.Call(context.Background(), ok); err != nil {
		t.Fatalf("slot not given back: %v", err)
	}
	if b.State() != Closed {
		t.Fatalf("state %v", b.State())
	}
}

func TestBreakerPanicCountsAndRepanics(t *testing.T) {
	b := New(Settings{MaxFailures: 1})
	func() {
		defer func() {
			if r := recover(); r != "kaput" {
				t.Fatalf("recovered %v, want the original panic", r)
			}
		}()
		b.Call(context.Background(), func(context.Context) error { panic("kaput") })
		t.Fatal("Call returned after a panic")
	}()
	if b.State() != Open || b.Stats().Failures != 1 {
		t.Fatalf("state %v stats %+v", b.State(), b.Stats())
	}
}

func TestDo(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	b := New(Settings{MaxFailures: 1}, WithClock(clk))
	v, err := Do(context.Background(), b, func(context.Context) (int, error) { return 42, nil })
	if v != 42 || err != nil {
		t.Fatalf("Do = %v, %v", v, err)
	}
	_, err = Do(context.Background(), b, func(context.Context) (string, error) { return "", errBoom })
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	s, err := Do(context.Background(), b, func(context.Context) (string, error) { return "x", nil })
	if s != "" || !errors.Is(err, ErrOpen) {
		t.Fatalf("Do on open breaker = %q, %v", s, err)
	}
}

func TestBreakerReset(t *testing.T) {
	b := New(Settings{MaxFailures: 1})
	b.Call(context.Background(), fail)
	b.Reset()
	if b.State() != Closed || b.Failures() != 0 || b.Remaining() != 0 {
		t.Fatalf("after Reset: %v %d %v", b.State(), b.Failures(), b.Remaining())
	}
	if b.Settings().HalfOpenMaxCalls != 1 {
		t.Fatalf("settings %+v", b.Settings())
	}
}

// TestStaleOutcomeIgnored: a call admitted while closed that fails after the
// breaker was reset does not count toward the new closed period.
func TestStaleOutcomeIgnored(t *testing.T) {
	b := New(Settings{MaxFailures: 1})
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- b.Call(context.Background(), func(context.Context) error {
			close(started)
			<-release
			return errBoom
		})
	}()
	<-started
	b.Reset()
	close(release)
	<-done
	if b.State() != Closed || b.Failures() != 0 || b.Stats().Failures != 1 {
		t.Fatalf("stale failure moved the state: %v %d %+v", b.State(), b.Failures(), b.Stats())
	}
}

// TestHalfOpenAdmitsExactlyMaxCalls: with 100 goroutines calling at once in
// half-open, exactly HalfOpenMaxCalls run; the rest are refused.
func TestHalfOpenAdmitsExactlyMaxCalls(t *testing.T) {
	const trials = 3
	clk := clock.NewFake(time.Time{})
	b := New(Settings{MaxFailures: 1, ResetTimeout: time.Second, HalfOpenMaxCalls: trials}, WithClock(clk))
	b.Call(context.Background(), fail)
	clk.Advance(time.Second)
	var running, admitted, refused atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.Call(context.Background(), func(context.Context) error {
				admitted.Add(1)
				running.Add(1)
				ready.Done()
				<-release
				return nil
			})
			if errors.Is(err, ErrOpen) {
				refused.Add(1)
				ready.Done()
			}
		}()
	}
	ready.Wait()
	if admitted.Load() != trials || refused.Load() != 100-trials {
		t.Fatalf("admitted %d refused %d, want %d and %d", admitted.Load(), refused.Load(), trials, 100-trials)
	}
	close(release)
	wg.Wait()
	if b.State() != Closed {
		t.Fatalf("state %v", b.State())
	}
	st := b.Stats()
	if st.Successes != trials || st.Rejected != 100-trials {
		t.Fatalf("stats %+v", st)
	}
}

// TestConcurrentRace hammers every method from 100 goroutines (run with
// -race) and checks the counters add up.
func TestConcurrentRace(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	var hooks atomic.Uint64
	var b *Breaker
	b = New(Settings{MaxFailures: 3, ResetTimeout: time.Millisecond, HalfOpenMaxCalls: 2}, WithClock(clk),
		WithOnStateChange(func(from, to State, now time.Time) {
			hooks.Add(1)
			_ = b.Failures() // the hook may call the breaker
		}))
	var wg sync.WaitGroup
	const perG = 200
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				switch (g + i) % 7 {
				case 0:
					b.Call(context.Background(), fail)
				case 1:
					clk.Advance(time.Millisecond / 2)
				case 2:
					_ = b.State()
					_ = b.Remaining()
					_ = b.Stats()
				case 3:
					if i%50 == 0 {
						b.Reset()
					}
				default:
					Do(context.Background(), b, func(context.Context) (int, error) { return 1, nil })
				}
			}
		}()
	}
	wg.Wait()
	st := b.Stats()
	if st.Total != st.Successes+st.Failures {
		t.Fatalf("admitted %d but %d outcomes", st.Total, st.Successes+st.Failures)
	}
	calls := uint64(0)
	for g := 0; g < 100; g++ {
		for i := 0; i < perG; i++ {
			if k := (g + i) % 7; k == 0 || k >= 4 {
				calls++
			}
		}
	}
	if st.Total+st.Rejected != calls {
		t.Fatalf("total %d + rejected %d != calls %d", st.Total, st.Rejected, calls)
	}
	if hooks.Load() != st.StateChanges {
		t.Fatalf("hook called %d times, %d state changes", hooks.Load(), st.StateChanges)
	}
}
