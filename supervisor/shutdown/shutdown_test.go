package shutdown

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/supervise/supervise/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// log records what steps do, in order.
type log struct {
	mu  sync.Mutex
	evs []string
}

func (l *log) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, s)
}

func (l *log) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.evs...)
}

func index(evs []string, s string) int {
	for i, e := range evs {
		if e == s {
			return i
		}
	}
	return -1
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newFake(opts ...Option) (*Manager, *clock.Fake) {
	clk := clock.NewFake(time.Time{})
	return New(append([]Option{WithClock(clk)}, opts...)...), clk
}

// TestPriorityOrderAndParallelism: 10 runs before both 20s, which run
// together (each waits until the other has started), before 30.
func TestPriorityOrderAndParallelism(t *testing.T) {
	m, _ := newFake()
	var l log
	var both sync.WaitGroup
	both.Add(2)
	simple := func(name string) func(context.Context) error {
		return func(context.Context) error { l.add(name + " start"); l.add(name + " end"); return nil }
	}
	pair := func(name string) func(context.Context) error {
		return func(context.Context) error {
			l.add(name + " start")
			both.Done()
			both.Wait() // only returns if the other 20 runs at the same time
			l.add(name + " end")
			return nil
		}
	}
	must(t, m.Register("c", 30, 0, simple("c")))
	must(t, m.Register("b1", 20, 0, pair("b1")))
	must(t, m.Register("a", 10, 0, simple("a")))
	must(t, m.Register("b2", 20, 0, pair("b2")))
	res := m.Run(context.Background())
	if len(res.Errors) != 0 || len(res.Unfinished) != 0 || res.ExitCode != 0 || res.TimedOut || res.Forced || res.Reason != "requested" {
		t.Fatalf("result %+v", res)
	}
	evs := l.get()
	if evs[0] != "a start" || evs[1] != "a end" || evs[6] != "c start" {
		t.Fatalf("order %v", evs)
	}
	for _, b := range []string{"b1", "b2"} {
		if i := index(evs, b+" end"); i < 2 || i > 5 {
			t.Fatalf("order %v", evs)
		}
	}
}

func TestAfterOrdersEqualPriorities(t *testing.T) {
	m, _ := newFake()
	var l log
	step := func(name string) func(context.Context) error {
		return func(context.Context) error { l.add(name); return nil }
	}
	// web and worker depend on db: db stops after both.
	must(t, m.RegisterStep(Step{Name: "web", Priority: 100, Fn: step("web")}))
	must(t, m.RegisterStep(Step{Name: "worker", Priority: 100, Fn: step("worker")}))
	must(t, m.RegisterStep(Step{Name: "db", Priority: 100, After: []string{"web", "worker"}, Fn: step("db")}))
	must(t, m.RegisterStep(Step{Name: "cache", Priority: 100, After: []string{"db"}, Fn: step("cache")}))
	m.Run(context.Background())
	evs := l.get()
	if len(evs) != 4 || index(evs, "db") != 2 || index(evs, "cache") != 3 {
		t.Fatalf("order %v", evs)
	}
}

func TestRegisterRefusals(t *testing.T) {
	m, _ := newFake()
	nop := func(context.Context) error { return nil }
	must(t, m.Register("a", 10, 0, nop))
	must(t, m.Register("b", 20, 0, nop))
	cases := []struct {
		s    Step
		want error
	}{
		{Step{Name: "", Fn: nop}, ErrInvalidStep},
		{Step{Name: "x"}, ErrInvalidStep},
		{Step{Name: "a", Fn: nop}, ErrDuplicate},
		{Step{Name: "x", After: []string{"nope"}, Fn: nop}, ErrUnknownStep},
		{Step{Name: "x", After: []string{"x"}, Fn: nop}, ErrCycle},
		{Step{Name: "x", Priority: 10, After: []string{"b"}, Fn: nop}, ErrCycle},
	}
	for _, c := range cases {
		if err := m.RegisterStep(c.s); !errors.Is(err, c.want) {
			t.Errorf("RegisterStep(%+v) = %v, want %v", c.s, err, c.want)
		}
	}
	if err := m.RegisterStep(Step{Name: "x", Priority: 20, After: []string{"a", "b"}, Fn: nop}); err != nil {
		t.Fatalf("valid After refused: %v", err)
	}
	if m.Unregister("nope") {
		t.Fatal("Unregister of an unknown step reported true")
	}
	if !m.Unregister("b") {
		t.Fatal("Unregister(b) reported false")
	}
	// x no longer waits for b; b can come back, even after x.
	must(t, m.RegisterStep(Step{Name: "b", Priority: 20, After: []string{"x"}, Fn: nop}))
	res := m.Run(context.Background())
	if len(res.Unfinished) != 0 {
		t.Fatalf("result %+v", res)
	}
	if err := m.Register("late", 1, 0, nop); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Register after the run = %v", err)
	}
	if m.Unregister("a") {
		t.Fatal("Unregister after the run reported true")
	}
}

