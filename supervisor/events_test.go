package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/events"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// eventStream is one `supervise events` client of a test's supervisor,
// over the real control socket.
type eventStream struct {
	t      *testing.T
	ch     chan *events.Event
	ended  chan error
	cancel context.CancelFunc
	seen   []*events.Event
}

// subscribeEvents opens an events stream for names and returns once the
// supervisor has subscribed it.
func (h *harness) subscribeEvents(names ...string) *eventStream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := &eventStream{t: h.t, ch: make(chan *events.Event, 100000), ended: make(chan error, 1), cancel: cancel}
	subscribed := make(chan struct{})
	go func() {
		first := true
		st.ended <- control.Do(ctx, h.sup.SocketPath(), control.Request{Command: control.CmdEvents, Names: names}, func(r control.Response) error {
			if first {
				first = false
				close(subscribed)
			}
			if r.Event != nil {
				st.ch <- r.Event
			}
			return nil
		})
	}()
	select {
	case <-subscribed:
	case err := <-st.ended:
		h.t.Fatalf("events stream: %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatal("events stream not subscribed")
	}
	h.t.Cleanup(func() {
		cancel()
		<-st.ended
	})
	return st
}

// next returns the next event of kind about program (any kind for
// KindNone), failing the test after 10 seconds.
func (st *eventStream) next(kind events.Kind, program string) *events.Event {
	st.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-st.ch:
			st.seen = append(st.seen, ev)
			if (kind == events.KindNone || ev.Kind == kind) && ev.Program == program {
				return ev
			}
		case <-deadline:
			st.t.Fatalf("no %s event of %q within 10s; seen:\n%s", kind, program, texts(st.seen))
			return nil
		}
	}
}

// rest reads the stream to its end (the supervisor exiting).
func (st *eventStream) rest() error {
	st.t.Helper()
	for {
		select {
		case ev := <-st.ch:
			st.seen = append(st.seen, ev)
		case err := <-st.ended:
			for len(st.ch) > 0 {
				st.seen = append(st.seen, <-st.ch)
			}
			st.ended <- err
			return err
		case <-time.After(20 * time.Second):
			st.t.Fatalf("the stream did not end; seen:\n%s", texts(st.seen))
		}
	}
}

func texts(evs []*events.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Text())
		b.WriteByte('\n')
	}
	return b.String()
}

// gapless checks that evs number consecutively.
func gapless(t *testing.T, evs []*events.Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != evs[i-1].Seq+1 {
			t.Fatalf("seq %d follows %d:\n%s", evs[i].Seq, evs[i-1].Seq, texts(evs))
		}
	}
}

func socketConfig(programs string) string {
	return "[supervisor]\nsocket = \"$DIR/ctl.sock\"\nwatch_config = false\n" + programs
}

