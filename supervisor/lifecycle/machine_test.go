package lifecycle

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/supervisor/breaker"
)

// setup brings a fresh machine into a state by a path of real events.
type setup func(d *driver)

var (
	inStopped  setup = func(d *driver) {}
	inRunning  setup = func(d *driver) { d.feed(Start{Why: "test"}); d.want(Running) }
	inStarting setup = func(d *driver) {
		d.feed(Start{Why: "test"})
		d.want(Starting)
	}
	inBackoff setup = func(d *driver) { inRunning(d); d.exit(exit1); d.want(Backoff) }
	inOpen    setup = func(d *driver) {
		for i := 0; i < 5; i++ {
			d.feed(Start{Why: "test"})
			d.exit(exit1)
		}
		d.want(Open)
	}
	inStopping setup = func(d *driver) { inRunning(d); d.feed(Stop{Intent: IntentStop}); d.want(Stopping) }
	inExited   setup = func(d *driver) { inRunning(d); d.exit(exit0); d.want(Exited) }
	inWaiting  setup = func(d *driver) {
		d.feed(Start{Why: "test", Unmet: []string{"db"}})
		d.want(Waiting)
	}
)

func notify(p *conf.Program) { p.Notify = true }

// TestStateByEvent walks every state through the events that matter in it.
func TestStateByEvent(t *testing.T) {
	type check func(t *testing.T, d *driver)
	failed := func(n int) check {
		return func(t *testing.T, d *driver) {
			if got := d.failedCount(); got != n {
				t.Fatalf("%d failures counted, want %d (records %v)", got, n, d.records)
			}
		}
	}
	signalled := func(sig syscall.Signal) check {
		return func(t *testing.T, d *driver) {
			if len(d.signals) == 0 || d.signals[len(d.signals)-1] != sig {
				t.Fatalf("signals %v, want %v last", d.signals, sig)
			}
		}
	}
	timer := func(k TimerKind) check {
		return func(t *testing.T, d *driver) {
			if !d.timers[k] {
				t.Fatalf("timer %s not pending (%v)", k, d.timers)
			}
		}
	}
	refused := func(t *testing.T, d *driver) {
		if len(d.refused) == 0 || !strings.Contains(d.refused[0], "breaker open after 5 failures") {
			t.Fatalf("refused %v", d.refused)
		}
	}
	alive := func(want bool) check {
		return func(t *testing.T, d *driver) {
			if d.alive != want || d.m.Alive() != want {
				t.Fatalf("alive %v/%v, want %v", d.alive, d.m.Alive(), want)
			}
		}
	}
	cases := []struct {
		name  string
		cfg   func(*conf.Program)
		setup setup
		do    func(d *driver)
		want  State
		check []check
	}{
		// stopped
		{"stopped+start", nil, inStopped, func(d *driver) { d.feed(Start{Why: "t"}) }, Running, []check{alive(true), timer(TimerMinUptime)}},
		{"stopped+start unmet", nil, inStopped, func(d *driver) { d.feed(Start{Unmet: []string{"db"}}) }, Waiting, []check{alive(false)}},
		{"stopped+spawn error", nil, inStopped, func(d *driver) { d.spawnErr = errNo; d.feed(Start{}) }, Backoff, []check{failed(1), timer(TimerBackoff)}},
		{"stopped+stop", nil, inStopped, func(d *driver) { d.feed(Stop{Intent: IntentStop}) }, Stopped, nil},
		{"stopped+reset", nil, inStopped, func(d *driver) { d.feed(Reset{}) }, Running, []check{alive(true)}},
		{"stopped+shutdown+start", nil, inStopped, func(d *driver) { d.feed(Shutdown{}); d.feed(Start{}) }, Stopped, []check{alive(false)}},
		{"stopped+remove", nil, inStopped, func(d *driver) { d.feed(Stop{Intent: IntentRemove}) }, Stopped, []check{func(t *testing.T, d *driver) {
			if !d.removed {
				t.Fatal("not removed")
			}
		}}},
		// waiting
		{"waiting+met", nil, inWaiting, func(d *driver) { d.feed(Start{}) }, Running, []check{alive(true)}},
		{"waiting+still unmet", nil, inWaiting, func(d *driver) { d.feed(Start{Unmet: []string{"db"}}) }, Waiting, nil},
		{"waiting+stop", nil, inWaiting, func(d *driver) { d.feed(Stop{Intent: IntentStop}) }, Stopped, []check{func(t *testing.T, d *driver) {
			if d.m.WaitingFor() != nil {
				t.Fatal(d.m.WaitingFor())
			}
		}}},
		{"waiting+shutdown", nil, inWaiting, func(d *driver) { d.feed(Shutdown{}) }, Stopped, nil},
		// starting (notify)
		{"starting+ready", notify, inStarting, func(d *driver) { d.feed(Readiness{Source: SourceNotify, OK: true}) }, Running, nil},
		{"starting+ready of a source not configured", notify, inStarting, func(d *driver) { d.feed(Readiness{Source: SourceHeartbeat, OK: true}) }, Starting, nil},
		{"starting+exit 1", notify, inStarting, func(d *driver) { d.exit(exit1) }, Backoff, []check{failed(1)}},
		{"starting+ready_timeout", func(p *conf.Program) { p.Notify = true; p.ReadyTimeout = time.Second }, inStarting,
			func(d *driver) { d.fire(TimerReady, time.Second); d.exit(killed) }, Backoff, []check{failed(1), signalled(syscall.SIGKILL)}},
		{"starting+min_uptime is a success without readiness", notify, inStarting, func(d *driver) {
			d.fire(TimerMinUptime, 5*time.Second)
			d.exit(exit1)
		}, Backoff, []check{func(t *testing.T, d *driver) {
			if d.m.Breaker().Failures() != 1 || d.m.Stats().Successes != 1 {
				t.Fatalf("failures %d successes %d", d.m.Breaker().Failures(), d.m.Stats().Successes)
			}
		}}},
		// running
		{"running+exit 0 on-failure", nil, inRunning, func(d *driver) { d.exit(exit0) }, Exited, []check{failed(0)}},
		{"running+exit 0 always", func(p *conf.Program) { p.Restart = conf.RestartAlways; p.MinUptime = 0 }, inRunning, func(d *driver) { d.exit(exit0) }, Running, []check{failed(0), alive(true)}},
		{"running+short exit 0 always", func(p *conf.Program) { p.Restart = conf.RestartAlways }, inRunning, func(d *driver) { d.exit(exit0) }, Backoff, []check{failed(1)}},
		{"running+exit 1 never", func(p *conf.Program) { p.Restart = conf.RestartNever }, inRunning, func(d *driver) { d.exit(exit1) }, Exited, []check{failed(1)}},
		{"running+exit 1 never critical", func(p *conf.Program) { p.Restart = conf.RestartNever; p.Critical = true }, inRunning, func(d *driver) { d.exit(exit1) }, Exited, []check{func(t *testing.T, d *driver) {
			if !d.critical {
				t.Fatal("no critical exit")
			}
		}}},
		{"running+killed by signal", nil, inRunning, func(d *driver) { d.exit(killed) }, Backoff, []check{failed(1)}},
		{"running+success code 3", func(p *conf.Program) { p.SuccessExitCodes = []int{0, 3} }, inRunning, func(d *driver) { d.exit(ExitStatus{Code: 3}) }, Exited, []check{failed(0)}},
		{"running+backoff 0", func(p *conf.Program) { p.BackoffInitial = 0 }, inRunning, func(d *driver) { d.exit(exit1) }, Running, []check{failed(1), alive(true)}},
		{"running+stop", nil, inRunning, func(d *driver) { d.feed(Stop{Intent: IntentStop}) }, Stopping, []check{signalled(syscall.SIGTERM), timer(TimerStopKill)}},
		{"running+watchdog restart", nil, inRunning, func(d *driver) {
			d.feed(Unhealthy{Source: "watchdog", Action: conf.WatchdogRestart})
			d.exit(killed)
		}, Backoff, []check{failed(1)}},
		{"running+watchdog stop", nil, inRunning, func(d *driver) {
			d.feed(Unhealthy{Source: "watchdog", Action: conf.WatchdogStop})
			d.exit(exit0)
		}, Stopped, []check{failed(0)}},
		{"running+watchdog log", nil, inRunning, func(d *driver) { d.feed(Unhealthy{Source: "watchdog", Action: conf.WatchdogLog}) }, Running, []check{alive(true)}},
		{"running+readiness lost", notify, func(d *driver) { inStarting(d); d.feed(Readiness{Source: SourceNotify, OK: true}) },
			func(d *driver) { d.feed(Readiness{Source: SourceNotify, OK: false}) }, Starting, []check{alive(true)}},
		{"running+reconfigure", nil, inRunning, func(d *driver) {
			d.feed(Reconfigure{Config: prog(func(p *conf.Program) { p.Command = []string{"/bin/false"} })})
			d.exit(ExitStatus{Code: -1, Signal: syscall.SIGTERM})
		}, Running, []check{failed(0), alive(true), func(t *testing.T, d *driver) {
			if d.m.Config().Command[0] != "/bin/false" {
				t.Fatal(d.m.Config().Command)
			}
		}}},
		{"running+reconfigure unchanged", nil, inRunning, func(d *driver) { d.feed(Reconfigure{Config: prog(nil)}) }, Running, []check{alive(true)}},
		{"running+shutdown then exit", nil, inRunning, func(d *driver) { d.feed(Shutdown{}); d.exit(exit1) }, Stopped, []check{failed(0), alive(false)}},
		// stopping
		{"stopping+exit by signal is no failure", nil, inStopping, func(d *driver) { d.exit(ExitStatus{Code: -1, Signal: syscall.SIGTERM}) }, Stopped, []check{failed(0)}},
		{"stopping+exit 1 is no failure", nil, inStopping, func(d *driver) { d.exit(exit1) }, Stopped, []check{failed(0)}},
		{"stopping+stop_timeout", nil, inStopping, func(d *driver) { d.fire(TimerStopKill, 10*time.Second) }, Stopping, []check{signalled(syscall.SIGKILL)}},
		{"stopping+watchdog ignored", nil, inStopping, func(d *driver) {
			d.feed(Unhealthy{Source: "watchdog", Action: conf.WatchdogRestart})
			d.exit(killed)
		}, Stopped, []check{failed(0)}},
		{"stopping+ready does not revive", notify, func(d *driver) { inStarting(d); d.feed(Stop{Intent: IntentStop}) },
			func(d *driver) { d.feed(Readiness{Source: SourceNotify, OK: true}) }, Stopping, nil},
		{"stopping+start ignored", nil, inStopping, func(d *driver) { d.feed(Start{}) }, Stopping, nil},
		{"restart", nil, inRunning, func(d *driver) {
			d.feed(Stop{Intent: IntentRestart})
			d.exit(ExitStatus{Code: -1, Signal: syscall.SIGTERM})
		}, Running, []check{failed(0), alive(true)}},
		{"restart then stop outranks", nil, inRunning, func(d *driver) {
			d.feed(Stop{Intent: IntentRestart})
			d.feed(Stop{Intent: IntentStop})
			d.exit(exit0)
		}, Stopped, []check{alive(false)}},
		{"remove while stopping, re-added", nil, inRunning, func(d *driver) {
			d.feed(Stop{Intent: IntentRemove})
			d.feed(Reconfigure{Config: prog(nil)})
			d.exit(exit0)
		}, Running, []check{alive(true), func(t *testing.T, d *driver) {
			if d.removed {
				t.Fatal("removed")
			}
		}}},
		// backoff
		{"backoff+elapsed", nil, inBackoff, func(d *driver) { d.fire(TimerBackoff, 100*time.Millisecond) }, Running, []check{alive(true)}},
		{"backoff+stop", nil, inBackoff, func(d *driver) { d.feed(Stop{Intent: IntentStop}) }, Stopped, []check{func(t *testing.T, d *driver) {
			if d.timers[TimerBackoff] {
				t.Fatal("backoff timer still pending")
			}
		}}},
		{"backoff+shutdown", nil, inBackoff, func(d *driver) { d.feed(Shutdown{}) }, Stopped, nil},
		{"backoff doubles", nil, inBackoff, func(d *driver) {
			d.fire(TimerBackoff, 100*time.Millisecond)
			d.exit(exit1)
		}, Backoff, []check{func(t *testing.T, d *driver) {
			for _, r := range d.records {
				if r, ok := r.(Restarting); ok && r.Delay != 200*time.Millisecond {
					t.Fatalf("delay %v", r.Delay)
				}
			}
		}}},
		// open
		{"open+operator start refused", nil, inOpen, func(d *driver) { d.feed(Start{Operator: true}) }, Open, []check{refused, alive(false)}},
		{"open+operator restart refused", nil, inOpen, func(d *driver) { d.feed(Stop{Intent: IntentRestart}) }, Open, []check{refused, alive(false), timer(TimerHalfOpen)}},
		{"open+reset", nil, inOpen, func(d *driver) { d.feed(Reset{}) }, Running, []check{alive(true), func(t *testing.T, d *driver) {
			if d.m.Breaker().State(d.now) != breaker.Closed {
				t.Fatal("breaker not closed")
			}
		}}},
		{"open+half-open trial fails", nil, inOpen, func(d *driver) {
			d.fire(TimerHalfOpen, 60*time.Second)
			d.exit(exit1)
		}, Open, []check{timer(TimerHalfOpen)}},
		{"open+half-open trial succeeds", nil, inOpen, func(d *driver) {
			d.fire(TimerHalfOpen, 60*time.Second)
			d.fire(TimerMinUptime, 5*time.Second)
		}, Running, []check{func(t *testing.T, d *driver) {
			if d.m.Breaker().State(d.now) != breaker.Closed {
				t.Fatal("breaker not closed")
			}
		}}},
		{"open critical", func(p *conf.Program) { p.Critical = true }, inOpen, func(d *driver) {}, Open, []check{func(t *testing.T, d *driver) {
			if !d.critical {
				t.Fatal("no critical")
			}
		}}},
		{"open+reconfigure", nil, inOpen, func(d *driver) {
			d.feed(Reconfigure{Config: prog(func(p *conf.Program) { p.Command = []string{"/bin/sh"} })})
		}, Running, []check{alive(true)}},
		// exited
		{"exited+start", nil, inExited, func(d *driver) { d.feed(Start{Operator: true}) }, Running, nil},
		{"exited+teardown stop", nil, inExited, func(d *driver) { d.feed(Stop{Intent: IntentTeardown}) }, Exited, nil},
		{"exited+reconfigure stays exited", nil, inExited, func(d *driver) {
			d.feed(Reconfigure{Config: prog(func(p *conf.Program) { p.Command = []string{"/bin/sh"} })})
		}, Exited, []check{alive(false)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDriver(t, prog(c.cfg))
			c.setup(d)
			d.signals = nil
			d.refused = nil
			d.critical = d.critical && c.name == "open critical"
			c.do(d)
			d.want(c.want)
			for _, ch := range c.check {
				ch(t, d)
			}
		})
	}
}

