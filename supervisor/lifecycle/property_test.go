package lifecycle

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/supervise/supervise/conf"
)

// TestProperties drives machines with random event sequences and checks
// the invariants of the lifecycle after every event:
//
//   - never two live processes for one program (the driver fails on a
//     Spawn while its process lives);
//   - every failure leads to exactly one of: a scheduled restart (backoff
//     timer or immediate start), an open breaker, or exited;
//   - no program sits without a process and without a pending timer unless
//     it is stopped, exited, open or waiting;
//   - an open program has its half-open timer (unless critical or shutting);
//   - an operator stop is never a failure;
//   - a readiness report (a probe that passes or fails again) never kills
//     the run nor counts a failure.
func TestProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := prog(func(p *conf.Program) {
			p.Restart = rapid.SampledFrom([]conf.RestartPolicy{conf.RestartAlways, conf.RestartOnFailure, conf.RestartNever}).Draw(rt, "restart")
			p.Notify = rapid.Bool().Draw(rt, "notify")
			if rapid.Bool().Draw(rt, "watchdog") {
				p.Watchdog = &conf.Watchdog{Timeout: time.Second, Action: conf.WatchdogRestart}
			}
			if rapid.Bool().Draw(rt, "readiness") {
				readinessProbe(p)
			}
			p.BackoffInitial = time.Duration(rapid.IntRange(0, 2).Draw(rt, "backoff")) * 100 * time.Millisecond
			p.MinUptime = time.Duration(rapid.IntRange(0, 2).Draw(rt, "min_uptime")) * time.Second
			p.ReadyTimeout = time.Duration(rapid.IntRange(0, 1).Draw(rt, "ready_timeout")) * time.Second
			p.Critical = rapid.Bool().Draw(rt, "critical")
			p.Autostart = rapid.Bool().Draw(rt, "autostart")
			p.Breaker.MaxFailures = rapid.IntRange(1, 3).Draw(rt, "max_failures")
		})
		d := newDriver(rt, cfg)
		shutting := false
		operatorStop := false // an operator stop is under way
		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			before := d.m.State()
			op := rapid.IntRange(0, 13).Draw(rt, "op")
			d.spawnErr = nil
			switch op {
			case 0:
				d.feed(Start{Why: "autostart", Operator: rapid.Bool().Draw(rt, "operator")})
			case 1:
				if rapid.Bool().Draw(rt, "spawnfail") {
					d.spawnErr = errNo
				}
				d.feed(Start{Why: "t"})
			case 2:
				if !d.alive {
					continue
				}
				st := rapid.SampledFrom([]ExitStatus{exit0, exit1, killed, {Code: -1, Signal: syscall.SIGTERM}}).Draw(rt, "exit")
				d.now = d.now.Add(time.Duration(rapid.IntRange(0, 3000).Draw(rt, "uptime_ms")) * time.Millisecond)
				d.exit(st)
				if operatorStop && d.failedCount() > 0 {
					rt.Fatalf("an operator stop ended in a failure: %v", d.records)
				}
				operatorStop = false
			case 3:
				var pending []TimerKind
				for k := range d.timers {
					pending = append(pending, k)
				}
				if len(pending) == 0 {
					continue
				}
				slices.Sort(pending)
				k := rapid.SampledFrom(pending).Draw(rt, "timer")
				d.fire(k, time.Second)
			case 4:
				alive, signals := d.alive, len(d.signals)
				ev := Readiness{Source: rapid.SampledFrom([]string{SourceNotify, SourceHeartbeat, SourceProbe}).Draw(rt, "src"), OK: rapid.Bool().Draw(rt, "ok")}
				d.feed(ev)
				if d.alive != alive || len(d.signals) != signals || d.failedCount() != 0 {
					rt.Fatalf("readiness %+v killed or failed the run: alive %v signals %v records %v", ev, d.alive, d.signals, d.records)
				}
			case 5:
				d.feed(Unhealthy{Source: rapid.SampledFrom([]string{"watchdog", "liveness"}).Draw(rt, "health"), Action: rapid.SampledFrom([]conf.WatchdogAction{conf.WatchdogRestart, conf.WatchdogStop, conf.WatchdogLog}).Draw(rt, "action")})
			case 6:
				wasAlive := d.m.Alive() && d.m.State() != Stopping
				d.feed(Stop{Intent: IntentStop})
				if wasAlive {
					operatorStop = true
				}
			case 7:
				d.feed(Stop{Intent: IntentRestart})
			case 8:
				d.feed(Reset{})
			case 9:
				d.feed(Reconfigure{Config: prog(func(p *conf.Program) {
					*p = *cfg
					p.Command = []string{rapid.SampledFrom([]string{"/bin/true", "/bin/false"}).Draw(rt, "cmd")}
				})})
			case 10:
				d.feed(Shutdown{})
				shutting = true
			case 11:
				d.feed(Stop{Intent: IntentTeardown})
			case 12:
				d.unmet = nil
				if rapid.Bool().Draw(rt, "unmet") {
					d.unmet = []string{"db"}
				}
				d.feed(Start{Why: "dependency", Unmet: d.unmet})
			case 13:
				d.now = d.now.Add(time.Duration(rapid.IntRange(0, 120).Draw(rt, "wait_s")) * time.Second)
				continue
			}
			check(rt, d, before, shutting)
			if d.removed {
				return
			}
		}
	})
}

func check(rt *rapid.T, d *driver, before State, shutting bool) {
	m := d.m
	st := m.State()
	if d.alive != m.Alive() {
		rt.Fatalf("driver alive %v, machine alive %v (state %s)", d.alive, m.Alive(), st)
	}
	if n := d.failedCount(); n > 0 {
		outcomes := 0
		if st == Backoff && d.timers[TimerBackoff] {
			outcomes++
		}
		if d.alive || st == Waiting { // restarted at once (backoff 0), or waiting for dependencies to do so
			outcomes++
		}
		if st == Open {
			outcomes++
		}
		if st == Exited {
			outcomes++
		}
		if outcomes != 1 {
			rt.Fatalf("failure from %s led to %d outcomes: state %s alive %v timers %v records %v",
				before, outcomes, st, d.alive, d.timers, d.records)
		}
	}
	if !m.Alive() {
		switch st {
		case Stopped, Exited, Waiting:
		case Open:
			if !d.timers[TimerHalfOpen] && !m.Config().Critical && !shutting {
				rt.Fatalf("open without a half-open timer: %v", d.timers)
			}
		default:
			if len(d.timers) == 0 {
				rt.Fatalf("state %s without a process and without a timer (records %v)", st, d.records)
			}
		}
	}
	if st == Stopping && !m.Alive() {
		rt.Fatalf("stopping without a process")
	}
	if (st == Running) && !m.Ready() {
		rt.Fatalf("running but not ready")
	}
}