// Every kind a supervisor without probes can produce is published, by
// real processes, with the fields of its kind and consecutive numbers.
func TestEventsEveryKind(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	programs := `
[programs.flap]
command = ["/bin/sh", "-c", "exit 1"]
backoff_initial = "1s"
[programs.flap.breaker]
max_failures = 2
reset_timeout = "10s"
[programs.beat]
command = ["/bin/sleep", "1000"]
[programs.beat.watchdog]
heartbeat_file = "$DIR/beat"
timeout = "2s"
action = "log"
[programs.main]
command = ["/bin/sh", "-c", "while [ ! -f $DIR/go ]; do sleep 0.02; done; exit 3"]
restart = "never"
critical = true
[teardown.note]
command = ["/bin/true"]
`
	h := startSup(t, socketConfig(programs), clk)
	h.waitFor("flap in backoff", func() bool { return h.status("flap").State == "backoff" })
	st := h.subscribeEvents()

	clk.Advance(time.Second)
	ev := st.next(events.State, "flap")
	if ev.From != "backoff" || ev.To != "running" || ev.PID == 0 {
		t.Fatalf("restart: %s", ev.Text())
	}
	if ev := st.next(events.Ready, "flap"); ev.Source != "spawn" {
		t.Fatalf("ready: %s", ev.Text())
	}
	// The failure, the open breaker and the change of state come
	// together (the breaker opens as the failure is counted).
	got := map[events.Kind]*events.Event{}
	for got[events.State] == nil {
		ev := st.next(events.KindNone, "flap")
		got[ev.Kind] = ev
	}
	if ev := got[events.Failed]; ev == nil || ev.Failures != 2 || ev.Reason != "exit code 1" || ev.ExitCode == nil || *ev.ExitCode != 1 {
		t.Fatalf("failed: %v", got)
	}
	if ev := got[events.BreakerOpen]; ev == nil || ev.From != "closed" || ev.To != "open" || ev.Failures != 2 {
		t.Fatalf("breaker_open: %v", got)
	}
	ev = got[events.State]
	if ev.From != "running" || ev.To != "open" || ev.ExitCode == nil || *ev.ExitCode != 1 || ev.PID == 0 {
		t.Fatalf("to open: %s", ev.Text())
	}
	// The watchdog of beat fires at its start_grace (2s), action log.
	clk.Advance(time.Second)
	if ev := st.next(events.Watchdog, "beat"); ev.Action != "log" || !strings.Contains(ev.Detail, "beat") {
		t.Fatalf("watchdog: %s", ev.Text())
	}
	clk.Advance(9 * time.Second)
	if ev := st.next(events.BreakerHalfOpen, "flap"); ev.From != "open" || ev.To != "half_open" {
		t.Fatalf("half-open: %s", ev.Text())
	}
	st.next(events.BreakerOpen, "flap")
	if r := h.ctl(control.CmdReset, "flap"); !r.OK {
		t.Fatalf("reset: %+v", r)
	}
	if ev := st.next(events.BreakerClosed, "flap"); ev.From != "open" || ev.To != "closed" {
		t.Fatalf("closed: %s", ev.Text())
	}

	path := filepath.Join(h.dir, "supervise.toml")
	cfg := strings.ReplaceAll(socketConfig(programs), "$DIR", h.dir)
	if err := os.WriteFile(path, []byte(cfg+"[programs.extra]\ncommand = [\"/bin/sleep\", \"1000\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := h.ctl(control.CmdReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	if ev := st.next(events.Reload, ""); ev.Reason != "control request" {
		t.Fatalf("reload: %s", ev.Text())
	} else if d := reloadDiff(t, ev); len(d.Added) != 1 || d.Added[0].Name != "extra" || len(d.Removed)+len(d.Changed) != 0 {
		t.Fatalf("reload: %s", ev.Text())
	}
	if err := os.WriteFile(path, []byte("[programs.x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.ctl(control.CmdReload)
	if ev := st.next(events.Reload, ""); !strings.Contains(ev.Error, "supervise.toml:") || ev.Diff != nil {
		t.Fatalf("refused reload: %s", ev.Text())
	}

	if err := os.WriteFile(filepath.Join(h.dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ev := st.next(events.CriticalExit, "main"); ev.ExitCode == nil || *ev.ExitCode != 3 || !strings.Contains(ev.Reason, "main") {
		t.Fatalf("critical_exit: %s", ev.Text())
	}
	if ev := st.next(events.Teardown, ""); ev.Phase != "begin" || *ev.ExitCode != 3 {
		t.Fatalf("teardown: %s", ev.Text())
	}
	if err := st.rest(); err != nil {
		t.Fatalf("stream ended with %v", err)
	}
	steps := map[string]int{}
	for _, ev := range st.seen {
		if ev.Kind == events.TeardownStep {
			steps[ev.Step+" "+ev.Phase]++
			if strings.HasPrefix(ev.Step, "program ") && ev.Program != strings.TrimPrefix(ev.Step, "program ") {
				t.Errorf("step event of %q names program %q", ev.Step, ev.Program)
			}
		}
	}
	for _, step := range []string{"program flap", "program beat", "program extra", "teardown note"} {
		if steps[step+" start"] != 1 || steps[step+" end"] != 1 {
			t.Errorf("teardown step %s: %d starts, %d ends", step, steps[step+" start"], steps[step+" end"])
		}
	}
	last := st.seen[len(st.seen)-1]
	if last.Kind != events.Teardown || last.Phase != "end" || *last.ExitCode != 3 {
		t.Errorf("last event %s, want the end of the teardown", last.Text())
	}
	gapless(t, st.seen)
	if code := h.exitCode(); code != 3 {
		t.Fatalf("exit code %d", code)
	}
}

// The records of probes (readiness and health sources other than the
// built-in ones) are published as probe, ready and not_ready events: the
// loop's record path, driven directly (TestEventsOfRealProbes drives it
// with real probes).
func TestProbeRecordsArePublished(t *testing.T) {
	cfg := benchlessConfig(t, "[programs.web]\ncommand = [\"/bin/sleep\", \"1000\"]\n")
	s, err := New(Options{Config: cfg, Reaper: reaper, Clock: clock.NewFake(time.Unix(100, 0))})
	if err != nil {
		t.Fatal(err)
	}
	p := s.newProgram(cfg.Programs["web"])
	sub := events.NewSubscriber([]string{"web"}, 10)
	s.bus.Subscribe(sub)
	s.record(p, lifecycle.Health{Source: "liveness", Action: conf.WatchdogRestart, Detail: "connection refused"})
	s.record(p, lifecycle.ReadyChange{Ready: false, Source: "readiness", Detail: "HTTP 503"})
	s.record(p, lifecycle.ReadyChange{Ready: true, Source: "readiness", Detail: "HTTP 200"})
	s.record(p, lifecycle.Health{Source: "liveness", Action: conf.WatchdogStop, Ignored: true})
	s.record(p, lifecycle.Succeeded{Reason: "min_uptime reached"}) // makes no event
	s.publishProbe(p, "liveness", "failing", "passing", "")
	got, lost, err := sub.Next(context.Background(), nil)
	if err != nil || lost != 0 || len(got) != 5 {
		t.Fatalf("got %d events, lost %d, %v", len(got), lost, err)
	}
	if ev := got[0]; ev.Kind != events.Probe || ev.Source != "liveness" || ev.Detail != "connection refused" || ev.Action != "restart" || ev.Seq != 1 {
		t.Errorf("probe: %s", ev.Text())
	}
	if ev := got[1]; ev.Kind != events.NotReady || ev.Source != "readiness" || ev.Detail != "HTTP 503" {
		t.Errorf("not_ready: %s", ev.Text())
	}
	if ev := got[2]; ev.Kind != events.Ready || ev.Source != "readiness" {
		t.Errorf("ready: %s", ev.Text())
	}
	if ev := got[3]; ev.Kind != events.Probe || ev.Action != "none" || ev.Seq != 4 {
		t.Errorf("ignored probe: %s", ev.Text())
	}
	if ev := got[4]; ev.Kind != events.Probe || ev.Source != "liveness" || ev.From != "failing" || ev.To != "passing" || ev.Seq != 5 {
		t.Errorf("probe transition: %s", ev.Text())
	}
	if n := s.bus.Count(events.Probe); n != 3 {
		t.Errorf("%d probe events counted", n)
	}
}

func benchlessConfig(t *testing.T, toml string) *conf.Config {
	t.Helper()
	cfg, err := conf.Parse(filepath.Join(t.TempDir(), "supervise.toml"), []byte("[supervisor]\nsocket = \"off\"\n"+toml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A stream of NAME has that program's events only; an unknown NAME is
// refused.
func TestEventsFilterByName(t *testing.T) {
	h := startSup(t, socketConfig(`
[programs.a]
command = ["/bin/sleep", "1000"]
[programs.b]
command = ["/bin/sleep", "1000"]
`), nil)
	h.waitFor("running", func() bool { return h.status("a").PID != 0 && h.status("b").PID != 0 })
	st := h.subscribeEvents("b")
	h.ctl(control.CmdRestart, "a")
	h.ctl(control.CmdRestart, "b")
	if ev := st.next(events.KindNone, "b"); ev.Kind != events.State {
		t.Fatalf("first event %s", ev.Text())
	}
	for _, ev := range st.seen {
		if ev.Program != "b" {
			t.Fatalf("stream of b got %s", ev.Text())
		}
	}
	err := control.Do(context.Background(), h.sup.SocketPath(), control.Request{Command: control.CmdEvents, Names: []string{"nope"}},
		func(control.Response) error { return nil })
	var re *control.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, `no program named "nope"`) {
		t.Fatalf("events nope: %v", err)
	}
}

// A reader that does not keep up loses events, is told how many, and
// slows neither the loop nor the other readers: those get every event,
// numbered without gaps.
func TestEventsSlowSubscriber(t *testing.T) {
	defer func(n int) { subscriberBuffer = n }(subscriberBuffer)
	subscriberBuffer = 512
	h := startSup(t, socketConfig(`
[programs.crash]
command = ["/bin/false"]
restart = "always"
backoff_initial = "0s"
backoff_max = "0s"
min_uptime = "0s"
autostart = false
stdout = "null"
stderr = "null"
[programs.crash.breaker]
max_failures = 1000000000
`), nil)
	fast := h.subscribeEvents()
	// The slow reader sends its request and reads nothing for a while.
	slow, err := dialEvents(h.sup.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.close()
	if m := slow.read(t); m.Reply == nil || m.Reply.Event != nil {
		t.Fatalf("first message %+v, want the subscription's reply", m)
	}
	if r := h.ctl(control.CmdStart, "crash"); !r.OK {
		t.Fatalf("start: %+v", r)
	}
	// The kernel's socket buffers and streamAhead hold some events; well
	// past them, the slow reader's buffer overflows.
	const want = 6000
	for range want {
		fast.next(events.KindNone, "crash")
	}
	if st := h.status("crash"); st.Stats.Starts < want/4 {
		t.Fatalf("the crash loop ran only %d times", st.Stats.Starts)
	}
	h.ctl(control.CmdStop, "crash")
	gapless(t, fast.seen)
	// Now the slow reader reads: its events are consecutive up to a
	// marker, and the event that follows the marker (one more, made now)
	// is as many further on as the marker says were lost.
	var prev uint64
	for {
		ev := slow.read(t).Reply.Event
		if ev.Kind != events.Lost {
			if prev != 0 && ev.Seq != prev+1 {
				t.Fatalf("seq %d after %d without a lost marker", ev.Seq, prev)
			}
			prev = ev.Seq
			continue
		}
		h.ctl(control.CmdReload)
		next := slow.read(t).Reply.Event
		if ev.Lost == 0 || next.Kind != events.Reload || next.Seq-prev-1 != ev.Lost {
			t.Fatalf("lost %d between seq %d and %s", ev.Lost, prev, next.Text())
		}
		if fast.next(events.Reload, "").Seq != next.Seq {
			t.Fatal("the readers disagree on the reload's number")
		}
		t.Logf("%d events; the slow reader lost %d after seq %d", len(fast.seen), ev.Lost, prev)
		return
	}
}

// rawEvents is an events client on a bare connection, which reads only
// when the test says.
type rawEvents struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialEvents(path string) (*rawEvents, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte(`{"v":1,"command":"events"}` + "\n")); err != nil {
		c.Close()
		return nil, err
	}
	return &rawEvents{conn: c, r: bufio.NewReader(c)}, nil
}

func (c *rawEvents) read(t *testing.T) control.Message {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading events: %v", err)
	}
	m, err := control.DecodeMessage(line[:len(line)-1])
	if err != nil || m.Type != control.MsgReply {
		t.Fatalf("message %s: %v", line, err)
	}
	return m
}

func (c *rawEvents) close() { c.conn.Close() }

// With no subscriber and no hook, an event is a counter increment: no
// allocation, and the numbers still advance.
func TestEventsCostNothingUnread(t *testing.T) {
	cfg := benchlessConfig(t, "[programs.web]\ncommand = [\"/bin/sleep\", \"1000\"]\n")
	s, err := New(Options{Config: cfg, Reaper: reaper})
	if err != nil {
		t.Fatal(err)
	}
	p := s.newProgram(cfg.Programs["web"])
	exit := lifecycle.ExitStatus{Code: 1}
	records := []lifecycle.Record{
		lifecycle.Transition{From: lifecycle.Running, To: lifecycle.Backoff, Reason: "exit code 1", PID: 7, Exit: &exit},
		lifecycle.Failed{Reason: "exit code 1", Consecutive: 1},
		lifecycle.ReadyChange{Ready: true, Source: "spawn"},
		lifecycle.BreakerChange{},
	}
	if n := testing.AllocsPerRun(1000, func() {
		for _, r := range records {
			s.publishRecord(p, r)
		}
	}); n != 0 {
		t.Fatalf("publishing unread events allocates %v times", n)
	}
	if got := s.bus.Stamp(events.State); got != 1001*4+1 {
		t.Fatalf("next seq %d, want %d", got, 1001*4+1)
	}
}

// reloadDiff decodes the diff of a reload event, which is the JSON of the
// configuration's diff.
func reloadDiff(t *testing.T, ev *events.Event) *conf.ConfigDiff {
	t.Helper()
	var d conf.ConfigDiff
	if err := json.Unmarshal(ev.Diff, &d); err != nil {
		t.Fatalf("the diff of %s: %v", ev.Text(), err)
	}
	return &d
}