func TestErrorsAndPanics(t *testing.T) {
	m, _ := newFake()
	errDrain := errors.New("drain failed")
	must(t, m.Register("drain", 1, 0, func(context.Context) error { return errDrain }))
	must(t, m.Register("flush", 1, 0, func(context.Context) error { panic("disk gone") }))
	ran := false
	must(t, m.Register("close", 2, 0, func(context.Context) error { ran = true; return nil }))
	res := m.Run(context.Background())
	if !errors.Is(res.Errors["drain"], errDrain) || !ran || len(res.Errors) != 2 || res.ExitCode != 0 {
		t.Fatalf("result %+v ran %v", res, ran)
	}
	var pe *PanicError
	if !errors.As(res.Errors["flush"], &pe) || pe.Value != "disk gone" || len(pe.Stack) == 0 {
		t.Fatalf("panic reported as %v", res.Errors["flush"])
	}
	if pe.Error() != "shutdown: step panicked: disk gone" {
		t.Fatalf("text %q", pe.Error())
	}
}

// TestStepTimeoutAbandons: a step that ignores its context is abandoned at
// its timeout, its context says DeadlineExceeded, and the run goes on.
func TestStepTimeoutAbandons(t *testing.T) {
	m, clk := newFake(WithTimeout(time.Minute))
	release := make(chan struct{})
	started := make(chan context.Context, 1)
	must(t, m.Register("stuck", 1, 5*time.Second, func(ctx context.Context) error {
		started <- ctx
		<-release
		return nil
	}))
	next := make(chan struct{})
	must(t, m.Register("next", 2, 0, func(context.Context) error { close(next); return nil }))
	m.Trigger("test")
	ctx := <-started
	clk.Advance(5*time.Second - 1)
	if ctx.Err() != nil {
		t.Fatal("step context ended before its timeout")
	}
	clk.Advance(1)
	<-ctx.Done()
	if ctx.Err() != context.DeadlineExceeded || context.Cause(ctx) != context.DeadlineExceeded {
		t.Fatalf("step ctx err %v cause %v", ctx.Err(), context.Cause(ctx))
	}
	<-next
	res := m.Wait(context.Background())
	close(release)
	if !errors.Is(res.Errors["stuck"], ErrStepTimeout) || !reflect.DeepEqual(res.Unfinished, []string{"stuck"}) ||
		res.TimedOut || res.ExitCode != 0 || res.Duration != 5*time.Second || res.Reason != "test" {
		t.Fatalf("result %+v", res)
	}
}

// TestTotalTimeout: past the total timeout the run ends, the step contexts
// end with DeadlineExceeded, and the exit code is the force code.
func TestTotalTimeout(t *testing.T) {
	m, clk := newFake(WithTimeout(3*time.Second), WithForceExitCode(7))
	started := make(chan context.Context, 1)
	release := make(chan struct{})
	must(t, m.Register("slow", 1, 10*time.Second, func(ctx context.Context) error {
		started <- ctx
		<-release
		return nil
	}))
	must(t, m.Register("never", 2, 0, func(context.Context) error { t.Error("ran after total timeout"); return nil }))
	m.Trigger("test")
	ctx := <-started
	clk.Advance(3 * time.Second)
	res := m.Wait(context.Background())
	close(release)
	if ctx.Err() != context.DeadlineExceeded {
		t.Fatalf("step ctx err %v", ctx.Err())
	}
	want := []string{"never", "slow"}
	if !res.TimedOut || res.Forced || res.ExitCode != 7 || !reflect.DeepEqual(res.Unfinished, want) || res.Duration != 3*time.Second {
		t.Fatalf("result %+v", res)
	}
	if clk.Pending() != 0 {
		t.Fatalf("%d timers left", clk.Pending())
	}
}

func TestForce(t *testing.T) {
	m, _ := newFake(WithForceExitCode(3))
	started := make(chan context.Context, 1)
	must(t, m.Register("slow", 1, 0, func(ctx context.Context) error {
		started <- ctx
		<-ctx.Done()
		return ctx.Err()
	}))
	m.Trigger("test")
	ctx := <-started
	m.Force()
	res := m.Wait(context.Background())
	if !res.Forced || res.TimedOut || res.ExitCode != 3 || !reflect.DeepEqual(res.Unfinished, []string{"slow"}) {
		t.Fatalf("result %+v", res)
	}
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), ErrForced) || ctx.Err() != context.Canceled {
		t.Fatalf("ctx err %v cause %v", ctx.Err(), context.Cause(ctx))
	}
	m.Force() // after the run: nothing happens
	m.Trigger("again")
	if r := m.Wait(context.Background()); r.Reason != "test" {
		t.Fatalf("second trigger changed the result: %+v", r)
	}
}