// TestReadyIsNotASuccess is SPEC §3 as amended: a program that becomes
// ready and then fails before min_uptime opens its breaker.
func TestReadyIsNotASuccess(t *testing.T) {
	d := newDriver(t, prog(notify))
	for i := 0; i < 5; i++ {
		d.feed(Start{})
		d.feed(Readiness{Source: SourceNotify, OK: true})
		d.want(Running)
		d.exit(exit1)
		if i < 4 {
			d.fire(TimerBackoff, time.Minute)
		}
	}
	d.want(Open)
}

// TestSignalledExitIsJudged: an exit after `supervise signal` is judged
// like any other exit (SPEC §3): the machine never hears of that signal.
func TestSignalledExitIsJudged(t *testing.T) {
	d := newDriver(t, prog(nil))
	inRunning(d)
	d.exit(killed)
	d.want(Backoff)
	if d.failedCount() != 1 {
		t.Fatal("not a failure")
	}
}

func TestTransitionsCarryTheExit(t *testing.T) {
	d := newDriver(t, prog(nil))
	inRunning(d)
	pid := d.m.PID()
	d.exit(exit1)
	for _, r := range d.records {
		if tr, ok := r.(Transition); ok && tr.From == Running {
			if tr.PID != pid || tr.Exit == nil || tr.Exit.Code != 1 || tr.To != Backoff {
				t.Fatalf("%+v", tr)
			}
			return
		}
	}
	t.Fatalf("no transition out of running: %v", d.records)
}

