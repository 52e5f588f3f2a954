package lifecycle

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/supervisor/breaker"
)

func readinessProbe(p *conf.Program) {
	p.Readiness = &conf.Probe{HTTP: "http://127.0.0.1:1/", Interval: time.Second, Timeout: time.Second,
		SuccessThreshold: 1, FailureThreshold: 3}
}

func liveness(action conf.WatchdogAction) func(p *conf.Program) {
	return func(p *conf.Program) {
		p.Liveness = &conf.Probe{TCP: "127.0.0.1:1", Interval: time.Second, Timeout: time.Second,
			SuccessThreshold: 1, FailureThreshold: 3, Action: action}
		p.MinUptime = time.Hour // so that a run killed by its probe is never a success first
	}
}

func both(mods ...func(*conf.Program)) func(*conf.Program) {
	return func(p *conf.Program) {
		for _, m := range mods {
			m(p)
		}
	}
}

var (
	probeOK   = Readiness{Source: SourceProbe, OK: true, Detail: "GET 200"}
	probeLost = Readiness{Source: SourceProbe, OK: false, Detail: "HTTP 503"}
	liveFail  = func(a conf.WatchdogAction) Unhealthy {
		return Unhealthy{Source: "liveness", Action: a, Detail: "connection refused"}
	}
)

// TestProbes walks the rules of SPEC §11 through the machine.
func TestProbes(t *testing.T) {
	type check func(t *testing.T, d *driver)
	pidKept := func(t *testing.T, d *driver) {
		if !d.alive || d.m.PID() != d.nextPID || len(d.signals) != 0 {
			t.Fatalf("alive %v pid %d (last spawned %d), signals %v", d.alive, d.m.PID(), d.nextPID, d.signals)
		}
	}
	failures := func(n int) check {
		return func(t *testing.T, d *driver) {
			if got := d.m.Breaker().Failures(); got != n {
				t.Fatalf("%d failures on the breaker, want %d", got, n)
			}
		}
	}
	reason := func(part string) check {
		return func(t *testing.T, d *driver) {
			for _, r := range d.records {
				if f, ok := r.(Failed); ok && strings.Contains(f.Reason, part) {
					return
				}
			}
			t.Fatalf("no failure naming %q: %v", part, d.records)
		}
	}
	ready := func(want bool) check {
		return func(t *testing.T, d *driver) {
			if d.m.Ready() != want {
				t.Fatalf("ready %v", d.m.Ready())
			}
		}
	}
	cases := []struct {
		name string
		cfg  func(*conf.Program)
		do   func(d *driver)
		want State
		chk  []check
	}{
		{"the probe gates readiness", readinessProbe, func(d *driver) { d.feed(Start{}) }, Starting, []check{ready(false)}},
		{"the probe passes", readinessProbe, func(d *driver) { d.feed(Start{}); d.feed(probeOK) }, Running, []check{ready(true)}},
		{"a first beat does not stand in for the probe", both(readinessProbe, func(p *conf.Program) {
			p.Watchdog = &conf.Watchdog{Timeout: time.Second, Action: conf.WatchdogRestart}
		}), func(d *driver) { d.feed(Start{}); d.feed(Readiness{Source: SourceHeartbeat, OK: true}) }, Starting, nil},
		{"notify and probe: the probe alone is not enough", both(readinessProbe, notify),
			func(d *driver) { d.feed(Start{}); d.feed(probeOK) }, Starting, nil},
		{"notify and probe: both pass", both(readinessProbe, notify),
			func(d *driver) { d.feed(Start{}); d.feed(probeOK); d.feed(Readiness{Source: SourceNotify, OK: true}) }, Running, nil},
		{"readiness lost: starting, same process", readinessProbe, func(d *driver) {
			d.feed(Start{})
			d.feed(probeOK)
			d.signals = nil
			d.feed(probeLost)
		}, Starting, []check{pidKept, ready(false), failures(0)}},
		{"readiness regained", readinessProbe, func(d *driver) {
			d.feed(Start{})
			d.feed(probeOK)
			d.feed(probeLost)
			d.feed(probeOK)
		}, Running, []check{ready(true)}},
		{"a probe failing before it passed changes nothing", readinessProbe, func(d *driver) {
			d.feed(Start{})
			d.signals = nil
			d.feed(probeLost)
		}, Starting, []check{pidKept}},
		{"ready_timeout applies to the probe", both(readinessProbe, func(p *conf.Program) { p.ReadyTimeout = 2 * time.Second }),
			func(d *driver) { d.feed(Start{}); d.fire(TimerReady, 2*time.Second); d.exit(killed) }, Backoff, []check{failures(1)}},
		{"liveness restart: a failure through backoff", liveness(conf.WatchdogRestart), func(d *driver) {
			d.feed(Start{})
			d.feed(liveFail(conf.WatchdogRestart))
			d.want(Stopping)
			if len(d.signals) != 1 || d.signals[0] != syscall.SIGKILL {
				d.t.Fatalf("signals %v", d.signals)
			}
			d.exit(killed)
		}, Backoff, []check{failures(1), reason("liveness failed: connection refused")}},
		{"liveness restart: the breaker opens", liveness(conf.WatchdogRestart), func(d *driver) {
			for i := 0; i < 5; i++ {
				d.feed(Start{})
				d.feed(liveFail(conf.WatchdogRestart))
				d.exit(killed)
			}
		}, Open, []check{func(t *testing.T, d *driver) {
			if d.m.Breaker().State(d.now) != breaker.Open || !d.timers[TimerHalfOpen] {
				t.Fatalf("breaker %s, timers %v", d.m.Breaker().State(d.now), d.timers)
			}
		}}},
		{"liveness stop: stopped, no failure", liveness(conf.WatchdogStop), func(d *driver) {
			d.feed(Start{})
			d.feed(liveFail(conf.WatchdogStop))
			d.exit(ExitStatus{Code: -1, Signal: syscall.SIGTERM})
		}, Stopped, []check{failures(0)}},
		{"liveness log: only logged", liveness(conf.WatchdogLog), func(d *driver) {
			d.feed(Start{})
			d.signals = nil
			d.feed(liveFail(conf.WatchdogLog))
		}, Running, []check{pidKept, func(t *testing.T, d *driver) {
			for _, r := range d.records {
				if h, ok := r.(Health); ok && h.Source == "liveness" && h.Detail == "connection refused" {
					return
				}
			}
			t.Fatalf("no Health record: %v", d.records)
		}}},
		{"liveness during a stop is ignored", liveness(conf.WatchdogRestart), func(d *driver) {
			d.feed(Start{})
			d.feed(Stop{Intent: IntentStop})
			d.feed(liveFail(conf.WatchdogRestart))
			d.exit(ExitStatus{Code: -1, Signal: syscall.SIGTERM})
		}, Stopped, []check{failures(0)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDriver(t, prog(c.cfg))
			c.do(d)
			d.want(c.want)
			for _, ch := range c.chk {
				ch(t, d)
			}
		})
	}
}

