package ratelimit_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/supervisor/ratelimit"
)

// Dropping log lines above 10 lines per second, with bursts of 20.
func ExampleLimiter_TryAcquire() {
	clk := clock.NewFake(time.Time{})
	l, err := ratelimit.New(10, time.Second, 20, ratelimit.WithClock(clk))
	if err != nil {
		panic(err)
	}
	kept, dropped := 0, 0
	for i := 0; i < 25; i++ {
		if l.TryAcquire() {
			kept++
		} else {
			dropped++
		}
	}
	fmt.Println(kept, dropped, l.NextIn())
	clk.Advance(time.Second)
	fmt.Println(l.Tokens(), l.Stats())
	// Output:
	// 20 5 100ms
	// 10 {20 5 0s}
}

func ExampleLimiter_WaitTimeout() {
	clk := clock.NewFake(time.Time{})
	l, _ := ratelimit.New(1, time.Minute, 1, ratelimit.WithClock(clk))
	fmt.Println(l.WaitTimeout(time.Second))
	err := l.WaitTimeout(time.Second)
	var ee *ratelimit.ExceededError
	if errors.As(err, &ee) {
		fmt.Println(err, ee.RetryAfter, errors.Is(err, ratelimit.ErrExceeded))
	}
	// Output:
	// <nil>
	// ratelimit: rate exceeded, retry after 1m0s 1m0s true
}