func TestRequired(t *testing.T) {
	cases := []struct {
		mod  func(*conf.Program)
		want string
	}{
		{nil, ""},
		{notify, "notify"},
		{func(p *conf.Program) { p.Watchdog = &conf.Watchdog{} }, "heartbeat"},
		{func(p *conf.Program) { p.Watchdog = &conf.Watchdog{}; p.Notify = true }, "notify"},
	}
	for _, c := range cases {
		if got := strings.Join(Required(prog(c.mod)), ","); got != c.want {
			t.Errorf("got %q want %q", got, c.want)
		}
	}
}

// A breaker transition seen outside Step (status reads the breaker after
// its reset_timeout and half-opens it) is not lost: the next Step reports
// it, before what that step does.
func TestBreakerChangeOutsideStepIsReported(t *testing.T) {
	d := newDriver(t, prog(nil))
	inOpen(d)
	d.now = d.now.Add(time.Minute)
	if st := d.m.Breaker().State(d.now); st != breaker.HalfOpen {
		t.Fatalf("breaker %s after reset_timeout", st)
	}
	d.fire(TimerHalfOpen, 0)
	if len(d.records) == 0 {
		t.Fatal("no records")
	}
	bc, ok := d.records[0].(BreakerChange)
	if !ok || bc.From != breaker.Open || bc.To != breaker.HalfOpen {
		t.Fatalf("first record %#v, want the open -> half_open change (records %v)", d.records[0], d.records)
	}
	for _, r := range d.records[1:] {
		if c, ok := r.(BreakerChange); ok && c.To == breaker.HalfOpen {
			t.Fatalf("half-open reported twice: %v", d.records)
		}
	}
	d.want(Running)
}
