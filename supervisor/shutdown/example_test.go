package shutdown_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/supervisor/shutdown"
)

func ExampleManager() {
	m := shutdown.New(shutdown.WithTimeout(30 * time.Second))
	m.Register("stop-accepting", 10, time.Second, func(context.Context) error {
		fmt.Println("stop accepting")
		return nil
	})
	m.Register("flush", 20, 5*time.Second, func(context.Context) error {
		fmt.Println("flush")
		return errors.New("disk full")
	})
	m.Register("close-db", 30, 5*time.Second, func(context.Context) error {
		fmt.Println("close db")
		return nil
	})
	// In a program: m.InstallSignals() and then m.Wait(ctx).
	res := m.Run(context.Background())
	fmt.Println(res.Reason, res.Errors, res.ExitCode)
	// Output:
	// stop accepting
	// flush
	// close db
	// requested map[flush:disk full] 0
}

// Steps of equal priority run in parallel unless one must come after
// another: db stops after the programs that use it.
func ExampleManager_RegisterStep() {
	m := shutdown.New()
	stop := func(name string) func(context.Context) error {
		return func(context.Context) error { fmt.Println("stopped", name); return nil }
	}
	m.RegisterStep(shutdown.Step{Name: "web", Priority: 100, Fn: stop("web")})
	m.RegisterStep(shutdown.Step{Name: "db", Priority: 100, After: []string{"web"}, Fn: stop("db")})
	err := m.RegisterStep(shutdown.Step{Name: "cache", Priority: 50, After: []string{"db"}, Fn: stop("cache")})
	fmt.Println(errors.Is(err, shutdown.ErrCycle))
	m.Run(context.Background())
	// Output:
	// true
	// stopped web
	// stopped db
}

// A step that ignores its context is abandoned when the total timeout
// passes; the result names it and carries the force exit code.
func ExampleManager_timeout() {
	clk := clock.NewFake(time.Time{})
	m := shutdown.New(shutdown.WithClock(clk), shutdown.WithTimeout(10*time.Second),
		shutdown.WithForceExitCode(70),
		shutdown.WithProgress(4*time.Second, func(waiting []string) { fmt.Println("still waiting for", waiting) }))
	started, release := make(chan struct{}), make(chan struct{})
	m.Register("stuck", 1, 0, func(context.Context) error {
		close(started)
		<-release
		return nil
	})
	m.Trigger("SIGTERM")
	<-started
	clk.Advance(10 * time.Second)
	res := m.Wait(context.Background())
	close(release)
	fmt.Println(res.Reason, res.TimedOut, res.Unfinished, res.ExitCode, res.Duration)
	// Output:
	// still waiting for [stuck]
	// still waiting for [stuck]
	// SIGTERM true [stuck] 70 10s
}
