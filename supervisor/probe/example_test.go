package probe_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/supervisor/probe"
)

// A runner driven by a fake clock: the check fails twice, then passes.
func ExampleRunner() {
	clk := clock.NewFake(time.Time{})
	n := 0
	check := probe.CheckFunc(func(context.Context) error {
		n++
		if n <= 2 {
			return errors.New("connection refused")
		}
		return nil
	})
	r := probe.NewRunner(check, probe.Settings{Interval: time.Second, Timeout: time.Second,
		SuccessThreshold: 1, FailureThreshold: 2}, clk, func(from, to probe.State, st probe.Status) {
		fmt.Printf("%s -> %s after %d attempts (%s)\n", from, to, st.Attempts, st.LastError)
	})
	r.Start(0)
	clk.Advance(0)
	clk.Advance(2 * time.Second)
	r.Stop()
	// Output:
	// unknown -> failing after 2 attempts (connection refused)
	// failing -> passing after 3 attempts (connection refused)
}
