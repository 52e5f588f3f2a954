package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/supervisor/breaker"
)

// A Machine driven by an event loop: Allow before each start, Failure or
// Success after each run.
func ExampleMachine() {
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	m := breaker.NewMachine(breaker.Settings{MaxFailures: 2, ResetTimeout: 30 * time.Second})
	m.OnStateChange(func(from, to breaker.State, _ time.Time) { fmt.Println(from, "->", to) })

	for i := 0; i < 2; i++ {
		if m.Allow(now) == nil {
			m.Failure(now) // the run failed
		}
	}
	now = now.Add(10 * time.Second)
	err := m.Allow(now)
	fmt.Println(err, errors.Is(err, breaker.ErrOpen))

	now = now.Add(20 * time.Second)
	if m.Allow(now) == nil { // the half-open trial
		m.Success(now)
	}
	fmt.Println(m.State(now), m.Stats())
	// Output:
	// closed -> open
	// breaker: open, half-open in 20s true
	// open -> half_open
	// half_open -> closed
	// closed {3 1 2 1 3}
}

func ExampleBreaker_Call() {
	clk := clock.NewFake(time.Time{})
	b := breaker.New(breaker.Settings{MaxFailures: 1, ResetTimeout: time.Minute}, breaker.WithClock(clk))
	ctx := context.Background()

	err := b.Call(ctx, func(context.Context) error { return errors.New("connection refused") })
	fmt.Println(err, b.State())

	err = b.Call(ctx, func(context.Context) error { return nil })
	var open *breaker.OpenError
	if errors.As(err, &open) {
		fmt.Println("refused, retry in", open.Remaining)
	}
	// Output:
	// connection refused open
	// refused, retry in 1m0s
}

func ExampleDo() {
	b := breaker.New(breaker.Settings{})
	n, err := breaker.Do(context.Background(), b, func(context.Context) (int, error) { return 7, nil })
	fmt.Println(n, err, b.Stats().Successes)
	// Output: 7 <nil> 1
}