func TestWaitContextForces(t *testing.T) {
	m, _ := newFake()
	started := make(chan struct{})
	must(t, m.Register("slow", 1, 0, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return nil
	}))
	m.Trigger("test")
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := m.Wait(ctx); !res.Forced || res.ExitCode != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestProgress(t *testing.T) {
	reports := make(chan []string, 10)
	m, clk := newFake(WithProgress(time.Second, func(w []string) { reports <- w }))
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	for _, n := range []string{"b", "a"} {
		must(t, m.Register(n, 1, 0, func(context.Context) error { started <- struct{}{}; <-release; return nil }))
	}
	m.Trigger("test")
	<-started
	<-started
	clk.Advance(time.Second)
	if got := <-reports; !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("progress %v", got)
	}
	clk.Advance(time.Second)
	if got := <-reports; !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("progress %v", got)
	}
	close(release)
	m.Wait(context.Background())
	clk.Advance(time.Hour)
	if len(reports) != 0 {
		t.Fatalf("progress after the run: %v", <-reports)
	}
}

// TestConcurrentTriggers: 100 goroutines trigger and wait; each step runs
// once and every waiter sees the same result.
func TestConcurrentTriggers(t *testing.T) {
	m, _ := newFake()
	var runs atomic.Int64
	for i := 0; i < 10; i++ {
		must(t, m.Register(fmt.Sprint("s", i), i%3, 0, func(context.Context) error { runs.Add(1); return nil }))
	}
	var wg sync.WaitGroup
	reasons := make([]string, 100)
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Register(fmt.Sprint("late", g), 0, 0, func(context.Context) error { runs.Add(1); return nil })
			m.Unregister(fmt.Sprint("late", g-1))
			m.Trigger(fmt.Sprint("g", g))
			reasons[g] = m.Wait(context.Background()).Reason
		}()
	}
	wg.Wait()
	for _, r := range reasons {
		if r != reasons[0] {
			t.Fatalf("waiters saw different runs: %q and %q", r, reasons[0])
		}
	}
	res := m.Wait(context.Background())
	if len(res.Unfinished) != 0 {
		t.Fatalf("result %+v", res)
	}
	m.mu.Lock()
	registered := len(m.steps)
	m.mu.Unlock()
	if int(runs.Load()) != registered {
		t.Fatalf("%d runs for %d registered steps", runs.Load(), registered)
	}
}

func TestNoSteps(t *testing.T) {
	m := New()
	res := m.Run(context.Background())
	if res.Errors == nil || res.ExitCode != 0 || res.Reason != "requested" {
		t.Fatalf("result %+v", res)
	}
	select {
	case <-m.Done():
	default:
		t.Fatal("Done not closed")
	}
}

// TestRealClock runs step and total timeouts on the real clock.
func TestRealClock(t *testing.T) {
	m := New(WithTimeout(time.Minute))
	must(t, m.Register("wait", 1, 20*time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}))
	res := m.Run(context.Background())
	if !errors.Is(res.Errors["wait"], ErrStepTimeout) && !errors.Is(res.Errors["wait"], context.DeadlineExceeded) {
		t.Fatalf("result %+v", res)
	}
}

// TestSignals sends real signals to the test process: the first triggers,
// the second forces; after UninstallSignals the previous handler gets them.
func TestSignals(t *testing.T) {
	guard := make(chan os.Signal, 4) // keeps SIGUSR1 from killing the test
	signal.Notify(guard, syscall.SIGUSR1)
	defer signal.Stop(guard)

	m, _ := newFake()
	started := make(chan struct{})
	must(t, m.Register("slow", 1, 0, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return nil
	}))
	m.InstallSignals(syscall.SIGUSR1)
	must(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	<-m.Triggered()
	<-started
	must(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	res := m.Wait(context.Background())
	if res.Reason != "signal: user defined signal 1" || !res.Forced {
		t.Fatalf("result %+v", res)
	}
	m.UninstallSignals()
	m.UninstallSignals() // twice is fine
	for len(guard) > 0 {
		<-guard
	}

	m2, _ := newFake()
	m2.InstallSignals(syscall.SIGUSR1)
	m2.UninstallSignals()
	must(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	<-guard // the other handler still gets it
	select {
	case <-m2.Triggered():
		t.Fatal("uninstalled manager triggered by a signal")
	default:
	}
}

func TestStepContextsAreIndependent(t *testing.T) {
	m, clk := newFake(WithTimeout(2 * time.Hour))
	var mu sync.Mutex
	ctxs := map[string]context.Context{}
	var started sync.WaitGroup
	started.Add(2)
	for _, n := range []string{"short", "long"} {
		d := time.Second
		if n == "long" {
			d = time.Hour
		}
		must(t, m.Register(n, 1, d, func(ctx context.Context) error {
			mu.Lock()
			ctxs[n] = ctx
			mu.Unlock()
			started.Done()
			<-ctx.Done()
			return ctx.Err()
		}))
	}
	m.Trigger("t")
	started.Wait()
	clk.Advance(time.Second)
	mu.Lock()
	<-ctxs["short"].Done()
	if ctxs["long"].Err() != nil {
		t.Fatal("a step's timeout cancelled its sibling")
	}
	mu.Unlock()
	clk.Advance(time.Hour)
	res := m.Wait(context.Background())
	keys := make([]string, 0, len(res.Errors))
	for k := range res.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"long", "short"}) || res.TimedOut {
		t.Fatalf("result %+v", res)
	}
	if got := res.Errors["short"].Error(); got != "shutdown: step timed out after 1s" {
		t.Fatalf("error text %q", got)
	}
}
