package lifecycle

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/supervise/supervise/conf"
)

// driver carries out a machine's actions the way the event loop does,
// without processes: it records spawns, signals and timers, and answers
// WantStart with a Start whose dependencies are met (or unmet, when set).
// fataler is what the driver needs of *testing.T and *rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
	Fatal(args ...any)
	Helper()
}

type driver struct {
	t       fataler
	m       *Machine
	now     time.Time
	nextPID int
	// spawnErr makes the next spawns fail.
	spawnErr error
	unmet    []string

	alive             bool // a process of the current run exists
	timers            map[TimerKind]bool
	signals           []syscall.Signal
	log               []Action // every action of the last Feed
	records           []Record // every record of the last Feed
	removed, critical bool
	refused           []string
}

func newDriver(t fataler, cfg *conf.Program) *driver {
	return &driver{t: t, m: New(cfg), now: time.Unix(1_000_000, 0), nextPID: 100, timers: map[TimerKind]bool{}}
}

// feed steps ev and carries out the actions it leads to, recursively.
func (d *driver) feed(ev Event) {
	d.log, d.records = nil, nil
	d.step(ev)
}

func (d *driver) step(ev Event) {
	acts := append([]Action(nil), d.m.Step(ev, d.now)...)
	for _, a := range acts {
		d.log = append(d.log, a)
		switch a := a.(type) {
		case Spawn:
			if d.alive {
				d.t.Fatalf("spawn of run %d while a process is alive", a.Run)
			}
			if d.spawnErr != nil {
				d.step(SpawnFailed{Err: d.spawnErr, Code: 127})
				continue
			}
			d.alive = true
			d.nextPID++
			d.step(Spawned{PID: d.nextPID})
		case SignalGroup:
			d.signals = append(d.signals, a.Signal)
		case SetTimer:
			d.timers[a.Kind] = true
		case CancelTimer:
			delete(d.timers, a.Kind)
		case WantStart:
			d.step(Start{Why: a.Why, Unmet: d.unmet})
		case Refuse:
			d.refused = append(d.refused, a.Reason)
		case Remove:
			d.removed = true
		case Critical:
			d.critical = true
		case Emit:
			d.records = append(d.records, a.Record)
		}
	}
}

// exit ends the current process with st.
func (d *driver) exit(st ExitStatus) {
	if !d.alive {
		d.t.Fatal("exit without a process")
	}
	d.alive = false
	d.feed(ProcessExited{Status: st})
}

// fire lets the pending timer of kind fall due after its delay.
func (d *driver) fire(k TimerKind, after time.Duration) {
	if !d.timers[k] {
		d.t.Fatalf("timer %s is not pending (pending: %v)", k, d.timers)
	}
	d.now = d.now.Add(after)
	delete(d.timers, k)
	d.feed(TimerFired{Kind: k})
}

func (d *driver) failedCount() int {
	n := 0
	for _, r := range d.records {
		if _, ok := r.(Failed); ok {
			n++
		}
	}
	return n
}

func (d *driver) want(st State) {
	d.t.Helper()
	if d.m.State() != st {
		d.t.Fatalf("state %s (%s), want %s", d.m.State(), d.m.Reason(), st)
	}
}

func prog(mod func(p *conf.Program)) *conf.Program {
	cfg, err := conf.Parse("t.toml", []byte("[programs.p]\ncommand = [\"/bin/true\"]\n"))
	if err != nil {
		panic(err)
	}
	p := cfg.Programs["p"]
	if mod != nil {
		mod(p)
	}
	return p
}

var (
	exit0  = ExitStatus{Code: 0}
	exit1  = ExitStatus{Code: 1}
	killed = ExitStatus{Code: -1, Signal: syscall.SIGKILL}
	errNo  = errors.New("exec /nope: no such file or directory")
)

func TestStepString(t *testing.T) {
	for _, k := range []TimerKind{TimerBackoff, TimerHalfOpen, TimerMinUptime, TimerStopKill, TimerReady, NumTimers} {
		if k.String() == "" {
			t.Fatal(k)
		}
	}
	if got := fmt.Sprint(killed); got != "signal SIGKILL" {
		t.Fatal(got)
	}
}