// One-shot tasks (SPEC §12): a task that failed for good runs again when a
// reload changes it; one that completed does not.
func TestOneShotReconfigure(t *testing.T) {
	never := func(p *conf.Program) { p.Restart = conf.RestartNever }
	d := newDriver(t, prog(never))
	d.feed(Start{})
	d.exit(exit1)
	d.want(Exited)
	d.feed(Reconfigure{Config: prog(func(p *conf.Program) { never(p); p.Command = []string{"/bin/migrate", "--fixed"} })})
	d.want(Running)
	if d.m.Config().Command[1] != "--fixed" {
		t.Fatal(d.m.Config().Command)
	}
	d.exit(exit0)
	d.want(Exited)
	if l := d.m.Last(); l == nil || l.Failed {
		t.Fatalf("last %+v", l)
	}
	d.feed(Reconfigure{Config: prog(func(p *conf.Program) { never(p); p.Command = []string{"/bin/migrate", "--again"} })})
	d.want(Exited)
	if d.alive {
		t.Fatal("a completed task ran again on reload")
	}
	// A task stopped by an operator is not started by a reload either.
	d = newDriver(t, prog(never))
	d.feed(Start{})
	d.exit(exit1)
	d.feed(Stop{Intent: IntentStop})
	d.want(Exited)
	d.feed(Reset{})
	d.want(Running)
}

func TestRequiredProbe(t *testing.T) {
	if got := strings.Join(Required(prog(readinessProbe)), ","); got != "probe" {
		t.Fatal(got)
	}
	if got := strings.Join(Required(prog(both(readinessProbe, notify))), ","); got != "notify,probe" {
		t.Fatal(got)
	}
	if got := strings.Join(Required(prog(liveness(conf.WatchdogRestart))), ","); got != "" {
		t.Fatalf("liveness is no readiness source: %q", got)
	}
}
